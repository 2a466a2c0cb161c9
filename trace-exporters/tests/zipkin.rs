//! The Zipkin exporter against a loopback receiver; bodies are read back with `serde_json::Value`
//! and checked against the Zipkin v2 model, not against our encoder.
#![cfg(feature = "zipkin")]

mod zipkin_support;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Value as Json, json};
use trace_core::{
    Array, Event, KeyValue, Span, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use trace_exporters::zipkin::ZipkinExporter;
use trace_exporters::{ExportError, Resource, SpanExporter};
use zipkin_support::{GUARD, next, receiver};

/// 2023-11-14T22:13:20.123456Z, in microseconds since the epoch.
const START_MICROS: u64 = 1_700_000_000_123_456;

fn at_micros(micros: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_micros(micros)
}

fn base_span(name: &'static str, kind: SpanKind, trace_id: TraceId, span_id: u64) -> Span {
    Span {
        name: name.into(),
        kind,
        trace_id,
        span_id: SpanId::from_u64(span_id).expect("non-zero"),
        parent_span_id: None,
        flags: TraceFlags::SAMPLED,
        trace_state: TraceState::default(),
        debug_id: None,
        start_time: at_micros(START_MICROS),
        duration: Duration::from_micros(1500) + Duration::from_nanos(700),
        status: Status::Unset,
        attributes: Vec::new(),
        events: Vec::new(),
        links: Vec::new(),
        dropped: Default::default(),
    }
}

/// A server span with a 128-bit trace id, a parent, every kind of attribute, an error status,
/// two events, a debug flag and a debug id.
fn server_span() -> Span {
    let trace_id = TraceId::from_halves(0x4bf9_2f35_77b3_4da6, 0xa3ce_929d_0e0e_4736).expect("id");
    let mut span = base_span(
        "GET /users/{id}",
        SpanKind::Server,
        trace_id,
        0x00f0_67aa_0ba9_02b7,
    );
    span.parent_span_id = SpanId::from_u64(0x0102_0304_0506_0708);
    span.flags = TraceFlags::SAMPLED | TraceFlags::DEBUG;
    span.debug_id = Some(Arc::from("debug-123"));
    span.status = Status::error("upstream timed out");
    span.attributes = vec![
        KeyValue::new("http.request.method", "GET"),
        KeyValue::new("http.response.status_code", 504_i64),
        KeyValue::new("cache.hit", false),
        KeyValue::new("load", 0.25),
        KeyValue::new(
            "tags",
            Array::String(vec!["a".into(), "b\"c".to_owned().into()]),
        ),
        KeyValue::new("client.address", "10.0.0.7"),
        KeyValue::new("client.port", 51_000_i64),
        // The status writes `error`; an attribute with that key gives way.
        KeyValue::new("error", "attribute loses"),
    ];
    span.events = vec![
        Event {
            name: "retry".into(),
            time: at_micros(START_MICROS + 200),
            attributes: Vec::new(),
        },
        Event {
            name: "cache.miss".into(),
            time: at_micros(START_MICROS + 900),
            attributes: vec![
                KeyValue::new("key", "user:7"),
                KeyValue::new("attempt", 2_i64),
            ],
        },
    ];
    span
}

/// A root client span with a 64-bit trace id, peer attributes and an OK status.
fn client_span() -> Span {
    let trace_id = TraceId::from_halves(0, 0x0000_0000_00ab_cdef).expect("id");
    let mut span = base_span("GET", SpanKind::Client, trace_id, 0x0a0b_0c0d_0e0f_1011);
    span.status = Status::Ok;
    span.attributes = vec![
        KeyValue::new("peer.service", "inventory"),
        KeyValue::new("network.peer.address", "192.168.1.2"),
        KeyValue::new("server.port", 8080_i64),
    ];
    span
}

/// An internal span lasting less than a microsecond, with a repeated attribute.
fn internal_span() -> Span {
    let trace_id = TraceId::from_halves(1, 2).expect("id");
    let mut span = base_span("compute", SpanKind::Internal, trace_id, 7);
    span.duration = Duration::from_nanos(300);
    span.attributes = vec![KeyValue::new("step", 1_i64), KeyValue::new("step", 2_i64)];
    span
}

fn producer_and_consumer() -> [Span; 2] {
    let trace_id = TraceId::from_halves(3, 4).expect("id");
    let mut producer = base_span("publish", SpanKind::Producer, trace_id, 8);
    producer.attributes = vec![
        KeyValue::new("server.address", "broker.internal"),
        KeyValue::new("server.port", "5672"),
    ];
    let consumer = base_span("receive", SpanKind::Consumer, trace_id, 9);
    [producer, consumer]
}

#[tokio::test]
async fn posts_zipkin_v2_json() {
    let (address, mut received) = receiver().await;
    let mut exporter = ZipkinExporter::builder()
        .endpoint(format!("http://{address}/api/v2/spans"))
        .resource(Resource::new("checkout").with_attribute("service.version", "1.2.3"))
        .local_address(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)))
        .build()
        .expect("exporter");
    assert_eq!(exporter.kind(), "zipkin");

    // An empty batch sends nothing: the first request to arrive carries the next batch.
    let outcome = exporter.export(&[]).await.expect("empty batch");
    assert_eq!(outcome.dropped, 0);

    let [producer, consumer] = producer_and_consumer();
    let batch = [
        server_span(),
        client_span(),
        internal_span(),
        producer,
        consumer,
    ];
    let outcome = tokio::time::timeout(GUARD, exporter.export(&batch))
        .await
        .expect("export within the guard")
        .expect("accepted");
    assert_eq!(outcome.dropped, 0);

    let request = next(&mut received).await;
    assert_eq!(request.content_type.as_deref(), Some("application/json"));
    let body: Json = serde_json::from_slice(&request.body).expect("JSON body");
    let spans = body.as_array().expect("an array of spans");
    assert_eq!(spans.len(), 5);
    for span in spans {
        for id_field in ["id", "parentId"] {
            if let Some(id) = span.get(id_field) {
                let id = id.as_str().expect("string id");
                assert!(
                    id.len() == 16
                        && id
                            .bytes()
                            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                    "{id_field} {id}"
                );
            }
        }
        assert!(span.get("shared").is_none());
        assert_eq!(
            span["localEndpoint"],
            json!({ "serviceName": "checkout", "ipv4": "10.1.2.3" })
        );
    }

    let server = &spans[0];
    assert_eq!(server["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(server["id"], "00f067aa0ba902b7");
    assert_eq!(server["parentId"], "0102030405060708");
    assert_eq!(server["name"], "GET /users/{id}");
    assert_eq!(server["kind"], "SERVER");
    assert_eq!(server["timestamp"], START_MICROS);
    assert_eq!(server["duration"], 1500);
    assert_eq!(server["debug"], true);
    assert_eq!(
        server["remoteEndpoint"],
        json!({ "ipv4": "10.0.0.7", "port": 51000 })
    );
    assert_eq!(
        server["tags"],
        json!({
            "http.request.method": "GET",
            "http.response.status_code": "504",
            "cache.hit": "false",
            "load": "0.25",
            "tags": "[\"a\",\"b\\\"c\"]",
            "client.address": "10.0.0.7",
            "client.port": "51000",
            "otel.status_code": "ERROR",
            "error": "upstream timed out",
            "jaeger-debug-id": "debug-123",
        })
    );
    let annotations = server["annotations"].as_array().expect("annotations");
    assert_eq!(annotations.len(), 2);
    assert_eq!(
        annotations[0],
        json!({ "timestamp": START_MICROS + 200, "value": "retry" })
    );
    assert_eq!(annotations[1]["timestamp"], START_MICROS + 900);
    let value = annotations[1]["value"].as_str().expect("string value");
    let (name, attributes) = value.split_once(' ').expect("name, then attributes");
    assert_eq!(name, "cache.miss");
    let attributes: Json = serde_json::from_str(attributes).expect("attributes as JSON");
    assert_eq!(attributes, json!({ "key": "user:7", "attempt": 2 }));

    let client = &spans[1];
    assert_eq!(
        client["traceId"], "0000000000abcdef",
        "64-bit trace id as 16 digits"
    );
    assert!(client.get("parentId").is_none());
    assert_eq!(client["kind"], "CLIENT");
    assert!(client.get("debug").is_none());
    assert!(client.get("annotations").is_none());
    assert_eq!(
        client["remoteEndpoint"],
        json!({ "serviceName": "inventory", "ipv4": "192.168.1.2", "port": 8080 })
    );
    assert_eq!(client["tags"]["otel.status_code"], "OK");
    assert!(client["tags"].get("error").is_none());

    let internal = &spans[2];
    assert_eq!(internal["traceId"], "00000000000000010000000000000002");
    assert!(
        internal.get("kind").is_none(),
        "internal spans carry no kind"
    );
    assert!(internal.get("remoteEndpoint").is_none());
    assert_eq!(internal["duration"], 1, "at least one microsecond");
    assert_eq!(
        internal["tags"],
        json!({ "step": "2" }),
        "the last value of a repeated key"
    );

    let producer = &spans[3];
    assert_eq!(producer["kind"], "PRODUCER");
    assert_eq!(
        producer["remoteEndpoint"],
        json!({ "serviceName": "broker.internal", "port": 5672 })
    );
    let consumer = &spans[4];
    assert_eq!(consumer["kind"], "CONSUMER");
    assert!(consumer.get("remoteEndpoint").is_none());
    assert!(
        consumer.get("tags").is_none(),
        "no attributes, no status: no tags"
    );

    exporter.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn unavailable_is_retryable_and_bad_request_is_not() {
    let (address, _received) = receiver().await;
    let batch = [client_span()];

    let mut busy = ZipkinExporter::builder()
        .endpoint(format!("http://{address}/busy"))
        .build()
        .expect("exporter");
    let error = tokio::time::timeout(GUARD, busy.export(&batch))
        .await
        .expect("within the guard")
        .expect_err("503");
    assert!(matches!(error, ExportError::Retryable { .. }), "{error}");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(2)));

    let mut bad = ZipkinExporter::builder()
        .endpoint(format!("http://{address}/bad"))
        .build()
        .expect("exporter");
    let error = tokio::time::timeout(GUARD, bad.export(&batch))
        .await
        .expect("within the guard")
        .expect_err("400");
    assert!(!error.is_retryable(), "{error}");
    assert!(error.to_string().contains("400"), "{error}");
}

#[test]
fn endpoints_are_checked_and_defaulted() {
    let exporter = ZipkinExporter::builder().build().expect("default endpoint");
    assert_eq!(exporter.endpoint(), "http://localhost:9411/api/v2/spans");
    for bad in [
        "localhost:9411",
        "ftp://zipkin/api/v2/spans",
        "/api/v2/spans",
    ] {
        let error = ZipkinExporter::builder()
            .endpoint(bad)
            .build()
            .expect_err("not an http URL");
        assert!(error.to_string().contains(bad), "{error}");
    }
}

#[test]
fn the_local_endpoint_takes_the_default_service_name() {
    let exporter = ZipkinExporter::builder().build().expect("exporter");
    let mut body = Vec::new();
    exporter.encode(&[internal_span()], &mut body);
    let spans: Json = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(
        spans[0]["localEndpoint"],
        json!({ "serviceName": "unknown_service" })
    );
}

/// What a span's limits dropped goes out as `otel.dropped_*_count` tags (strings, as every
/// Zipkin tag), each only when not zero, replacing an attribute of the same key.
#[test]
fn dropped_counts_become_tags_when_not_zero() {
    let exporter = ZipkinExporter::builder().build().expect("exporter");
    let mut span = internal_span();
    span.attributes.push(trace_core::KeyValue::new(
        "otel.dropped_events_count",
        "stale",
    ));
    span.dropped = trace_core::DroppedCounts {
        attributes: 0,
        events: 300,
        links: 2,
    };
    let mut body = Vec::new();
    exporter.encode(&[internal_span(), span], &mut body);
    let spans: Json = serde_json::from_slice(&body).expect("JSON");
    assert!(
        spans[0]["tags"]
            .as_object()
            .is_none_or(|tags| tags.keys().all(|key| !key.starts_with("otel.dropped"))),
        "{}",
        spans[0]
    );
    let text = String::from_utf8_lossy(&body);
    assert_eq!(
        text.matches("\"otel.dropped_events_count\"").count(),
        1,
        "one tag, not the attribute beside it: {text}"
    );
    assert_eq!(spans[1]["tags"]["otel.dropped_events_count"], "300");
    assert_eq!(spans[1]["tags"]["otel.dropped_links_count"], "2");
    assert!(
        spans[1]["tags"]
            .get("otel.dropped_attributes_count")
            .is_none()
    );
}
