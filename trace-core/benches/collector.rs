//! The in-memory collector's `collect`, which runs on the request path: into a full store, so
//! that every span also evicts one (the steady state of a busy process). Each iteration makes a
//! realistic server span and collects it; `collector/make_and_drop_only` measures making and
//! dropping the span alone, to subtract.
//!
//! Run with `cargo bench -p trace-core --bench collector`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use trace_core::{
    Collector, InMemoryCollector, KeyValue, Span, SpanId, SpanKind, Status, TraceFlags, TraceId,
    TraceState,
};

/// A server span as the HTTP layer records it: a dozen attributes, shared service and route.
fn server_span(trace_id: TraceId, parent: Option<SpanId>) -> Span {
    let service: Arc<str> = "checkout".into();
    let route: Arc<str> = "/users/{id}".into();
    Span {
        name: "GET /users/{id}".into(),
        kind: SpanKind::Server,
        trace_id,
        span_id: SpanId::random(),
        parent_span_id: parent,
        flags: TraceFlags::SAMPLED,
        trace_state: TraceState::default(),
        debug_id: None,
        start_time: SystemTime::now(),
        duration: Duration::from_micros(250),
        status: Status::Unset,
        attributes: vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.route", route),
            KeyValue::new("url.path", "/users/42".to_owned()),
            KeyValue::new("url.scheme", "http"),
            KeyValue::new("server.address", "127.0.0.1".to_owned()),
            KeyValue::new("server.port", 8080_i64),
            KeyValue::new("network.protocol.version", "1.1"),
            KeyValue::new("user_agent.original", "bench/1.0".to_owned()),
            KeyValue::new("client.address", "127.0.0.1".to_owned()),
            KeyValue::new("service.name", service),
            KeyValue::new("http.response.status_code", 200_i64),
            KeyValue::new("http.response.body.size", 512_i64),
        ],
        events: Vec::new(),
        links: Vec::new(),
        dropped: Default::default(),
    }
}

/// Spans of traces of three spans each.
fn span_source() -> impl FnMut() -> Span {
    let mut n = 0_u64;
    let mut trace_id = TraceId::random();
    move || {
        if n.is_multiple_of(3) {
            trace_id = TraceId::random();
        }
        n += 1;
        server_span(trace_id, Some(SpanId::random()))
    }
}

fn collect(c: &mut Criterion) {
    let mut next = span_source();
    c.bench_function("collector/make_and_drop_only", |b| b.iter(|| drop(next())));
    for (name, store) in [
        (
            "collector/collect_full_spans_only",
            InMemoryCollector::new(10_000),
        ),
        (
            "collector/collect_full_all_bounds",
            InMemoryCollector::builder()
                .max_spans(10_000)
                .max_traces(2_000)
                .max_spans_per_trace(100)
                .build(),
        ),
    ] {
        // The store starts full.
        let mut next = span_source();
        for _ in 0..12_000 {
            store.collect(next());
        }
        c.bench_function(name, |b| b.iter(|| store.collect(next())));
    }
}

criterion_group!(benches, collect);
criterion_main!(benches);
