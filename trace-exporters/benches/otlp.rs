//! OTLP encoding throughput for a typical server span (10 attributes, 1 event), protobuf and JSON,
//! in batches of 512 into a reused buffer, as the exporters do.
//!
//! `cargo bench -p trace-exporters --bench otlp` — throughput is reported in spans (elements)/s.

#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use trace_core::{
    Event, KeyValue, Span, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use trace_exporters::Resource;
use trace_exporters::otlp::OtlpEncoder;

const BATCH: usize = 512;

fn server_span(route: &Arc<str>, index: u64) -> Span {
    Span {
        name: "GET /users/{id}".into(),
        kind: SpanKind::Server,
        trace_id: TraceId::random(),
        span_id: SpanId::random(),
        parent_span_id: SpanId::from_u64(index + 1),
        flags: TraceFlags::SAMPLED,
        trace_state: TraceState::EMPTY,
        debug_id: None,
        start_time: SystemTime::now(),
        duration: Duration::from_micros(850 + index),
        status: Status::Unset,
        attributes: vec![
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
        ],
        events: vec![Event {
            name: "response.first_byte".into(),
            time: SystemTime::now(),
            attributes: vec![KeyValue::new("bytes", 512_i64)],
        }],
        links: Vec::new(),
    }
}

fn encode(c: &mut Criterion) {
    let route: Arc<str> = Arc::from("/users/{id}");
    let spans: Vec<Span> = (0..BATCH as u64).map(|i| server_span(&route, i)).collect();
    let resource = Resource::new("bench").with_attribute("service.version", "1.0.0");
    let mut encoder = OtlpEncoder::new(&resource);
    let mut buf = Vec::new();

    let mut group = c.benchmark_group("otlp_encode_server_span");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("protobuf", |b| {
        b.iter(|| {
            buf.clear();
            encoder.encode_protobuf(black_box(&spans), &mut buf);
            black_box(buf.len())
        })
    });
    group.bench_function("json", |b| {
        b.iter(|| {
            buf.clear();
            encoder
                .encode_json(black_box(&spans), &mut buf)
                .expect("JSON into a Vec");
            black_box(buf.len())
        })
    });
    group.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
