//! Jaeger's native headers: `uber-trace-id`, `jaeger-debug-id` and `uberctx-*` baggage.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, percent_decode, utf8_percent_encode};

use super::header::ScannedHeaders;
use super::header::{
    BAGGAGE_VALUE_ESCAPES, Dropped, HeaderScan, Known, MAX_ID_HEADER_LEN, StackValue,
    UBERCTX_PREFIX, is_token, limit_reason, replace,
};
use super::{
    ExtractError, Extracted, Presence, Propagator, RemoteContext, take_debug_of_same_span,
};
use crate::baggage::MAX_ENTRY_LEN;
use crate::id::{parse_hex_u64, parse_hex_u128};
use crate::trace_state::trim_ows;
use crate::{BaggageBuilder, BaggageEntry, SpanContext, SpanId, TraceFlags, TraceId, TraceState};

/// Longest `jaeger-debug-id` read; it is a correlation id, not a payload.
const MAX_DEBUG_ID_LEN: usize = 256;
/// Longest decoded `uber-trace-id`: 32, 16 and 16 hex digits, 2 flag digits, 3 colons.
const MAX_TRACE_ID_VALUE_LEN: usize = 32 + 1 + 16 + 1 + 16 + 1 + 2;

const WIRE_SAMPLED: u8 = 0x01;
const WIRE_DEBUG: u8 = 0x02;
const WIRE_FIREHOSE: u8 = 0x08;

/// `uberctx-*` values are escaped as W3C baggage values are, plus `+`: the Go and Java clients
/// decode with form-URL rules, which would turn a bare `+` into a space.
const UBERCTX_VALUE_ESCAPES: &AsciiSet = &BAGGAGE_VALUE_ESCAPES.add(b'+');

/// Jaeger's propagation format, as Jaeger clients and OpenTelemetry's Jaeger propagator write it.
///
/// Extraction is as lenient as Jaeger's own clients: ids without leading zeros, upper-case hex,
/// one-digit flags, and a URL-encoded `uber-trace-id` (`%3A` for `:`) are all read. The flags map
/// to [`TraceFlags::SAMPLED`] (`0x01`), [`TraceFlags::DEBUG`] (`0x02`) and
/// [`TraceFlags::FIREHOSE`] (`0x08`); a debug flag alone stays unsampled, as the client sent it.
///
/// Baggage travels as one `uberctx-{key}` header per entry. Header names reach us lower-cased, so
/// a key sent as `userId` arrives as `userid`, and injection writes it lower-cased too; entries
/// whose keys are not header-name tokens are left out. The ad-hoc `jaeger-baggage: k1=v1, k2=v2`
/// header that Jaeger clients accept (for setting baggage from `curl`) is read as well.
///
/// ```
/// use http::HeaderMap;
/// use trace_core::propagation::{Extracted, JaegerPropagator, Propagator};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("uber-trace-id", "a3ce929d0e0e4736:f067aa0ba902b7:0:1".parse()?);
/// headers.insert("uberctx-tenant", "acme".parse()?);
/// let mut extracted = Extracted::default();
/// JaegerPropagator::new().extract(&headers, &mut extracted)?;
/// let parent = extracted.parent.expect("valid uber-trace-id");
/// assert_eq!(parent.trace_id.to_string(), "0000000000000000a3ce929d0e0e4736");
/// assert_eq!(parent.span_id.to_string(), "00f067aa0ba902b7");
/// assert!(parent.flags.is_sampled());
/// assert_eq!(extracted.baggage.get("tenant"), Some("acme"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct JaegerPropagator;

impl JaegerPropagator {
    /// The Jaeger format.
    pub fn new() -> Self {
        Self
    }
}

impl Propagator for JaegerPropagator {
    fn name(&self) -> &'static str {
        "jaeger"
    }

    /// Reads the parent (unless one is set already: then only a debug flag for that same span is
    /// added, see [`Propagator::extract`]), the debug id and the baggage. Each part is kept if
    /// valid on its own; the error returned is the first of trace id, debug id and baggage that
    /// went wrong. [`Presence::Found`] means something was added to `into`.
    fn extract(&self, headers: &HeaderMap, into: &mut Extracted) -> Result<Presence, ExtractError> {
        self.extract_scanned(&HeaderScan::new(headers), into)
    }

    /// See [`extract`](Propagator::extract).
    fn extract_scanned(
        &self,
        headers: &HeaderScan<'_>,
        into: &mut Extracted,
    ) -> Result<Presence, ExtractError> {
        let present = [
            Known::UberTraceId,
            Known::JaegerDebugId,
            Known::JaegerBaggage,
        ];
        if !headers.has_uberctx() && !present.into_iter().any(|known| headers.contains(known)) {
            return Ok(Presence::Absent);
        }
        let mut found = false;
        let mut error = None;

        let read_parent = || {
            headers
                .single(Known::UberTraceId, MAX_ID_HEADER_LEN)
                .and_then(|value| value.map(parse_uber_trace_id).transpose())
        };
        match &mut into.parent {
            None => match read_parent() {
                Ok(Some(parent)) => {
                    into.parent = Some(parent);
                    found = true;
                }
                Ok(None) => {}
                Err(e) => error = Some(e),
            },
            // A preferred format chose the parent. Its flags may lack the debug bit this header
            // carries for the same span (W3C has none); a malformed header is not reported, as a
            // format that did not supply the parent was never counted as rejected.
            Some(chosen) if !chosen.flags.is_debug() && headers.contains(Known::UberTraceId) => {
                if let Ok(Some(later)) = read_parent() {
                    found |= take_debug_of_same_span(chosen, &later);
                }
            }
            Some(_) => {}
        }

        match debug_id(headers) {
            Ok(Some(debug_id)) => {
                into.debug_id.get_or_insert(debug_id);
                found = true;
            }
            Ok(None) => {}
            Err(e) => {
                error.get_or_insert(e);
            }
        }

        let mut builder = BaggageBuilder::new();
        let mut dropped = Dropped::default();
        let uberctx_names = headers
            .has_uberctx()
            .then(|| headers.headers().keys())
            .into_iter()
            .flatten();
        for name in uberctx_names {
            let Some(key) = name.as_str().strip_prefix(UBERCTX_PREFIX) else {
                continue;
            };
            let mut values = headers.headers().get_all(name).iter();
            let (Some(value), None) = (values.next(), values.next()) else {
                dropped.add("header sent more than once");
                continue;
            };
            match baggage_entry(key, value.as_bytes()) {
                Ok(entry) => {
                    if let Err(e) = builder.insert(entry) {
                        dropped.add(limit_reason(e));
                    }
                }
                Err(reason) => dropped.add(reason),
            }
        }
        for value in headers.all(Known::JaegerBaggage) {
            for pair in value.as_bytes().split(|&b| b == b',') {
                let pair = trim_ows(pair);
                if pair.is_empty() {
                    continue;
                }
                match ad_hoc_baggage_entry(pair) {
                    Some(entry) => {
                        if let Err(e) = builder.insert(entry) {
                            dropped.add(limit_reason(e));
                        }
                    }
                    None => dropped.add("malformed jaeger-baggage pair"),
                }
            }
        }
        if !builder.is_empty() {
            let (merged, rejected) = into.baggage.merged(&builder.build());
            into.baggage = merged;
            dropped.add_many(rejected, "baggage limits reached");
            found = true;
        }
        if let Some(e) = dropped.error() {
            error.get_or_insert(e);
        }

        match error {
            Some(e) => Err(e),
            None if found => Ok(Presence::Found),
            None => Ok(Presence::Absent),
        }
    }

    fn scanned_headers(&self) -> ScannedHeaders {
        ScannedHeaders::of(
            &[
                Known::UberTraceId,
                Known::JaegerDebugId,
                Known::JaegerBaggage,
            ],
            true,
        )
    }

    fn inject(&self, context: &SpanContext, headers: &mut HeaderMap) {
        let flags = context.flags();
        let mut wire_flags = 0;
        if flags.is_sampled() {
            wire_flags |= WIRE_SAMPLED;
        }
        if flags.is_debug() {
            wire_flags |= WIRE_DEBUG;
        }
        if flags.is_firehose() {
            wire_flags |= WIRE_FIREHOSE;
        }
        let trace_id = context.trace_id();
        let trace_hex = trace_id.to_hex();
        let mut value = StackValue::<MAX_TRACE_ID_VALUE_LEN>::new();
        // 64-bit trace ids go out as 16 digits, as Jaeger clients that only know 64 bits expect.
        if trace_id.high_u64() == 0 {
            value.push(trace_hex.as_bytes().get(16..).unwrap_or_default());
        } else {
            value.push(trace_hex.as_bytes());
        }
        value.push_byte(b':');
        value.push(context.span_id().to_hex().as_bytes());
        value.push_byte(b':');
        match context.parent_span_id() {
            Some(parent) => value.push(parent.to_hex().as_bytes()),
            None => value.push_byte(b'0'),
        }
        value.push_byte(b':');
        value.push_hex_byte(wire_flags);
        replace(
            headers,
            Known::UberTraceId.header_name(),
            value.to_header_value(),
        );

        // The debug id was this request's to receive; forwarding it would force debug traces
        // downstream for every call it makes.
        headers.remove(Known::JaegerDebugId.header_name());
        let stale: Vec<HeaderName> = headers
            .keys()
            .filter(|name| name.as_str().starts_with(UBERCTX_PREFIX))
            .cloned()
            .collect();
        for name in stale {
            headers.remove(name);
        }
        for entry in context.baggage().iter() {
            // Header names are case-insensitive and arrive lower-cased, so a `userId` entry goes
            // out as `uberctx-userid`: the name every receiver would see anyway.
            if !is_token(entry.key.as_bytes()) {
                continue;
            }
            let Ok(name) =
                HeaderName::from_bytes(format!("{UBERCTX_PREFIX}{}", entry.key).as_bytes())
            else {
                continue;
            };
            let encoded = utf8_percent_encode(&entry.value, UBERCTX_VALUE_ESCAPES).to_string();
            if let Ok(value) = HeaderValue::from_str(&encoded) {
                headers.insert(name, value);
            }
        }
    }
}

/// One `key=value` pair of the `jaeger-baggage` header; values are taken as written, as Jaeger
/// clients do.
fn ad_hoc_baggage_entry(pair: &[u8]) -> Option<BaggageEntry> {
    let text = std::str::from_utf8(pair).ok()?;
    let (key, value) = text.split_once('=')?;
    let (key, value) = (key.trim(), value.trim());
    if !is_token(key.as_bytes()) || value.contains('=') {
        return None;
    }
    Some(BaggageEntry {
        key: key.to_owned(),
        value: value.to_owned(),
        properties: None,
    })
}

const fn malformed(reason: &'static str) -> ExtractError {
    ExtractError::Malformed {
        header: "uber-trace-id",
        reason,
    }
}

/// Reads `{trace-id}:{span-id}:{parent-span-id}:{flags}` from a trimmed header value.
fn parse_uber_trace_id(value: &[u8]) -> Result<RemoteContext, ExtractError> {
    // Decoded and lower-cased on the stack: Jaeger clients may URL-encode the value and may write
    // upper-case hex, and the id parsers take lower case only.
    let mut decoded = StackValue::<MAX_TRACE_ID_VALUE_LEN>::new();
    for byte in percent_decode(value) {
        decoded.push_byte(byte.to_ascii_lowercase());
        if !decoded.fits() {
            return Err(malformed("too long"));
        }
    }
    let mut fields = decoded.as_bytes().split(|&b| b == b':');
    let (Some(trace), Some(span), Some(parent), Some(flags), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(malformed("expected four ':'-separated fields"));
    };
    if !(1..=32).contains(&trace.len()) {
        return Err(malformed("trace id must have 1 to 32 hex digits"));
    }
    let trace_id = parse_hex_u128(trace).map_err(|_| malformed("trace id is not hex"))?;
    let trace_id = TraceId::from_u128(trace_id).ok_or(malformed("all-zero trace id"))?;
    let span_id = parse_span_id(span)?.ok_or(malformed("all-zero span id"))?;
    let parent_span_id = parse_span_id(parent)?;
    if !(1..=2).contains(&flags.len()) {
        return Err(malformed("flags must have 1 or 2 hex digits"));
    }
    let wire_flags = parse_hex_u64(flags).map_err(|_| malformed("flags are not hex"))?;
    let has = |bit: u8| wire_flags & u64::from(bit) != 0;
    // Bits Jaeger has not defined are ignored. Debug without sampled is kept as sent: the sampler
    // sees the debug request and decides.
    let flags = TraceFlags::EMPTY
        .with(TraceFlags::SAMPLED, has(WIRE_SAMPLED))
        .with(TraceFlags::DEBUG, has(WIRE_DEBUG))
        .with(TraceFlags::FIREHOSE, has(WIRE_FIREHOSE));
    Ok(RemoteContext {
        trace_id,
        span_id,
        parent_span_id,
        flags,
        trace_state: TraceState::EMPTY,
        sampling_deferred: false,
    })
}

/// 1 to 16 hex digits; `None` for zero.
fn parse_span_id(hex: &[u8]) -> Result<Option<SpanId>, ExtractError> {
    if !(1..=16).contains(&hex.len()) {
        return Err(malformed("span ids must have 1 to 16 hex digits"));
    }
    let value = parse_hex_u64(hex).map_err(|_| malformed("span id is not hex"))?;
    Ok(SpanId::from_u64(value))
}

fn debug_id(headers: &HeaderScan<'_>) -> Result<Option<Arc<str>>, ExtractError> {
    let Some(value) = headers.single(Known::JaegerDebugId, MAX_DEBUG_ID_LEN)? else {
        return Ok(None);
    };
    if value.is_empty() {
        return Ok(None);
    }
    let visible = |b: &u8| b.is_ascii_graphic();
    match std::str::from_utf8(value) {
        Ok(id) if value.iter().all(visible) => Ok(Some(Arc::from(id))),
        _ => Err(ExtractError::Malformed {
            header: "jaeger-debug-id",
            reason: "not visible ASCII",
        }),
    }
}

/// The entry for one `uberctx-{key}` header.
fn baggage_entry(key: &str, value: &[u8]) -> Result<BaggageEntry, &'static str> {
    let value = trim_ows(value);
    // Checked before decoding so a huge value costs no allocation.
    if key.len() + value.len() > MAX_ENTRY_LEN {
        return Err("entry too long");
    }
    // Node's client percent-encodes values, the Python client does not: decoding reads both, as
    // a value that really contains `%XX` is rare next to one that was encoded.
    let value = percent_decode(value)
        .decode_utf8()
        .map_err(|_| "value is not UTF-8 once decoded")?;
    Ok(BaggageEntry {
        key: key.to_owned(),
        value: value.into_owned(),
        properties: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Baggage;
    use crate::propagation::TraceContextPropagator;
    use crate::propagation::header::test_header_map as headers;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    fn extract(pairs: &[(&str, &str)]) -> (Result<Presence, ExtractError>, Extracted) {
        let mut extracted = Extracted::default();
        let result = JaegerPropagator::new().extract(&headers(pairs), &mut extracted);
        (result, extracted)
    }

    #[test]
    fn ad_hoc_jaeger_baggage_pairs_are_read_and_bad_ones_counted() {
        let (result, extracted) = extract(&[
            ("jaeger-baggage", "k1=v1, bad, k2 = v 2,,=novalue"),
            ("jaeger-baggage", "k3=a=b,k4=x"),
        ]);
        assert_eq!(extracted.baggage.get("k1"), Some("v1"));
        assert_eq!(extracted.baggage.get("k2"), Some("v 2"));
        assert_eq!(extracted.baggage.get("k4"), Some("x"));
        assert_eq!(extracted.baggage.len(), 3);
        assert_eq!(
            result,
            Err(ExtractError::Baggage {
                dropped: 3,
                reason: "malformed jaeger-baggage pair"
            })
        );
    }

    fn parent_of(value: &str) -> Result<RemoteContext, ExtractError> {
        let (result, extracted) = extract(&[("uber-trace-id", value)]);
        result?;
        Ok(extracted.parent.expect("parent on success"))
    }

    fn is_malformed(result: &Result<RemoteContext, ExtractError>) -> bool {
        matches!(
            result,
            Err(ExtractError::Malformed {
                header: "uber-trace-id",
                ..
            })
        )
    }

    fn span(hex: &str) -> SpanId {
        hex.parse().expect("valid span id")
    }

    #[test]
    fn reads_full_width_ids_parent_and_flags() {
        let parent = parent_of(&format!("{TRACE}:{SPAN}:00000000000004d2:01")).expect("valid");
        assert_eq!(
            parent,
            RemoteContext {
                trace_id: TRACE.parse().expect("valid"),
                span_id: span(SPAN),
                parent_span_id: Some(span("00000000000004d2")),
                flags: TraceFlags::SAMPLED,
                trace_state: TraceState::EMPTY,
                sampling_deferred: false,
            }
        );
    }

    #[test]
    fn reads_ids_without_leading_zeros_and_parent_zero_as_none() {
        let parent = parent_of("a3ce929d0e0e4736:f067aa0ba902b7:0:1").expect("valid");
        assert_eq!(
            parent.trace_id.to_string(),
            "0000000000000000a3ce929d0e0e4736"
        );
        assert_eq!(parent.trace_id.high_u64(), 0);
        assert_eq!(parent.span_id, span(SPAN));
        assert_eq!(parent.parent_span_id, None);
        let parent = parent_of("1:2:3:0").expect("valid");
        assert_eq!(parent.trace_id.to_u128(), 1);
        assert_eq!(parent.span_id.to_u64(), 2);
        assert_eq!(parent.parent_span_id, Some(span("0000000000000003")));
        assert_eq!(parent.flags, TraceFlags::EMPTY);
    }

    #[test]
    fn one_digit_flags_are_read() {
        let flags = |f: &str| parent_of(&format!("{TRACE}:{SPAN}:0:{f}")).map(|p| p.flags);
        assert_eq!(flags("0"), Ok(TraceFlags::EMPTY));
        assert_eq!(flags("1"), Ok(TraceFlags::SAMPLED));
        assert_eq!(flags("3"), Ok(TraceFlags::SAMPLED | TraceFlags::DEBUG));
        assert_eq!(flags("03"), Ok(TraceFlags::SAMPLED | TraceFlags::DEBUG));
    }

    #[test]
    fn debug_without_sampled_stays_unsampled() {
        let parent = parent_of(&format!("{TRACE}:{SPAN}:0:2")).expect("valid");
        assert_eq!(parent.flags, TraceFlags::DEBUG);
        assert!(!parent.flags.is_sampled());
    }

    #[test]
    fn flags_are_hex_so_0a_is_debug_and_firehose_unsampled() {
        let parent = parent_of(&format!("{TRACE}:{SPAN}:0:0a")).expect("valid");
        assert_eq!(parent.flags, TraceFlags::DEBUG | TraceFlags::FIREHOSE);
        let parent = parent_of(&format!("{TRACE}:{SPAN}:0:09")).expect("valid");
        assert_eq!(parent.flags, TraceFlags::SAMPLED | TraceFlags::FIREHOSE);
        // Undefined bits (0x04, 0xf0) are ignored; none of them is W3C's random bit.
        let parent = parent_of(&format!("{TRACE}:{SPAN}:0:ff")).expect("valid");
        assert_eq!(
            parent.flags,
            TraceFlags::SAMPLED | TraceFlags::DEBUG | TraceFlags::FIREHOSE
        );
        assert_eq!(
            parent_of(&format!("{TRACE}:{SPAN}:0:f4")).map(|p| p.flags),
            Ok(TraceFlags::EMPTY)
        );
    }

    #[test]
    fn url_encoded_colons_are_decoded() {
        for value in [
            format!("{TRACE}%3A{SPAN}%3A0%3A1"),
            format!("{TRACE}%3a{SPAN}%3a0%3a1"),
            format!("{TRACE}%3A{SPAN}:0%3a1"),
        ] {
            let parent = parent_of(&value).expect("valid");
            assert_eq!(parent.trace_id.to_string(), TRACE);
            assert_eq!(parent.span_id, span(SPAN));
            assert_eq!(parent.flags, TraceFlags::SAMPLED);
        }
        assert!(is_malformed(&parent_of(&format!("{TRACE}%3{SPAN}:0:1"))));
    }

    #[test]
    fn upper_case_hex_is_accepted_as_jaeger_clients_do() {
        let upper = format!(
            "{}:{}:0:0A",
            TRACE.to_ascii_uppercase(),
            SPAN.to_uppercase()
        );
        let parent = parent_of(&upper).expect("valid");
        assert_eq!(parent.trace_id.to_string(), TRACE);
        assert_eq!(parent.span_id, span(SPAN));
        assert_eq!(parent.flags, TraceFlags::DEBUG | TraceFlags::FIREHOSE);
    }

    #[test]
    fn zero_trace_or_span_id_is_invalid() {
        assert_eq!(
            parent_of(&format!("0:{SPAN}:0:1")),
            Err(malformed("all-zero trace id"))
        );
        assert_eq!(
            parent_of(&format!("{}:{SPAN}:0:1", "0".repeat(32))),
            Err(malformed("all-zero trace id"))
        );
        assert_eq!(
            parent_of(&format!("{TRACE}:0000000000000000:0:1")),
            Err(malformed("all-zero span id"))
        );
    }

    #[test]
    fn wrong_field_lengths_and_counts_are_invalid() {
        for value in [
            format!("1{TRACE}:{SPAN}:0:1"),
            format!("{TRACE}:1{SPAN}:0:1"),
            format!("{TRACE}:{SPAN}:1{SPAN}:1"),
            format!("{TRACE}:{SPAN}:0:001"),
            format!(":{SPAN}:0:1"),
            format!("{TRACE}::0:1"),
            format!("{TRACE}:{SPAN}::1"),
            format!("{TRACE}:{SPAN}:0:"),
            format!("{TRACE}:{SPAN}:0"),
            format!("{TRACE}:{SPAN}:0:1:1"),
            String::new(),
        ] {
            assert!(is_malformed(&parent_of(&value)), "{value:?}");
        }
    }

    #[test]
    fn non_hex_bytes_are_invalid_never_a_panic() {
        for value in [
            format!("+{TRACE}:{SPAN}:0:1"),
            format!("{TRACE}:+1:0:1"),
            format!("{TRACE}:{SPAN}:0:g"),
            format!("{TRACE}:{SPAN}:0:+1"),
            format!("{TRACE}:{SPAN}:é:1"),
            format!("{TRACE}:{SPAN}:0:%C3%A9"),
            format!("{TRACE}:{SPAN}:0x1:1"),
            format!(" {TRACE} :{SPAN}:0:1"),
        ] {
            assert!(is_malformed(&parent_of(&value)), "{value:?}");
        }
        // Trimmed around the value.
        assert!(parent_of(&format!(" \t{TRACE}:{SPAN}:0:1 ")).is_ok());
    }

    #[test]
    fn several_lines_and_oversize_are_rejected() {
        let one = format!("{TRACE}:{SPAN}:0:1");
        let (result, extracted) = extract(&[("uber-trace-id", &one), ("uber-trace-id", &one)]);
        assert_eq!(
            result,
            Err(ExtractError::Malformed {
                header: "uber-trace-id",
                reason: "header sent more than once"
            })
        );
        assert_eq!(extracted.parent, None);
        assert_eq!(
            parent_of(&"1".repeat(513)),
            Err(ExtractError::Oversized {
                header: "uber-trace-id",
                limit: 512
            })
        );
        // Within 512 bytes, but longer than any valid value once decoded.
        let padded = format!("{}{TRACE}:{SPAN}:0:1", "%30".repeat(40));
        assert_eq!(parent_of(&padded), Err(malformed("too long")));
    }

    #[test]
    fn debug_id_is_read_with_or_without_a_trace_id() {
        let (result, extracted) = extract(&[("jaeger-debug-id", " my-debug-id\t")]);
        assert_eq!(result, Ok(Presence::Found));
        assert_eq!(extracted.debug_id.as_deref(), Some("my-debug-id"));
        assert_eq!(extracted.parent, None);
        assert!(extracted.is_debug_requested());
        let trace = format!("{TRACE}:{SPAN}:0:0");
        let (result, extracted) = extract(&[("uber-trace-id", &trace), ("jaeger-debug-id", "abc")]);
        assert_eq!(result, Ok(Presence::Found));
        assert_eq!(extracted.debug_id.as_deref(), Some("abc"));
        assert!(extracted.parent.is_some());
    }

    #[test]
    fn bad_debug_ids_are_ignored_and_reported() {
        let (result, extracted) = extract(&[("jaeger-debug-id", "  ")]);
        assert_eq!(result, Ok(Presence::Absent));
        assert_eq!(extracted.debug_id, None);
        let (result, extracted) = extract(&[("jaeger-debug-id", &"x".repeat(257))]);
        assert_eq!(
            result,
            Err(ExtractError::Oversized {
                header: "jaeger-debug-id",
                limit: 256
            })
        );
        assert_eq!(extracted.debug_id, None);
        for bad in ["two words", "caf\u{e9}"] {
            let (result, extracted) = extract(&[("jaeger-debug-id", bad)]);
            assert_eq!(
                result,
                Err(ExtractError::Malformed {
                    header: "jaeger-debug-id",
                    reason: "not visible ASCII"
                })
            );
            assert_eq!(extracted.debug_id, None);
        }
        // A bad debug id does not cost the parent.
        let trace = format!("{TRACE}:{SPAN}:0:1");
        let (result, extracted) = extract(&[("uber-trace-id", &trace), ("jaeger-debug-id", "a b")]);
        assert!(result.is_err());
        assert_eq!(extracted.parent.map(|p| p.span_id), Some(span(SPAN)));
    }

    #[test]
    fn uberctx_headers_become_baggage_with_decoded_values() {
        let (result, extracted) = extract(&[
            ("uberctx-userId", "alice"),
            ("uberctx-user-id", "carol%2F42"),
            ("uberctx-raw", " carol/42 "),
            ("uberctx-name", "caf%C3%A9"),
            ("uberctx-plus", "a+b"),
        ]);
        assert_eq!(result, Ok(Presence::Found));
        // Header names arrive lower-cased: the key is what is left of the name.
        assert_eq!(extracted.baggage.get("userid"), Some("alice"));
        assert_eq!(extracted.baggage.get("userId"), None);
        assert_eq!(extracted.baggage.get("user-id"), Some("carol/42"));
        assert_eq!(extracted.baggage.get("raw"), Some("carol/42"));
        assert_eq!(extracted.baggage.get("name"), Some("café"));
        assert_eq!(extracted.baggage.get("plus"), Some("a+b"));
        assert_eq!(extracted.baggage.len(), 5);
    }

    #[test]
    fn bad_uberctx_entries_are_dropped_and_the_rest_kept() {
        let mut headers = headers(&[
            ("uberctx-ok", "1"),
            ("uberctx-bad", "%FF"),
            ("uberctx-twice", "a"),
            ("uberctx-twice", "b"),
            ("uberctx-", "no key"),
        ]);
        headers.insert(
            "uberctx-raw",
            HeaderValue::from_bytes(b"\xff").expect("obs-text is allowed"),
        );
        let mut extracted = Extracted::default();
        let result = JaegerPropagator::new().extract(&headers, &mut extracted);
        let Err(ExtractError::Baggage { dropped, .. }) = result else {
            panic!("expected a baggage error, got {result:?}");
        };
        assert_eq!(dropped, 4);
        assert_eq!(extracted.baggage.len(), 1);
        assert_eq!(extracted.baggage.get("ok"), Some("1"));
    }

    #[test]
    fn an_existing_parent_is_kept_but_baggage_and_debug_id_are_added() {
        let first = TraceId::random();
        let mut extracted = Extracted {
            parent: Some(RemoteContext {
                trace_id: first,
                span_id: SpanId::random(),
                parent_span_id: None,
                flags: TraceFlags::SAMPLED,
                trace_state: TraceState::EMPTY,
                sampling_deferred: false,
            }),
            ..Extracted::default()
        };
        let before = extracted.parent.clone();
        let trace = format!("{TRACE}:{SPAN}:0:0");
        let result = JaegerPropagator::new().extract(
            &headers(&[
                ("uber-trace-id", &trace),
                ("jaeger-debug-id", "dbg"),
                ("uberctx-k", "v"),
            ]),
            &mut extracted,
        );
        assert_eq!(result, Ok(Presence::Found));
        assert_eq!(extracted.parent, before);
        assert_eq!(extracted.debug_id.as_deref(), Some("dbg"));
        assert_eq!(extracted.baggage.get("k"), Some("v"));
        // With only the ignored trace header there is nothing to report.
        let result =
            JaegerPropagator::new().extract(&headers(&[("uber-trace-id", &trace)]), &mut extracted);
        assert_eq!(result, Ok(Presence::Absent));
    }

    /// What a preferred format chose: `TRACE`/`SPAN` with these flags.
    fn chosen(flags: TraceFlags, sampling_deferred: bool) -> Extracted {
        Extracted {
            parent: Some(RemoteContext {
                trace_id: TRACE.parse().expect("valid trace id"),
                span_id: span(SPAN),
                parent_span_id: None,
                flags,
                trace_state: "congo=t61rcWkgMzE".parse().expect("valid trace state"),
                sampling_deferred,
            }),
            ..Extracted::default()
        }
    }

    fn extract_beside(
        mut extracted: Extracted,
        value: &str,
    ) -> (Result<Presence, ExtractError>, Extracted) {
        let result =
            JaegerPropagator::new().extract(&headers(&[("uber-trace-id", value)]), &mut extracted);
        (result, extracted)
    }

    #[test]
    fn a_debug_flag_for_the_chosen_span_is_added_to_it() {
        let sampled_debug = TraceFlags::SAMPLED | TraceFlags::DEBUG;
        for (flags, value, added) in [
            (
                TraceFlags::SAMPLED,
                format!("{TRACE}:{SPAN}:00000000000004d2:03"),
                sampled_debug,
            ),
            // The W3C random bit is kept. Jaeger's 0x02 alone adds the debug request only, as
            // when read alone: the sampler decides, within its debug cap.
            (
                TraceFlags::RANDOM,
                format!("{TRACE}:{SPAN}:00000000000004d2:2"),
                TraceFlags::DEBUG,
            ),
            // Upper case, URL-encoded: read as Jaeger reads it.
            (
                TraceFlags::SAMPLED,
                format!("{}%3A{SPAN}%3A0%3A3", TRACE.to_uppercase()),
                sampled_debug,
            ),
        ] {
            let (result, extracted) = extract_beside(chosen(flags, false), &value);
            assert_eq!(result, Ok(Presence::Found), "{value}");
            // Only the flags change: Jaeger's parent span id is not taken, the trace state kept.
            assert_eq!(extracted, chosen(flags | added, false), "{value}");
        }
        // A 64-bit trace id written as 16 digits is the same trace as its 32-digit form.
        let short = "0000000000000000a3ce929d0e0e4736";
        let mut extracted = chosen(TraceFlags::SAMPLED, false);
        if let Some(parent) = &mut extracted.parent {
            parent.trace_id = short.parse().expect("valid trace id");
        }
        let (result, extracted) =
            extract_beside(extracted, &format!("a3ce929d0e0e4736:{SPAN}:0:3"));
        assert_eq!(result, Ok(Presence::Found));
        assert_eq!(extracted.parent.map(|p| p.flags), Some(sampled_debug));
    }

    #[test]
    fn a_debug_flag_ends_a_deferred_decision_of_the_chosen_parent() {
        let (result, extracted) = extract_beside(
            chosen(TraceFlags::EMPTY, true),
            &format!("{TRACE}:{SPAN}:0:3"),
        );
        assert_eq!(result, Ok(Presence::Found));
        assert_eq!(
            extracted,
            chosen(TraceFlags::SAMPLED | TraceFlags::DEBUG, false)
        );
    }

    #[test]
    fn flags_of_another_span_or_without_debug_leave_the_chosen_parent_as_it_is() {
        let other_trace = "4bf92f3577b34da6a3ce929d0e0e4737";
        for value in [
            format!("{TRACE}:00f067aa0ba902b8:{SPAN}:3"),
            format!("{other_trace}:{SPAN}:0:3"),
            format!("a3ce929d0e0e4736:{SPAN}:0:3"),
            format!("{TRACE}:{SPAN}:0:1"),
            format!("{TRACE}:{SPAN}:0:9"),
        ] {
            for flags in [TraceFlags::EMPTY, TraceFlags::SAMPLED] {
                let (result, extracted) = extract_beside(chosen(flags, false), &value);
                assert_eq!(result, Ok(Presence::Absent), "{value}");
                assert_eq!(extracted, chosen(flags, false), "{value}");
            }
        }
    }

    #[test]
    fn a_malformed_trace_id_beside_a_chosen_parent_is_not_reported() {
        for value in [
            format!("{TRACE}:{SPAN}:0"),
            format!("{TRACE}:{SPAN}:0:3:"),
            "0:0:0:3".to_owned(),
            "x".repeat(513),
        ] {
            let (result, extracted) = extract_beside(chosen(TraceFlags::SAMPLED, false), &value);
            assert_eq!(result, Ok(Presence::Absent), "{value}");
            assert_eq!(extracted, chosen(TraceFlags::SAMPLED, false));
        }
        let one = format!("{TRACE}:{SPAN}:0:3");
        let mut extracted = chosen(TraceFlags::SAMPLED, false);
        let result = JaegerPropagator::new().extract(
            &headers(&[("uber-trace-id", &one), ("uber-trace-id", &one)]),
            &mut extracted,
        );
        assert_eq!(result, Ok(Presence::Absent));
        assert_eq!(extracted, chosen(TraceFlags::SAMPLED, false));
    }

    #[test]
    fn a_chosen_parent_already_debug_is_left_as_it_is() {
        let debug = TraceFlags::DEBUG;
        let (result, extracted) =
            extract_beside(chosen(debug, false), &format!("{TRACE}:{SPAN}:0:3"));
        assert_eq!(result, Ok(Presence::Absent));
        assert_eq!(extracted, chosen(debug, false));
    }

    fn injected(context: &SpanContext) -> HeaderMap {
        let mut headers = HeaderMap::new();
        JaegerPropagator::new().inject(context, &mut headers);
        headers
    }

    fn uber_trace_id(headers: &HeaderMap) -> Option<&str> {
        headers.get("uber-trace-id").and_then(|v| v.to_str().ok())
    }

    #[test]
    fn inject_writes_64_bit_trace_ids_as_16_digits_and_128_as_32() {
        let short = TraceId::from_u128(0xa3ce929d0e0e4736).expect("non-zero");
        let context = SpanContext::new(short, span(SPAN), TraceFlags::SAMPLED);
        assert_eq!(
            uber_trace_id(&injected(&context)),
            Some("a3ce929d0e0e4736:00f067aa0ba902b7:0:01")
        );
        let long: TraceId = TRACE.parse().expect("valid");
        let context = SpanContext::new(long, span(SPAN), TraceFlags::EMPTY)
            .with_parent_span_id(Some(span("00000000000004d2")));
        assert_eq!(
            uber_trace_id(&injected(&context)),
            Some("4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:00000000000004d2:00")
        );
    }

    #[test]
    fn inject_maps_flags_and_never_emits_random() {
        let trace: TraceId = TRACE.parse().expect("valid");
        let cases = [
            (TraceFlags::SAMPLED | TraceFlags::RANDOM, "01"),
            (TraceFlags::RANDOM, "00"),
            (TraceFlags::DEBUG, "02"),
            (TraceFlags::SAMPLED | TraceFlags::DEBUG, "03"),
            (TraceFlags::FIREHOSE, "08"),
            (TraceFlags::DEBUG | TraceFlags::FIREHOSE, "0a"),
        ];
        for (flags, wire) in cases {
            let context = SpanContext::new(trace, span(SPAN), flags);
            assert_eq!(
                uber_trace_id(&injected(&context)),
                Some(format!("{TRACE}:{SPAN}:0:{wire}").as_str()),
                "{flags:?}"
            );
        }
    }

    #[test]
    fn inject_lower_cases_token_keys_encodes_values_and_replaces_stale_headers() {
        let mut builder = BaggageBuilder::new();
        for (key, value) in [
            ("user-id", "carol/42"),
            ("note", "a b,c;d+e%f"),
            ("name", "café"),
            ("userId", "lower-cased"),
            ("bad key", "dropped: not a token"),
        ] {
            builder
                .insert(BaggageEntry {
                    key: key.into(),
                    value: value.into(),
                    properties: None,
                })
                .expect("fits");
        }
        let context = SpanContext::new_root(TraceFlags::SAMPLED)
            .with_baggage(builder.build())
            .with_debug_id(Some("dbg".into()));
        let mut headers = headers(&[
            ("uberctx-stale", "x"),
            ("uberctx-note", "old"),
            ("jaeger-debug-id", "stale"),
        ]);
        JaegerPropagator::new().inject(&context, &mut headers);
        let mut uberctx: Vec<(&str, &str)> = headers
            .iter()
            .filter(|(name, _)| name.as_str().starts_with("uberctx-"))
            .map(|(name, value)| (name.as_str(), value.to_str().unwrap_or("?")))
            .collect();
        uberctx.sort_unstable();
        assert_eq!(
            uberctx,
            [
                ("uberctx-name", "caf%C3%A9"),
                ("uberctx-note", "a%20b%2Cc%3Bd%2Be%25f"),
                ("uberctx-user-id", "carol/42"),
                ("uberctx-userid", "lower-cased"),
            ]
        );
        assert!(!headers.contains_key("jaeger-debug-id"));
        let mut extracted = Extracted::default();
        assert_eq!(
            JaegerPropagator::new().extract(&headers, &mut extracted),
            Ok(Presence::Found)
        );
        assert_eq!(extracted.baggage.get("note"), Some("a b,c;d+e%f"));
        assert_eq!(extracted.baggage.get("name"), Some("café"));
        assert_eq!(extracted.baggage.get("user-id"), Some("carol/42"));
    }

    #[test]
    fn inject_then_extract_round_trips() {
        let baggage = Baggage::EMPTY.with_entry("tenant", "acme").expect("fits");
        for flags in [
            TraceFlags::EMPTY,
            TraceFlags::SAMPLED,
            TraceFlags::DEBUG,
            TraceFlags::SAMPLED | TraceFlags::DEBUG,
            TraceFlags::SAMPLED | TraceFlags::FIREHOSE,
        ] {
            for parent in [None, Some(SpanId::random())] {
                let context = SpanContext::new_root(TraceFlags::EMPTY)
                    .with_flags(flags)
                    .with_parent_span_id(parent)
                    .with_baggage(baggage.clone());
                let mut extracted = Extracted::default();
                let result = JaegerPropagator::new().extract(&injected(&context), &mut extracted);
                assert_eq!(result, Ok(Presence::Found));
                assert_eq!(
                    extracted.parent,
                    Some(RemoteContext {
                        trace_id: context.trace_id(),
                        span_id: context.span_id(),
                        parent_span_id: parent,
                        flags,
                        trace_state: TraceState::EMPTY,
                        sampling_deferred: false,
                    })
                );
                assert_eq!(extracted.baggage, baggage);
            }
        }
    }

    /// The context a service would forward, with the extracted parent's ids and flags.
    fn forwarded(parent: &RemoteContext) -> SpanContext {
        SpanContext::new(parent.trace_id, parent.span_id, parent.flags)
    }

    #[test]
    fn w3c_random_survives_w3c_but_jaeger_never_emits_it() {
        let mut incoming = HeaderMap::new();
        incoming.insert(
            "traceparent",
            HeaderValue::from_str(&format!("00-{TRACE}-{SPAN}-03")).expect("valid"),
        );
        let mut extracted = Extracted::default();
        TraceContextPropagator::new()
            .extract(&incoming, &mut extracted)
            .expect("valid");
        let parent = extracted.parent.expect("valid");
        assert_eq!(parent.flags, TraceFlags::SAMPLED | TraceFlags::RANDOM);
        let context = forwarded(&parent);

        let mut w3c = HeaderMap::new();
        TraceContextPropagator::new().inject(&context, &mut w3c);
        assert_eq!(
            w3c.get("traceparent").and_then(|v| v.to_str().ok()),
            Some(format!("00-{TRACE}-{SPAN}-03").as_str())
        );
        let jaeger = injected(&context);
        assert_eq!(
            uber_trace_id(&jaeger),
            Some(format!("{TRACE}:{SPAN}:0:01").as_str())
        );
        let mut back = Extracted::default();
        JaegerPropagator::new()
            .extract(&jaeger, &mut back)
            .expect("valid");
        assert_eq!(back.parent.map(|p| p.flags), Some(TraceFlags::SAMPLED));
    }

    #[test]
    fn jaeger_debug_bit_never_becomes_w3c_random_bit() {
        let parent = parent_of(&format!("{TRACE}:{SPAN}:0:2")).expect("valid");
        assert_eq!(parent.flags, TraceFlags::DEBUG);
        let mut w3c = HeaderMap::new();
        TraceContextPropagator::new().inject(&forwarded(&parent), &mut w3c);
        assert_eq!(
            w3c.get("traceparent").and_then(|v| v.to_str().ok()),
            Some(format!("00-{TRACE}-{SPAN}-00").as_str())
        );
        let mut back = Extracted::default();
        TraceContextPropagator::new()
            .extract(&w3c, &mut back)
            .expect("valid");
        let flags = back.parent.map(|p| p.flags);
        assert_eq!(flags, Some(TraceFlags::EMPTY));
        assert_eq!(flags.map(TraceFlags::is_random), Some(false));
    }

    #[test]
    fn no_headers_is_absent_and_touches_nothing() {
        let (result, extracted) = extract(&[("traceparent", "whatever"), ("x-other", "1")]);
        assert_eq!(result, Ok(Presence::Absent));
        assert_eq!(extracted, Extracted::default());
    }
}
