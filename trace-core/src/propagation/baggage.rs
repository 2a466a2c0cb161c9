//! W3C Baggage: the `baggage` header.

use http::{HeaderMap, HeaderValue};
use percent_encoding::{percent_decode, utf8_percent_encode};

use super::header::ScannedHeaders;
use super::header::{
    BAGGAGE_VALUE_ESCAPES, Dropped, HeaderScan, Known, is_baggage_octet, is_token, limit_reason,
    replace,
};
use super::{ExtractError, Extracted, Presence, Propagator};
use crate::baggage::MAX_TOTAL_LEN;
use crate::trace_state::trim_ows;
use crate::{BaggageBuilder, BaggageEntry, SpanContext};

/// W3C Baggage (`baggage: key=value;property,...`).
///
/// All `baggage` header lines are read as one list. A member that breaks the grammar, does not
/// decode to UTF-8 or does not fit the [`crate::limits`] is dropped and the others kept; the call
/// then reports how many were dropped. A list longer than 8192 bytes is refused whole.
///
/// ```
/// use http::HeaderMap;
/// use trace_core::propagation::{BaggagePropagator, Extracted, Propagator};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("baggage", "userId=alice, note=caf%C3%A9;ttl=30".parse()?);
/// let mut extracted = Extracted::default();
/// BaggagePropagator::new().extract(&headers, &mut extracted)?;
/// assert_eq!(extracted.baggage.get("userId"), Some("alice"));
/// assert_eq!(extracted.baggage.get("note"), Some("café"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct BaggagePropagator;

impl BaggagePropagator {
    /// The W3C Baggage format.
    pub fn new() -> Self {
        Self
    }
}

impl Propagator for BaggagePropagator {
    fn name(&self) -> &'static str {
        "baggage"
    }

    fn extract(&self, headers: &HeaderMap, into: &mut Extracted) -> Result<Presence, ExtractError> {
        self.extract_scanned(&HeaderScan::new(headers), into)
    }

    fn extract_scanned(
        &self,
        headers: &HeaderScan<'_>,
        into: &mut Extracted,
    ) -> Result<Presence, ExtractError> {
        if !headers.contains(Known::Baggage) {
            return Ok(Presence::Absent);
        }
        // Measured as the lines joined by ",", before anything is decoded or stored.
        let total = headers
            .all(Known::Baggage)
            .map(|line| line.len().saturating_add(1))
            .fold(0usize, usize::saturating_add)
            .saturating_sub(1);
        if total > MAX_TOTAL_LEN {
            return Err(ExtractError::Oversized {
                header: "baggage",
                limit: MAX_TOTAL_LEN,
            });
        }
        let mut builder = BaggageBuilder::new();
        let mut dropped = Dropped::default();
        for member in headers
            .all(Known::Baggage)
            .flat_map(|line| line.as_bytes().split(|&b| b == b','))
        {
            let member = trim_ows(member);
            if member.is_empty() {
                continue;
            }
            match parse_member(member) {
                Ok(entry) => {
                    if let Err(error) = builder.insert(entry) {
                        dropped.add(limit_reason(error));
                    }
                }
                Err(reason) => dropped.add(reason),
            }
        }
        let (merged, rejected) = into.baggage.merged(&builder.build());
        into.baggage = merged;
        dropped.add_many(rejected, "baggage limits reached");
        match dropped.error() {
            Some(error) => Err(error),
            None => Ok(Presence::Found),
        }
    }

    fn scanned_headers(&self) -> ScannedHeaders {
        ScannedHeaders::of(&[Known::Baggage], false)
    }

    fn inject(&self, context: &SpanContext, headers: &mut HeaderMap) {
        let mut value = String::new();
        for entry in context.baggage().iter() {
            if !is_token(entry.key.as_bytes()) {
                continue;
            }
            let mut member = String::with_capacity(entry.key.len() + entry.value.len() + 1);
            member.push_str(&entry.key);
            member.push('=');
            member.extend(utf8_percent_encode(&entry.value, BAGGAGE_VALUE_ESCAPES));
            // Properties are forwarded as received; ones that would break the list (set by
            // application code, say) are left off rather than the entry.
            if let Some(properties) = entry.properties.as_deref()
                && properties_are_valid(properties.as_bytes())
            {
                member.push(';');
                member.push_str(properties);
            }
            // A peer (this crate included) refuses a longer list whole, so a member that does not
            // fit is left out instead of costing all the others.
            let separator = usize::from(!value.is_empty());
            if value.len() + separator + member.len() > MAX_TOTAL_LEN {
                continue;
            }
            if separator == 1 {
                value.push(',');
            }
            value.push_str(&member);
        }
        let header = match value.is_empty() {
            true => None,
            false => HeaderValue::from_str(&value).ok(),
        };
        replace(headers, Known::Baggage.header_name(), header);
    }
}

/// Reads `key OWS = OWS value *(OWS ; OWS property)` from a trimmed, non-empty member.
fn parse_member(member: &[u8]) -> Result<BaggageEntry, &'static str> {
    let (pair, properties) = match member.iter().position(|&b| b == b';') {
        Some(semicolon) => (
            member.get(..semicolon).unwrap_or_default(),
            Some(trim_ows(member.get(semicolon + 1..).unwrap_or_default())),
        ),
        None => (member, None),
    };
    let Some(equals) = pair.iter().position(|&b| b == b'=') else {
        return Err("member without '='");
    };
    let key = trim_ows(pair.get(..equals).unwrap_or_default());
    let raw_value = trim_ows(pair.get(equals + 1..).unwrap_or_default());
    if !is_token(key) {
        return Err("invalid key");
    }
    if !raw_value.iter().all(|&b| is_baggage_octet(b)) {
        return Err("invalid value");
    }
    let properties = match properties {
        Some(properties) if !properties_are_valid(properties) => {
            return Err("invalid property");
        }
        Some(properties) if !properties.is_empty() => Some(
            // Validated as ASCII above.
            std::str::from_utf8(properties)
                .map_err(|_| "invalid property")?
                .to_owned(),
        ),
        _ => None,
    };
    let value = percent_decode(raw_value)
        .decode_utf8()
        .map_err(|_| "value is not UTF-8 once decoded")?;
    let key = std::str::from_utf8(key).map_err(|_| "invalid key")?;
    Ok(BaggageEntry {
        key: key.to_owned(),
        value: value.into_owned(),
        properties,
    })
}

/// Whether `properties` (what follows a member's first `;`) is a list of
/// `key OWS [= OWS value]` separated by `;`. Empty properties (a trailing `;`) are tolerated.
fn properties_are_valid(properties: &[u8]) -> bool {
    properties.split(|&b| b == b';').all(|property| {
        let property = trim_ows(property);
        match property.iter().position(|&b| b == b'=') {
            None => property.is_empty() || is_token(property),
            Some(equals) => {
                let key = trim_ows(property.get(..equals).unwrap_or_default());
                let value = trim_ows(property.get(equals + 1..).unwrap_or_default());
                is_token(key) && value.iter().all(|&b| is_baggage_octet(b))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{MAX_ENTRIES, MAX_ENTRY_LEN};
    use crate::{Baggage, TraceFlags};

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(
                "baggage",
                HeaderValue::from_bytes(line.as_bytes()).expect("test header value"),
            );
        }
        headers
    }

    fn extract(lines: &[&str]) -> (Result<Presence, ExtractError>, Baggage) {
        let mut extracted = Extracted::default();
        let result = BaggagePropagator::new().extract(&headers(lines), &mut extracted);
        (result, extracted.baggage)
    }

    fn pairs(baggage: &Baggage) -> Vec<(&str, &str)> {
        baggage
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect()
    }

    #[test]
    fn no_header_is_absent() {
        let (result, baggage) = extract(&[]);
        assert_eq!(result, Ok(Presence::Absent));
        assert!(baggage.is_empty());
    }

    #[test]
    fn reads_members_trimming_white_space_and_skipping_empty_ones() {
        let (result, baggage) = extract(&[" userId = alice ,, \ttenant=acme,empty=,"]);
        assert_eq!(result, Ok(Presence::Found));
        assert_eq!(
            pairs(&baggage),
            [("userId", "alice"), ("tenant", "acme"), ("empty", "")]
        );
    }

    #[test]
    fn several_lines_are_combined() {
        let (result, baggage) = extract(&["a=1,b=2", "c=3", "", "b=4"]);
        assert_eq!(result, Ok(Presence::Found));
        assert_eq!(pairs(&baggage), [("a", "1"), ("b", "4"), ("c", "3")]);
    }

    #[test]
    fn values_are_percent_decoded() {
        let (result, baggage) =
            extract(&["path=%2Fa%2Cb%3Bc, name=caf%C3%A9, pct=100%25, raw=a%zz"]);
        assert_eq!(result, Ok(Presence::Found));
        assert_eq!(baggage.get("path"), Some("/a,b;c"));
        assert_eq!(baggage.get("name"), Some("café"));
        assert_eq!(baggage.get("pct"), Some("100%"));
        // Not a percent sequence: kept as it came.
        assert_eq!(baggage.get("raw"), Some("a%zz"));
    }

    #[test]
    fn properties_are_kept_raw_and_trimmed() {
        let (result, baggage) = extract(&["k=v ; ttl = 30 ;flag , j=w;"]);
        assert_eq!(result, Ok(Presence::Found));
        let entries: Vec<_> = baggage.iter().collect();
        assert_eq!(entries[0].value, "v");
        assert_eq!(entries[0].properties.as_deref(), Some("ttl = 30 ;flag"));
        assert_eq!(entries[1].value, "w");
        assert_eq!(entries[1].properties, None);
    }

    #[test]
    fn malformed_members_are_dropped_and_the_rest_kept() {
        let (result, baggage) =
            extract(&["good=1,no-equals,bad key=x,k=a b,\"q\"=1,u=%FF%FE,p=1;bad prop,=v,last=2"]);
        assert_eq!(
            result,
            Err(ExtractError::Baggage {
                dropped: 7,
                reason: "member without '='"
            })
        );
        assert_eq!(pairs(&baggage), [("good", "1"), ("last", "2")]);
    }

    #[test]
    fn invalid_utf8_after_decoding_drops_the_member() {
        let (result, baggage) = extract(&["u=%C3%28,ok=%C3%A9"]);
        assert_eq!(
            result,
            Err(ExtractError::Baggage {
                dropped: 1,
                reason: "value is not UTF-8 once decoded"
            })
        );
        assert_eq!(pairs(&baggage), [("ok", "é")]);
    }

    #[test]
    fn raw_non_ascii_is_an_invalid_value_not_a_panic() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "baggage",
            HeaderValue::from_bytes(b"a=caf\xc3\xa9,b=\xff,c=1").expect("obs-text is allowed"),
        );
        let mut extracted = Extracted::default();
        let result = BaggagePropagator::new().extract(&headers, &mut extracted);
        assert_eq!(
            result,
            Err(ExtractError::Baggage {
                dropped: 2,
                reason: "invalid value"
            })
        );
        assert_eq!(pairs(&extracted.baggage), [("c", "1")]);
    }

    #[test]
    fn more_than_8192_bytes_is_refused_whole() {
        let half = format!("a={}", "x".repeat(4094));
        assert_eq!(half.len(), 4096);
        // 4096 + "," + 4095 = 8192: just fits.
        let (result, baggage) = extract(&[&half, &format!("b={}", "y".repeat(4093))]);
        assert_eq!(result, Ok(Presence::Found));
        assert_eq!(baggage.len(), 2);
        let (result, baggage) = extract(&[&half, &format!("b={}", "y".repeat(4094))]);
        assert_eq!(
            result,
            Err(ExtractError::Oversized {
                header: "baggage",
                limit: 8192
            })
        );
        assert!(baggage.is_empty());
    }

    #[test]
    fn member_and_size_limits_drop_members() {
        let many: Vec<String> = (0..MAX_ENTRIES + 2).map(|i| format!("k{i}=v")).collect();
        let (result, baggage) = extract(&[&many.join(",")]);
        assert_eq!(
            result,
            Err(ExtractError::Baggage {
                dropped: 2,
                reason: "too many entries"
            })
        );
        assert_eq!(baggage.len(), MAX_ENTRIES);
        let big = format!("big={}", "x".repeat(MAX_ENTRY_LEN));
        let (result, baggage) = extract(&[&format!("{big},small=1")]);
        assert_eq!(
            result,
            Err(ExtractError::Baggage {
                dropped: 1,
                reason: "entry too long"
            })
        );
        assert_eq!(pairs(&baggage), [("small", "1")]);
    }

    #[test]
    fn merges_into_existing_baggage_the_header_winning() {
        let mut extracted = Extracted {
            baggage: Baggage::EMPTY
                .with_entry("k", "old")
                .and_then(|b| b.with_entry("kept", "1"))
                .expect("fits"),
            ..Extracted::default()
        };
        let result = BaggagePropagator::new().extract(&headers(&["k=new,x=2"]), &mut extracted);
        assert_eq!(result, Ok(Presence::Found));
        assert_eq!(
            pairs(&extracted.baggage),
            [("k", "new"), ("kept", "1"), ("x", "2")]
        );
    }

    #[test]
    fn inject_percent_encodes_values() {
        let baggage = Baggage::EMPTY
            .with_entry("path", "/a,b;c d\"e\\f%g=h")
            .and_then(|b| b.with_entry("name", "café"))
            .expect("fits");
        let context = SpanContext::new_root(TraceFlags::SAMPLED).with_baggage(baggage.clone());
        let mut headers = HeaderMap::new();
        BaggagePropagator::new().inject(&context, &mut headers);
        assert_eq!(
            headers.get("baggage").map(HeaderValue::as_bytes),
            Some(&b"path=/a%2Cb%3Bc%20d%22e%5Cf%25g=h,name=caf%C3%A9"[..])
        );
        let mut extracted = Extracted::default();
        assert_eq!(
            BaggagePropagator::new().extract(&headers, &mut extracted),
            Ok(Presence::Found)
        );
        assert_eq!(extracted.baggage, baggage);
    }

    #[test]
    fn inject_skips_keys_that_are_not_tokens_and_keeps_properties() {
        let mut builder = BaggageBuilder::new();
        for (key, properties) in [
            ("ok", Some("ttl=30")),
            ("bad key", None),
            ("bad,key", None),
            ("clé", None),
            ("broken-props", Some("a,b")),
        ] {
            builder
                .insert(BaggageEntry {
                    key: key.into(),
                    value: "v".into(),
                    properties: properties.map(Into::into),
                })
                .expect("fits");
        }
        let context = SpanContext::new_root(TraceFlags::SAMPLED).with_baggage(builder.build());
        let mut headers = HeaderMap::new();
        BaggagePropagator::new().inject(&context, &mut headers);
        assert_eq!(
            headers.get("baggage").map(HeaderValue::as_bytes),
            Some(&b"ok=v;ttl=30,broken-props=v"[..])
        );
    }

    #[test]
    fn inject_removes_a_stale_header_when_empty() {
        let mut headers = headers(&["stale=1", "stale=2"]);
        BaggagePropagator::new().inject(&SpanContext::new_root(TraceFlags::SAMPLED), &mut headers);
        assert!(!headers.contains_key("baggage"));
    }

    #[test]
    fn inject_keeps_the_header_within_8192_bytes() {
        // Each value triples when encoded, so the stored baggage fits but the header would not.
        let mut baggage = Baggage::EMPTY;
        for key in ["a", "b", "c"] {
            baggage = baggage.with_entry(key, " ".repeat(1200)).expect("fits");
        }
        let context = SpanContext::new_root(TraceFlags::SAMPLED).with_baggage(baggage);
        let mut headers = HeaderMap::new();
        BaggagePropagator::new().inject(&context, &mut headers);
        let value = headers.get("baggage").expect("some entries fit");
        assert_eq!(value.len(), 2 * (2 + 3600) + 1);
        let mut extracted = Extracted::default();
        assert_eq!(
            BaggagePropagator::new().extract(&headers, &mut extracted),
            Ok(Presence::Found)
        );
        assert_eq!(extracted.baggage.len(), 2);
        assert_eq!(extracted.baggage.get("a").map(str::len), Some(1200));
    }
}
