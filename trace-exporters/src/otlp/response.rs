//! The few messages an OTLP exporter reads back: the partial success of an export, and the
//! `google.rpc.RetryInfo` a gRPC server may attach to an error. Small enough that `prost`'s derive
//! on hand-written structs (field numbers from the `.proto` files) beats pulling in generated code.

#[cfg(feature = "otlp-grpc")]
use std::time::Duration;

use prost::Message;

use crate::ExportOutcome;

/// The reason label for spans a collector rejected in a partial success.
pub(crate) const REJECTED_BY_COLLECTOR: &str = "rejected_by_collector";

/// `opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse`.
#[derive(Clone, PartialEq, Message)]
struct ExportTraceServiceResponse {
    #[prost(message, optional, tag = "1")]
    partial_success: Option<ExportTracePartialSuccess>,
}

/// `opentelemetry.proto.collector.trace.v1.ExportTracePartialSuccess`.
#[derive(Clone, PartialEq, Message)]
struct ExportTracePartialSuccess {
    #[prost(int64, tag = "1")]
    rejected_spans: i64,
    #[prost(string, tag = "2")]
    error_message: String,
}

#[cfg(feature = "otlp-grpc")]
/// `google.rpc.Status`, as carried in `grpc-status-details-bin`.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<ProtoAny>,
}

#[cfg(feature = "otlp-grpc")]
/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, Message)]
struct ProtoAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

#[cfg(feature = "otlp-grpc")]
/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

#[cfg(feature = "otlp-grpc")]
/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

/// The outcome for a batch of `batch_len` spans of which the collector said it rejected
/// `rejected` (clamped to the batch: a collector's count is input we do not trust).
fn outcome(rejected: i64, batch_len: usize) -> ExportOutcome {
    let rejected = u64::try_from(rejected).unwrap_or(0);
    let rejected = rejected.min(batch_len as u64);
    if rejected == 0 {
        ExportOutcome::delivered()
    } else {
        ExportOutcome::with_dropped(rejected, REJECTED_BY_COLLECTOR)
    }
}

/// The outcome of a protobuf `ExportTraceServiceResponse`. A body cut short (read only so far)
/// still gives its count of rejected spans, which comes ahead of the message; a body that does
/// not decode at all came with a success status, so the batch counts as delivered.
pub(crate) fn protobuf_outcome(body: &[u8], batch_len: usize) -> ExportOutcome {
    let rejected = match ExportTraceServiceResponse::decode(body) {
        Ok(response) => response
            .partial_success
            .map_or(0, |partial| partial.rejected_spans),
        Err(_) => rejected_in_prefix(body).unwrap_or(0),
    };
    outcome(rejected, batch_len)
}

/// The rejected count at the start of a response whose end was not read: the partial success
/// (field 1, length-delimited, its length running past what was read) begins with its
/// `rejected_spans` (field 1, a varint), as encoders write fields in order.
fn rejected_in_prefix(mut body: &[u8]) -> Option<i64> {
    use prost::encoding::{WireType, decode_key, decode_varint};

    if decode_key(&mut body).ok()? != (1, WireType::LengthDelimited) {
        return None;
    }
    decode_varint(&mut body).ok()?;
    if decode_key(&mut body).ok()? != (1, WireType::Varint) {
        return None;
    }
    // An int64 travels as its two's-complement bits.
    decode_varint(&mut body).ok().map(|bits| bits as i64)
}

/// The outcome of an OTLP/JSON `ExportTraceServiceResponse` (`rejectedSpans` as a string, as
/// OTLP/JSON writes 64-bit integers, or as a number). An empty or undecodable body counts as
/// delivered, as for protobuf.
#[cfg(feature = "otlp-http")]
pub(crate) fn json_outcome(body: &[u8], batch_len: usize) -> ExportOutcome {
    let rejected = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|response| {
            let count = response.get("partialSuccess")?.get("rejectedSpans")?;
            match count {
                serde_json::Value::String(text) => text.parse::<i64>().ok(),
                other => other.as_i64(),
            }
        })
        .unwrap_or(0);
    outcome(rejected, batch_len)
}

/// The delay of a `google.rpc.RetryInfo` among the details of a gRPC error status (the bytes of
/// its `grpc-status-details-bin` trailer), if there is one.
#[cfg(feature = "otlp-grpc")]
pub(crate) fn retry_delay(status_details: &[u8]) -> Option<Duration> {
    if status_details.is_empty() {
        return None;
    }
    let status = RpcStatus::decode(status_details).ok()?;
    let info = status
        .details
        .iter()
        .find(|detail| detail.type_url.ends_with("/google.rpc.RetryInfo"))?;
    let delay = RetryInfo::decode(info.value.as_slice()).ok()?.retry_delay?;
    let seconds = u64::try_from(delay.seconds).ok()?;
    let nanos = u32::try_from(delay.nanos).ok()?.min(999_999_999);
    Some(Duration::new(seconds, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_success_is_clamped_to_the_batch() {
        let response = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 70,
                error_message: "too old".into(),
            }),
        };
        let body = response.encode_to_vec();
        assert_eq!(
            protobuf_outcome(&body, 100),
            ExportOutcome::with_dropped(70, REJECTED_BY_COLLECTOR)
        );
        assert_eq!(protobuf_outcome(&body, 5).dropped, 5);
        assert_eq!(protobuf_outcome(b"", 5), ExportOutcome::delivered());
        assert_eq!(protobuf_outcome(b"\xff\xff", 5), ExportOutcome::delivered());
        assert_eq!(outcome(-3, 5), ExportOutcome::delivered());
    }

    #[test]
    fn a_partial_success_read_only_in_part_still_counts_its_rejected_spans() {
        let response = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 2,
                error_message: "x".repeat(70_000),
            }),
        };
        let body = response.encode_to_vec();
        assert_eq!(protobuf_outcome(&body[..64 * 1024], 10).dropped, 2);
        assert_eq!(protobuf_outcome(&body, 10).dropped, 2);
        assert_eq!(protobuf_outcome(&body[..3], 10), ExportOutcome::delivered());
        assert_eq!(
            protobuf_outcome(b"\x12\x05", 10),
            ExportOutcome::delivered()
        );
    }

    #[cfg(feature = "otlp-http")]
    #[test]
    fn json_partial_success_takes_strings_and_numbers() {
        let body = br#"{"partialSuccess":{"rejectedSpans":"3","errorMessage":"x"}}"#;
        assert_eq!(json_outcome(body, 10).dropped, 3);
        let body = br#"{"partialSuccess":{"rejectedSpans":4}}"#;
        assert_eq!(json_outcome(body, 10).dropped, 4);
        assert_eq!(json_outcome(b"{}", 10), ExportOutcome::delivered());
        assert_eq!(json_outcome(b"not json", 10), ExportOutcome::delivered());
    }

    #[cfg(feature = "otlp-grpc")]
    #[test]
    fn retry_info_is_found_among_status_details() {
        let info = RetryInfo {
            retry_delay: Some(ProtoDuration {
                seconds: 2,
                nanos: 500_000_000,
            }),
        };
        let status = RpcStatus {
            code: 14,
            message: "busy".into(),
            details: vec![
                ProtoAny {
                    type_url: "type.googleapis.com/google.rpc.DebugInfo".into(),
                    value: vec![1, 2, 3],
                },
                ProtoAny {
                    type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
                    value: info.encode_to_vec(),
                },
            ],
        };
        assert_eq!(
            retry_delay(&status.encode_to_vec()),
            Some(Duration::from_millis(2_500))
        );
        assert_eq!(retry_delay(b""), None);
        assert_eq!(retry_delay(b"\x0a"), None);
    }
}
