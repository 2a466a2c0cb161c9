//! Thrift encoding throughput for a typical server span (10 attributes, 1 event).
//!
//! `cargo bench -p trace-exporters --bench jaeger`; the target is a million spans a second on
//! one core for the compact protocol.

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use trace_core::{
    Event, KeyValue, Span, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use trace_exporters::jaeger::{ThriftProtocol, encode_span};

const BATCH: usize = 512;

fn server_span(index: u64) -> Span {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_760_000_000);
    Span {
        name: "GET /api/users/{id}".into(),
        kind: SpanKind::Server,
        trace_id: TraceId::from_halves(0x4bf9_2f35_77b3_4da6, index + 1).expect("non-zero"),
        span_id: SpanId::from_u64(0x00f0_67aa_0ba9_0000 + index).expect("non-zero"),
        parent_span_id: SpanId::from_u64(0x1234_5678_9abc_def0),
        flags: TraceFlags::SAMPLED,
        trace_state: TraceState::EMPTY,
        debug_id: None,
        start_time: start,
        duration: Duration::from_micros(1_834),
        status: Status::Unset,
        attributes: vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.route", "/api/users/{id}"),
            KeyValue::new("url.path", "/api/users/42"),
            KeyValue::new("url.scheme", "http"),
            KeyValue::new("http.response.status_code", 200i64),
            KeyValue::new("server.address", "api.internal"),
            KeyValue::new("server.port", 8080i64),
            KeyValue::new("client.address", "10.1.2.3"),
            KeyValue::new("user_agent.original", "curl/8.5.0"),
            KeyValue::new("network.protocol.version", "1.1"),
        ],
        events: vec![Event {
            name: "response headers sent".into(),
            time: start + Duration::from_micros(1_500),
            attributes: vec![KeyValue::new("http.response.body.size", 512i64)],
        }],
        links: Vec::new(),
    }
}

fn encode(c: &mut Criterion) {
    let spans: Vec<Span> = (0..BATCH as u64).map(server_span).collect();
    let mut group = c.benchmark_group("jaeger_encode");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, protocol) in [
        ("compact", ThriftProtocol::Compact),
        ("binary", ThriftProtocol::Binary),
    ] {
        let mut buffer = Vec::with_capacity(1 << 20);
        group.bench_function(name, |b| {
            b.iter(|| {
                buffer.clear();
                for span in &spans {
                    encode_span(protocol, black_box(span), &mut buffer);
                }
                black_box(buffer.len())
            });
        });
    }
    group.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
