//! W3C Trace Context: the `traceparent` and `tracestate` headers.

use http::{HeaderMap, HeaderValue};

use super::header::{HeaderScan, Known, MAX_ID_HEADER_LEN, ScannedHeaders, hex_byte, replace};
use super::{ExtractError, Extracted, Presence, Propagator, RemoteContext};
use crate::id::parse_hex_u64;
use crate::{HexId, SpanContext, SpanId, TraceFlags, TraceId, TraceState};

/// Length of a version `00` `traceparent`: `vv-` + 32 + `-` + 16 + `-ff`.
const TRACEPARENT_LEN: usize = 55;

/// The wire flag for "sampled".
const WIRE_SAMPLED: u8 = 0x01;
/// The wire flag for "the trace id is random" (Trace Context Level 2).
const WIRE_RANDOM: u8 = 0x02;

/// W3C Trace Context (`traceparent`, `tracestate`), Level 2's random flag included.
///
/// Extraction is as strict as the spec: lower-case hex only, no all-zero ids, version `ff`
/// rejected, version `00` exactly 55 characters; a higher version may append fields after a `-`.
/// Only the sampled (`01`) and random (`02`) flags are read, and only they are written.
///
/// ```
/// use http::HeaderMap;
/// use trace_core::propagation::{Extracted, Propagator, TraceContextPropagator};
///
/// let mut headers = HeaderMap::new();
/// headers.insert(
///     "traceparent",
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03".parse()?,
/// );
/// let mut extracted = Extracted::default();
/// TraceContextPropagator::new().extract(&headers, &mut extracted)?;
/// let parent = extracted.parent.expect("valid traceparent");
/// assert!(parent.flags.is_sampled() && parent.flags.is_random());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct TraceContextPropagator;

impl TraceContextPropagator {
    /// The W3C Trace Context format.
    pub fn new() -> Self {
        Self
    }

    /// The `traceparent` value for `context`, version `00` with only the sampled and random
    /// flags, rendered on the stack. W3C's `traceresponse` header has the same form.
    pub fn traceparent(context: &SpanContext) -> HexId<TRACEPARENT_LEN> {
        let flags = context.flags();
        let mut wire_flags = 0;
        if flags.is_sampled() {
            wire_flags |= WIRE_SAMPLED;
        }
        if flags.is_random() {
            wire_flags |= WIRE_RANDOM;
        }
        let mut value = [b'-'; TRACEPARENT_LEN];
        value[..2].copy_from_slice(b"00");
        value[3..35].copy_from_slice(context.trace_id().to_hex().as_bytes());
        value[36..52].copy_from_slice(context.span_id().to_hex().as_bytes());
        value[53..].copy_from_slice(&hex_byte(wire_flags));
        HexId::from_ascii(value)
    }
}

impl Propagator for TraceContextPropagator {
    fn name(&self) -> &'static str {
        "tracecontext"
    }

    fn extract(&self, headers: &HeaderMap, into: &mut Extracted) -> Result<Presence, ExtractError> {
        self.extract_scanned(&HeaderScan::new(headers), into)
    }

    fn extract_scanned(
        &self,
        headers: &HeaderScan<'_>,
        into: &mut Extracted,
    ) -> Result<Presence, ExtractError> {
        // The format carries nothing but the parent, so there is nothing to add once one is set.
        if into.parent.is_some() {
            return Ok(Presence::Absent);
        }
        let Some(value) = headers.single(Known::Traceparent, MAX_ID_HEADER_LEN)? else {
            return Ok(Presence::Absent);
        };
        let (trace_id, span_id, flags) = parse_traceparent(value)?;
        let trace_state = if headers.contains(Known::Tracestate) {
            TraceState::parse_values(headers.all(Known::Tracestate).map(HeaderValue::as_bytes))
        } else {
            Ok(TraceState::EMPTY)
        };
        let mut parent = RemoteContext {
            trace_id,
            span_id,
            parent_span_id: None,
            flags,
            trace_state: TraceState::EMPTY,
            sampling_deferred: false,
        };
        match trace_state {
            Ok(trace_state) => {
                parent.trace_state = trace_state;
                into.parent = Some(parent);
                Ok(Presence::Found)
            }
            // The spec drops an invalid trace state whole but keeps the traceparent beside it.
            Err(error) => {
                into.parent = Some(parent);
                Err(ExtractError::TraceState(error))
            }
        }
    }

    fn scanned_headers(&self) -> ScannedHeaders {
        ScannedHeaders::of(&[Known::Traceparent, Known::Tracestate], false)
    }

    fn inject(&self, context: &SpanContext, headers: &mut HeaderMap) {
        let traceparent = HeaderValue::from_bytes(Self::traceparent(context).as_bytes()).ok();
        replace(headers, Known::Traceparent.header_name(), traceparent);
        // A trace state left over from another hop must not travel with our traceparent.
        let trace_state = context
            .trace_state()
            .header_value()
            .and_then(|state| HeaderValue::from_str(state).ok());
        replace(headers, Known::Tracestate.header_name(), trace_state);
    }
}

const fn malformed(reason: &'static str) -> ExtractError {
    ExtractError::Malformed {
        header: "traceparent",
        reason,
    }
}

/// Reads `version-traceid-parentid-flags` from a trimmed header value.
fn parse_traceparent(value: &[u8]) -> Result<(TraceId, SpanId, TraceFlags), ExtractError> {
    let Some(version) = value.get(..2) else {
        return Err(malformed("too short"));
    };
    let version = parse_hex_u64(version).map_err(|_| malformed("version is not lower-case hex"))?;
    match version {
        0xff => return Err(malformed("version ff is invalid")),
        0x00 if value.len() != TRACEPARENT_LEN => {
            return Err(malformed("version 00 must be 55 characters"));
        }
        // A later version keeps these four fields and may append more after a `-`.
        _ if value.len() < TRACEPARENT_LEN => return Err(malformed("too short")),
        _ if value.len() > TRACEPARENT_LEN && value.get(TRACEPARENT_LEN) != Some(&b'-') => {
            return Err(malformed("fields of a later version must follow a '-'"));
        }
        _ => {}
    }
    for dash in [2, 35, 52] {
        if value.get(dash) != Some(&b'-') {
            return Err(malformed(
                "fields not separated by '-' at the expected places",
            ));
        }
    }
    let trace_hex = value.get(3..35).unwrap_or_default();
    let span_hex = value.get(36..52).unwrap_or_default();
    let flags_hex = value.get(53..55).unwrap_or_default();
    let trace_id = TraceId::from_hex(trace_hex).map_err(|_| malformed("invalid trace id"))?;
    let span_id = SpanId::from_hex(span_hex).map_err(|_| malformed("invalid parent id"))?;
    if flags_hex.len() != 2 {
        return Err(malformed("invalid flags"));
    }
    let wire_flags = parse_hex_u64(flags_hex).map_err(|_| malformed("invalid flags"))?;
    // Bits the spec has not defined yet are ignored, as it asks.
    let flags = TraceFlags::EMPTY
        .with(
            TraceFlags::SAMPLED,
            wire_flags & u64::from(WIRE_SAMPLED) != 0,
        )
        .with(TraceFlags::RANDOM, wire_flags & u64::from(WIRE_RANDOM) != 0);
    Ok((trace_id, span_id, flags))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TraceStateError;
    use crate::propagation::header::test_header_map as headers;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    fn extract(pairs: &[(&'static str, &str)]) -> (Result<Presence, ExtractError>, Extracted) {
        let mut extracted = Extracted::default();
        let result = TraceContextPropagator::new().extract(&headers(pairs), &mut extracted);
        (result, extracted)
    }

    fn parent_of(value: &str) -> Result<RemoteContext, ExtractError> {
        let (result, extracted) = extract(&[("traceparent", value)]);
        result?;
        Ok(extracted.parent.expect("parent on success"))
    }

    fn is_malformed(result: &Result<RemoteContext, ExtractError>) -> bool {
        matches!(
            result,
            Err(ExtractError::Malformed {
                header: "traceparent",
                ..
            })
        )
    }

    #[test]
    fn reads_ids_and_sampled_flag() {
        let parent = parent_of(&format!("00-{TRACE}-{SPAN}-01")).expect("valid");
        assert_eq!(parent.trace_id.to_string(), TRACE);
        assert_eq!(parent.span_id.to_string(), SPAN);
        assert_eq!(parent.flags, TraceFlags::SAMPLED);
        assert_eq!(parent.parent_span_id, None);
        assert!(!parent.sampling_deferred);
        assert_eq!(parent.trace_state, TraceState::EMPTY);
        let unsampled = parent_of(&format!("00-{TRACE}-{SPAN}-00")).expect("valid");
        assert_eq!(unsampled.flags, TraceFlags::EMPTY);
    }

    #[test]
    fn random_flag_is_read_and_unknown_bits_ignored() {
        let parent = parent_of(&format!("00-{TRACE}-{SPAN}-03")).expect("valid");
        assert_eq!(parent.flags, TraceFlags::SAMPLED | TraceFlags::RANDOM);
        // 0x04 and 0x08 are not W3C's debug or firehose: they mean nothing yet.
        let parent = parent_of(&format!("00-{TRACE}-{SPAN}-fc")).expect("valid");
        assert_eq!(parent.flags, TraceFlags::EMPTY);
        let parent = parent_of(&format!("00-{TRACE}-{SPAN}-0d")).expect("valid");
        assert_eq!(parent.flags, TraceFlags::SAMPLED);
    }

    #[test]
    fn no_header_is_absent_and_leaves_everything_alone() {
        let (result, extracted) = extract(&[]);
        assert_eq!(result, Ok(Presence::Absent));
        assert_eq!(extracted, Extracted::default());
        // A trace state without a traceparent is ignored.
        let (result, extracted) = extract(&[("tracestate", "a=1")]);
        assert_eq!(result, Ok(Presence::Absent));
        assert_eq!(extracted.parent, None);
    }

    #[test]
    fn all_zero_ids_are_invalid() {
        assert!(is_malformed(&parent_of(&format!(
            "00-{}-{SPAN}-01",
            "0".repeat(32)
        ))));
        assert!(is_malformed(&parent_of(&format!(
            "00-{TRACE}-{}-01",
            "0".repeat(16)
        ))));
    }

    #[test]
    fn version_ff_is_invalid() {
        assert_eq!(
            parent_of(&format!("ff-{TRACE}-{SPAN}-01")),
            Err(malformed("version ff is invalid"))
        );
    }

    #[test]
    fn later_version_may_append_fields_after_a_dash() {
        let parent = parent_of(&format!(
            "cc-{TRACE}-{SPAN}-01-what-the-future-will-be-like"
        ))
        .expect("ok");
        assert_eq!(parent.trace_id.to_string(), TRACE);
        assert_eq!(parent.span_id.to_string(), SPAN);
        assert_eq!(parent.flags, TraceFlags::SAMPLED);
        let exact = parent_of(&format!("01-{TRACE}-{SPAN}-00")).expect("ok");
        assert_eq!(exact.flags, TraceFlags::EMPTY);
    }

    #[test]
    fn later_version_with_a_bad_separator_is_invalid() {
        assert_eq!(
            parent_of(&format!("cc-{TRACE}-{SPAN}-01.future")),
            Err(malformed("fields of a later version must follow a '-'"))
        );
        assert!(is_malformed(&parent_of(&format!("cc-{TRACE}-{SPAN}-0"))));
    }

    #[test]
    fn version_00_with_extra_characters_is_invalid() {
        assert_eq!(
            parent_of(&format!("00-{TRACE}-{SPAN}-01-extra")),
            Err(malformed("version 00 must be 55 characters"))
        );
        assert!(is_malformed(&parent_of(&format!("00-{TRACE}-{SPAN}-011"))));
    }

    #[test]
    fn upper_case_hex_is_invalid() {
        let upper_trace = TRACE.to_ascii_uppercase();
        assert!(is_malformed(&parent_of(&format!(
            "00-{upper_trace}-{SPAN}-01"
        ))));
        assert!(is_malformed(&parent_of(&format!(
            "00-{TRACE}-00F067AA0BA902B7-01"
        ))));
        assert!(is_malformed(&parent_of(&format!("00-{TRACE}-{SPAN}-0A"))));
        assert!(is_malformed(&parent_of(&format!("0A-{TRACE}-{SPAN}-01"))));
    }

    #[test]
    fn wrong_field_lengths_are_invalid() {
        // Same total length, dashes moved.
        assert!(is_malformed(&parent_of(&format!(
            "00-{}-0{SPAN}-01",
            &TRACE[..31]
        ))));
        assert!(is_malformed(&parent_of(&format!("00-{TRACE}-{SPAN}-1"))));
        assert!(is_malformed(&parent_of(&format!("0-{TRACE}-{SPAN}-01"))));
        assert!(is_malformed(&parent_of(&format!("00-{TRACE}0-{SPAN}-01"))));
        assert!(is_malformed(&parent_of("")));
        assert!(is_malformed(&parent_of("0")));
    }

    #[test]
    fn non_hex_bytes_are_invalid() {
        let plus = format!("00-+{}-{SPAN}-01", &TRACE[1..]);
        assert!(is_malformed(&parent_of(&plus)));
        assert!(is_malformed(&parent_of(&format!("00-{TRACE}-{SPAN}-0g"))));
        assert!(is_malformed(&parent_of(&format!("00-{TRACE}-{SPAN}-+1"))));
        assert!(is_malformed(&parent_of(&format!("0x-{TRACE}-{SPAN}-01"))));
        // A two-byte character in place of two hex digits: same length, never a panic.
        let accented = format!("00-{TRACE}-{}é-01", &SPAN[..14]);
        assert_eq!(accented.len(), TRACEPARENT_LEN);
        assert!(is_malformed(&parent_of(&accented)));
        // A multi-byte character straddling a field boundary.
        let straddling = format!("00-{}é{SPAN}-01", &TRACE[..31]);
        assert!(is_malformed(&parent_of(&straddling)));
    }

    #[test]
    fn white_space_around_the_value_is_trimmed() {
        let parent = parent_of(&format!(" \t00-{TRACE}-{SPAN}-01\t ")).expect("valid");
        assert_eq!(parent.trace_id.to_string(), TRACE);
        assert!(is_malformed(&parent_of(&format!("00-{TRACE}- {SPAN}-01"))));
    }

    #[test]
    fn several_traceparent_lines_are_invalid() {
        let one = format!("00-{TRACE}-{SPAN}-01");
        let (result, extracted) = extract(&[("traceparent", &one), ("traceparent", &one)]);
        assert_eq!(
            result,
            Err(ExtractError::Malformed {
                header: "traceparent",
                reason: "header sent more than once"
            })
        );
        assert_eq!(extracted.parent, None);
    }

    #[test]
    fn oversized_traceparent_is_rejected() {
        let long = format!("cc-{TRACE}-{SPAN}-01-{}", "x".repeat(600));
        assert_eq!(
            parent_of(&long),
            Err(ExtractError::Oversized {
                header: "traceparent",
                limit: MAX_ID_HEADER_LEN
            })
        );
    }

    #[test]
    fn tracestate_lines_are_combined_and_white_space_trimmed() {
        let traceparent = format!("00-{TRACE}-{SPAN}-01");
        let (result, extracted) = extract(&[
            ("traceparent", &traceparent),
            ("tracestate", "congo=t61rcWkgMzE , \trojo=00f067aa0ba902b7"),
            ("tracestate", ",, ours=1 "),
        ]);
        assert_eq!(result, Ok(Presence::Found));
        let parent = extracted.parent.expect("valid");
        assert_eq!(
            parent.trace_state.header_value(),
            Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7,ours=1")
        );
    }

    #[test]
    fn invalid_tracestate_keeps_the_parent_without_it() {
        let traceparent = format!("00-{TRACE}-{SPAN}-01");
        let (result, extracted) = extract(&[
            ("traceparent", &traceparent),
            ("tracestate", "a=1"),
            ("tracestate", "a=2"),
        ]);
        assert_eq!(
            result,
            Err(ExtractError::TraceState(TraceStateError::DuplicateKey))
        );
        let parent = extracted.parent.expect("parent kept");
        assert_eq!(parent.trace_id.to_string(), TRACE);
        assert_eq!(parent.trace_state, TraceState::EMPTY);
    }

    #[test]
    fn tracestate_is_ignored_beside_an_invalid_traceparent() {
        let (result, extracted) =
            extract(&[("traceparent", "00-garbage"), ("tracestate", "a=1,a=2")]);
        assert!(matches!(result, Err(ExtractError::Malformed { .. })));
        assert_eq!(extracted.parent, None);
    }

    #[test]
    fn an_existing_parent_is_left_untouched() {
        let mut extracted = Extracted::default();
        let first = format!("00-{TRACE}-{SPAN}-01");
        TraceContextPropagator::new()
            .extract(&headers(&[("traceparent", &first)]), &mut extracted)
            .expect("valid");
        let before = extracted.clone();
        let other = format!("00-{}-{}-00", "1".repeat(32), "2".repeat(16));
        let result = TraceContextPropagator::new()
            .extract(&headers(&[("traceparent", &other)]), &mut extracted);
        assert_eq!(result, Ok(Presence::Absent));
        assert_eq!(extracted, before);
    }

    #[test]
    fn inject_writes_version_00_with_sampled_and_random_only() {
        let trace_id: TraceId = TRACE.parse().expect("valid");
        let span_id: SpanId = SPAN.parse().expect("valid");
        let all =
            TraceFlags::SAMPLED | TraceFlags::RANDOM | TraceFlags::DEBUG | TraceFlags::FIREHOSE;
        let cases = [
            (TraceFlags::EMPTY, "00"),
            (TraceFlags::SAMPLED, "01"),
            (TraceFlags::RANDOM, "02"),
            (all, "03"),
            (TraceFlags::DEBUG | TraceFlags::FIREHOSE, "00"),
        ];
        for (flags, wire) in cases {
            let mut headers = HeaderMap::new();
            let context = SpanContext::new(trace_id, span_id, flags);
            TraceContextPropagator::new().inject(&context, &mut headers);
            assert_eq!(
                headers.get("traceparent").map(HeaderValue::as_bytes),
                Some(format!("00-{TRACE}-{SPAN}-{wire}").as_bytes()),
                "{flags:?}"
            );
        }
    }

    #[test]
    fn inject_writes_tracestate_and_removes_a_stale_one() {
        let context = SpanContext::new_root(TraceFlags::SAMPLED).with_trace_state(
            "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
                .parse()
                .expect("valid"),
        );
        let mut headers = HeaderMap::new();
        TraceContextPropagator::new().inject(&context, &mut headers);
        assert_eq!(
            headers.get("tracestate").map(HeaderValue::as_bytes),
            Some(&b"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"[..])
        );
        let without = context.clone().with_trace_state(TraceState::EMPTY);
        headers.append("traceparent", HeaderValue::from_static("stale"));
        TraceContextPropagator::new().inject(&without, &mut headers);
        assert!(!headers.contains_key("tracestate"));
        assert_eq!(headers.get_all("traceparent").iter().count(), 1);
    }

    #[test]
    fn inject_then_extract_keeps_ids_flags_and_state() {
        let state: TraceState = "ours=1,theirs=2".parse().expect("valid");
        for flags in [
            TraceFlags::EMPTY,
            TraceFlags::SAMPLED,
            TraceFlags::RANDOM,
            TraceFlags::SAMPLED | TraceFlags::RANDOM,
        ] {
            let context = SpanContext::new_root(TraceFlags::EMPTY)
                .with_flags(flags)
                .with_trace_state(state.clone());
            let mut headers = HeaderMap::new();
            TraceContextPropagator::new().inject(&context, &mut headers);
            let mut extracted = Extracted::default();
            let result = TraceContextPropagator::new().extract(&headers, &mut extracted);
            assert_eq!(result, Ok(Presence::Found));
            assert_eq!(
                extracted.parent,
                Some(RemoteContext {
                    trace_id: context.trace_id(),
                    span_id: context.span_id(),
                    parent_span_id: None,
                    flags,
                    trace_state: state.clone(),
                    sampling_deferred: false,
                })
            );
        }
    }
}
