//! `ExportTraceServiceRequest` in protobuf, written straight from our spans.
//!
//! Generated message structs would mean copying every string and id of a batch into owned
//! `String`s and `Vec`s before encoding; writing the wire format directly from the borrowed spans
//! is several times faster and allocates nothing once the buffer has grown. Field numbers follow
//! `opentelemetry/proto/trace/v1/trace.proto`, `common/v1/common.proto` and
//! `resource/v1/resource.proto`; the tests decode our output with the generated
//! `opentelemetry-proto` types.
//!
//! Every length-delimited message needs its length before its contents: small messages (an
//! attribute, a status) have it computed first by a `*_len` function mirroring the encoder;
//! spans, events, links and the outer messages get it filled in after their contents are
//! written (see [`encode_request`]).

use std::time::SystemTime;

use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};
use trace_core::{Array, KeyValue, Span, SpanKind, Status, TraceFlags, Value};

use crate::{EncodedSpans, Resource};

/// `ExportTraceServiceRequest.resource_spans`.
const REQUEST_RESOURCE_SPANS: u32 = 1;
/// `ResourceSpans.resource`.
const RESOURCE_SPANS_RESOURCE: u32 = 1;
/// `ResourceSpans.scope_spans`.
const RESOURCE_SPANS_SCOPE_SPANS: u32 = 2;
/// `Resource.attributes`.
const RESOURCE_ATTRIBUTES: u32 = 1;
/// `ScopeSpans.scope`.
const SCOPE_SPANS_SCOPE: u32 = 1;
/// `ScopeSpans.spans`.
const SCOPE_SPANS_SPANS: u32 = 2;
/// `InstrumentationScope.name`.
const SCOPE_NAME: u32 = 1;
/// `InstrumentationScope.version`.
const SCOPE_VERSION: u32 = 2;

/// `Span` fields.
const SPAN_TRACE_ID: u32 = 1;
const SPAN_SPAN_ID: u32 = 2;
const SPAN_TRACE_STATE: u32 = 3;
const SPAN_PARENT_SPAN_ID: u32 = 4;
const SPAN_NAME: u32 = 5;
const SPAN_KIND: u32 = 6;
const SPAN_START_TIME: u32 = 7;
const SPAN_END_TIME: u32 = 8;
const SPAN_ATTRIBUTES: u32 = 9;
const SPAN_DROPPED_ATTRIBUTES_COUNT: u32 = 10;
const SPAN_EVENTS: u32 = 11;
const SPAN_DROPPED_EVENTS_COUNT: u32 = 12;
const SPAN_LINKS: u32 = 13;
const SPAN_DROPPED_LINKS_COUNT: u32 = 14;
const SPAN_STATUS: u32 = 15;
const SPAN_FLAGS: u32 = 16;

/// `Span.Event` fields.
const EVENT_TIME: u32 = 1;
const EVENT_NAME: u32 = 2;
const EVENT_ATTRIBUTES: u32 = 3;

/// `Span.Link` fields.
const LINK_TRACE_ID: u32 = 1;
const LINK_SPAN_ID: u32 = 2;
const LINK_TRACE_STATE: u32 = 3;
const LINK_ATTRIBUTES: u32 = 4;

/// `Status` fields (1 is reserved).
const STATUS_MESSAGE: u32 = 2;
const STATUS_CODE: u32 = 3;

/// `KeyValue` fields.
const KEY_VALUE_KEY: u32 = 1;
const KEY_VALUE_VALUE: u32 = 2;

/// `AnyValue` oneof fields.
const ANY_STRING: u32 = 1;
const ANY_BOOL: u32 = 2;
const ANY_INT: u32 = 3;
const ANY_DOUBLE: u32 = 4;
const ANY_ARRAY: u32 = 5;
/// `ArrayValue.values`.
const ARRAY_VALUES: u32 = 1;

/// `Status.StatusCode`.
pub(crate) const STATUS_CODE_OK: u64 = 1;
/// `Status.StatusCode`.
pub(crate) const STATUS_CODE_ERROR: u64 = 2;

/// The W3C trace-flags bits we know (sampled, random), for the low byte of `Span.flags`. Our
/// other bits (debug, Jaeger's firehose) are tracewire's own and have no place there.
pub(crate) fn w3c_flags(flags: TraceFlags) -> u32 {
    u32::from(flags.is_sampled()) | (u32::from(flags.is_random()) << 1)
}

/// `Span.SpanKind`.
pub(crate) const fn span_kind(kind: SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// Nanoseconds since the Unix epoch; 0 for a time before it, saturating far in the future.
pub(crate) fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        })
}

/// A span's start and end in Unix nanoseconds; the end from the start and the (monotonic)
/// duration, which saves a second clock conversion.
pub(crate) fn start_end_nanos(span: &Span) -> (u64, u64) {
    let start = unix_nanos(span.start_time);
    let duration = u64::try_from(span.duration.as_nanos()).unwrap_or(u64::MAX);
    (start, start.saturating_add(duration))
}

/// The bytes of the request that are the same for every batch: the `resource` field of
/// `ResourceSpans` and the `scope` field of `ScopeSpans`, encoded once.
#[derive(Debug, Clone)]
pub(crate) struct FixedParts {
    resource_field: Vec<u8>,
    scope_field: Vec<u8>,
}

impl FixedParts {
    pub(crate) fn new(resource: &Resource, scope_name: &str, scope_version: &str) -> Self {
        let service_name = KeyValue::new("service.name", resource.service_name().to_owned());
        let attributes = std::iter::once(&service_name).chain(resource.attributes());
        let mut resource_field = Vec::new();
        let resource = open_message(RESOURCE_SPANS_RESOURCE, 1, &mut resource_field);
        for kv in attributes {
            encode_key_value(RESOURCE_ATTRIBUTES, kv, &mut resource_field);
        }
        close_message(resource, &mut resource_field);

        let mut scope_field = Vec::new();
        let scope = open_message(SCOPE_SPANS_SCOPE, 1, &mut scope_field);
        encode_string_field(SCOPE_NAME, scope_name, &mut scope_field);
        encode_string_field(SCOPE_VERSION, scope_version, &mut scope_field);
        close_message(scope, &mut scope_field);
        Self {
            resource_field,
            scope_field,
        }
    }
}

/// A guess at an encoded span's size, for the outer length prefixes' widths (see
/// [`encode_request`]); only its order of magnitude matters.
const TYPICAL_SPAN_LEN: usize = 400;

/// Bytes kept free for a span's length prefix: spans of 128 bytes to 16 KiB (nearly all) need
/// two; others cost a shift of that span's bytes.
const SPAN_LEN_ROOM: usize = 2;

/// Bytes kept free for an event's or link's length prefix (most are under 128 bytes).
const SMALL_LEN_ROOM: usize = 1;

/// Appends one `ExportTraceServiceRequest` holding `spans` to `buf`.
///
/// One pass over the spans: each length-delimited message gets room for its length prefix, its
/// contents are written, and the prefix is filled in once the length is known ([`patch_length`]).
/// Walking every attribute a second time just to size it cost as much as writing it. The room is
/// the prefix's likely width; when the real length needs another width, the contents move over
/// (rare: a span outside 128 B..16 KiB, an event or link over 127 B, a batch whose size is far
/// from the [`TYPICAL_SPAN_LEN`] guess).
pub(crate) fn encode_request(fixed: &FixedParts, spans: &[Span], buf: &mut Vec<u8>) {
    let estimate = fixed.resource_field.len()
        + fixed.scope_field.len()
        + spans.len().saturating_mul(TYPICAL_SPAN_LEN);
    let outer_room = encoded_len_varint(estimate as u64);
    buf.reserve(estimate + 2 * (1 + outer_room));

    let resource_spans = open_message(REQUEST_RESOURCE_SPANS, outer_room, buf);
    buf.extend_from_slice(&fixed.resource_field);
    let scope_spans = open_message(RESOURCE_SPANS_SCOPE_SPANS, outer_room, buf);
    buf.extend_from_slice(&fixed.scope_field);
    for span in spans {
        encode_span_field(span, buf);
    }
    // Inner first: a shift there moves bytes the outer length counts, not the outer prefix.
    close_message(scope_spans, buf);
    close_message(resource_spans, buf);
}

/// Appends one `ScopeSpans.spans` field holding `span`: the unit [`encode_wrapped_request`]
/// puts together, and what the batch pipeline writes on the thread that ends the span.
pub(crate) fn encode_span_field(span: &Span, buf: &mut Vec<u8>) {
    let message = open_message(SCOPE_SPANS_SPANS, SPAN_LEN_ROOM, buf);
    encode_span(span, buf);
    close_message(message, buf);
}

/// Appends one `ExportTraceServiceRequest` holding spans already written by
/// [`encode_span_field`]: the same bytes [`encode_request`] writes for those spans. Every length
/// is known up front, so nothing is patched.
pub(crate) fn encode_wrapped_request(fixed: &FixedParts, batch: &EncodedSpans, buf: &mut Vec<u8>) {
    let scope_spans_len = fixed.scope_field.len() + batch.len_bytes();
    let resource_spans_len =
        fixed.resource_field.len() + message_field_len(RESOURCE_SPANS_SCOPE_SPANS, scope_spans_len);
    buf.reserve(message_field_len(
        REQUEST_RESOURCE_SPANS,
        resource_spans_len,
    ));
    encode_message_header(REQUEST_RESOURCE_SPANS, resource_spans_len, buf);
    buf.extend_from_slice(&fixed.resource_field);
    encode_message_header(RESOURCE_SPANS_SCOPE_SPANS, scope_spans_len, buf);
    buf.extend_from_slice(&fixed.scope_field);
    for chunk in batch.chunks() {
        buf.extend_from_slice(chunk);
    }
}

// ---- lengths ----------------------------------------------------------------------------------

/// A length-delimited field (key, length, contents) whose contents are `len` bytes.
#[inline]
fn message_field_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn string_field_len(tag: u32, value: &str) -> usize {
    message_field_len(tag, value.len())
}

fn varint_field_len(tag: u32, value: u64) -> usize {
    key_len(tag) + encoded_len_varint(value)
}

fn fixed64_field_len(tag: u32) -> usize {
    key_len(tag) + 8
}

fn trace_state(state: &trace_core::TraceState) -> &str {
    state.header_value().unwrap_or("")
}

/// The `Status` message's length, or `None` when the status is unset (and left out).
fn status_len(status: &Status) -> Option<usize> {
    match status {
        Status::Unset => None,
        Status::Ok => Some(varint_field_len(STATUS_CODE, STATUS_CODE_OK)),
        Status::Error { message } => Some(
            if message.is_empty() {
                0
            } else {
                string_field_len(STATUS_MESSAGE, message)
            } + varint_field_len(STATUS_CODE, STATUS_CODE_ERROR),
        ),
    }
}

/// The `AnyValue` message's length. Its oneof field is written even when it holds a default
/// (an empty string, `false`, 0), since a oneof's presence is what says which type it is.
#[inline]
fn any_value_len(value: &Value) -> usize {
    match value {
        Value::String(s) => message_field_len(ANY_STRING, s.len()),
        Value::Bool(b) => varint_field_len(ANY_BOOL, u64::from(*b)),
        Value::I64(i) => varint_field_len(ANY_INT, *i as u64),
        Value::F64(_) => fixed64_field_len(ANY_DOUBLE),
        Value::Array(array) => message_field_len(ANY_ARRAY, array_len(array)),
    }
}

/// The `ArrayValue` message's length: one `AnyValue` field per element.
fn array_len(array: &Array) -> usize {
    fn elements(lens: impl Iterator<Item = usize>) -> usize {
        lens.map(|len| message_field_len(ARRAY_VALUES, len)).sum()
    }
    match array {
        Array::Bool(v) => elements(v.iter().map(|b| varint_field_len(ANY_BOOL, u64::from(*b)))),
        Array::I64(v) => elements(v.iter().map(|i| varint_field_len(ANY_INT, *i as u64))),
        Array::F64(v) => elements(v.iter().map(|_| fixed64_field_len(ANY_DOUBLE))),
        Array::String(v) => elements(v.iter().map(|s| message_field_len(ANY_STRING, s.len()))),
    }
}

// ---- encoding ---------------------------------------------------------------------------------

/// A varint, with the one- and two-byte cases (every key here, most lengths) inline: prost's
/// `encode_varint` is a loop over a generic `BufMut` that the compiler does not inline, and it
/// took a third of the encoding time when called for every byte-sized value.
#[inline]
fn put_varint(value: u64, buf: &mut Vec<u8>) {
    if value < 0x80 {
        buf.push(value as u8);
    } else if value < 0x4000 {
        buf.extend_from_slice(&[(value as u8) | 0x80, (value >> 7) as u8]);
    } else {
        encode_varint(value, buf);
    }
}

/// A field key; one byte for the field numbers below 16 that make up nearly every field here.
#[inline]
fn put_key(tag: u32, wire_type: WireType, buf: &mut Vec<u8>) {
    if tag < 16 {
        buf.push(((tag << 3) | wire_type as u32) as u8);
    } else {
        encode_key(tag, wire_type, buf);
    }
}

#[inline]
fn encode_message_header(tag: u32, len: usize, buf: &mut Vec<u8>) {
    put_key(tag, WireType::LengthDelimited, buf);
    put_varint(len as u64, buf);
}

/// A message field whose length prefix is still to be written: where the prefix's room starts
/// and how wide it is. Finished by [`close_message`].
#[derive(Debug, Clone, Copy)]
struct OpenMessage {
    length_at: usize,
    room: usize,
}

/// Writes the key of message field `tag` and leaves `room` bytes for its length.
#[inline]
fn open_message(tag: u32, room: usize, buf: &mut Vec<u8>) -> OpenMessage {
    put_key(tag, WireType::LengthDelimited, buf);
    let length_at = buf.len();
    buf.extend_from_slice(&[0; 10][..room]);
    OpenMessage { length_at, room }
}

/// Fills in the length of a message whose contents run from its room to the end of `buf`.
#[inline]
fn close_message(message: OpenMessage, buf: &mut Vec<u8>) {
    let OpenMessage { length_at, room } = message;
    let len = buf.len() - length_at - room;
    // The widths the rooms are sized for, written in place.
    match (room, len) {
        (1, 0..0x80) => buf[length_at] = len as u8,
        (2, 0x80..0x4000) => {
            buf[length_at] = (len as u8) | 0x80;
            buf[length_at + 1] = (len >> 7) as u8;
        }
        _ => patch_length(buf, length_at, room, len),
    }
}

/// Writes `len` as a varint over the `room` bytes at `at`, moving what follows when the varint
/// needs a different number of bytes.
#[inline(never)]
fn patch_length(buf: &mut Vec<u8>, at: usize, room: usize, len: usize) {
    let mut varint = [0_u8; 10];
    let mut width = 0;
    let mut rest = len as u64;
    while rest >= 0x80 {
        varint[width] = (rest as u8) | 0x80;
        rest >>= 7;
        width += 1;
    }
    varint[width] = rest as u8;
    width += 1;
    if width == room {
        buf[at..at + width].copy_from_slice(&varint[..width]);
    } else {
        buf.splice(at..at + room, varint[..width].iter().copied());
    }
}

#[inline]
fn encode_bytes_field(tag: u32, bytes: &[u8], buf: &mut Vec<u8>) {
    encode_message_header(tag, bytes.len(), buf);
    buf.extend_from_slice(bytes);
}

fn encode_string_field(tag: u32, value: &str, buf: &mut Vec<u8>) {
    encode_bytes_field(tag, value.as_bytes(), buf);
}

#[inline]
fn encode_optional_string_field(tag: u32, value: &str, buf: &mut Vec<u8>) {
    if !value.is_empty() {
        encode_string_field(tag, value, buf);
    }
}

#[inline]
fn encode_varint_field(tag: u32, value: u64, buf: &mut Vec<u8>) {
    put_key(tag, WireType::Varint, buf);
    put_varint(value, buf);
}

#[inline]
fn encode_fixed64_field(tag: u32, value: u64, buf: &mut Vec<u8>) {
    put_key(tag, WireType::SixtyFourBit, buf);
    buf.extend_from_slice(&value.to_le_bytes());
}

#[inline]
fn encode_fixed32_field(tag: u32, value: u32, buf: &mut Vec<u8>) {
    put_key(tag, WireType::ThirtyTwoBit, buf);
    buf.extend_from_slice(&value.to_le_bytes());
}

/// A `uint32` count field, left out when zero (proto3's default).
#[inline]
fn encode_count(tag: u32, count: u32, buf: &mut Vec<u8>) {
    if count > 0 {
        encode_varint_field(tag, u64::from(count), buf);
    }
}

/// The contents of a `Span` message (its key and length written by the caller).
fn encode_span(span: &Span, buf: &mut Vec<u8>) {
    // Fixed-size runs of fields go out as one copy each.
    let mut ids = [0_u8; 28];
    ids[0] = length_delimited_key(SPAN_TRACE_ID);
    ids[1] = 16;
    ids[2..18].copy_from_slice(&span.trace_id.to_bytes());
    ids[18] = length_delimited_key(SPAN_SPAN_ID);
    ids[19] = 8;
    ids[20..28].copy_from_slice(&span.span_id.to_bytes());
    buf.extend_from_slice(&ids);
    encode_optional_string_field(SPAN_TRACE_STATE, trace_state(&span.trace_state), buf);
    if let Some(parent) = span.parent_span_id {
        encode_bytes_field(SPAN_PARENT_SPAN_ID, &parent.to_bytes(), buf);
    }
    encode_optional_string_field(SPAN_NAME, &span.name, buf);
    let (start, end) = start_end_nanos(span);
    let mut kind_and_times = [0_u8; 20];
    kind_and_times[0] = ((SPAN_KIND << 3) | WireType::Varint as u32) as u8;
    kind_and_times[1] = span_kind(span.kind) as u8; // 1 to 5: a one-byte varint
    kind_and_times[2] = ((SPAN_START_TIME << 3) | WireType::SixtyFourBit as u32) as u8;
    kind_and_times[3..11].copy_from_slice(&start.to_le_bytes());
    kind_and_times[11] = ((SPAN_END_TIME << 3) | WireType::SixtyFourBit as u32) as u8;
    kind_and_times[12..20].copy_from_slice(&end.to_le_bytes());
    buf.extend_from_slice(&kind_and_times);
    for kv in &span.attributes {
        encode_key_value(SPAN_ATTRIBUTES, kv, buf);
    }
    encode_count(SPAN_DROPPED_ATTRIBUTES_COUNT, span.dropped.attributes, buf);
    for event in &span.events {
        let message = open_message(SPAN_EVENTS, SMALL_LEN_ROOM, buf);
        encode_fixed64_field(EVENT_TIME, unix_nanos(event.time), buf);
        encode_optional_string_field(EVENT_NAME, &event.name, buf);
        for kv in &event.attributes {
            encode_key_value(EVENT_ATTRIBUTES, kv, buf);
        }
        close_message(message, buf);
    }
    encode_count(SPAN_DROPPED_EVENTS_COUNT, span.dropped.events, buf);
    for link in &span.links {
        let message = open_message(SPAN_LINKS, SMALL_LEN_ROOM, buf);
        encode_bytes_field(LINK_TRACE_ID, &link.trace_id.to_bytes(), buf);
        encode_bytes_field(LINK_SPAN_ID, &link.span_id.to_bytes(), buf);
        encode_optional_string_field(LINK_TRACE_STATE, trace_state(&link.trace_state), buf);
        for kv in &link.attributes {
            encode_key_value(LINK_ATTRIBUTES, kv, buf);
        }
        close_message(message, buf);
    }
    encode_count(SPAN_DROPPED_LINKS_COUNT, span.dropped.links, buf);
    if let Some(status_len) = status_len(&span.status) {
        encode_message_header(SPAN_STATUS, status_len, buf);
        match &span.status {
            Status::Unset => {}
            Status::Ok => encode_varint_field(STATUS_CODE, STATUS_CODE_OK, buf),
            Status::Error { message } => {
                encode_optional_string_field(STATUS_MESSAGE, message, buf);
                encode_varint_field(STATUS_CODE, STATUS_CODE_ERROR, buf);
            }
        }
    }
    encode_fixed32_field(SPAN_FLAGS, w3c_flags(span.flags), buf);
}

/// A `KeyValue` message field. Its length is cheap to know up front (one value), so it is
/// computed rather than patched in; string values are written from their bytes
/// ([`trace_core::StringValue::as_bytes`]), never checked again as UTF-8.
#[inline]
fn encode_key_value(tag: u32, kv: &KeyValue, buf: &mut Vec<u8>) {
    let key = kv.key.as_bytes();
    if tag < 16 && !key.is_empty() && encode_short_key_value(tag, key, &kv.value, buf) {
        return;
    }
    let key_field_len = if key.is_empty() {
        0
    } else {
        message_field_len(KEY_VALUE_KEY, key.len())
    };
    let value_len = any_value_len(&kv.value);
    let len = key_field_len + message_field_len(KEY_VALUE_VALUE, value_len);
    let start = buf.len();
    encode_message_header(tag, len, buf);
    encode_bytes_field_unless_empty(KEY_VALUE_KEY, key, buf);
    encode_message_header(KEY_VALUE_VALUE, value_len, buf);
    encode_any_value_contents(&kv.value, buf);
    // A length prefix that disagrees with the contents makes the whole request undecodable, so
    // debug builds (the tests) check the `*_len` mirrors.
    debug_assert_eq!(
        buf.len() - start,
        message_field_len(tag, len),
        "OTLP attribute length mismatch"
    );
}

/// The usual attribute — a string or integer value, and a whole `KeyValue` under 128 bytes, so
/// that every length in it is one byte — written with its keys and lengths in two small copies
/// and no varint sizing. Returns `false`, having written nothing, for any other attribute.
#[inline]
fn encode_short_key_value(tag: u32, key: &[u8], value: &Value, buf: &mut Vec<u8>) -> bool {
    // `KeyValue` = key field (2 + key) + value field (2 + `AnyValue`).
    let len = |value_len: usize| 4 + key.len() + value_len;
    let fits = |value_len: usize| len(value_len) < 0x80;
    match value {
        Value::String(text) => {
            let text = text.as_bytes();
            let value_len = 2 + text.len();
            if !fits(value_len) {
                return false;
            }
            put_short_key_value_header(tag, key, buf, len(value_len));
            buf.extend_from_slice(&[
                length_delimited_key(KEY_VALUE_VALUE),
                value_len as u8,
                length_delimited_key(ANY_STRING),
                text.len() as u8,
            ]);
            buf.extend_from_slice(text);
        }
        Value::I64(int) => {
            let value_len = 1 + encoded_len_varint(*int as u64);
            if !fits(value_len) {
                return false;
            }
            put_short_key_value_header(tag, key, buf, len(value_len));
            buf.extend_from_slice(&[
                length_delimited_key(KEY_VALUE_VALUE),
                value_len as u8,
                ((ANY_INT << 3) | WireType::Varint as u32) as u8,
            ]);
            put_varint(*int as u64, buf);
        }
        _ => return false,
    }
    true
}

/// A short `KeyValue`'s field key and length (`len`, under 128) and its key field (see
/// [`encode_short_key_value`]).
#[inline]
fn put_short_key_value_header(tag: u32, key: &[u8], buf: &mut Vec<u8>, len: usize) {
    buf.extend_from_slice(&[
        length_delimited_key(tag),
        len as u8,
        length_delimited_key(KEY_VALUE_KEY),
        key.len() as u8,
    ]);
    buf.extend_from_slice(key);
}

/// The one-byte key of length-delimited field `tag` (below 16).
#[inline]
const fn length_delimited_key(tag: u32) -> u8 {
    ((tag << 3) | WireType::LengthDelimited as u32) as u8
}

#[inline]
fn encode_bytes_field_unless_empty(tag: u32, bytes: &[u8], buf: &mut Vec<u8>) {
    if !bytes.is_empty() {
        encode_bytes_field(tag, bytes, buf);
    }
}

/// The fields of an `AnyValue` (its header already written).
#[inline]
fn encode_any_value_contents(value: &Value, buf: &mut Vec<u8>) {
    match value {
        Value::String(s) => encode_bytes_field(ANY_STRING, s.as_bytes(), buf),
        Value::Bool(b) => encode_varint_field(ANY_BOOL, u64::from(*b), buf),
        Value::I64(i) => encode_varint_field(ANY_INT, *i as u64, buf),
        Value::F64(x) => encode_fixed64_field(ANY_DOUBLE, x.to_bits(), buf),
        Value::Array(array) => {
            encode_message_header(ANY_ARRAY, array_len(array), buf);
            encode_array_contents(array, buf);
        }
    }
}

fn encode_array_contents(array: &Array, buf: &mut Vec<u8>) {
    match array {
        Array::Bool(v) => {
            for &b in v {
                encode_message_header(ARRAY_VALUES, varint_field_len(ANY_BOOL, u64::from(b)), buf);
                encode_varint_field(ANY_BOOL, u64::from(b), buf);
            }
        }
        Array::I64(v) => {
            for &i in v {
                encode_message_header(ARRAY_VALUES, varint_field_len(ANY_INT, i as u64), buf);
                encode_varint_field(ANY_INT, i as u64, buf);
            }
        }
        Array::F64(v) => {
            for &x in v {
                encode_message_header(ARRAY_VALUES, fixed64_field_len(ANY_DOUBLE), buf);
                encode_fixed64_field(ANY_DOUBLE, x.to_bits(), buf);
            }
        }
        Array::String(v) => {
            for s in v {
                let text = s.as_bytes();
                encode_message_header(ARRAY_VALUES, message_field_len(ANY_STRING, text.len()), buf);
                encode_bytes_field(ANY_STRING, text, buf);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_keep_only_w3c_bits() {
        let flags = TraceFlags::SAMPLED | TraceFlags::DEBUG | TraceFlags::FIREHOSE;
        assert_eq!(w3c_flags(flags), 1);
        assert_eq!(w3c_flags(TraceFlags::RANDOM), 2);
        assert_eq!(w3c_flags(TraceFlags::EMPTY), 0);
    }

    #[test]
    fn long_values_get_multi_byte_lengths_that_decode() {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use opentelemetry_proto::tonic::common::v1::any_value;
        use prost::Message;

        let long = "x".repeat(300);
        let span = Span {
            name: "n".repeat(200).into(),
            kind: SpanKind::Producer,
            trace_id: trace_core::TraceId::from_u128(7).expect("non-zero"),
            span_id: trace_core::SpanId::from_u64(9).expect("non-zero"),
            parent_span_id: None,
            flags: TraceFlags::SAMPLED,
            trace_state: trace_core::TraceState::EMPTY,
            debug_id: None,
            start_time: SystemTime::UNIX_EPOCH,
            duration: std::time::Duration::from_secs(1),
            status: Status::Unset,
            attributes: (0..200)
                .map(|i| KeyValue::new(format!("key{i}"), long.clone()))
                .collect(),
            events: Vec::new(),
            links: Vec::new(),
            dropped: Default::default(),
        };
        let fixed = FixedParts::new(&Resource::new("svc"), "scope", "1");
        let mut buf = Vec::new();
        encode_request(&fixed, &[span.clone(), span], &mut buf);
        let request = ExportTraceServiceRequest::decode(buf.as_slice()).expect("decodes");
        let spans = &request.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[1].name.len(), 200);
        assert_eq!(spans[1].kind, 4);
        assert_eq!(spans[1].end_time_unix_nano, 1_000_000_000);
        assert_eq!(spans[1].attributes.len(), 200);
        let value = spans[1].attributes[199]
            .value
            .as_ref()
            .and_then(|v| v.value.as_ref());
        assert_eq!(value, Some(&any_value::Value::StringValue(long)));
    }

    /// What the independent `opentelemetry-proto` decoder should find for `span`, built field by
    /// field from the span itself (not from anything the encoder computes).
    fn expected(span: &Span) -> opentelemetry_proto::tonic::trace::v1::Span {
        use opentelemetry_proto::tonic::common::v1::{self as common, any_value};
        use opentelemetry_proto::tonic::trace::v1 as trace;

        fn any(value: &Value) -> common::AnyValue {
            let text = |s: &trace_core::StringValue| any_value::Value::StringValue(s.to_string());
            let value = match value {
                Value::String(s) => text(s),
                Value::Bool(b) => any_value::Value::BoolValue(*b),
                Value::I64(i) => any_value::Value::IntValue(*i),
                Value::F64(x) => any_value::Value::DoubleValue(*x),
                Value::Array(array) => {
                    let values: Vec<any_value::Value> = match array {
                        Array::Bool(v) => {
                            v.iter().map(|b| any_value::Value::BoolValue(*b)).collect()
                        }
                        Array::I64(v) => v.iter().map(|i| any_value::Value::IntValue(*i)).collect(),
                        Array::F64(v) => v
                            .iter()
                            .map(|x| any_value::Value::DoubleValue(*x))
                            .collect(),
                        Array::String(v) => v.iter().map(text).collect(),
                    };
                    any_value::Value::ArrayValue(common::ArrayValue {
                        values: values
                            .into_iter()
                            .map(|value| common::AnyValue { value: Some(value) })
                            .collect(),
                    })
                }
            };
            common::AnyValue { value: Some(value) }
        }
        fn attributes(kvs: &[KeyValue]) -> Vec<common::KeyValue> {
            kvs.iter()
                .map(|kv| common::KeyValue {
                    key: kv.key.to_string(),
                    value: Some(any(&kv.value)),
                    ..Default::default()
                })
                .collect()
        }
        let nanos = |time: SystemTime| {
            time.duration_since(SystemTime::UNIX_EPOCH)
                .expect("after the epoch")
                .as_nanos() as u64
        };
        trace::Span {
            trace_id: span.trace_id.to_bytes().to_vec(),
            span_id: span.span_id.to_bytes().to_vec(),
            trace_state: span.trace_state.header_value().unwrap_or("").to_owned(),
            parent_span_id: span
                .parent_span_id
                .map_or_else(Vec::new, |id| id.to_bytes().to_vec()),
            flags: u32::from(span.flags.is_sampled()),
            name: span.name.to_string(),
            kind: span_kind(span.kind) as i32,
            start_time_unix_nano: nanos(span.start_time),
            end_time_unix_nano: nanos(span.start_time + span.duration),
            attributes: attributes(&span.attributes),
            dropped_attributes_count: span.dropped.attributes,
            dropped_events_count: span.dropped.events,
            dropped_links_count: span.dropped.links,
            events: span
                .events
                .iter()
                .map(|event| trace::span::Event {
                    time_unix_nano: nanos(event.time),
                    name: event.name.to_string(),
                    attributes: attributes(&event.attributes),
                    ..Default::default()
                })
                .collect(),
            links: span
                .links
                .iter()
                .map(|link| trace::span::Link {
                    trace_id: link.trace_id.to_bytes().to_vec(),
                    span_id: link.span_id.to_bytes().to_vec(),
                    trace_state: link.trace_state.header_value().unwrap_or("").to_owned(),
                    attributes: attributes(&link.attributes),
                    ..Default::default()
                })
                .collect(),
            status: match &span.status {
                Status::Unset => None,
                Status::Ok => Some(trace::Status {
                    message: String::new(),
                    code: 1,
                }),
                Status::Error { message } => Some(trace::Status {
                    message: message.to_string(),
                    code: 2,
                }),
            },
        }
    }

    /// A span whose strings are held every way a `StringValue` can hold them (static, shared,
    /// owned, inline; ASCII and not), padded with `padding` bytes of one attribute so that tests
    /// can put its encoded size either side of a length prefix's width.
    fn span_with_strings(index: u64, padding: usize, event_padding: usize) -> Span {
        use trace_core::{Event, Link, SpanId, StringValue, TraceId, TraceState};
        let shared: std::sync::Arc<str> = "/ünï/{id}".into();
        let start = SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(1_700_000_000_123);
        Span {
            name: "GET /ünï/{id}".into(),
            kind: SpanKind::Server,
            trace_id: TraceId::from_u128(u128::from(index) + 1).expect("non-zero"),
            span_id: SpanId::from_u64(index + 1).expect("non-zero"),
            parent_span_id: index
                .is_multiple_of(2)
                .then(|| SpanId::from_u64(99).expect("non-zero")),
            flags: TraceFlags::SAMPLED,
            trace_state: TraceState::EMPTY,
            debug_id: None,
            start_time: start,
            duration: std::time::Duration::from_micros(850),
            status: if index.is_multiple_of(3) {
                Status::error("bröken")
            } else {
                Status::Ok
            },
            attributes: vec![
                KeyValue::new("static", "GET"),
                KeyValue::new("shared", shared),
                KeyValue::new("owned", "ö".repeat(100)),
                KeyValue::new("inline", StringValue::copied("ünï ✓")),
                KeyValue::new("inline.full", StringValue::copied(&"x".repeat(22))),
                KeyValue::new("empty", StringValue::copied("")),
                KeyValue::new("", "empty key"),
                KeyValue::new("negative", -5_i64),
                KeyValue::new("port", 40_123_i64),
                KeyValue::new("flag", true),
                KeyValue::new("ratio", 0.25),
                KeyValue::new(
                    "strings",
                    Array::String(vec![StringValue::copied("ä"), "b".into()]),
                ),
                KeyValue::new("ints", Array::I64(vec![1, -1, 300])),
                KeyValue::new("padding", StringValue::copied(&"p".repeat(padding))),
            ],
            events: vec![
                Event {
                    name: "first byte sent".into(),
                    time: start + std::time::Duration::from_micros(700),
                    attributes: Vec::new(),
                },
                Event {
                    name: "big".into(),
                    time: start,
                    attributes: vec![KeyValue::new("text", "é".repeat(event_padding))],
                },
            ],
            links: vec![Link {
                trace_id: TraceId::from_u128(5).expect("non-zero"),
                span_id: SpanId::from_u64(6).expect("non-zero"),
                trace_state: TraceState::EMPTY,
                attributes: vec![KeyValue::new(
                    "why",
                    StringValue::copied(&"w".repeat(event_padding)),
                )],
            }],
            // Zero for most spans (the fields are then left out), small and multi-byte for some.
            dropped: trace_core::DroppedCounts {
                attributes: u32::from(index.is_multiple_of(4)) * 3,
                events: u32::from(index.is_multiple_of(5)) * 300,
                links: u32::from(index.is_multiple_of(7)),
            },
        }
    }

    fn decoded(spans: &[Span]) -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use prost::Message;

        let resource = Resource::new("svc").with_attribute("ünï", "✓");
        let fixed = FixedParts::new(&resource, "scope", "1");
        let mut buf = vec![7]; // appended after what the buffer held
        encode_request(&fixed, spans, &mut buf);
        assert_eq!(buf[0], 7);
        let request = ExportTraceServiceRequest::decode(&buf[1..]).expect("decodes");
        assert_eq!(request.resource_spans.len(), 1);
        let resource_spans = &request.resource_spans[0];
        let resource_attributes = &resource_spans
            .resource
            .as_ref()
            .expect("resource")
            .attributes;
        let custom = resource_attributes.iter().find(|kv| kv.key == "ünï");
        let custom = custom.and_then(|kv| kv.value.as_ref()?.value.as_ref());
        assert_eq!(
            custom,
            Some(
                &opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                    "✓".to_owned()
                )
            )
        );
        assert_eq!(resource_spans.scope_spans.len(), 1);
        let scope = resource_spans.scope_spans[0].scope.as_ref().expect("scope");
        assert_eq!(
            (scope.name.as_str(), scope.version.as_str()),
            ("scope", "1")
        );
        resource_spans.scope_spans[0].spans.clone()
    }

    #[test]
    fn every_string_kind_and_length_prefix_width_decodes_as_sent() {
        // Paddings put the span just under and over 128 bytes and 16 KiB (its length prefix
        // then needs one, two or three bytes, against the two it is given), and the events and
        // links over 127 bytes (against the one byte they are given).
        for padding in [0, 1, 100, 16_000, 16_300, 16_400, 70_000] {
            for event_padding in [0, 50, 200] {
                let spans: Vec<Span> = (0..3)
                    .map(|index| span_with_strings(index, padding, event_padding))
                    .collect();
                let decoded = decoded(&spans);
                assert_eq!(decoded.len(), spans.len());
                for (decoded, span) in decoded.iter().zip(&spans) {
                    assert_eq!(
                        decoded,
                        &expected(span),
                        "padding {padding}/{event_padding}"
                    );
                }
            }
        }
    }

    #[test]
    fn batches_of_every_outer_length_width_decode() {
        // Batch sizes around the outer length prefixes' one-, two- and three-byte widths.
        for count in [0, 1, 2, 30, 40, 41, 200, 600] {
            let spans: Vec<Span> = (0..count)
                .map(|index| span_with_strings(index, 10, 0))
                .collect();
            let decoded = decoded(&spans);
            assert_eq!(decoded.len(), spans.len());
            for (decoded, span) in decoded.iter().zip(&spans) {
                assert_eq!(decoded, &expected(span), "batch of {count}");
            }
        }
        // A minimal span: under 128 bytes, so its two-byte room shrinks to one.
        let mut small = span_with_strings(1, 0, 0);
        small.attributes.clear();
        small.events.clear();
        small.links.clear();
        small.name = "".into();
        assert_eq!(
            decoded(std::slice::from_ref(&small)),
            vec![expected(&small)]
        );
    }

    /// `spans` written one by one with [`encode_span_field`], `per_chunk` to a chunk, as the
    /// batch pipeline gathers them.
    fn encoded_in_chunks(spans: &[Span], per_chunk: usize) -> EncodedSpans {
        let mut batch = EncodedSpans::new();
        for group in spans.chunks(per_chunk) {
            let mut bytes = Vec::new();
            for span in group {
                encode_span_field(span, &mut bytes);
            }
            batch.push_chunk(Box::new(crate::export::EncodedChunk {
                bytes,
                spans: group.len(),
            }));
        }
        batch
    }

    #[test]
    fn spans_encoded_one_by_one_and_wrapped_are_the_batch_encoding_byte_for_byte() {
        let fixed = FixedParts::new(&Resource::new("svc"), "scope", "1");
        // Span sizes across the span prefix's widths; batch sizes across the outer prefixes'.
        for (count, padding) in [
            (0, 0),
            (1, 0),
            (3, 16_400),
            (41, 10),
            (200, 10),
            (5, 70_000),
        ] {
            let spans: Vec<Span> = (0..count)
                .map(|index| span_with_strings(index, padding, 50))
                .collect();
            let mut whole = Vec::new();
            encode_request(&fixed, &spans, &mut whole);
            for per_chunk in [1, 7, 32] {
                let batch = encoded_in_chunks(&spans, per_chunk);
                assert_eq!(batch.spans(), spans.len());
                let mut wrapped = Vec::new();
                encode_wrapped_request(&fixed, &batch, &mut wrapped);
                assert!(
                    wrapped == whole,
                    "{count} spans of padding {padding}, {per_chunk} per chunk"
                );
            }
        }
    }

    #[test]
    fn a_wrapped_batch_decodes_with_the_generated_types() {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use prost::Message;

        let spans: Vec<Span> = (0..70)
            .map(|index| span_with_strings(index, 30, 0))
            .collect();
        let fixed = FixedParts::new(&Resource::new("svc"), "scope", "1");
        let mut wrapped = Vec::new();
        encode_wrapped_request(&fixed, &encoded_in_chunks(&spans, 32), &mut wrapped);
        let request = ExportTraceServiceRequest::decode(wrapped.as_slice()).expect("decodes");
        assert_eq!(request.resource_spans.len(), 1);
        assert_eq!(request.resource_spans[0].scope_spans.len(), 1);
        let decoded = &request.resource_spans[0].scope_spans[0].spans;
        let expected: Vec<_> = spans.iter().map(expected).collect();
        assert_eq!(decoded, &expected);
    }

    #[test]
    fn times_before_the_epoch_are_zero() {
        let before = SystemTime::UNIX_EPOCH - std::time::Duration::from_secs(1);
        assert_eq!(unix_nanos(before), 0);
        let after = SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(1_500);
        assert_eq!(unix_nanos(after), 1_500);
    }
}
