//! Helpers the header formats share: reading a header that must appear once, writing a value
//! into a stack buffer, the character classes of the baggage grammars, and counting dropped
//! baggage entries.

use http::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, CONTROLS};

use super::ExtractError;
use crate::BaggageError;
use crate::trace_state::trim_ows;

/// Longest value read for a header that carries ids (`traceparent`, `b3`, `uber-trace-id`, each
/// `x-b3-*`). The longest valid values are well under 100 bytes; the margin leaves room for future
/// `traceparent` versions while a peer still cannot make us scan kilobytes.
pub(super) const MAX_ID_HEADER_LEN: usize = 512;

/// Bytes written percent-encoded in a baggage value: everything outside W3C's `baggage-octet`
/// (controls, space, `"`, `,`, `;`, `\` and non-ASCII), plus `%` so that decoding gives the value
/// back. Jaeger's `uberctx-*` values start from the same set.
pub(super) const BAGGAGE_VALUE_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%');

/// The value of a header that may appear at most once, with optional white space trimmed.
///
/// Several lines are rejected rather than one picked: two parents in one request mean a broken or
/// hostile peer, and which line a proxy puts first is not something to rely on. The length limit
/// is checked before anything else is looked at.
pub(super) fn single_value<'h>(
    headers: &'h HeaderMap,
    name: &'static HeaderName,
    limit: usize,
) -> Result<Option<&'h [u8]>, ExtractError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ExtractError::Malformed {
            header: name.as_str(),
            reason: "header sent more than once",
        });
    }
    let bytes = first.as_bytes();
    if bytes.len() > limit {
        return Err(ExtractError::Oversized {
            header: name.as_str(),
            limit,
        });
    }
    Ok(Some(trim_ows(bytes)))
}

/// A short header value assembled (or decoded) on the stack, so ids are written and read without
/// an intermediate `String`.
#[derive(Debug)]
pub(super) struct StackValue<const N: usize> {
    buf: [u8; N],
    len: usize,
    overflowed: bool,
}

impl<const N: usize> StackValue<N> {
    pub(super) const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
            overflowed: false,
        }
    }

    pub(super) fn push(&mut self, bytes: &[u8]) {
        let end = self.len.saturating_add(bytes.len());
        match self.buf.get_mut(self.len..end) {
            Some(slot) => {
                slot.copy_from_slice(bytes);
                self.len = end;
            }
            // A buffer sized too small is a bug in this crate; sending a truncated id would be
            // worse than sending none, so the value is refused at the end.
            None => self.overflowed = true,
        }
    }

    pub(super) fn push_byte(&mut self, byte: u8) {
        self.push(&[byte]);
    }

    /// Writes `byte` as two lower-case hex digits.
    pub(super) fn push_hex_byte(&mut self, byte: u8) {
        self.push(&[hex_digit(byte >> 4), hex_digit(byte)]);
    }

    /// Whether everything pushed so far fit.
    pub(super) fn fits(&self) -> bool {
        !self.overflowed
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    /// The finished header value; `None` if anything did not fit or is not a valid value.
    pub(super) fn to_header_value(&self) -> Option<HeaderValue> {
        if self.overflowed {
            return None;
        }
        HeaderValue::from_bytes(self.as_bytes()).ok()
    }
}

/// Sets `name` to `value` alone, or removes it when there is no value, so that no header of a
/// format is left over from an earlier hop.
pub(super) fn replace(
    headers: &mut HeaderMap,
    name: &'static HeaderName,
    value: Option<HeaderValue>,
) {
    match value {
        Some(value) => {
            headers.insert(name, value);
        }
        None => {
            headers.remove(name);
        }
    }
}

/// The lower-case hex digit for the low four bits of `nibble`.
const fn hex_digit(nibble: u8) -> u8 {
    match nibble & 0xf {
        digit @ 0..=9 => b'0' + digit,
        digit => b'a' + digit - 10,
    }
}

/// Whether `bytes` is an RFC 7230 `token` (the grammar of header names and baggage keys).
pub(super) fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|&b| is_tchar(b))
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// W3C `baggage-octet`: printable ASCII except `"`, `,`, `;` and `\`.
pub(super) fn is_baggage_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

/// Counts dropped baggage entries and remembers why the first went, for [`ExtractError::Baggage`].
#[derive(Debug, Default)]
pub(super) struct Dropped {
    count: usize,
    reason: Option<&'static str>,
}

impl Dropped {
    pub(super) fn add(&mut self, reason: &'static str) {
        self.add_many(1, reason);
    }

    pub(super) fn add_many(&mut self, count: usize, reason: &'static str) {
        if count > 0 {
            self.count += count;
            self.reason.get_or_insert(reason);
        }
    }

    /// The error to report, if anything was dropped.
    pub(super) fn error(&self) -> Option<ExtractError> {
        self.reason.map(|reason| ExtractError::Baggage {
            dropped: self.count,
            reason,
        })
    }
}

/// A short reason for an entry the baggage limits refused.
pub(super) fn limit_reason(error: BaggageError) -> &'static str {
    match error {
        BaggageError::EmptyKey => "empty key",
        BaggageError::EntryTooLong => "entry too long",
        BaggageError::TooManyEntries => "too many entries",
        BaggageError::TooLong => "baggage too long",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static ONCE: HeaderName = HeaderName::from_static("x-once");

    #[test]
    fn single_value_trims_and_rejects_repeats_and_oversize() {
        let mut headers = HeaderMap::new();
        assert_eq!(single_value(&headers, &ONCE, 8), Ok(None));
        headers.insert(&ONCE, HeaderValue::from_static(" \tabc "));
        assert_eq!(single_value(&headers, &ONCE, 8), Ok(Some(&b"abc"[..])));
        assert_eq!(
            single_value(&headers, &ONCE, 5),
            Err(ExtractError::Oversized {
                header: "x-once",
                limit: 5
            })
        );
        headers.append(&ONCE, HeaderValue::from_static("abc"));
        assert_eq!(
            single_value(&headers, &ONCE, 8),
            Err(ExtractError::Malformed {
                header: "x-once",
                reason: "header sent more than once"
            })
        );
    }

    #[test]
    fn stack_value_writes_hex_and_refuses_overflow() {
        let mut value = StackValue::<4>::new();
        value.push_hex_byte(0x0a);
        value.push_byte(b'-');
        assert_eq!(value.as_bytes(), b"0a-");
        assert_eq!(
            value.to_header_value(),
            Some(HeaderValue::from_static("0a-"))
        );
        value.push(b"xy");
        assert_eq!(value.to_header_value(), None);
    }

    #[test]
    fn character_classes_follow_the_grammars() {
        assert!(is_token(b"user-Id_1.x~"));
        assert!(!is_token(b""));
        assert!(!is_token(b"a b"));
        assert!(!is_token(b"a=b"));
        assert!(!is_token("é".as_bytes()));
        assert!(is_baggage_octet(b'%') && is_baggage_octet(b'='));
        assert!(!is_baggage_octet(b' ') && !is_baggage_octet(b','));
        assert!(!is_baggage_octet(b';') && !is_baggage_octet(b'\\'));
        assert!(!is_baggage_octet(b'"') && !is_baggage_octet(0x7f) && !is_baggage_octet(0xc3));
    }
}
