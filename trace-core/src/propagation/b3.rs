//! Zipkin's B3 headers: the single `b3` header and the older `x-b3-*` set.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::header::{HeaderScan, Known, MAX_ID_HEADER_LEN, ScannedHeaders, StackValue, replace};
use super::{
    ExtractError, Extracted, Presence, Propagator, RemoteContext, take_debug_of_same_span,
};
use crate::id::parse_hex_u64;
use crate::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

/// The `x-b3-*` headers, all removed when the single header alone is written.
const MULTI_HEADERS: [Known; 5] = [
    Known::XB3TraceId,
    Known::XB3SpanId,
    Known::XB3ParentSpanId,
    Known::XB3Sampled,
    Known::XB3Flags,
];

/// Longest `b3` value written: 32 + 16 + 16 hex digits, the sampling state, 3 dashes.
const MAX_SINGLE_LEN: usize = 32 + 1 + 16 + 1 + 1 + 1 + 16;

/// A debug request is sampled wherever it goes: B3 defines debug as implying an accept decision.
const DEBUG_SAMPLED: TraceFlags = TraceFlags::SAMPLED.with(TraceFlags::DEBUG, true);

/// Which B3 headers [`B3Propagator`] writes. Extraction reads both encodings either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum B3Encoding {
    /// `b3: {traceid}-{spanid}-{sampling}[-{parentspanid}]` (`OTEL_PROPAGATORS=b3`). Any
    /// `x-b3-*` headers already present are removed.
    #[default]
    SingleHeader,
    /// `x-b3-traceid`, `x-b3-spanid`, `x-b3-parentspanid`, `x-b3-sampled`, `x-b3-flags`
    /// (`OTEL_PROPAGATORS=b3multi`). A `b3` header already present is removed.
    MultipleHeaders,
    /// Both the `b3` header and the `x-b3-*` set, for peers of either kind
    /// (`OTEL_PROPAGATORS=b3,b3multi`, in either order; opentelemetry-zipkin's
    /// `SingleAndMultiHeader`).
    SingleAndMultipleHeaders,
}

/// Zipkin's B3 propagation: the single header, the multiple headers, or both.
///
/// Extraction prefers the single `b3` header and falls back to the `x-b3-*` headers when it is
/// absent or invalid. Ids are lower-case hex (trace ids 16 or 32 digits). The sampling state
/// maps as `1` → [`TraceFlags::SAMPLED`], `0` → unsampled, `d` (or `x-b3-flags: 1`) →
/// [`TraceFlags::DEBUG`] and sampled; ids without a sampling state set
/// [`RemoteContext::sampling_deferred`], and a sampling state without ids becomes
/// [`Extracted::sampling_only`].
///
/// ```
/// use http::HeaderMap;
/// use trace_core::propagation::{B3Encoding, B3Propagator, Extracted, Propagator};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d".parse()?);
/// let mut extracted = Extracted::default();
/// B3Propagator::new(B3Encoding::MultipleHeaders).extract(&headers, &mut extracted)?;
/// let parent = extracted.parent.expect("valid b3");
/// assert!(parent.flags.is_debug() && parent.flags.is_sampled());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct B3Propagator {
    encoding: B3Encoding,
}

impl B3Propagator {
    /// B3, writing the given encoding.
    pub fn new(encoding: B3Encoding) -> Self {
        Self { encoding }
    }
}

/// What a set of B3 headers carried.
enum B3Context {
    Parent(RemoteContext),
    SamplingOnly(TraceFlags),
}

impl Propagator for B3Propagator {
    /// `b3`, `b3multi`, or `b3,b3multi` for [`B3Encoding::SingleAndMultipleHeaders`]: the
    /// `OTEL_PROPAGATORS` entries that build it, so that a composite's names joined by commas
    /// build the same composite again.
    fn name(&self) -> &'static str {
        match self.encoding {
            B3Encoding::SingleHeader => "b3",
            B3Encoding::MultipleHeaders => "b3multi",
            B3Encoding::SingleAndMultipleHeaders => "b3,b3multi",
        }
    }

    fn extract(&self, headers: &HeaderMap, into: &mut Extracted) -> Result<Presence, ExtractError> {
        self.extract_scanned(&HeaderScan::new(headers), into)
    }

    fn extract_scanned(
        &self,
        headers: &HeaderScan<'_>,
        into: &mut Extracted,
    ) -> Result<Presence, ExtractError> {
        // B3 carries nothing but the parent and its sampling state: beside a parent already
        // chosen only its debug decision for that same span counts, and a sampling decision
        // alone is only wanted when there is no parent.
        if let Some(chosen) = &mut into.parent {
            return Ok(add_debug_of_same_span(chosen, headers));
        }
        let single_error = match headers
            .single(Known::B3, MAX_ID_HEADER_LEN)
            .and_then(|value| value.map(parse_single).transpose())
        {
            Ok(Some(context)) => return Ok(apply(context, into)),
            Ok(None) => None,
            Err(error) => Some(error),
        };
        // A peer may send both encodings; the `x-b3-*` set still counts when `b3` is broken, but
        // the broken header is reported.
        match (single_error, parse_multi(headers)) {
            (None, Ok(None)) => Ok(Presence::Absent),
            (None, Ok(Some(context))) => Ok(apply(context, into)),
            (None, Err(error)) => Err(error),
            (Some(error), Ok(Some(context))) => {
                apply(context, into);
                Err(error)
            }
            (Some(error), _) => Err(error),
        }
    }

    fn scanned_headers(&self) -> ScannedHeaders {
        ScannedHeaders::of(
            &[
                Known::B3,
                Known::XB3TraceId,
                Known::XB3SpanId,
                Known::XB3ParentSpanId,
                Known::XB3Sampled,
                Known::XB3Flags,
            ],
            false,
        )
    }

    fn inject(&self, context: &SpanContext, headers: &mut HeaderMap) {
        match self.encoding {
            B3Encoding::SingleHeader => {
                inject_single(context, headers);
                for known in MULTI_HEADERS {
                    headers.remove(known.header_name());
                }
            }
            B3Encoding::MultipleHeaders => {
                inject_multi(context, headers);
                headers.remove(Known::B3.header_name());
            }
            B3Encoding::SingleAndMultipleHeaders => {
                inject_single(context, headers);
                inject_multi(context, headers);
            }
        }
    }
}

/// Writes the `b3` header.
fn inject_single(context: &SpanContext, headers: &mut HeaderMap) {
    let flags = context.flags();
    let sampling = if flags.is_debug() {
        b'd'
    } else if flags.is_sampled() {
        b'1'
    } else {
        b'0'
    };
    let mut value = StackValue::<MAX_SINGLE_LEN>::new();
    value.push(context.trace_id().to_hex().as_bytes());
    value.push_byte(b'-');
    value.push(context.span_id().to_hex().as_bytes());
    value.push_byte(b'-');
    value.push_byte(sampling);
    if let Some(parent) = context.parent_span_id() {
        value.push_byte(b'-');
        value.push(parent.to_hex().as_bytes());
    }
    replace(headers, Known::B3.header_name(), value.to_header_value());
}

/// Writes the `x-b3-*` headers, removing those that do not apply to `context`.
fn inject_multi(context: &SpanContext, headers: &mut HeaderMap) {
    let flags = context.flags();
    let hex = |bytes: &[u8]| HeaderValue::from_bytes(bytes).ok();
    replace(
        headers,
        Known::XB3TraceId.header_name(),
        hex(context.trace_id().to_hex().as_bytes()),
    );
    replace(
        headers,
        Known::XB3SpanId.header_name(),
        hex(context.span_id().to_hex().as_bytes()),
    );
    let parent = context.parent_span_id();
    replace(
        headers,
        Known::XB3ParentSpanId.header_name(),
        parent.and_then(|p| hex(p.to_hex().as_bytes())),
    );
    // Debug implies sampled, and the spec asks not to send both.
    let (sampled, debug) = if flags.is_debug() {
        (None, Some(HeaderValue::from_static("1")))
    } else if flags.is_sampled() {
        (Some(HeaderValue::from_static("1")), None)
    } else {
        (Some(HeaderValue::from_static("0")), None)
    };
    replace(headers, Known::XB3Sampled.header_name(), sampled);
    replace(headers, Known::XB3Flags.header_name(), debug);
}

/// With a parent already chosen by a preferred format, adds B3's debug flag when B3 carries the
/// same span: a peer writes every format from one context, and where the preferred one is W3C
/// (no debug bit) B3's `d` or `x-b3-flags: 1` is what keeps the debug decision.
///
/// The B3 context read is the one extraction would pick (`b3`, else `x-b3-*`). Malformed headers
/// are not reported: a format that did not supply the parent was never counted as rejected.
fn add_debug_of_same_span(chosen: &mut RemoteContext, headers: &HeaderScan<'_>) -> Presence {
    if chosen.flags.is_debug() {
        return Presence::Absent;
    }
    let later = match headers
        .single(Known::B3, MAX_ID_HEADER_LEN)
        .and_then(|value| value.map(parse_single).transpose())
    {
        Ok(Some(context)) => Some(context),
        Ok(None) | Err(_) => parse_multi(headers).ok().flatten(),
    };
    match later {
        Some(B3Context::Parent(later)) if take_debug_of_same_span(chosen, &later) => {
            Presence::Found
        }
        _ => Presence::Absent,
    }
}

/// Stores what was read; reports whether anything was added.
fn apply(context: B3Context, into: &mut Extracted) -> Presence {
    match context {
        B3Context::Parent(parent) => {
            into.parent = Some(parent);
            Presence::Found
        }
        B3Context::SamplingOnly(flags) if into.sampling_only.is_none() => {
            into.sampling_only = Some(flags);
            Presence::Found
        }
        B3Context::SamplingOnly(_) => Presence::Absent,
    }
}

fn malformed(header: &'static HeaderName, reason: &'static str) -> ExtractError {
    ExtractError::Malformed {
        header: header.as_str(),
        reason,
    }
}

/// Reads `{traceid}-{spanid}[-{sampling}[-{parentspanid}]]` or `{sampling}` alone.
fn parse_single(value: &[u8]) -> Result<B3Context, ExtractError> {
    if value.len() == 1 {
        return single_sampling(value).map(B3Context::SamplingOnly);
    }
    let mut fields = value.split(|&b| b == b'-');
    let (Some(trace), Some(span), sampling, parent, None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(malformed(
            Known::B3.header_name(),
            "expected 2 to 4 '-'-separated fields",
        ));
    };
    let trace_id = parse_trace_id(trace)
        .ok_or_else(|| malformed(Known::B3.header_name(), "invalid trace id"))?;
    let span_id = SpanId::from_hex(span)
        .map_err(|_| malformed(Known::B3.header_name(), "invalid span id"))?;
    let (flags, sampling_deferred) = match sampling {
        Some(sampling) => (single_sampling(sampling)?, false),
        None => (TraceFlags::EMPTY, true),
    };
    let parent_span_id = parent
        .map(SpanId::from_hex)
        .transpose()
        .map_err(|_| malformed(Known::B3.header_name(), "invalid parent span id"))?;
    Ok(B3Context::Parent(RemoteContext {
        trace_id,
        span_id,
        parent_span_id,
        flags,
        trace_state: TraceState::EMPTY,
        sampling_deferred,
    }))
}

/// The single header's sampling state: `1`, `0` or `d`.
fn single_sampling(value: &[u8]) -> Result<TraceFlags, ExtractError> {
    match value {
        b"1" => Ok(TraceFlags::SAMPLED),
        b"0" => Ok(TraceFlags::EMPTY),
        b"d" => Ok(DEBUG_SAMPLED),
        _ => Err(malformed(
            Known::B3.header_name(),
            "sampling state must be 1, 0 or d",
        )),
    }
}

/// 16 or 32 lower-case hex digits, not all zero.
fn parse_trace_id(hex: &[u8]) -> Option<TraceId> {
    match hex.len() {
        16 => TraceId::from_u128(u128::from(parse_hex_u64(hex).ok()?)),
        _ => TraceId::from_hex(hex).ok(),
    }
}

/// Reads the `x-b3-*` headers; `None` when none of them is there.
fn parse_multi(headers: &HeaderScan<'_>) -> Result<Option<B3Context>, ExtractError> {
    let trace = headers.single(Known::XB3TraceId, MAX_ID_HEADER_LEN)?;
    let span = headers.single(Known::XB3SpanId, MAX_ID_HEADER_LEN)?;
    let parent = headers.single(Known::XB3ParentSpanId, MAX_ID_HEADER_LEN)?;
    let sampled = headers.single(Known::XB3Sampled, MAX_ID_HEADER_LEN)?;
    let debug = headers.single(Known::XB3Flags, MAX_ID_HEADER_LEN)?;

    let debug = match debug {
        None | Some(b"0") => false,
        Some(b"1") => true,
        Some(_) => return Err(malformed(Known::XB3Flags.header_name(), "must be 1 or 0")),
    };
    // `true` and `false` predate the spec, which asks to accept them.
    let sampled = match sampled {
        None => None,
        Some(b"1") => Some(true),
        Some(b"0") => Some(false),
        Some(value) if value.eq_ignore_ascii_case(b"true") => Some(true),
        Some(value) if value.eq_ignore_ascii_case(b"false") => Some(false),
        Some(_) => return Err(malformed(Known::XB3Sampled.header_name(), "must be 1 or 0")),
    };
    let decision = match (debug, sampled) {
        (true, _) => Some(DEBUG_SAMPLED),
        (false, Some(true)) => Some(TraceFlags::SAMPLED),
        (false, Some(false)) => Some(TraceFlags::EMPTY),
        (false, None) => None,
    };

    let (trace, span) = match (trace, span) {
        (Some(trace), Some(span)) => (trace, span),
        (None, None) if parent.is_some() => {
            return Err(malformed(
                Known::XB3ParentSpanId.header_name(),
                "sent without trace and span ids",
            ));
        }
        (None, None) => return Ok(decision.map(B3Context::SamplingOnly)),
        (Some(_), None) => {
            return Err(malformed(
                Known::XB3SpanId.header_name(),
                "missing beside x-b3-traceid",
            ));
        }
        (None, Some(_)) => {
            return Err(malformed(
                Known::XB3TraceId.header_name(),
                "missing beside x-b3-spanid",
            ));
        }
    };
    let trace_id = parse_trace_id(trace)
        .ok_or_else(|| malformed(Known::XB3TraceId.header_name(), "invalid trace id"))?;
    let span_id = SpanId::from_hex(span)
        .map_err(|_| malformed(Known::XB3SpanId.header_name(), "invalid span id"))?;
    let parent_span_id = parent
        .map(SpanId::from_hex)
        .transpose()
        .map_err(|_| malformed(Known::XB3ParentSpanId.header_name(), "invalid span id"))?;
    Ok(Some(B3Context::Parent(RemoteContext {
        trace_id,
        span_id,
        parent_span_id,
        flags: decision.unwrap_or(TraceFlags::EMPTY),
        trace_state: TraceState::EMPTY,
        sampling_deferred: decision.is_none(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::propagation::header::test_header_map as headers;
    use crate::propagation::{JaegerPropagator, TraceContextPropagator};

    const TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
    const TRACE64: &str = "a3ce929d0e0e4736";
    const SPAN: &str = "e457b5a2e4d86bd1";
    const PARENT: &str = "05e3ac9a4f6e3b90";

    fn extract_with(
        encoding: B3Encoding,
        pairs: &[(&str, &str)],
    ) -> (Result<Presence, ExtractError>, Extracted) {
        let mut extracted = Extracted::default();
        let result = B3Propagator::new(encoding).extract(&headers(pairs), &mut extracted);
        (result, extracted)
    }

    fn extract(pairs: &[(&str, &str)]) -> (Result<Presence, ExtractError>, Extracted) {
        extract_with(B3Encoding::SingleHeader, pairs)
    }

    fn single(value: &str) -> Result<RemoteContext, ExtractError> {
        let (result, extracted) = extract(&[("b3", value)]);
        result?;
        Ok(extracted.parent.expect("parent on success"))
    }

    fn remote(
        trace: &str,
        span: &str,
        parent: Option<&str>,
        flags: TraceFlags,
        deferred: bool,
    ) -> RemoteContext {
        let trace_id = match trace.len() {
            16 => {
                TraceId::from_u128(u128::from_str_radix(trace, 16).expect("hex")).expect("non-zero")
            }
            _ => trace.parse().expect("valid trace id"),
        };
        RemoteContext {
            trace_id,
            span_id: span.parse().expect("valid span id"),
            parent_span_id: parent.map(|p| p.parse().expect("valid parent id")),
            flags,
            trace_state: TraceState::EMPTY,
            sampling_deferred: deferred,
        }
    }

    fn is_malformed<T: std::fmt::Debug>(result: &Result<T, ExtractError>, header: &str) -> bool {
        matches!(result, Err(ExtractError::Malformed { header: h, .. }) if *h == header)
    }

    #[test]
    fn names_follow_otel_propagators() {
        assert_eq!(B3Propagator::new(B3Encoding::SingleHeader).name(), "b3");
        assert_eq!(
            B3Propagator::new(B3Encoding::MultipleHeaders).name(),
            "b3multi"
        );
        assert_eq!(B3Propagator::default().name(), "b3");
        assert_eq!(
            B3Propagator::new(B3Encoding::SingleAndMultipleHeaders).name(),
            "b3,b3multi"
        );
    }

    #[test]
    fn single_header_reads_ids_sampling_and_parent() {
        assert_eq!(
            single(&format!("{TRACE}-{SPAN}-1")),
            Ok(remote(TRACE, SPAN, None, TraceFlags::SAMPLED, false))
        );
        assert_eq!(
            single(&format!("{TRACE}-{SPAN}-0-{PARENT}")),
            Ok(remote(TRACE, SPAN, Some(PARENT), TraceFlags::EMPTY, false))
        );
    }

    #[test]
    fn single_header_reads_64_bit_trace_ids() {
        let parent = single(&format!("{TRACE64}-{SPAN}-1")).expect("valid");
        assert_eq!(
            parent.trace_id.to_string(),
            format!("0000000000000000{TRACE64}")
        );
        assert_eq!(parent.trace_id.high_u64(), 0);
    }

    #[test]
    fn single_header_d_is_debug_and_sampled() {
        assert_eq!(
            single(&format!("{TRACE}-{SPAN}-d")),
            Ok(remote(TRACE, SPAN, None, DEBUG_SAMPLED, false))
        );
    }

    #[test]
    fn single_header_without_sampling_defers_the_decision() {
        assert_eq!(
            single(&format!("{TRACE}-{SPAN}")),
            Ok(remote(TRACE, SPAN, None, TraceFlags::EMPTY, true))
        );
    }

    #[test]
    fn single_sampling_state_alone_is_a_decision_without_parent() {
        for (value, flags) in [
            ("0", TraceFlags::EMPTY),
            ("1", TraceFlags::SAMPLED),
            ("d", DEBUG_SAMPLED),
        ] {
            let (result, extracted) = extract(&[("b3", value)]);
            assert_eq!(result, Ok(Presence::Found));
            assert_eq!(extracted.parent, None);
            assert_eq!(extracted.sampling_only, Some(flags), "b3: {value}");
        }
        assert!(is_malformed(&extract(&[("b3", "2")]).0, "b3"));
    }

    #[test]
    fn sampling_only_does_not_replace_an_earlier_decision() {
        let mut extracted = Extracted {
            sampling_only: Some(TraceFlags::SAMPLED),
            ..Extracted::default()
        };
        let result = B3Propagator::default().extract(&headers(&[("b3", "0")]), &mut extracted);
        assert_eq!(result, Ok(Presence::Absent));
        assert_eq!(extracted.sampling_only, Some(TraceFlags::SAMPLED));
    }

    #[test]
    fn an_existing_parent_is_left_untouched() {
        let mut extracted = Extracted::default();
        TraceContextPropagator::new()
            .extract(
                &headers(&[(
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                )]),
                &mut extracted,
            )
            .expect("valid");
        let before = extracted.clone();
        let value = format!("{TRACE}-{SPAN}-0");
        let result = B3Propagator::default().extract(
            &headers(&[("b3", &value), ("x-b3-sampled", "0")]),
            &mut extracted,
        );
        assert_eq!(result, Ok(Presence::Absent));
        assert_eq!(extracted, before);
    }

    /// What a preferred format chose: `TRACE`/`SPAN`, sampled as W3C reads `-01`.
    fn chosen() -> Extracted {
        Extracted {
            parent: Some(remote(TRACE, SPAN, None, TraceFlags::SAMPLED, false)),
            ..Extracted::default()
        }
    }

    fn extract_beside(
        mut extracted: Extracted,
        pairs: &[(&str, &str)],
    ) -> (Result<Presence, ExtractError>, Extracted) {
        let result = B3Propagator::default().extract(&headers(pairs), &mut extracted);
        (result, extracted)
    }

    fn with_flags(mut extracted: Extracted, flags: TraceFlags) -> Extracted {
        if let Some(parent) = &mut extracted.parent {
            parent.flags = flags;
        }
        extracted
    }

    #[test]
    fn a_debug_state_for_the_chosen_span_is_added_to_it() {
        let d = format!("{TRACE}-{SPAN}-d-{PARENT}");
        for pairs in [
            &[("b3", d.as_str())][..],
            &[
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-parentspanid", PARENT),
                ("x-b3-flags", "1"),
            ],
            // A broken `b3` falls back to the `x-b3-*` set, as extraction does.
            &[
                ("b3", "garbage"),
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-flags", "1"),
            ],
        ] {
            let (result, extracted) = extract_beside(chosen(), pairs);
            assert_eq!(result, Ok(Presence::Found), "{pairs:?}");
            // Only the flags change: B3's parent span id is not taken.
            assert_eq!(extracted, with_flags(chosen(), DEBUG_SAMPLED), "{pairs:?}");
        }
        // A deferred decision is one no longer.
        let mut deferred = with_flags(chosen(), TraceFlags::EMPTY);
        if let Some(parent) = &mut deferred.parent {
            parent.sampling_deferred = true;
        }
        let (result, extracted) = extract_beside(deferred, &[("b3", &d)]);
        assert_eq!(result, Ok(Presence::Found));
        assert_eq!(extracted, with_flags(chosen(), DEBUG_SAMPLED));
    }

    #[test]
    fn b3_of_another_span_or_without_debug_leaves_the_chosen_parent_as_it_is() {
        let other_span = format!("{TRACE}-{PARENT}-d");
        let other_trace = format!("{TRACE64}-{SPAN}-d");
        let sampled = format!("{TRACE}-{SPAN}-1");
        let deferred = format!("{TRACE}-{SPAN}");
        for pairs in [
            &[("b3", other_span.as_str())][..],
            &[("b3", &other_trace)],
            &[("b3", &sampled)],
            &[("b3", &deferred)],
            &[("b3", "d")],
            &[("x-b3-flags", "1")],
            // `b3` is valid, so the `x-b3-*` set is not looked at.
            &[
                ("b3", &sampled),
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-flags", "1"),
            ],
        ] {
            let (result, extracted) = extract_beside(chosen(), pairs);
            assert_eq!(result, Ok(Presence::Absent), "{pairs:?}");
            assert_eq!(extracted, chosen(), "{pairs:?}");
        }
    }

    #[test]
    fn malformed_b3_beside_a_chosen_parent_is_not_reported() {
        let twice = format!("{TRACE}-{SPAN}-d");
        let long = "1".repeat(513);
        for pairs in [
            &[("b3", "garbage")][..],
            &[("b3", &twice), ("b3", &twice)],
            &[("b3", &long)],
            &[("x-b3-traceid", TRACE), ("x-b3-flags", "1")],
            &[
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-flags", "2"),
            ],
        ] {
            let (result, extracted) = extract_beside(chosen(), pairs);
            assert_eq!(result, Ok(Presence::Absent), "{pairs:?}");
            assert_eq!(extracted, chosen(), "{pairs:?}");
        }
    }

    #[test]
    fn a_chosen_parent_already_debug_is_left_as_it_is() {
        let debug = with_flags(chosen(), TraceFlags::DEBUG);
        let (result, extracted) =
            extract_beside(debug.clone(), &[("b3", &format!("{TRACE}-{SPAN}-d"))]);
        assert_eq!(result, Ok(Presence::Absent));
        assert_eq!(extracted, debug);
    }

    #[test]
    fn upper_case_hex_is_invalid() {
        let upper = TRACE.to_ascii_uppercase();
        assert!(is_malformed(&single(&format!("{upper}-{SPAN}-1")), "b3"));
        assert!(is_malformed(
            &single(&format!("{TRACE}-E457B5A2E4D86BD1-1")),
            "b3"
        ));
        assert!(is_malformed(&single(&format!("{TRACE}-{SPAN}-D")), "b3"));
        let (result, _) = extract(&[("x-b3-traceid", &upper), ("x-b3-spanid", SPAN)]);
        assert!(is_malformed(&result, "x-b3-traceid"));
    }

    #[test]
    fn wrong_lengths_and_zero_ids_are_invalid() {
        for value in [
            format!("{}-{SPAN}-1", &TRACE[..31]),
            format!("{TRACE}0-{SPAN}-1"),
            format!("{}-{SPAN}-1", &TRACE64[..15]),
            format!("{TRACE64}0-{SPAN}-1"),
            format!("{TRACE}-{}-1", &SPAN[..15]),
            format!("{TRACE}-{SPAN}0-1"),
            format!("{TRACE}-{SPAN}-1-{}", &PARENT[..15]),
            format!("{}-{SPAN}-1", "0".repeat(32)),
            format!("{}-{SPAN}-1", "0".repeat(16)),
            format!("{TRACE}-0000000000000000-1"),
            format!("{TRACE}-{SPAN}-1-0000000000000000"),
            format!("{TRACE}-{SPAN}-"),
            format!("{TRACE}-{SPAN}-10"),
            format!("{TRACE}-{SPAN}-true"),
            format!("{TRACE}-{SPAN}-1-{PARENT}-x"),
            TRACE.to_owned(),
            String::new(),
        ] {
            assert!(is_malformed(&single(&value), "b3"), "{value:?}");
        }
    }

    #[test]
    fn non_hex_bytes_are_invalid_never_a_panic() {
        for value in [
            format!("+{}-{SPAN}-1", &TRACE[1..]),
            format!("{TRACE}-{}g-1", &SPAN[..15]),
            format!("{TRACE}-{}é-1", &SPAN[..14]),
            format!("{TRACE}-{SPAN}-é"),
            "é".to_owned(),
        ] {
            assert!(is_malformed(&single(&value), "b3"), "{value:?}");
        }
    }

    #[test]
    fn oversized_and_repeated_headers_are_rejected() {
        assert_eq!(
            single(&"a".repeat(513)),
            Err(ExtractError::Oversized {
                header: "b3",
                limit: 512
            })
        );
        let value = format!("{TRACE}-{SPAN}-1");
        let (result, extracted) = extract(&[("b3", &value), ("b3", &value)]);
        assert!(is_malformed(&result, "b3"));
        assert_eq!(extracted.parent, None);
        let long = "1".repeat(513);
        let (result, _) = extract(&[("x-b3-traceid", TRACE), ("x-b3-spanid", &long)]);
        assert_eq!(
            result,
            Err(ExtractError::Oversized {
                header: "x-b3-spanid",
                limit: 512
            })
        );
        let (result, _) = extract(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
        ]);
        assert!(is_malformed(&result, "x-b3-traceid"));
    }

    #[test]
    fn multi_headers_read_ids_parent_and_sampled() {
        for (sampled, flags) in [
            ("1", TraceFlags::SAMPLED),
            ("0", TraceFlags::EMPTY),
            ("true", TraceFlags::SAMPLED),
            ("false", TraceFlags::EMPTY),
            ("True", TraceFlags::SAMPLED),
        ] {
            let (result, extracted) = extract(&[
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-parentspanid", PARENT),
                ("x-b3-sampled", sampled),
            ]);
            assert_eq!(result, Ok(Presence::Found));
            assert_eq!(
                extracted.parent,
                Some(remote(TRACE, SPAN, Some(PARENT), flags, false)),
                "x-b3-sampled: {sampled}"
            );
        }
        let (result, _) = extract(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "yes"),
        ]);
        assert!(is_malformed(&result, "x-b3-sampled"));
    }

    #[test]
    fn multi_headers_flags_1_is_debug_and_sampled() {
        let (result, extracted) = extract(&[
            ("x-b3-traceid", TRACE64),
            ("x-b3-spanid", SPAN),
            ("x-b3-flags", "1"),
            ("x-b3-sampled", "0"),
        ]);
        assert_eq!(result, Ok(Presence::Found));
        assert_eq!(
            extracted.parent,
            Some(remote(TRACE64, SPAN, None, DEBUG_SAMPLED, false))
        );
        let (result, _) = extract(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-flags", "2"),
        ]);
        assert!(is_malformed(&result, "x-b3-flags"));
    }

    #[test]
    fn multi_headers_without_sampled_defer_the_decision() {
        let (result, extracted) = extract(&[("x-b3-traceid", TRACE), ("x-b3-spanid", SPAN)]);
        assert_eq!(result, Ok(Presence::Found));
        assert_eq!(
            extracted.parent,
            Some(remote(TRACE, SPAN, None, TraceFlags::EMPTY, true))
        );
    }

    #[test]
    fn multi_sampling_without_ids_is_a_decision_without_parent() {
        for (pairs, flags) in [
            (&[("x-b3-sampled", "0")][..], TraceFlags::EMPTY),
            (&[("x-b3-sampled", "true")][..], TraceFlags::SAMPLED),
            (&[("x-b3-flags", "1")][..], DEBUG_SAMPLED),
        ] {
            let (result, extracted) = extract(pairs);
            assert_eq!(result, Ok(Presence::Found));
            assert_eq!(extracted.parent, None);
            assert_eq!(extracted.sampling_only, Some(flags), "{pairs:?}");
        }
    }

    #[test]
    fn multi_trace_id_without_span_id_or_the_reverse_is_invalid() {
        let (result, extracted) = extract(&[("x-b3-traceid", TRACE), ("x-b3-sampled", "1")]);
        assert!(is_malformed(&result, "x-b3-spanid"));
        assert_eq!((extracted.parent, extracted.sampling_only), (None, None));
        let (result, _) = extract(&[("x-b3-spanid", SPAN)]);
        assert!(is_malformed(&result, "x-b3-traceid"));
        let (result, _) = extract(&[("x-b3-parentspanid", PARENT)]);
        assert!(is_malformed(&result, "x-b3-parentspanid"));
    }

    #[test]
    fn both_encodings_are_read_whatever_is_written() {
        let value = format!("{TRACE}-{SPAN}-1");
        let (result, extracted) = extract_with(B3Encoding::MultipleHeaders, &[("b3", &value)]);
        assert_eq!(result, Ok(Presence::Found));
        assert_eq!(
            extracted.parent.map(|p| p.trace_id.to_string()),
            Some(TRACE.to_owned())
        );
        let (result, extracted) = extract_with(
            B3Encoding::SingleHeader,
            &[
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-sampled", "1"),
            ],
        );
        assert_eq!(result, Ok(Presence::Found));
        assert_eq!(
            extracted.parent.map(|p| p.span_id.to_string()),
            Some(SPAN.to_owned())
        );
    }

    #[test]
    fn single_header_is_preferred_and_multi_is_the_fallback() {
        let value = format!("{TRACE}-{SPAN}-1");
        let (result, extracted) = extract(&[
            ("b3", &value),
            ("x-b3-traceid", TRACE64),
            ("x-b3-spanid", PARENT),
            ("x-b3-sampled", "0"),
        ]);
        assert_eq!(result, Ok(Presence::Found));
        assert_eq!(
            extracted.parent,
            Some(remote(TRACE, SPAN, None, TraceFlags::SAMPLED, false))
        );

        let (result, extracted) = extract(&[
            ("b3", "garbage-value"),
            ("x-b3-traceid", TRACE64),
            ("x-b3-spanid", PARENT),
            ("x-b3-sampled", "0"),
        ]);
        assert!(is_malformed(&result, "b3"));
        assert_eq!(
            extracted.parent,
            Some(remote(TRACE64, PARENT, None, TraceFlags::EMPTY, false))
        );
    }

    #[test]
    fn no_headers_is_absent() {
        let (result, extracted) = extract(&[("traceparent", "x"), ("x-b3-other", "1")]);
        assert_eq!(result, Ok(Presence::Absent));
        assert_eq!(extracted, Extracted::default());
    }

    fn injected(encoding: B3Encoding, context: &SpanContext, pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = headers(pairs);
        B3Propagator::new(encoding).inject(context, &mut headers);
        headers
    }

    fn get<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
        headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn context(trace: &str, flags: TraceFlags, parent: Option<&str>) -> SpanContext {
        let remote = remote(trace, SPAN, parent, flags, false);
        SpanContext::new(remote.trace_id, remote.span_id, flags)
            .with_parent_span_id(remote.parent_span_id)
    }

    #[test]
    fn inject_single_header_writes_sampling_and_parent_and_drops_multi() {
        let stale = [
            ("x-b3-traceid", TRACE),
            ("x-b3-sampled", "1"),
            ("x-b3-flags", "1"),
        ];
        for (flags, parent, expected) in [
            (TraceFlags::SAMPLED, None, format!("{TRACE}-{SPAN}-1")),
            (
                TraceFlags::EMPTY,
                Some(PARENT),
                format!("{TRACE}-{SPAN}-0-{PARENT}"),
            ),
            (TraceFlags::DEBUG, None, format!("{TRACE}-{SPAN}-d")),
            (
                DEBUG_SAMPLED | TraceFlags::RANDOM,
                None,
                format!("{TRACE}-{SPAN}-d"),
            ),
        ] {
            let headers = injected(
                B3Encoding::SingleHeader,
                &context(TRACE, flags, parent),
                &stale,
            );
            assert_eq!(get(&headers, "b3"), Some(expected.as_str()));
            assert_eq!(headers.len(), 1, "{headers:?}");
        }
        // A 64-bit trace id is written in the 32-digit form.
        let headers = injected(
            B3Encoding::SingleHeader,
            &context(TRACE64, TraceFlags::SAMPLED, None),
            &[],
        );
        assert_eq!(
            get(&headers, "b3"),
            Some(format!("0000000000000000{TRACE64}-{SPAN}-1").as_str())
        );
    }

    #[test]
    fn inject_multi_headers_writes_flags_instead_of_sampled_when_debug() {
        let stale = [
            ("b3", "0"),
            ("x-b3-parentspanid", PARENT),
            ("x-b3-flags", "1"),
        ];
        let headers = injected(
            B3Encoding::MultipleHeaders,
            &context(TRACE, TraceFlags::SAMPLED, None),
            &stale,
        );
        let mut written: Vec<_> = headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.to_str().unwrap_or("?")))
            .collect();
        written.sort_unstable();
        assert_eq!(
            written,
            [
                ("x-b3-sampled", "1"),
                ("x-b3-spanid", SPAN),
                ("x-b3-traceid", TRACE)
            ]
        );

        let headers = injected(
            B3Encoding::MultipleHeaders,
            &context(TRACE, DEBUG_SAMPLED, Some(PARENT)),
            &[("x-b3-sampled", "0")],
        );
        assert_eq!(get(&headers, "x-b3-flags"), Some("1"));
        assert_eq!(get(&headers, "x-b3-sampled"), None);
        assert_eq!(get(&headers, "x-b3-parentspanid"), Some(PARENT));

        let headers = injected(
            B3Encoding::MultipleHeaders,
            &context(TRACE, TraceFlags::EMPTY, None),
            &[],
        );
        assert_eq!(get(&headers, "x-b3-sampled"), Some("0"));
        assert_eq!(get(&headers, "x-b3-flags"), None);
    }

    #[test]
    fn inject_both_encodings_writes_b3_and_the_multi_headers() {
        let sorted = |headers: &HeaderMap| {
            let mut written: Vec<(String, String)> = headers
                .iter()
                .map(|(name, value)| {
                    let value = value.to_str().unwrap_or("?");
                    (name.as_str().to_owned(), value.to_owned())
                })
                .collect();
            written.sort_unstable();
            written
        };
        let pairs = |expected: &[(&str, &str)]| -> Vec<(String, String)> {
            expected
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect()
        };
        let stale = [
            ("b3", "0"),
            ("x-b3-parentspanid", PARENT),
            ("x-b3-flags", "1"),
        ];
        let headers = injected(
            B3Encoding::SingleAndMultipleHeaders,
            &context(TRACE, TraceFlags::SAMPLED, None),
            &stale,
        );
        let single = format!("{TRACE}-{SPAN}-1");
        assert_eq!(
            sorted(&headers),
            pairs(&[
                ("b3", &single),
                ("x-b3-sampled", "1"),
                ("x-b3-spanid", SPAN),
                ("x-b3-traceid", TRACE),
            ])
        );

        let headers = injected(
            B3Encoding::SingleAndMultipleHeaders,
            &context(TRACE, DEBUG_SAMPLED, Some(PARENT)),
            &[("x-b3-sampled", "0")],
        );
        let single = format!("{TRACE}-{SPAN}-d-{PARENT}");
        assert_eq!(
            sorted(&headers),
            pairs(&[
                ("b3", &single),
                ("x-b3-flags", "1"),
                ("x-b3-parentspanid", PARENT),
                ("x-b3-spanid", SPAN),
                ("x-b3-traceid", TRACE),
            ])
        );

        let headers = injected(
            B3Encoding::SingleAndMultipleHeaders,
            &context(TRACE64, TraceFlags::EMPTY, None),
            &[],
        );
        let trace = format!("0000000000000000{TRACE64}");
        let single = format!("{trace}-{SPAN}-0");
        assert_eq!(
            sorted(&headers),
            pairs(&[
                ("b3", &single),
                ("x-b3-sampled", "0"),
                ("x-b3-spanid", SPAN),
                ("x-b3-traceid", &trace),
            ])
        );
    }

    #[test]
    fn inject_then_extract_round_trips_in_both_encodings() {
        for encoding in [
            B3Encoding::SingleHeader,
            B3Encoding::MultipleHeaders,
            B3Encoding::SingleAndMultipleHeaders,
        ] {
            for (flags, read_back) in [
                (TraceFlags::EMPTY, TraceFlags::EMPTY),
                (TraceFlags::SAMPLED, TraceFlags::SAMPLED),
                (DEBUG_SAMPLED, DEBUG_SAMPLED),
                // B3 has no unsampled debug, no random and no firehose.
                (TraceFlags::DEBUG, DEBUG_SAMPLED),
                (
                    TraceFlags::SAMPLED | TraceFlags::RANDOM | TraceFlags::FIREHOSE,
                    TraceFlags::SAMPLED,
                ),
            ] {
                for parent in [None, Some(PARENT)] {
                    let headers = injected(encoding, &context(TRACE, flags, parent), &[]);
                    let mut extracted = Extracted::default();
                    let result = B3Propagator::new(encoding).extract(&headers, &mut extracted);
                    assert_eq!(result, Ok(Presence::Found));
                    assert_eq!(
                        extracted.parent,
                        Some(remote(TRACE, SPAN, parent, read_back, false)),
                        "{encoding:?} {flags:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn b3_debug_request_is_sampled_when_forwarded_as_w3c_or_jaeger() {
        let parent = single(&format!("{TRACE}-{SPAN}-d")).expect("valid");
        let forwarded = SpanContext::new(parent.trace_id, parent.span_id, parent.flags);

        let mut w3c = HeaderMap::new();
        TraceContextPropagator::new().inject(&forwarded, &mut w3c);
        assert_eq!(
            get(&w3c, "traceparent"),
            Some(format!("00-{TRACE}-{SPAN}-01").as_str())
        );
        let mut jaeger = HeaderMap::new();
        JaegerPropagator::new().inject(&forwarded, &mut jaeger);
        assert_eq!(
            get(&jaeger, "uber-trace-id"),
            Some(format!("{TRACE}:{SPAN}:0:03").as_str())
        );
        let mut back = Extracted::default();
        JaegerPropagator::new()
            .extract(&jaeger, &mut back)
            .expect("valid");
        assert_eq!(back.parent.map(|p| p.flags), Some(DEBUG_SAMPLED));
    }
}
