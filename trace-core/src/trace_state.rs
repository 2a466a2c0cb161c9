//! W3C `tracestate`: vendor-specific trace data that travels beside the ids.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Most list members a trace state may hold (W3C Trace Context §3.3.1.1).
pub const MAX_MEMBERS: usize = 32;
/// Longest combined header this crate reads; longer input is rejected rather than scanned.
pub const MAX_HEADER_LEN: usize = 8192;

/// Why a `tracestate` value was rejected. The spec's rule is that an invalid trace state is
/// dropped whole, while the `traceparent` beside it is still used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TraceStateError {
    /// A member's key breaks the key grammar.
    #[error("invalid tracestate key")]
    Key,
    /// A member's value breaks the value grammar.
    #[error("invalid tracestate value")]
    Value,
    /// A member has no `=`.
    #[error("tracestate member without '='")]
    MissingEquals,
    /// The same key appears twice.
    #[error("duplicate tracestate key")]
    DuplicateKey,
    /// More than [`MAX_MEMBERS`] members.
    #[error("more than {MAX_MEMBERS} tracestate members")]
    TooManyMembers,
    /// The combined header is longer than [`MAX_HEADER_LEN`].
    #[error("tracestate longer than {MAX_HEADER_LEN} bytes")]
    TooLong,
}

/// A validated, immutable W3C trace state; cloning shares the text.
///
/// It is kept as its normalised header text (members joined by `,`, no optional white space), so
/// continuing a trace forwards it without re-encoding and an empty state costs nothing.
///
/// ```
/// use trace_core::TraceState;
///
/// let state: TraceState = "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7".parse()?;
/// assert_eq!(state.get("rojo"), Some("00f067aa0ba902b7"));
/// let updated = state.with_entry("ours", "1")?;
/// assert_eq!(updated.header_value(), Some("ours=1,congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"));
/// # Ok::<(), trace_core::TraceStateError>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct TraceState(Option<Arc<str>>);

impl TraceState {
    /// The empty trace state.
    pub const EMPTY: Self = Self(None);

    /// Parses one or more header values, combined as if joined by `,` (RFC 9110 §5.3).
    ///
    /// Empty members and optional white space around them are skipped.
    pub fn parse_values<'a>(
        values: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Self, TraceStateError> {
        let mut values = values.into_iter().peekable();
        if values.peek().is_none() {
            return Ok(Self::EMPTY);
        }
        let mut members: [(&[u8], &[u8]); MAX_MEMBERS] = [(&[], &[]); MAX_MEMBERS];
        let mut count = 0usize;
        let mut total = 0usize;
        let mut lines = 0usize;
        let mut single_line: &[u8] = &[];
        for value in values {
            total += value.len() + 1;
            if total > MAX_HEADER_LEN + 1 {
                return Err(TraceStateError::TooLong);
            }
            lines += 1;
            single_line = value;
            for member in value.split(|&b| b == b',') {
                let member = trim_ows(member);
                if member.is_empty() {
                    continue;
                }
                let (key, value) = split_member(member)?;
                if members[..count]
                    .iter()
                    .any(|(existing, _)| *existing == key)
                {
                    return Err(TraceStateError::DuplicateKey);
                }
                let slot = members
                    .get_mut(count)
                    .ok_or(TraceStateError::TooManyMembers)?;
                *slot = (key, value);
                count += 1;
            }
        }
        let members = &members[..count];
        if members.is_empty() {
            return Ok(Self::EMPTY);
        }
        // The grammar admits ASCII only, so the text is valid UTF-8.
        let text = |bytes: &'a [u8]| std::str::from_utf8(bytes).map_err(|_| TraceStateError::Value);
        let normalised_len = members
            .iter()
            .map(|(k, v)| k.len() + 1 + v.len())
            .sum::<usize>()
            + members.len()
            - 1;
        if lines == 1 && single_line.len() == normalised_len {
            // Already normalised (the usual case): share the header text as it is.
            return Ok(Self(Some(text(single_line)?.into())));
        }
        let mut normalised = String::with_capacity(normalised_len);
        for (index, (key, value)) in members.iter().enumerate() {
            if index > 0 {
                normalised.push(',');
            }
            normalised.push_str(text(key)?);
            normalised.push('=');
            normalised.push_str(text(value)?);
        }
        Ok(Self(Some(normalised.into())))
    }

    /// The normalised header value, or `None` when empty (send no `tracestate` header then).
    pub fn header_value(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The members in order, most recently updated first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        members(self.0.as_deref().unwrap_or(""))
    }

    /// A copy with `key` set to `value` and moved to the front, as the spec asks of a vendor that
    /// updates its entry. The oldest member is dropped if the list would exceed [`MAX_MEMBERS`].
    pub fn with_entry(&self, key: &str, value: &str) -> Result<Self, TraceStateError> {
        if !is_valid_key(key.as_bytes()) {
            return Err(TraceStateError::Key);
        }
        if !is_valid_value(value.as_bytes()) {
            return Err(TraceStateError::Value);
        }
        let mut out = format!("{key}={value}");
        let others = self.iter().filter(|(k, _)| *k != key);
        for (k, v) in others.take(MAX_MEMBERS - 1) {
            out.push(',');
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
        Ok(Self(Some(out.into())))
    }

    /// A copy without `key`.
    pub fn without(&self, key: &str) -> Self {
        let rest: Vec<String> = self
            .iter()
            .filter(|(k, _)| *k != key)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if rest.is_empty() {
            Self::EMPTY
        } else {
            Self(Some(rest.join(",").into()))
        }
    }
}

impl FromStr for TraceState {
    type Err = TraceStateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_values([s.as_bytes()])
    }
}

impl fmt::Display for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.header_value().unwrap_or(""))
    }
}

impl fmt::Debug for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceState({:?})", self.header_value().unwrap_or(""))
    }
}

fn members(normalised: &str) -> impl Iterator<Item = (&str, &str)> {
    normalised
        .split(',')
        .filter(|m| !m.is_empty())
        .filter_map(|m| m.split_once('='))
}

/// Strips optional white space (space and horizontal tab).
pub(crate) fn trim_ows(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

fn split_member(member: &[u8]) -> Result<(&[u8], &[u8]), TraceStateError> {
    let eq = member
        .iter()
        .position(|&b| b == b'=')
        .ok_or(TraceStateError::MissingEquals)?;
    let (key, value) = (&member[..eq], &member[eq + 1..]);
    if !is_valid_key(key) {
        return Err(TraceStateError::Key);
    }
    if !is_valid_value(value) {
        return Err(TraceStateError::Value);
    }
    Ok((key, value))
}

fn is_key_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/')
}

/// `simple-key = lcalpha 0*255(keychar)`, or `tenant@system` with a 241-char tenant that may start
/// with a digit and a 14-char system id that starts with a letter.
fn is_valid_key(key: &[u8]) -> bool {
    match key.iter().position(|&b| b == b'@') {
        None => {
            key.len() <= 256
                && key.first().is_some_and(u8::is_ascii_lowercase)
                && key.iter().all(|&b| is_key_char(b))
        }
        Some(at) => {
            let (tenant, system) = (&key[..at], &key[at + 1..]);
            (1..=241).contains(&tenant.len())
                && tenant
                    .first()
                    .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                && tenant.iter().all(|&b| is_key_char(b))
                && (1..=14).contains(&system.len())
                && system.first().is_some_and(u8::is_ascii_lowercase)
                && system.iter().all(|&b| is_key_char(b))
        }
    }
}

/// `value = 0*255(chr) nblk-chr`: printable ASCII without `,` and `=`, not ending in a space.
fn is_valid_value(value: &[u8]) -> bool {
    let nblk = |b: u8| (0x21..=0x7e).contains(&b) && b != b',' && b != b'=';
    (1..=256).contains(&value.len())
        && value.last().is_some_and(|&b| nblk(b))
        && value.iter().all(|&b| b == b' ' || nblk(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&str]) -> Result<TraceState, TraceStateError> {
        TraceState::parse_values(values.iter().map(|v| v.as_bytes()))
    }

    #[test]
    fn combines_header_lines_and_trims_white_space() {
        let state = parse(&["a=1 ,\tb=2", "", " c=3,,"]).expect("valid");
        assert_eq!(state.header_value(), Some("a=1,b=2,c=3"));
        assert_eq!(state.len(), 3);
        assert_eq!(parse(&["", " , "]).expect("valid"), TraceState::EMPTY);
    }

    #[test]
    fn keys_follow_the_grammar() {
        assert!(parse(&["tenant1@vendor=x"]).is_ok());
        assert!(parse(&["1tenant@vendor=x"]).is_ok());
        assert!(parse(&["a-b_c*d/e=x"]).is_ok());
        assert_eq!(parse(&["Upper=x"]), Err(TraceStateError::Key));
        assert_eq!(parse(&["1abc=x"]), Err(TraceStateError::Key));
        assert_eq!(parse(&["t@1vendor=x"]), Err(TraceStateError::Key));
        assert_eq!(parse(&["t@vendorvendorvend=x"]), Err(TraceStateError::Key));
        assert_eq!(parse(&["novalue"]), Err(TraceStateError::MissingEquals));
        let long_key = "k".repeat(257);
        assert_eq!(
            parse(&[&format!("{long_key}=v")]),
            Err(TraceStateError::Key)
        );
    }

    #[test]
    fn values_follow_the_grammar() {
        assert!(parse(&["a=with space"]).is_ok());
        assert_eq!(parse(&["a="]), Err(TraceStateError::Value));
        assert_eq!(parse(&["a=x=y"]), Err(TraceStateError::Value));
        assert_eq!(parse(&["a=caf\u{e9}"]), Err(TraceStateError::Value));
        assert_eq!(
            parse(&[&format!("a={}", "v".repeat(257))]),
            Err(TraceStateError::Value)
        );
    }

    #[test]
    fn duplicates_and_oversize_invalidate_the_whole_state() {
        assert_eq!(parse(&["a=1", "a=2"]), Err(TraceStateError::DuplicateKey));
        let members: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        assert_eq!(parse(&[&members.join(",")]).map(|s| s.len()), Ok(32));
        let members: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert_eq!(
            parse(&[&members.join(",")]),
            Err(TraceStateError::TooManyMembers)
        );
        let huge = "a=b,".repeat(3000);
        assert_eq!(parse(&[&huge]), Err(TraceStateError::TooLong));
    }

    #[test]
    fn updating_moves_the_entry_to_the_front() {
        let state = parse(&["a=1,b=2"]).expect("valid");
        let updated = state.with_entry("b", "3").expect("valid");
        assert_eq!(updated.header_value(), Some("b=3,a=1"));
        assert_eq!(updated.without("b").header_value(), Some("a=1"));
        assert_eq!(updated.without("a").without("b"), TraceState::EMPTY);
        assert!(state.with_entry("B", "1").is_err());
        let full: TraceState = (0..32)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",")
            .parse()
            .expect("valid");
        let pushed = full.with_entry("new", "1").expect("valid");
        assert_eq!(pushed.len(), 32);
        assert_eq!(pushed.get("k31"), None);
    }
}
