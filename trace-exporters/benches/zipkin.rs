//! Zipkin v2 JSON encoding of a batch of typical HTTP server spans.
//!
//! Run with `cargo bench -p trace-exporters --bench zipkin`. The per-span figure is the batch's
//! time divided by [`BATCH`]; the design budget for encoding and sending is 350 ns a span.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use trace_core::{KeyValue, Span, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use trace_exporters::Resource;
use trace_exporters::zipkin::ZipkinExporter;

const BATCH: usize = 512;

/// A server span with the attributes the HTTP layer records.
fn http_server_span(index: u64) -> Span {
    let route: Arc<str> = Arc::from("/users/{id}");
    Span {
        name: "GET /users/{id}".into(),
        kind: SpanKind::Server,
        trace_id: TraceId::random(),
        span_id: SpanId::random(),
        parent_span_id: SpanId::from_u64(index + 1),
        flags: TraceFlags::SAMPLED,
        trace_state: TraceState::default(),
        debug_id: None,
        start_time: SystemTime::now(),
        duration: Duration::from_micros(850 + index),
        status: Status::Unset,
        attributes: vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.route", route),
            KeyValue::new("url.path", format!("/users/{index}")),
            KeyValue::new("url.scheme", "http"),
            KeyValue::new("http.response.status_code", 200_i64),
            KeyValue::new("network.protocol.version", "1.1"),
            KeyValue::new("server.address", "api.internal"),
            KeyValue::new("server.port", 8080_i64),
            KeyValue::new("client.address", "10.0.3.17"),
            KeyValue::new("user_agent.original", "curl/8.5.0"),
            KeyValue::new("http.response.body.size", 1432_i64),
            KeyValue::new("http.request.body.size", 0_i64),
        ],
        events: Vec::new(),
        links: Vec::new(),
    }
}

fn encode(c: &mut Criterion) {
    let exporter = ZipkinExporter::builder()
        .resource(Resource::new("checkout"))
        .build()
        .expect("default endpoint");
    let batch: Vec<Span> = (0..BATCH as u64).map(http_server_span).collect();
    let mut body = Vec::with_capacity(1 << 20);
    let mut group = c.benchmark_group("zipkin");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("encode_512_http_server_spans", |b| {
        b.iter(|| {
            body.clear();
            exporter.encode(black_box(&batch), &mut body);
            black_box(body.len())
        })
    });
    group.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
