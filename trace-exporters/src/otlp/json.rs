//! `ExportTraceServiceRequest` in OTLP/JSON, written straight from our spans.
//!
//! OTLP/JSON is the protobuf JSON mapping with OTLP's own twists: trace and span ids as lower-case
//! hex (not base64), enums as integers, field names in lowerCamelCase, 64-bit integers as decimal
//! strings. Strings and floats go through `serde_json` for escaping and shortest round-trip
//! formatting; the structure around them is written by hand, like the protobuf encoder, so no
//! intermediate value tree is built.

use std::io::Write;

use serde::Serialize;
use trace_core::{Array, KeyValue, Span, Status, Value};

use super::protobuf::{
    STATUS_CODE_ERROR, STATUS_CODE_OK, span_kind, start_end_nanos, unix_nanos, w3c_flags,
};
use crate::Resource;

type JsonResult = Result<(), serde_json::Error>;

/// The text around the spans that is the same for every batch.
#[derive(Debug, Clone)]
pub(crate) struct JsonFixedParts {
    /// Everything up to and including `"spans":[`.
    prefix: Vec<u8>,
}

/// What closes the `spans` array, `scopeSpans`, `resourceSpans` and the request.
const SUFFIX: &[u8] = b"]}]}]}";

impl JsonFixedParts {
    pub(crate) fn new(
        resource: &Resource,
        scope_name: &str,
        scope_version: &str,
    ) -> Result<Self, serde_json::Error> {
        let mut prefix = Vec::with_capacity(256);
        prefix.extend_from_slice(br#"{"resourceSpans":[{"resource":{"attributes":["#);
        let service_name = KeyValue::new("service.name", resource.service_name().to_owned());
        write_attribute_list(
            std::iter::once(&service_name).chain(resource.attributes()),
            &mut prefix,
        )?;
        prefix.extend_from_slice(br#"]},"scopeSpans":[{"scope":{"name":"#);
        write_str(scope_name, &mut prefix)?;
        prefix.extend_from_slice(br#","version":"#);
        write_str(scope_version, &mut prefix)?;
        prefix.extend_from_slice(br#"},"spans":["#);
        Ok(Self { prefix })
    }
}

/// Appends one OTLP/JSON `ExportTraceServiceRequest` holding `spans` to `buf`.
pub(crate) fn encode_request(
    fixed: &JsonFixedParts,
    spans: &[Span],
    buf: &mut Vec<u8>,
) -> JsonResult {
    buf.extend_from_slice(&fixed.prefix);
    for (index, span) in spans.iter().enumerate() {
        if index > 0 {
            buf.push(b',');
        }
        write_span(span, buf)?;
    }
    buf.extend_from_slice(SUFFIX);
    Ok(())
}

fn write_str(value: &str, buf: &mut Vec<u8>) -> JsonResult {
    value.serialize(&mut serde_json::Serializer::new(buf))
}

/// `"name":` (names here are our own constants, never needing escapes).
fn write_name(name: &str, buf: &mut Vec<u8>) {
    buf.push(b'"');
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b"\":");
}

/// A 64-bit integer as OTLP/JSON writes it: a decimal string.
fn write_int64(value: impl std::fmt::Display, buf: &mut Vec<u8>) -> JsonResult {
    write!(buf, "\"{value}\"").map_err(serde_json::Error::io)
}

/// A double: a JSON number when finite, else the proto3 JSON strings `"NaN"`, `"Infinity"`,
/// `"-Infinity"`.
fn write_double(value: f64, buf: &mut Vec<u8>) -> JsonResult {
    if value.is_finite() {
        value.serialize(&mut serde_json::Serializer::new(buf))
    } else {
        let text: &[u8] = if value.is_nan() {
            b"\"NaN\""
        } else if value > 0.0 {
            b"\"Infinity\""
        } else {
            b"\"-Infinity\""
        };
        buf.extend_from_slice(text);
        Ok(())
    }
}

fn write_span(span: &Span, buf: &mut Vec<u8>) -> JsonResult {
    buf.push(b'{');
    write_name("traceId", buf);
    write_str(&span.trace_id.to_hex(), buf)?;
    buf.push(b',');
    write_name("spanId", buf);
    write_str(&span.span_id.to_hex(), buf)?;
    if let Some(state) = span.trace_state.header_value() {
        buf.push(b',');
        write_name("traceState", buf);
        write_str(state, buf)?;
    }
    if let Some(parent) = span.parent_span_id {
        buf.push(b',');
        write_name("parentSpanId", buf);
        write_str(&parent.to_hex(), buf)?;
    }
    buf.push(b',');
    write_name("flags", buf);
    write_int_plain(u64::from(w3c_flags(span.flags)), buf)?;
    buf.push(b',');
    write_name("name", buf);
    write_str(&span.name, buf)?;
    buf.push(b',');
    write_name("kind", buf);
    write_int_plain(span_kind(span.kind), buf)?;
    buf.push(b',');
    let (start, end) = start_end_nanos(span);
    write_name("startTimeUnixNano", buf);
    write_int64(start, buf)?;
    buf.push(b',');
    write_name("endTimeUnixNano", buf);
    write_int64(end, buf)?;
    if !span.attributes.is_empty() {
        buf.push(b',');
        write_attributes(&span.attributes, buf)?;
    }
    write_count("droppedAttributesCount", span.dropped.attributes, buf)?;
    if !span.events.is_empty() {
        buf.push(b',');
        write_name("events", buf);
        buf.push(b'[');
        for (index, event) in span.events.iter().enumerate() {
            if index > 0 {
                buf.push(b',');
            }
            buf.push(b'{');
            write_name("timeUnixNano", buf);
            write_int64(unix_nanos(event.time), buf)?;
            buf.push(b',');
            write_name("name", buf);
            write_str(&event.name, buf)?;
            if !event.attributes.is_empty() {
                buf.push(b',');
                write_attributes(&event.attributes, buf)?;
            }
            buf.push(b'}');
        }
        buf.push(b']');
    }
    write_count("droppedEventsCount", span.dropped.events, buf)?;
    if !span.links.is_empty() {
        buf.push(b',');
        write_name("links", buf);
        buf.push(b'[');
        for (index, link) in span.links.iter().enumerate() {
            if index > 0 {
                buf.push(b',');
            }
            buf.push(b'{');
            write_name("traceId", buf);
            write_str(&link.trace_id.to_hex(), buf)?;
            buf.push(b',');
            write_name("spanId", buf);
            write_str(&link.span_id.to_hex(), buf)?;
            if let Some(state) = link.trace_state.header_value() {
                buf.push(b',');
                write_name("traceState", buf);
                write_str(state, buf)?;
            }
            if !link.attributes.is_empty() {
                buf.push(b',');
                write_attributes(&link.attributes, buf)?;
            }
            buf.push(b'}');
        }
        buf.push(b']');
    }
    write_count("droppedLinksCount", span.dropped.links, buf)?;
    match &span.status {
        Status::Unset => {}
        Status::Ok => {
            buf.push(b',');
            write_name("status", buf);
            buf.push(b'{');
            write_name("code", buf);
            write_int_plain(STATUS_CODE_OK, buf)?;
            buf.push(b'}');
        }
        Status::Error { message } => {
            buf.push(b',');
            write_name("status", buf);
            buf.push(b'{');
            write_name("message", buf);
            write_str(message, buf)?;
            buf.push(b',');
            write_name("code", buf);
            write_int_plain(STATUS_CODE_ERROR, buf)?;
            buf.push(b'}');
        }
    }
    buf.push(b'}');
    Ok(())
}

/// `,"name":count`, a `uint32` (a JSON number in OTLP/JSON), left out when zero.
fn write_count(name: &str, count: u32, buf: &mut Vec<u8>) -> JsonResult {
    if count > 0 {
        buf.push(b',');
        write_name(name, buf);
        write_int_plain(u64::from(count), buf)?;
    }
    Ok(())
}

/// A small integer (an enum) as a JSON number.
fn write_int_plain(value: u64, buf: &mut Vec<u8>) -> JsonResult {
    write!(buf, "{value}").map_err(serde_json::Error::io)
}

/// `"attributes":[...]`.
fn write_attributes(attributes: &[KeyValue], buf: &mut Vec<u8>) -> JsonResult {
    write_name("attributes", buf);
    buf.push(b'[');
    write_attribute_list(attributes.iter(), buf)?;
    buf.push(b']');
    Ok(())
}

/// The `KeyValue` objects of an attribute list, comma-separated.
fn write_attribute_list<'a>(
    attributes: impl Iterator<Item = &'a KeyValue>,
    buf: &mut Vec<u8>,
) -> JsonResult {
    for (index, kv) in attributes.enumerate() {
        if index > 0 {
            buf.push(b',');
        }
        buf.push(b'{');
        write_name("key", buf);
        write_str(&kv.key, buf)?;
        buf.push(b',');
        write_name("value", buf);
        write_value(&kv.value, buf)?;
        buf.push(b'}');
    }
    Ok(())
}

/// An `AnyValue` object.
fn write_value(value: &Value, buf: &mut Vec<u8>) -> JsonResult {
    buf.push(b'{');
    match value {
        Value::String(s) => {
            write_name("stringValue", buf);
            write_str(s.as_str(), buf)?;
        }
        Value::Bool(b) => {
            write_name("boolValue", buf);
            buf.extend_from_slice(if *b { b"true" } else { b"false" });
        }
        Value::I64(i) => {
            write_name("intValue", buf);
            write_int64(i, buf)?;
        }
        Value::F64(x) => {
            write_name("doubleValue", buf);
            write_double(*x, buf)?;
        }
        Value::Array(array) => {
            write_name("arrayValue", buf);
            buf.extend_from_slice(br#"{"values":["#);
            match array {
                Array::Bool(v) => write_elements(v.iter().map(|b| Value::Bool(*b)), buf)?,
                Array::I64(v) => write_elements(v.iter().map(|i| Value::I64(*i)), buf)?,
                Array::F64(v) => write_elements(v.iter().map(|x| Value::F64(*x)), buf)?,
                Array::String(v) => {
                    for (index, s) in v.iter().enumerate() {
                        if index > 0 {
                            buf.push(b',');
                        }
                        buf.push(b'{');
                        write_name("stringValue", buf);
                        write_str(s.as_str(), buf)?;
                        buf.push(b'}');
                    }
                }
            }
            buf.extend_from_slice(b"]}");
        }
    }
    buf.push(b'}');
    Ok(())
}

/// Scalar array elements (no strings: those would need cloning into a `Value`).
fn write_elements(values: impl Iterator<Item = Value>, buf: &mut Vec<u8>) -> JsonResult {
    for (index, value) in values.enumerate() {
        if index > 0 {
            buf.push(b',');
        }
        write_value(&value, buf)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_that_json_numbers_cannot_hold_become_strings() {
        let mut buf = Vec::new();
        for x in [1.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            write_double(x, &mut buf).expect("vec write");
            buf.push(b' ');
        }
        assert_eq!(buf, b"1.5 \"NaN\" \"Infinity\" \"-Infinity\" ");
    }

    #[test]
    fn dropped_counts_are_numbers_left_out_when_zero() {
        use std::time::{Duration, SystemTime};
        use trace_core::{
            DroppedCounts, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
        };

        let mut span = Span {
            name: "work".into(),
            kind: SpanKind::Internal,
            trace_id: TraceId::from_u128(1).expect("non-zero"),
            span_id: SpanId::from_u64(2).expect("non-zero"),
            parent_span_id: None,
            flags: TraceFlags::SAMPLED,
            trace_state: TraceState::default(),
            debug_id: None,
            start_time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            duration: Duration::from_millis(3),
            status: Status::Unset,
            attributes: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
            dropped: DroppedCounts::default(),
        };
        let json = |span: &Span| {
            let mut buf = Vec::new();
            write_span(span, &mut buf).expect("vec write");
            serde_json::from_slice::<serde_json::Value>(&buf).expect("valid JSON")
        };
        let none = json(&span);
        for name in [
            "droppedAttributesCount",
            "droppedEventsCount",
            "droppedLinksCount",
        ] {
            assert!(none.get(name).is_none(), "{none}");
        }
        span.dropped = DroppedCounts {
            attributes: 3,
            events: 300,
            links: 1,
        };
        let some = json(&span);
        assert_eq!(some["droppedAttributesCount"], 3);
        assert_eq!(some["droppedEventsCount"], 300);
        assert_eq!(some["droppedLinksCount"], 1);
    }

    #[test]
    fn strings_are_escaped() {
        let mut buf = Vec::new();
        write_str("a\"b\\c\n", &mut buf).expect("vec write");
        assert_eq!(buf, br#""a\"b\\c\n""#);
    }
}
