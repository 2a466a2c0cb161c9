//! What both Jaeger exporter tests share: a `jaeger.thrift` reader written against the `thrift`
//! crate's input protocols (independent of the exporter's encoder), sample spans, and the checks
//! that a decoded span says what the sample span said.

#![allow(dead_code, unreachable_pub)]

pub mod receivers;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use thrift::protocol::{TInputProtocol, TType};
use trace_core::{
    Array, Event, KeyValue, Link, Span, SpanId, SpanKind, Status, StringValue, TraceFlags, TraceId,
    TraceState,
};

/// A decoded `jaeger.Tag` value.
#[derive(Debug, Clone, PartialEq)]
pub enum TagValue {
    Str(String),
    Double(f64),
    Bool(bool),
    Long(i64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tag {
    pub key: String,
    pub value: TagValue,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    pub timestamp: i64,
    pub fields: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpanRef {
    pub ref_type: i32,
    pub trace_id_low: i64,
    pub trace_id_high: i64,
    pub span_id: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JaegerSpan {
    pub trace_id_low: i64,
    pub trace_id_high: i64,
    pub span_id: i64,
    pub parent_span_id: i64,
    pub operation_name: String,
    pub references: Vec<SpanRef>,
    pub flags: i32,
    pub start_time: i64,
    pub duration: i64,
    pub tags: Vec<Tag>,
    pub logs: Vec<Log>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Process {
    pub service_name: String,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub process: Process,
    pub spans: Vec<JaegerSpan>,
}

type Result<T> = thrift::Result<T>;

/// Reads the next field header: `None` at the struct's end. Panics on a field of the wrong type,
/// since that means the encoder wrote something `jaeger.thrift` does not say.
fn next_field(
    protocol: &mut dyn TInputProtocol,
    expected: &[(i16, TType)],
    what: &str,
) -> Result<Option<i16>> {
    let field = protocol.read_field_begin()?;
    if field.field_type == TType::Stop {
        return Ok(None);
    }
    let id = field.id.expect("a field that is not a stop has an id");
    let declared = expected
        .iter()
        .find(|(expected_id, _)| *expected_id == id)
        .unwrap_or_else(|| panic!("{what}: unexpected field {id}"));
    assert_eq!(declared.1, field.field_type, "{what}: type of field {id}");
    Ok(Some(id))
}

fn read_list<T>(
    protocol: &mut dyn TInputProtocol,
    element: TType,
    mut read: impl FnMut(&mut dyn TInputProtocol) -> Result<T>,
) -> Result<Vec<T>> {
    let list = protocol.read_list_begin()?;
    assert_eq!(list.element_type, element, "list element type");
    let mut items = Vec::with_capacity(list.size.max(0) as usize);
    for _ in 0..list.size {
        items.push(read(protocol)?);
    }
    protocol.read_list_end()?;
    Ok(items)
}

pub fn read_tag(protocol: &mut dyn TInputProtocol) -> Result<Tag> {
    protocol.read_struct_begin()?;
    let (mut key, mut v_type) = (None, None);
    let (mut v_str, mut v_double, mut v_bool, mut v_long) = (None, None, None, None);
    let fields = [
        (1, TType::String),
        (2, TType::I32),
        (3, TType::String),
        (4, TType::Double),
        (5, TType::Bool),
        (6, TType::I64),
    ];
    while let Some(id) = next_field(protocol, &fields, "Tag")? {
        match id {
            1 => key = Some(protocol.read_string()?),
            2 => v_type = Some(protocol.read_i32()?),
            3 => v_str = Some(protocol.read_string()?),
            4 => v_double = Some(protocol.read_double()?),
            5 => v_bool = Some(protocol.read_bool()?),
            _ => v_long = Some(protocol.read_i64()?),
        }
        protocol.read_field_end()?;
    }
    protocol.read_struct_end()?;
    let key = key.expect("Tag.key is required");
    let value = match v_type.expect("Tag.vType is required") {
        0 => TagValue::Str(v_str.expect("vStr for a STRING tag")),
        1 => TagValue::Double(v_double.expect("vDouble for a DOUBLE tag")),
        2 => TagValue::Bool(v_bool.expect("vBool for a BOOL tag")),
        3 => TagValue::Long(v_long.expect("vLong for a LONG tag")),
        other => panic!("tag {key}: unexpected vType {other}"),
    };
    Ok(Tag { key, value })
}

fn read_log(protocol: &mut dyn TInputProtocol) -> Result<Log> {
    protocol.read_struct_begin()?;
    let (mut timestamp, mut fields) = (None, None);
    let declared = [(1, TType::I64), (2, TType::List)];
    while let Some(id) = next_field(protocol, &declared, "Log")? {
        match id {
            1 => timestamp = Some(protocol.read_i64()?),
            _ => fields = Some(read_list(protocol, TType::Struct, read_tag)?),
        }
        protocol.read_field_end()?;
    }
    protocol.read_struct_end()?;
    Ok(Log {
        timestamp: timestamp.expect("Log.timestamp is required"),
        fields: fields.expect("Log.fields is required"),
    })
}

fn read_span_ref(protocol: &mut dyn TInputProtocol) -> Result<SpanRef> {
    protocol.read_struct_begin()?;
    let mut values = [None; 4];
    let declared = [
        (1, TType::I32),
        (2, TType::I64),
        (3, TType::I64),
        (4, TType::I64),
    ];
    while let Some(id) = next_field(protocol, &declared, "SpanRef")? {
        values[id as usize - 1] = Some(if id == 1 {
            i64::from(protocol.read_i32()?)
        } else {
            protocol.read_i64()?
        });
        protocol.read_field_end()?;
    }
    protocol.read_struct_end()?;
    let [ref_type, low, high, span_id] = values.map(|v| v.expect("SpanRef fields are required"));
    Ok(SpanRef {
        ref_type: ref_type as i32,
        trace_id_low: low,
        trace_id_high: high,
        span_id,
    })
}

pub fn read_span(protocol: &mut dyn TInputProtocol) -> Result<JaegerSpan> {
    protocol.read_struct_begin()?;
    let declared = [
        (1, TType::I64),
        (2, TType::I64),
        (3, TType::I64),
        (4, TType::I64),
        (5, TType::String),
        (6, TType::List),
        (7, TType::I32),
        (8, TType::I64),
        (9, TType::I64),
        (10, TType::List),
        (11, TType::List),
        (12, TType::Bool),
    ];
    let mut ints = [None; 9];
    let mut name = None;
    let (mut references, mut tags, mut logs) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(id) = next_field(protocol, &declared, "Span")? {
        match id {
            1..=4 | 8 | 9 => ints[id as usize - 1] = Some(protocol.read_i64()?),
            7 => ints[6] = Some(i64::from(protocol.read_i32()?)),
            5 => name = Some(protocol.read_string()?),
            6 => references = read_list(protocol, TType::Struct, read_span_ref)?,
            10 => tags = read_list(protocol, TType::Struct, read_tag)?,
            11 => logs = read_list(protocol, TType::Struct, read_log)?,
            _ => {
                protocol.read_bool()?;
            }
        }
        protocol.read_field_end()?;
    }
    protocol.read_struct_end()?;
    let required = |index: usize| ints[index].expect("required Span field");
    Ok(JaegerSpan {
        trace_id_low: required(0),
        trace_id_high: required(1),
        span_id: required(2),
        parent_span_id: required(3),
        operation_name: name.expect("Span.operationName is required"),
        references,
        flags: required(6) as i32,
        start_time: required(7),
        duration: required(8),
        tags,
        logs,
    })
}

fn read_process(protocol: &mut dyn TInputProtocol) -> Result<Process> {
    protocol.read_struct_begin()?;
    let (mut service_name, mut tags) = (None, Vec::new());
    let declared = [(1, TType::String), (2, TType::List)];
    while let Some(id) = next_field(protocol, &declared, "Process")? {
        match id {
            1 => service_name = Some(protocol.read_string()?),
            _ => tags = read_list(protocol, TType::Struct, read_tag)?,
        }
        protocol.read_field_end()?;
    }
    protocol.read_struct_end()?;
    Ok(Process {
        service_name: service_name.expect("Process.serviceName is required"),
        tags,
    })
}

/// Reads a `jaeger.Batch` struct.
pub fn read_batch(protocol: &mut dyn TInputProtocol) -> Result<Batch> {
    protocol.read_struct_begin()?;
    let (mut process, mut spans) = (None, None);
    let declared = [(1, TType::Struct), (2, TType::List)];
    while let Some(id) = next_field(protocol, &declared, "Batch")? {
        match id {
            1 => process = Some(read_process(protocol)?),
            _ => spans = Some(read_list(protocol, TType::Struct, read_span)?),
        }
        protocol.read_field_end()?;
    }
    protocol.read_struct_end()?;
    Ok(Batch {
        process: process.expect("Batch.process is required"),
        spans: spans.expect("Batch.spans is required"),
    })
}

/// The start of every sample span: a whole number of microseconds after the epoch.
pub fn base_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(1_760_000_000_123_456)
}

pub fn micros(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_micros() as i64
}

/// A plain span with the given ids; everything else empty.
pub fn plain_span(trace: u128, span: u64, name: &'static str) -> Span {
    Span {
        name: name.into(),
        kind: SpanKind::Internal,
        trace_id: TraceId::from_u128(trace).expect("non-zero trace id"),
        span_id: SpanId::from_u64(span).expect("non-zero span id"),
        parent_span_id: None,
        flags: TraceFlags::SAMPLED,
        trace_state: TraceState::EMPTY,
        debug_id: None,
        start_time: base_time(),
        duration: Duration::from_micros(250),
        status: Status::Unset,
        attributes: Vec::new(),
        events: Vec::new(),
        links: Vec::new(),
        dropped: Default::default(),
    }
}

/// Trace id whose high half has the top bit set, so both halves must survive as negative i64.
pub const RICH_TRACE: u128 = 0xfedc_ba98_7654_3210_8123_4567_89ab_cdef;

/// Spans that between them use every mapping: kinds, statuses, references, flags, debug id,
/// trace state, every tag type, events.
pub fn rich_spans() -> Vec<Span> {
    let mut server = plain_span(RICH_TRACE, 0x8000_0000_0000_0001, "GET /users/{id}");
    server.kind = SpanKind::Server;
    server.parent_span_id = SpanId::from_u64(0x0102_0304_0506_0708);
    server.flags = TraceFlags::SAMPLED | TraceFlags::DEBUG;
    server.debug_id = Some(Arc::from("corr-42"));
    server.trace_state = "vendor=abc,other=1".parse().expect("valid trace state");
    server.status = Status::error("database unavailable");
    server.duration = Duration::from_micros(1_834);
    server.attributes = vec![
        KeyValue::new("http.request.method", "GET"),
        KeyValue::new("http.response.status_code", 503i64),
        KeyValue::new("retry", true),
        KeyValue::new("load", 0.75f64),
        KeyValue::new("negative", -7i64),
        KeyValue::new("tags", Array::String(vec!["a\"b".into(), "c".into()])),
        KeyValue::new("ports", Array::I64(vec![80, 443])),
        KeyValue::new("flags", Array::Bool(vec![true, false])),
        KeyValue::new("ratios", Array::F64(vec![0.5, 2.0])),
        // Every way a string value is held, non-ASCII included.
        KeyValue::new("url.path", StringValue::copied("/ünï/42 ✓")),
        KeyValue::new("user_agent.original", "ö".repeat(30)),
        KeyValue::new("http.route", Arc::<str>::from("/ünï/{id}")),
        KeyValue::new("empty", StringValue::copied("")),
    ];
    server.events = vec![
        Event {
            name: "retrying".into(),
            time: base_time() + Duration::from_micros(700),
            attributes: vec![
                KeyValue::new("attempt", 2i64),
                KeyValue::new("reason", "timeout"),
            ],
        },
        Event {
            name: "gave up".into(),
            time: base_time() + Duration::from_micros(1_800),
            attributes: Vec::new(),
        },
    ];
    server.links = vec![
        Link {
            trace_id: TraceId::from_u128(0x11).expect("non-zero"),
            span_id: SpanId::from_u64(0x22).expect("non-zero"),
            trace_state: TraceState::EMPTY,
            attributes: vec![KeyValue::new("ignored", "by jaeger")],
        },
        Link {
            trace_id: TraceId::from_u128(u128::MAX).expect("non-zero"),
            span_id: SpanId::from_u64(u64::MAX).expect("non-zero"),
            trace_state: TraceState::EMPTY,
            attributes: Vec::new(),
        },
    ];

    let mut root = plain_span(0x55, 0x66, "root");
    root.status = Status::Ok;
    root.flags = TraceFlags::SAMPLED | TraceFlags::FIREHOSE;

    let mut spans = vec![server, root];
    for (index, kind) in [SpanKind::Client, SpanKind::Producer, SpanKind::Consumer]
        .into_iter()
        .enumerate()
    {
        let mut span = plain_span(RICH_TRACE, 0x100 + index as u64, kind.as_str());
        span.kind = kind;
        span.parent_span_id = SpanId::from_u64(0x8000_0000_0000_0001);
        spans.push(span);
    }
    spans
}

fn tag(key: &str, value: TagValue) -> Tag {
    Tag {
        key: key.to_owned(),
        value,
    }
}

fn string(key: &str, value: &str) -> Tag {
    tag(key, TagValue::Str(value.to_owned()))
}

/// What [`rich_spans`] must decode to.
pub fn expected_rich_spans() -> Vec<JaegerSpan> {
    let high = (RICH_TRACE >> 64) as u64 as i64;
    let low = RICH_TRACE as u64 as i64;
    let server_id = 0x8000_0000_0000_0001u64 as i64;
    let start = micros(base_time());
    let server = JaegerSpan {
        trace_id_low: low,
        trace_id_high: high,
        span_id: server_id,
        parent_span_id: 0x0102_0304_0506_0708,
        operation_name: "GET /users/{id}".to_owned(),
        references: vec![
            SpanRef {
                ref_type: 0,
                trace_id_low: low,
                trace_id_high: high,
                span_id: 0x0102_0304_0506_0708,
            },
            SpanRef {
                ref_type: 1,
                trace_id_low: 0x11,
                trace_id_high: 0,
                span_id: 0x22,
            },
            SpanRef {
                ref_type: 1,
                trace_id_low: -1,
                trace_id_high: -1,
                span_id: -1,
            },
        ],
        flags: 1 | 2,
        start_time: start,
        duration: 1_834,
        tags: vec![
            string("http.request.method", "GET"),
            tag("http.response.status_code", TagValue::Long(503)),
            tag("retry", TagValue::Bool(true)),
            tag("load", TagValue::Double(0.75)),
            tag("negative", TagValue::Long(-7)),
            string("tags", r#"["a\"b","c"]"#),
            string("ports", "[80,443]"),
            string("flags", "[true,false]"),
            string("ratios", "[0.5,2]"),
            string("url.path", "/ünï/42 ✓"),
            string("user_agent.original", &"ö".repeat(30)),
            string("http.route", "/ünï/{id}"),
            string("empty", ""),
            string("span.kind", "server"),
            string("otel.status_code", "ERROR"),
            tag("error", TagValue::Bool(true)),
            string("otel.status_description", "database unavailable"),
            string("jaeger-debug-id", "corr-42"),
            string("w3c.tracestate", "vendor=abc,other=1"),
        ],
        logs: vec![
            Log {
                timestamp: start + 700,
                fields: vec![
                    string("event", "retrying"),
                    tag("attempt", TagValue::Long(2)),
                    string("reason", "timeout"),
                ],
            },
            Log {
                timestamp: start + 1_800,
                fields: vec![string("event", "gave up")],
            },
        ],
    };
    let root = JaegerSpan {
        trace_id_low: 0x55,
        trace_id_high: 0,
        span_id: 0x66,
        parent_span_id: 0,
        operation_name: "root".to_owned(),
        references: Vec::new(),
        flags: 1 | 8,
        start_time: start,
        duration: 250,
        tags: vec![string("otel.status_code", "OK")],
        logs: Vec::new(),
    };
    let mut spans = vec![server, root];
    for (index, kind) in ["client", "producer", "consumer"].into_iter().enumerate() {
        spans.push(JaegerSpan {
            trace_id_low: low,
            trace_id_high: high,
            span_id: 0x100 + index as i64,
            parent_span_id: server_id,
            operation_name: kind.to_owned(),
            references: vec![SpanRef {
                ref_type: 0,
                trace_id_low: low,
                trace_id_high: high,
                span_id: server_id,
            }],
            flags: 1,
            start_time: start,
            duration: 250,
            tags: vec![string("span.kind", kind)],
            logs: Vec::new(),
        });
    }
    spans
}

/// Checks the process of a batch from a `Resource::new(service)` with `deployment.environment`
/// set to `test`: the Jaeger client tags first, then the resource's attributes.
pub fn assert_process(process: &Process, service: &str) {
    assert_eq!(process.service_name, service);
    let get = |key: &str| {
        process
            .tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.clone())
            .unwrap_or_else(|| panic!("process tag {key} in {:?}", process.tags))
    };
    let keys: Vec<&str> = process.tags.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(
        keys[..4],
        ["jaeger.version", "hostname", "ip", "client-uuid"],
        "{keys:?}"
    );
    match get("jaeger.version") {
        TagValue::Str(version) => assert!(version.starts_with("tracewire-rust-"), "{version}"),
        other => panic!("jaeger.version {other:?}"),
    }
    assert_eq!(get("ip"), TagValue::Str("127.0.0.1".to_owned()));
    assert_eq!(get("hostname"), get("host.name"));
    match get("client-uuid") {
        TagValue::Str(uuid) => assert_eq!(uuid.len(), 36, "{uuid}"),
        other => panic!("client-uuid {other:?}"),
    }
    assert_eq!(
        get("telemetry.sdk.name"),
        TagValue::Str("tracewire".to_owned())
    );
    assert_eq!(
        get("deployment.environment"),
        TagValue::Str("test".to_owned())
    );
}
