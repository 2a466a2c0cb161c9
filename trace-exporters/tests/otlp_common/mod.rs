//! Spans to export and what an independent OTLP decoder must find in them, shared by the OTLP
//! tests. The expectations are literal `opentelemetry-proto` messages, written by hand from the
//! spans below, never produced by our encoder.

#![allow(dead_code, unreachable_pub)]

// Its server accepts gzip, which tonic offers only with the `otlp-grpc` feature.
#[cfg(feature = "otlp-grpc")]
pub mod grpc_receiver;
pub mod http_receiver;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, KeyValue as ProtoKeyValue, any_value,
};
use opentelemetry_proto::tonic::trace::v1::{Span as ProtoSpan, Status as ProtoStatus, span};
use trace_core::Collector;
use trace_core::{
    Array, Event, KeyValue, Link, Span, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use trace_exporters::{
    BatchExporter, EncodedSpans, ExportResult, Resource, SDK_VERSION, ShutdownReport, SpanExporter,
};

/// Generous guard against a hung test; never what a test measures.
pub const GUARD: Duration = Duration::from_secs(10);

pub const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
pub const SPAN_ID: &str = "00f067aa0ba902b7";
pub const PARENT_ID: &str = "53995c3f42cd8ad8";
pub const CHILD_ID: &str = "a3ce929d0e0e4736";
pub const LINKED_TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
pub const LINKED_SPAN_ID: &str = "b7ad6b7169203331";

/// 2024-05-01T12:00:00Z plus 123456789 ns.
pub const START_NANOS: u64 = 1_714_564_800_123_456_789;

fn time(nanos: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos)
}

fn trace_id(hex: &str) -> TraceId {
    TraceId::from_hex(hex.as_bytes()).expect("test trace id")
}

fn span_id(hex: &str) -> SpanId {
    SpanId::from_hex(hex.as_bytes()).expect("test span id")
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The resource the tests export with.
pub fn resource() -> Resource {
    Resource::new("checkout")
        .with_attribute("service.version", "1.4.2")
        .with_attribute("deployment.environment", "test")
}

/// A server span with a remote parent, every attribute type, an event, a link, trace state, an
/// error status and flags with bits OTLP must not see (debug); and a minimal internal child.
pub fn spans() -> Vec<Span> {
    let server = Span {
        name: "GET /users/{id}".into(),
        kind: SpanKind::Server,
        trace_id: trace_id(TRACE_ID),
        span_id: span_id(SPAN_ID),
        parent_span_id: Some(span_id(PARENT_ID)),
        flags: TraceFlags::SAMPLED | TraceFlags::RANDOM | TraceFlags::DEBUG,
        trace_state: "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
            .parse::<TraceState>()
            .expect("test trace state"),
        debug_id: None,
        start_time: time(START_NANOS),
        duration: Duration::from_micros(1_500),
        status: Status::error("upstream \"db\" timed out\n"),
        attributes: vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.route", String::from("/users/{id}")),
            KeyValue::new("http.response.status_code", 504_i64),
            KeyValue::new("retry.count", -3_i64),
            KeyValue::new("sampled.ratio", 0.25_f64),
            KeyValue::new("cache.hit", false),
            KeyValue::new("empty", ""),
            KeyValue::new("tags", Array::String(vec!["a".into(), "ü\"b".into()])),
            KeyValue::new("codes", Array::I64(vec![1, -2, i64::MAX])),
            KeyValue::new("weights", Array::F64(vec![0.5, -1.25])),
            KeyValue::new("flags", Array::Bool(vec![true, false])),
            // Strings held inline (as the tower layer records short ones) and shared.
            KeyValue::new("url.path", trace_core::StringValue::copied("/users/ünï ✓")),
            KeyValue::new(
                "server.address",
                std::sync::Arc::<str>::from("api.ünï.example"),
            ),
            KeyValue::new(
                "inline.tags",
                Array::String(vec![trace_core::StringValue::copied("é")]),
            ),
        ],
        events: vec![Event {
            name: "exception".into(),
            time: time(START_NANOS + 1_000_000),
            attributes: vec![
                KeyValue::new("exception.type", "Timeout"),
                KeyValue::new("exception.escaped", true),
            ],
        }],
        links: vec![Link {
            trace_id: trace_id(LINKED_TRACE_ID),
            span_id: span_id(LINKED_SPAN_ID),
            trace_state: "vendor=x".parse::<TraceState>().expect("link trace state"),
            attributes: vec![KeyValue::new("link.kind", "follows")],
        }],
        dropped: Default::default(),
    };
    let child = Span {
        name: "render".into(),
        kind: SpanKind::Client,
        trace_id: trace_id(TRACE_ID),
        span_id: span_id(CHILD_ID),
        parent_span_id: Some(span_id(SPAN_ID)),
        flags: TraceFlags::SAMPLED,
        trace_state: TraceState::EMPTY,
        debug_id: None,
        start_time: time(START_NANOS + 10),
        duration: Duration::from_nanos(20),
        status: Status::Ok,
        attributes: Vec::new(),
        events: Vec::new(),
        links: Vec::new(),
        dropped: Default::default(),
    };
    let root = Span {
        name: "background job".into(),
        kind: SpanKind::Internal,
        trace_id: trace_id(LINKED_TRACE_ID),
        span_id: span_id(LINKED_SPAN_ID),
        parent_span_id: None,
        flags: TraceFlags::EMPTY,
        trace_state: TraceState::EMPTY,
        debug_id: None,
        start_time: time(START_NANOS),
        duration: Duration::ZERO,
        status: Status::Unset,
        attributes: Vec::new(),
        events: Vec::new(),
        links: Vec::new(),
        dropped: Default::default(),
    };
    vec![server, child, root]
}

fn string(value: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(value.to_owned())),
    }
}

fn int(value: i64) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::IntValue(value)),
    }
}

fn double(value: f64) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::DoubleValue(value)),
    }
}

fn boolean(value: bool) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::BoolValue(value)),
    }
}

fn array(values: Vec<AnyValue>) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::ArrayValue(ArrayValue { values })),
    }
}

fn kv(key: &str, value: AnyValue) -> ProtoKeyValue {
    ProtoKeyValue {
        key: key.to_owned(),
        value: Some(value),
        ..Default::default()
    }
}

/// What a collector must decode for [`spans`], written out by hand.
pub fn expected_spans() -> Vec<ProtoSpan> {
    let server = ProtoSpan {
        trace_id: hex_bytes(TRACE_ID),
        span_id: hex_bytes(SPAN_ID),
        trace_state: "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7".to_owned(),
        parent_span_id: hex_bytes(PARENT_ID),
        // W3C sampled + random; the debug bit is tracewire's own.
        flags: 0b11,
        name: "GET /users/{id}".to_owned(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: START_NANOS,
        end_time_unix_nano: START_NANOS + 1_500_000,
        attributes: vec![
            kv("http.request.method", string("GET")),
            kv("http.route", string("/users/{id}")),
            kv("http.response.status_code", int(504)),
            kv("retry.count", int(-3)),
            kv("sampled.ratio", double(0.25)),
            kv("cache.hit", boolean(false)),
            kv("empty", string("")),
            kv("tags", array(vec![string("a"), string("ü\"b")])),
            kv("codes", array(vec![int(1), int(-2), int(i64::MAX)])),
            kv("weights", array(vec![double(0.5), double(-1.25)])),
            kv("flags", array(vec![boolean(true), boolean(false)])),
            kv("url.path", string("/users/ünï ✓")),
            kv("server.address", string("api.ünï.example")),
            kv("inline.tags", array(vec![string("é")])),
        ],
        dropped_attributes_count: 0,
        events: vec![span::Event {
            time_unix_nano: START_NANOS + 1_000_000,
            name: "exception".to_owned(),
            attributes: vec![
                kv("exception.type", string("Timeout")),
                kv("exception.escaped", boolean(true)),
            ],
            dropped_attributes_count: 0,
        }],
        dropped_events_count: 0,
        links: vec![span::Link {
            trace_id: hex_bytes(LINKED_TRACE_ID),
            span_id: hex_bytes(LINKED_SPAN_ID),
            trace_state: "vendor=x".to_owned(),
            attributes: vec![kv("link.kind", string("follows"))],
            dropped_attributes_count: 0,
            flags: 0,
        }],
        dropped_links_count: 0,
        status: Some(ProtoStatus {
            message: "upstream \"db\" timed out\n".to_owned(),
            code: opentelemetry_proto::tonic::trace::v1::status::StatusCode::Error as i32,
        }),
    };
    let child = ProtoSpan {
        trace_id: hex_bytes(TRACE_ID),
        span_id: hex_bytes(CHILD_ID),
        parent_span_id: hex_bytes(SPAN_ID),
        flags: 0b01,
        name: "render".to_owned(),
        kind: span::SpanKind::Client as i32,
        start_time_unix_nano: START_NANOS + 10,
        end_time_unix_nano: START_NANOS + 30,
        status: Some(ProtoStatus {
            message: String::new(),
            code: opentelemetry_proto::tonic::trace::v1::status::StatusCode::Ok as i32,
        }),
        ..Default::default()
    };
    let root = ProtoSpan {
        trace_id: hex_bytes(LINKED_TRACE_ID),
        span_id: hex_bytes(LINKED_SPAN_ID),
        flags: 0,
        name: "background job".to_owned(),
        kind: span::SpanKind::Internal as i32,
        start_time_unix_nano: START_NANOS,
        end_time_unix_nano: START_NANOS,
        ..Default::default()
    };
    vec![server, child, root]
}

/// A decoded attribute value in a form that is easy to compare.
fn plain(value: Option<&AnyValue>) -> String {
    match value.and_then(|value| value.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        other => format!("{other:?}"),
    }
}

/// Checks a decoded request against [`spans`] and [`resource`]: one resource with the service
/// name, host name, SDK and user attributes, one `tracewire` scope, and the spans field by field.
pub fn assert_request(request: &ExportTraceServiceRequest) {
    assert_eq!(request.resource_spans.len(), 1, "one resource");
    let resource_spans = &request.resource_spans[0];
    let attributes: BTreeMap<String, String> = resource_spans
        .resource
        .as_ref()
        .expect("a resource")
        .attributes
        .iter()
        .map(|kv| (kv.key.clone(), plain(kv.value.as_ref())))
        .collect();
    let host = gethostname_for_tests();
    let expected: BTreeMap<String, String> = [
        ("service.name", "checkout"),
        ("service.version", "1.4.2"),
        ("deployment.environment", "test"),
        ("host.name", host.as_str()),
        ("telemetry.sdk.name", "tracewire"),
        ("telemetry.sdk.language", "rust"),
        ("telemetry.sdk.version", SDK_VERSION),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(attributes, expected);

    assert_eq!(resource_spans.scope_spans.len(), 1, "one scope");
    let scope_spans = &resource_spans.scope_spans[0];
    let scope = scope_spans.scope.as_ref().expect("a scope");
    assert_eq!(scope.name, "tracewire");
    assert_eq!(scope.version, SDK_VERSION);
    let expected = expected_spans();
    assert_eq!(scope_spans.spans.len(), expected.len());
    for (got, want) in scope_spans.spans.iter().zip(&expected) {
        assert_eq!(got, want, "span {}", want.name);
    }
}

/// The host name as the resource reports it.
fn gethostname_for_tests() -> String {
    match Resource::new("x").attribute("host.name") {
        Some(trace_core::Value::String(s)) => s.as_str().to_owned(),
        other => panic!("host.name missing: {other:?}"),
    }
}

/// A file path unique to this test process and `name`, in the system's temporary directory.
pub fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tracewire-otlp-{}-{name}", std::process::id()))
}

/// A minimal sampled span whose span id is `index + 1` (trace id too), to tell spans apart at
/// the receiver.
pub fn numbered_span(index: u64) -> Span {
    let mut span = spans().pop().expect("the minimal root span");
    span.name = format!("job {index}").into();
    span.trace_id = TraceId::from_u128(u128::from(index) + 1).expect("non-zero trace id");
    span.span_id = SpanId::from_u64(index + 1).expect("non-zero span id");
    span.flags = TraceFlags::SAMPLED;
    span
}

/// Exports [`spans`] with `exporter`, within [`GUARD`].
/// The test spans written one by one by `exporter`'s span encoder, sent as one batch of
/// encoded spans.
pub async fn export_encoded(exporter: &mut (impl SpanExporter + ?Sized)) -> ExportResult {
    let encode = exporter
        .span_encoder()
        .expect("the exporter offers a span encoder");
    let mut batch = EncodedSpans::new();
    for span in spans() {
        let mut bytes = Vec::new();
        encode(&span, &mut bytes);
        batch.push_span(&bytes);
    }
    tokio::time::timeout(GUARD, exporter.export_encoded(&batch))
        .await
        .expect("the export finishes")
}

/// The test spans collected, in order, by a batch pipeline around `exporter`, and sent by its
/// shutdown: the path a service's spans take.
pub async fn export_through_pipeline(exporter: impl SpanExporter) -> ShutdownReport {
    let pipeline = BatchExporter::builder(exporter)
        .scheduled_delay(GUARD)
        .build();
    for span in spans() {
        pipeline.collect(span);
    }
    pipeline.shutdown(GUARD).await
}

pub async fn export(exporter: &mut (impl SpanExporter + ?Sized)) -> ExportResult {
    let batch = spans();
    tokio::time::timeout(GUARD, exporter.export(&batch))
        .await
        .expect("the export finishes")
}
