//! `jaeger.thrift` structs written straight from [`Span`]s, in the Thrift compact and binary
//! protocols.
//!
//! Written by hand rather than with generated code from the `thrift` crate for two reasons: the
//! exporters must reach more than a million spans a second on one core, which rules out building
//! an intermediate message per span, and the tests decode with the `thrift` crate's protocols,
//! which must stay independent of this encoder.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use trace_core::{Array, KeyValue, Span, SpanKind, Status, TraceFlags, Value};

/// Which Thrift protocol to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThriftProtocol {
    /// The compact protocol (varints, zigzag), which the Jaeger agent reads from UDP.
    Compact,
    /// The binary protocol (big-endian, fixed width), which the Jaeger collector reads over HTTP.
    Binary,
}

/// The Thrift types `jaeger.thrift` uses.
#[derive(Clone, Copy)]
pub(crate) enum Type {
    I32,
    I64,
    Double,
    String,
    Struct,
    List,
}

/// One Thrift protocol's way of writing values. Implemented by two zero-sized types so that the
/// struct encoders below are monomorphised per protocol.
pub(crate) trait Protocol {
    /// Starts field `id` of type `ty`; `last` is the previous field id of the same struct.
    fn field(out: &mut Vec<u8>, last: &mut i16, id: i16, ty: Type);
    /// A whole boolean field.
    fn bool_field(out: &mut Vec<u8>, last: &mut i16, id: i16, value: bool);
    /// Ends a struct.
    fn stop(out: &mut Vec<u8>) {
        out.push(0);
    }
    /// Starts a list of `len` elements of type `element`.
    fn list(out: &mut Vec<u8>, element: Type, len: usize);
    fn i32(out: &mut Vec<u8>, value: i32);
    fn i64(out: &mut Vec<u8>, value: i64);
    fn double(out: &mut Vec<u8>, value: f64);
    fn string(out: &mut Vec<u8>, value: &str) {
        Self::bytes(out, value.as_bytes());
    }
    /// A `string` from its UTF-8 bytes (a [`trace_core::StringValue`]'s, unchecked).
    fn bytes(out: &mut Vec<u8>, value: &[u8]);
}

/// The compact protocol (THRIFT-110).
#[derive(Debug)]
pub(crate) struct Compact;

impl Compact {
    const fn type_id(ty: Type) -> u8 {
        match ty {
            Type::I32 => 5,
            Type::I64 => 6,
            Type::Double => 7,
            Type::String => 8,
            Type::List => 9,
            Type::Struct => 12,
        }
    }

    /// Type id 1 and 2 stand for `true` and `false` in a boolean field's header.
    const fn bool_type_id(value: bool) -> u8 {
        if value { 1 } else { 2 }
    }

    fn field_header(out: &mut Vec<u8>, last: &mut i16, id: i16, type_id: u8) {
        let delta = id.wrapping_sub(*last);
        if (1..=15).contains(&delta) {
            out.push(((delta as u8) << 4) | type_id);
        } else {
            out.push(type_id);
            varint(out, zigzag64(i64::from(id)));
        }
        *last = id;
    }
}

/// Appends `value` as an unsigned LEB128 varint.
#[inline]
pub(crate) fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// How many bytes [`varint`] writes for `value`.
#[cfg(any(feature = "jaeger-agent", test))]
pub(crate) const fn varint_len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

#[inline]
const fn zigzag64(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

#[inline]
const fn zigzag32(value: i32) -> u64 {
    (((value << 1) ^ (value >> 31)) as u32) as u64
}

impl Protocol for Compact {
    #[inline]
    fn field(out: &mut Vec<u8>, last: &mut i16, id: i16, ty: Type) {
        Self::field_header(out, last, id, Self::type_id(ty));
    }

    #[inline]
    fn bool_field(out: &mut Vec<u8>, last: &mut i16, id: i16, value: bool) {
        Self::field_header(out, last, id, Self::bool_type_id(value));
    }

    #[inline]
    fn list(out: &mut Vec<u8>, element: Type, len: usize) {
        let element = Self::type_id(element);
        if len < 15 {
            out.push(((len as u8) << 4) | element);
        } else {
            out.push(0xf0 | element);
            varint(out, len as u64);
        }
    }

    #[inline]
    fn i32(out: &mut Vec<u8>, value: i32) {
        varint(out, zigzag32(value));
    }

    #[inline]
    fn i64(out: &mut Vec<u8>, value: i64) {
        varint(out, zigzag64(value));
    }

    #[inline]
    fn double(out: &mut Vec<u8>, value: f64) {
        // The compact protocol is the one place Thrift writes little-endian.
        out.extend_from_slice(&value.to_le_bytes());
    }

    #[inline]
    fn bytes(out: &mut Vec<u8>, value: &[u8]) {
        varint(out, value.len() as u64);
        out.extend_from_slice(value);
    }
}

/// The binary protocol.
#[derive(Debug)]
pub(crate) struct Binary;

impl Binary {
    const fn type_id(ty: Type) -> u8 {
        match ty {
            Type::Double => 4,
            Type::I32 => 8,
            Type::I64 => 10,
            Type::String => 11,
            Type::Struct => 12,
            Type::List => 15,
        }
    }
    const BOOL: u8 = 2;
}

impl Protocol for Binary {
    #[inline]
    fn field(out: &mut Vec<u8>, _last: &mut i16, id: i16, ty: Type) {
        out.push(Self::type_id(ty));
        out.extend_from_slice(&id.to_be_bytes());
    }

    #[inline]
    fn bool_field(out: &mut Vec<u8>, _last: &mut i16, id: i16, value: bool) {
        out.push(Self::BOOL);
        out.extend_from_slice(&id.to_be_bytes());
        out.push(u8::from(value));
    }

    #[inline]
    fn list(out: &mut Vec<u8>, element: Type, len: usize) {
        out.push(Self::type_id(element));
        out.extend_from_slice(&(len as i32).to_be_bytes());
    }

    #[inline]
    fn i32(out: &mut Vec<u8>, value: i32) {
        out.extend_from_slice(&value.to_be_bytes());
    }

    #[inline]
    fn i64(out: &mut Vec<u8>, value: i64) {
        out.extend_from_slice(&value.to_be_bytes());
    }

    #[inline]
    fn double(out: &mut Vec<u8>, value: f64) {
        out.extend_from_slice(&value.to_bits().to_be_bytes());
    }

    #[inline]
    fn bytes(out: &mut Vec<u8>, value: &[u8]) {
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value);
    }
}

/// `jaeger.TagType`.
mod tag_type {
    pub(super) const STRING: i32 = 0;
    pub(super) const DOUBLE: i32 = 1;
    pub(super) const BOOL: i32 = 2;
    pub(super) const LONG: i32 = 3;
}

/// `jaeger.SpanRefType`.
mod ref_type {
    pub(super) const CHILD_OF: i32 = 0;
    pub(super) const FOLLOWS_FROM: i32 = 1;
}

/// Jaeger's span flag bits (not tracewire's [`TraceFlags`] layout).
mod jaeger_flags {
    pub(super) const SAMPLED: i32 = 1;
    pub(super) const DEBUG: i32 = 2;
    pub(super) const FIREHOSE: i32 = 8;
}

/// The tag Jaeger clients set to the `jaeger-debug-id` header's correlation id.
pub(crate) const DEBUG_ID_TAG: &str = "jaeger-debug-id";
/// OpenTelemetry's Jaeger mapping of the W3C trace state.
pub(crate) const TRACE_STATE_TAG: &str = "w3c.tracestate";

/// A `jaeger.Tag` with a string value.
#[inline]
fn string_tag<P: Protocol>(out: &mut Vec<u8>, key: &str, value: &str) {
    let mut last = 0;
    P::field(out, &mut last, 1, Type::String);
    P::string(out, key);
    P::field(out, &mut last, 2, Type::I32);
    P::i32(out, tag_type::STRING);
    P::field(out, &mut last, 3, Type::String);
    P::string(out, value);
    P::stop(out);
}

/// A `jaeger.Tag` with a boolean value.
#[inline]
fn bool_tag<P: Protocol>(out: &mut Vec<u8>, key: &str, value: bool) {
    let mut last = 0;
    P::field(out, &mut last, 1, Type::String);
    P::string(out, key);
    P::field(out, &mut last, 2, Type::I32);
    P::i32(out, tag_type::BOOL);
    P::bool_field(out, &mut last, 5, value);
    P::stop(out);
}

/// A `jaeger.Tag` for one typed attribute. Arrays become JSON text, as OpenTelemetry's Jaeger
/// mapping asks.
#[inline]
fn tag<P: Protocol>(out: &mut Vec<u8>, key: &str, value: &Value) {
    let mut last = 0;
    P::field(out, &mut last, 1, Type::String);
    P::string(out, key);
    P::field(out, &mut last, 2, Type::I32);
    match value {
        Value::String(text) => {
            P::i32(out, tag_type::STRING);
            P::field(out, &mut last, 3, Type::String);
            P::bytes(out, text.as_bytes());
        }
        Value::F64(number) => {
            P::i32(out, tag_type::DOUBLE);
            P::field(out, &mut last, 4, Type::Double);
            P::double(out, *number);
        }
        Value::Bool(flag) => {
            P::i32(out, tag_type::BOOL);
            P::bool_field(out, &mut last, 5, *flag);
        }
        Value::I64(number) => {
            P::i32(out, tag_type::LONG);
            P::field(out, &mut last, 6, Type::I64);
            P::i64(out, *number);
        }
        Value::Array(array) => {
            P::i32(out, tag_type::STRING);
            P::field(out, &mut last, 3, Type::String);
            P::string(out, &array_json(array));
        }
    }
    P::stop(out);
}

/// An array attribute as JSON text: `["a","b"]`, `[1,2]`, `[true]`. Non-finite floats, which
/// JSON cannot spell, are written as the strings `"NaN"`, `"Infinity"` and `"-Infinity"`.
pub(crate) fn array_json(array: &Array) -> String {
    let mut text = String::from("[");
    match array {
        Array::Bool(items) => join(&mut text, items, |text, item| {
            text.push_str(if *item { "true" } else { "false" });
        }),
        Array::I64(items) => join(&mut text, items, |text, item| {
            let _ = write!(text, "{item}");
        }),
        Array::F64(items) => join(&mut text, items, |text, item| {
            if item.is_finite() {
                let _ = write!(text, "{item}");
            } else if item.is_nan() {
                text.push_str("\"NaN\"");
            } else if *item > 0.0 {
                text.push_str("\"Infinity\"");
            } else {
                text.push_str("\"-Infinity\"");
            }
        }),
        Array::String(items) => join(&mut text, items, |text, item| {
            json_string(text, item.as_str());
        }),
    }
    text.push(']');
    text
}

fn join<T>(text: &mut String, items: &[T], mut write_item: impl FnMut(&mut String, &T)) {
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            text.push(',');
        }
        write_item(text, item);
    }
}

fn json_string(text: &mut String, value: &str) {
    text.push('"');
    for c in value.chars() {
        match c {
            '"' => text.push_str("\\\""),
            '\\' => text.push_str("\\\\"),
            '\n' => text.push_str("\\n"),
            '\r' => text.push_str("\\r"),
            '\t' => text.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(text, "\\u{:04x}", u32::from(c));
            }
            c => text.push(c),
        }
    }
    text.push('"');
}

/// Microseconds since the Unix epoch; times before it are 0.
#[inline]
fn epoch_micros(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, duration_micros)
}

#[inline]
fn duration_micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

fn span_flags(flags: TraceFlags) -> i32 {
    let mut bits = 0;
    if flags.is_sampled() {
        bits |= jaeger_flags::SAMPLED;
    }
    if flags.is_debug() {
        bits |= jaeger_flags::DEBUG;
    }
    if flags.is_firehose() {
        bits |= jaeger_flags::FIREHOSE;
    }
    bits
}

/// The tags a span gets beside its attributes, each optional.
struct ExtraTags<'a> {
    kind: Option<&'static str>,
    status_code: Option<&'static str>,
    error_description: Option<&'a str>,
    debug_id: Option<&'a str>,
    trace_state: Option<&'a str>,
    /// What the span's limits dropped, as OpenTelemetry's mapping for formats without the
    /// fields: `otel.dropped_*_count` int tags, only when not zero.
    dropped: [(&'static str, u32); 3],
}

impl<'a> ExtraTags<'a> {
    fn of(span: &'a Span) -> Self {
        let kind = match span.kind {
            SpanKind::Internal => None,
            other => Some(other.as_str()),
        };
        let (status_code, error_description) = match &span.status {
            Status::Unset => (None, None),
            Status::Ok => (Some("OK"), None),
            Status::Error { message } => {
                (Some("ERROR"), Some(&**message).filter(|m| !m.is_empty()))
            }
        };
        Self {
            kind,
            status_code,
            error_description,
            debug_id: span.debug_id.as_deref(),
            trace_state: span.trace_state.header_value(),
            dropped: [
                ("otel.dropped_attributes_count", span.dropped.attributes),
                ("otel.dropped_events_count", span.dropped.events),
                ("otel.dropped_links_count", span.dropped.links),
            ],
        }
    }

    fn count(&self) -> usize {
        usize::from(self.kind.is_some())
            + usize::from(self.status_code.is_some())
            // `error=true` goes with an ERROR status code.
            + usize::from(self.status_code == Some("ERROR"))
            + usize::from(self.error_description.is_some())
            + usize::from(self.debug_id.is_some())
            + usize::from(self.trace_state.is_some())
            + self.dropped.iter().filter(|(_, count)| *count > 0).count()
    }

    fn write<P: Protocol>(&self, out: &mut Vec<u8>) {
        if let Some(kind) = self.kind {
            string_tag::<P>(out, "span.kind", kind);
        }
        if let Some(code) = self.status_code {
            string_tag::<P>(out, "otel.status_code", code);
            if code == "ERROR" {
                bool_tag::<P>(out, "error", true);
            }
        }
        if let Some(description) = self.error_description {
            string_tag::<P>(out, "otel.status_description", description);
        }
        if let Some(debug_id) = self.debug_id {
            string_tag::<P>(out, DEBUG_ID_TAG, debug_id);
        }
        if let Some(trace_state) = self.trace_state {
            string_tag::<P>(out, TRACE_STATE_TAG, trace_state);
        }
        for (key, count) in self.dropped {
            if count > 0 {
                tag::<P>(out, key, &Value::I64(i64::from(count)));
            }
        }
    }
}

/// A `jaeger.SpanRef`.
#[inline]
fn span_ref<P: Protocol>(
    out: &mut Vec<u8>,
    kind: i32,
    trace_id: trace_core::TraceId,
    span_id: u64,
) {
    let mut last = 0;
    P::field(out, &mut last, 1, Type::I32);
    P::i32(out, kind);
    P::field(out, &mut last, 2, Type::I64);
    P::i64(out, trace_id.low_u64() as i64);
    P::field(out, &mut last, 3, Type::I64);
    P::i64(out, trace_id.high_u64() as i64);
    P::field(out, &mut last, 4, Type::I64);
    P::i64(out, span_id as i64);
    P::stop(out);
}

/// Appends one `jaeger.Span` struct.
pub(crate) fn write_span<P: Protocol>(out: &mut Vec<u8>, span: &Span) {
    let mut last = 0;
    P::field(out, &mut last, 1, Type::I64);
    P::i64(out, span.trace_id.low_u64() as i64);
    P::field(out, &mut last, 2, Type::I64);
    P::i64(out, span.trace_id.high_u64() as i64);
    P::field(out, &mut last, 3, Type::I64);
    P::i64(out, span.span_id.to_u64() as i64);
    P::field(out, &mut last, 4, Type::I64);
    P::i64(out, span.parent_span_id.map_or(0, |id| id.to_u64() as i64));
    P::field(out, &mut last, 5, Type::String);
    P::string(out, &span.name);

    let references = usize::from(span.parent_span_id.is_some()) + span.links.len();
    if references > 0 {
        P::field(out, &mut last, 6, Type::List);
        P::list(out, Type::Struct, references);
        if let Some(parent) = span.parent_span_id {
            span_ref::<P>(out, ref_type::CHILD_OF, span.trace_id, parent.to_u64());
        }
        for link in &span.links {
            // SpanRef has no room for the link's attributes or trace state.
            span_ref::<P>(
                out,
                ref_type::FOLLOWS_FROM,
                link.trace_id,
                link.span_id.to_u64(),
            );
        }
    }

    P::field(out, &mut last, 7, Type::I32);
    P::i32(out, span_flags(span.flags));
    P::field(out, &mut last, 8, Type::I64);
    P::i64(out, epoch_micros(span.start_time));
    P::field(out, &mut last, 9, Type::I64);
    P::i64(out, duration_micros(span.duration));

    let extra = ExtraTags::of(span);
    let tags = span.attributes.len() + extra.count();
    if tags > 0 {
        P::field(out, &mut last, 10, Type::List);
        P::list(out, Type::Struct, tags);
        for attribute in &span.attributes {
            tag::<P>(out, &attribute.key, &attribute.value);
        }
        extra.write::<P>(out);
    }

    if !span.events.is_empty() {
        P::field(out, &mut last, 11, Type::List);
        P::list(out, Type::Struct, span.events.len());
        for event in &span.events {
            let mut log_last = 0;
            P::field(out, &mut log_last, 1, Type::I64);
            P::i64(out, epoch_micros(event.time));
            P::field(out, &mut log_last, 2, Type::List);
            P::list(out, Type::Struct, 1 + event.attributes.len());
            string_tag::<P>(out, "event", &event.name);
            for attribute in &event.attributes {
                tag::<P>(out, &attribute.key, &attribute.value);
            }
            P::stop(out);
        }
    }
    P::stop(out);
}

/// Appends one `jaeger.Process` struct.
pub(crate) fn write_process<P: Protocol>(out: &mut Vec<u8>, service_name: &str, tags: &[KeyValue]) {
    let mut last = 0;
    P::field(out, &mut last, 1, Type::String);
    P::string(out, service_name);
    if !tags.is_empty() {
        P::field(out, &mut last, 2, Type::List);
        P::list(out, Type::Struct, tags.len());
        for kv in tags {
            tag::<P>(out, &kv.key, &kv.value);
        }
    }
    P::stop(out);
}

/// The bytes of a `jaeger.Batch` up to its span list's element count: field 1 (the process)
/// whole, then field 2's header.
pub(crate) fn write_batch_head<P: Protocol>(
    out: &mut Vec<u8>,
    service_name: &str,
    tags: &[KeyValue],
) {
    let mut last = 0;
    P::field(out, &mut last, 1, Type::Struct);
    write_process::<P>(out, service_name, tags);
    P::field(out, &mut last, 2, Type::List);
}

/// Appends one `jaeger.Span` struct for `span` in `protocol`.
///
/// The building block of both exporters, public for custom transports and benchmarks: a span
/// encoded on its own can be placed in any `list<Span>`.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use trace_core::{Span, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
/// use trace_exporters::jaeger::{ThriftProtocol, encode_span};
///
/// let span = Span {
///     name: "GET /users/{id}".into(),
///     kind: SpanKind::Server,
///     trace_id: TraceId::from_u128(7).expect("non-zero"),
///     span_id: SpanId::from_u64(9).expect("non-zero"),
///     parent_span_id: None,
///     flags: TraceFlags::SAMPLED,
///     trace_state: TraceState::EMPTY,
///     debug_id: None,
///     start_time: SystemTime::now(),
///     duration: Duration::from_millis(3),
///     status: Status::Ok,
///     attributes: Vec::new(),
///     events: Vec::new(),
///     links: Vec::new(),
///     dropped: Default::default(),
/// };
/// let mut buffer = Vec::new();
/// encode_span(ThriftProtocol::Compact, &span, &mut buffer);
/// assert!(!buffer.is_empty());
/// ```
pub fn encode_span(protocol: ThriftProtocol, span: &Span, out: &mut Vec<u8>) {
    match protocol {
        ThriftProtocol::Compact => write_span::<Compact>(out, span),
        ThriftProtocol::Binary => write_span::<Binary>(out, span),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_lengths() {
        for value in [
            0u64,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            varint(&mut out, value);
            assert_eq!(out.len(), varint_len(value), "{value}");
        }
    }

    #[test]
    fn arrays_are_json() {
        assert_eq!(array_json(&Array::I64(vec![1, -2])), "[1,-2]");
        assert_eq!(array_json(&Array::Bool(vec![true, false])), "[true,false]");
        assert_eq!(
            array_json(&Array::String(vec!["a\"b".into(), "\u{1}".into()])),
            r#"["a\"b","\u0001"]"#
        );
        assert_eq!(
            array_json(&Array::F64(vec![1.5, f64::NAN, f64::NEG_INFINITY])),
            r#"[1.5,"NaN","-Infinity"]"#
        );
    }
}
