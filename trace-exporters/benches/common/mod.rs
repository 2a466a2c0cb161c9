//! The span every exporter benchmark works on, so their figures compare.

#![allow(dead_code)] // Not every benchmark uses every item.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use trace_core::{
    Event, KeyValue, Span, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};

/// Spans in one exported batch (the OpenTelemetry default batch size).
pub(crate) const BATCH: usize = 512;

/// A typical HTTP server span as the tower layer records it: ten attributes with static keys
/// (the route shared, the path owned), one event, random ids; `index` varies the path and the
/// duration.
pub(crate) fn server_span(route: &Arc<str>, index: u64) -> Span {
    let start_time = SystemTime::now();
    let attributes = vec![
        KeyValue::new("http.request.method", "GET"),
        KeyValue::new("http.route", Arc::clone(route)),
        KeyValue::new("url.path", format!("/users/{index}")),
        KeyValue::new("url.scheme", "http"),
        KeyValue::new("http.response.status_code", 200_i64),
        KeyValue::new("server.address", "api.example.com"),
        KeyValue::new("server.port", 8080_i64),
        KeyValue::new("network.protocol.version", "1.1"),
        KeyValue::new("client.address", "10.1.2.3"),
        KeyValue::new("user_agent.original", "curl/8.5.0"),
    ];
    let first_byte = Event {
        name: "response.first_byte".into(),
        time: start_time + Duration::from_micros(700),
        attributes: vec![KeyValue::new("http.response.body.size", 512_i64)],
    };
    get_users_span(start_time, index, attributes, first_byte)
}

/// A batch of [`BATCH`] server spans.
pub(crate) fn server_spans() -> Vec<Span> {
    let route: Arc<str> = Arc::from("/users/{id}");
    (0..BATCH as u64)
        .map(|index| server_span(&route, index))
        .collect()
}

/// An HTTP server span as the tower layer records it since it copies short request strings
/// inline (`StringValue::copied`): fourteen attributes (route, path, host, user agent and client
/// address inline; method, scheme and protocol version static; the rest integers) and one event
/// without attributes.
pub(crate) fn layer_server_span(index: u64) -> Span {
    let start_time = SystemTime::now();
    let copied = |text: &str| trace_core::StringValue::copied(text);
    let attributes = vec![
        KeyValue::new("http.request.method", "GET"),
        KeyValue::new("http.route", copied("/users/{id}")),
        KeyValue::new("url.path", copied(&format!("/users/{index}"))),
        KeyValue::new("url.scheme", "http"),
        KeyValue::new("server.address", copied("127.0.0.1")),
        KeyValue::new("server.port", 8080_i64),
        KeyValue::new("network.protocol.version", "1.1"),
        KeyValue::new("user_agent.original", copied("tracewire-load/1.0")),
        KeyValue::new("client.address", copied("127.0.0.1")),
        KeyValue::new("client.port", 40_000_i64 + (index % 20_000) as i64),
        KeyValue::new("service.name", "bench"),
        KeyValue::new("http.response.status_code", 200_i64),
        KeyValue::new("http.response.body.size", 512_i64),
    ];
    let first_byte = Event {
        name: "first byte sent".into(),
        time: start_time + Duration::from_micros(700),
        attributes: Vec::new(),
    };
    get_users_span(start_time, index, attributes, first_byte)
}

/// A sampled server span `GET /users/{id}` with random ids, started at `start_time`, lasting
/// 850 µs plus `index` modulo 1000, with these attributes and one event.
fn get_users_span(
    start_time: SystemTime,
    index: u64,
    attributes: Vec<KeyValue>,
    event: Event,
) -> Span {
    Span {
        name: "GET /users/{id}".into(),
        kind: SpanKind::Server,
        trace_id: TraceId::random(),
        span_id: SpanId::random(),
        parent_span_id: Some(SpanId::random()),
        flags: TraceFlags::SAMPLED,
        trace_state: TraceState::EMPTY,
        debug_id: None,
        start_time,
        duration: Duration::from_micros(850 + index % 1000),
        status: Status::Unset,
        attributes,
        events: vec![event],
        links: Vec::new(),
        dropped: Default::default(),
    }
}

/// A batch of [`BATCH`] layer server spans.
pub(crate) fn layer_server_spans() -> Vec<Span> {
    (0..BATCH as u64).map(layer_server_span).collect()
}
