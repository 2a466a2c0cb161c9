//! `grpc-trace-bin`: the binary trace context of OpenCensus-era gRPC clients.

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use http::{HeaderMap, HeaderName, HeaderValue};
use trace_core::propagation::{ExtractError, Extracted, Presence, Propagator, RemoteContext};
use trace_core::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

const HEADER: &str = "grpc-trace-bin";
static HEADER_NAME: HeaderName = HeaderName::from_static(HEADER);
/// Version 0 with trace id, span id and options: 1 + 17 + 9 + 2 bytes.
const ENCODED_LEN: usize = 29;
/// Longest base64 value read; valid ones are under 40 characters, later versions may add fields.
const MAX_VALUE_LEN: usize = 256;

/// gRPC binary metadata is base64 with or without padding; both must be accepted.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Reads and writes `grpc-trace-bin`, the binary trace context (OpenCensus `BinaryFormat`:
/// version 0, then field 0 the 16-byte trace id, field 1 the 8-byte span id, field 2 the
/// options byte whose bit 0 is "sampled"), base64-encoded as gRPC binary metadata. Reads values
/// with or without padding, writes them without.
///
/// Add it to a layer's propagation for callers from the OpenCensus era:
///
/// ```
/// use trace_core::propagation::{CompositePropagator, TraceContextPropagator};
/// use trace_grpc::GrpcTraceBinPropagator;
///
/// let propagation = CompositePropagator::new(vec![
///     Box::new(TraceContextPropagator::new()),
///     Box::new(GrpcTraceBinPropagator::new()),
/// ]);
/// # drop(propagation);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcTraceBinPropagator;

impl GrpcTraceBinPropagator {
    /// The propagator.
    pub fn new() -> Self {
        Self
    }
}

fn malformed(reason: &'static str) -> ExtractError {
    ExtractError::Malformed {
        header: HEADER,
        reason,
    }
}

/// The trace id, span id and options in a decoded value.
fn parse(bytes: &[u8]) -> Result<(TraceId, SpanId, bool), ExtractError> {
    let (&version, mut rest) = bytes.split_first().ok_or(malformed("empty"))?;
    if version != 0 {
        return Err(malformed("unknown version"));
    }
    let (mut trace_id, mut span_id, mut sampled) = (None, None, false);
    // Fields come in order; an unknown field id ends what this version can read.
    while let Some((&field, after)) = rest.split_first() {
        rest = after;
        match field {
            0 if rest.len() >= 16 => {
                let (id, after) = rest.split_at(16);
                trace_id = TraceId::from_bytes(id.try_into().map_err(|_| malformed("short"))?);
                rest = after;
            }
            1 if rest.len() >= 8 => {
                let (id, after) = rest.split_at(8);
                let id: [u8; 8] = id.try_into().map_err(|_| malformed("short"))?;
                span_id = SpanId::from_u64(u64::from_be_bytes(id));
                rest = after;
            }
            2 if !rest.is_empty() => {
                sampled = rest[0] & 1 == 1;
                rest = &rest[1..];
            }
            0..=2 => return Err(malformed("truncated field")),
            _ => break,
        }
    }
    let trace_id = trace_id.ok_or(malformed("missing or zero trace id"))?;
    let span_id = span_id.ok_or(malformed("missing or zero span id"))?;
    Ok((trace_id, span_id, sampled))
}

impl Propagator for GrpcTraceBinPropagator {
    fn name(&self) -> &'static str {
        HEADER
    }

    fn extract(&self, headers: &HeaderMap, into: &mut Extracted) -> Result<Presence, ExtractError> {
        if into.parent.is_some() {
            return Ok(Presence::Absent);
        }
        let Some(value) = headers.get(&HEADER_NAME) else {
            return Ok(Presence::Absent);
        };
        if value.len() > MAX_VALUE_LEN {
            return Err(ExtractError::Oversized {
                header: HEADER,
                limit: MAX_VALUE_LEN,
            });
        }
        let bytes = LENIENT
            .decode(value.as_bytes())
            .map_err(|_| malformed("not base64"))?;
        let (trace_id, span_id, sampled) = parse(&bytes)?;
        into.parent = Some(RemoteContext {
            trace_id,
            span_id,
            parent_span_id: None,
            flags: TraceFlags::EMPTY.with(TraceFlags::SAMPLED, sampled),
            trace_state: TraceState::EMPTY,
            sampling_deferred: false,
        });
        Ok(Presence::Found)
    }

    fn inject(&self, context: &SpanContext, headers: &mut HeaderMap) {
        let mut bytes = [0u8; ENCODED_LEN];
        bytes[1] = 0;
        bytes[2..18].copy_from_slice(&context.trace_id().to_bytes());
        bytes[18] = 1;
        bytes[19..27].copy_from_slice(&context.span_id().to_u64().to_be_bytes());
        bytes[27] = 2;
        bytes[28] = u8::from(context.is_sampled());
        let encoded = general_purpose::STANDARD_NO_PAD.encode(bytes);
        if let Ok(value) = HeaderValue::from_str(&encoded) {
            headers.insert(HEADER_NAME.clone(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value laid out by hand from the format's description (not by `inject`).
    fn reference_bytes(sampled: u8) -> Vec<u8> {
        let mut bytes = vec![0u8, 0];
        bytes.extend(0x4bf92f3577b34da6a3ce929d0e0e4736_u128.to_be_bytes());
        bytes.push(1);
        bytes.extend(0x00f067aa0ba902b7_u64.to_be_bytes());
        bytes.extend([2, sampled]);
        bytes
    }

    fn extract(value: &str) -> (Result<Presence, ExtractError>, Extracted) {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, value.parse().expect("ascii"));
        let mut extracted = Extracted::default();
        let result = GrpcTraceBinPropagator::new().extract(&headers, &mut extracted);
        (result, extracted)
    }

    #[test]
    fn reads_padded_and_unpadded_values() {
        let padded = general_purpose::STANDARD.encode(reference_bytes(1));
        let unpadded = padded.trim_end_matches('=').to_owned();
        assert_ne!(padded, unpadded, "29 bytes need padding");
        for value in [padded, unpadded] {
            let (result, extracted) = extract(&value);
            assert_eq!(result, Ok(Presence::Found));
            let parent = extracted.parent.expect("parent");
            assert_eq!(
                parent.trace_id.to_string(),
                "4bf92f3577b34da6a3ce929d0e0e4736"
            );
            assert_eq!(parent.span_id.to_string(), "00f067aa0ba902b7");
            assert!(parent.flags.is_sampled());
        }
        let (_, unsampled) = extract(&general_purpose::STANDARD.encode(reference_bytes(0)));
        assert!(!unsampled.parent.expect("parent").flags.is_sampled());
    }

    #[test]
    fn unknown_trailing_fields_are_ignored() {
        let mut bytes = reference_bytes(1);
        bytes.extend([9, 1, 2, 3]);
        let (result, extracted) = extract(&general_purpose::STANDARD.encode(bytes));
        assert_eq!(result, Ok(Presence::Found));
        assert!(extracted.parent.is_some());
    }

    #[test]
    fn bad_values_are_rejected_without_a_parent() {
        let zero_trace = {
            let mut bytes = reference_bytes(1);
            bytes[2..18].fill(0);
            general_purpose::STANDARD.encode(bytes)
        };
        let truncated = general_purpose::STANDARD.encode(&reference_bytes(1)[..20]);
        let version = {
            let mut bytes = reference_bytes(1);
            bytes[0] = 1;
            general_purpose::STANDARD.encode(bytes)
        };
        for value in [
            "%%%not base64",
            "",
            &zero_trace,
            &truncated,
            &version,
            &"A".repeat(300),
        ] {
            let (result, extracted) = extract(value);
            assert!(result.is_err(), "{value:?} must be rejected");
            assert!(extracted.parent.is_none());
        }
    }

    #[test]
    fn injects_the_layout_unpadded() {
        let context = SpanContext::new(
            "4bf92f3577b34da6a3ce929d0e0e4736".parse().expect("id"),
            "00f067aa0ba902b7".parse().expect("id"),
            TraceFlags::SAMPLED,
        );
        let mut headers = HeaderMap::new();
        GrpcTraceBinPropagator::new().inject(&context, &mut headers);
        let value = headers
            .get(HEADER)
            .expect("injected")
            .to_str()
            .expect("ascii");
        assert!(!value.ends_with('='));
        let decoded = general_purpose::STANDARD_NO_PAD
            .decode(value)
            .expect("base64");
        assert_eq!(decoded, reference_bytes(1));
    }
}
