//! OTLP encoding throughput for a typical server span (10 attributes, 1 event), protobuf and JSON,
//! in batches of 512 into a reused buffer, as the exporters do; and the span the tower layer
//! records (`otlp_encode_layer_span`: 13 attributes, short strings inline).
//!
//! `cargo bench -p trace-exporters --bench otlp` — throughput is reported in spans (elements)/s.

#![allow(missing_docs)]

mod common;

use std::hint::black_box;

use common::{BATCH, layer_server_spans, server_spans};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use trace_exporters::Resource;
use trace_exporters::otlp::OtlpEncoder;

fn encode(c: &mut Criterion) {
    let resource = Resource::new("bench").with_attribute("service.version", "1.0.0");
    let mut encoder = OtlpEncoder::new(&resource);
    let mut buf = Vec::new();
    // A typical server span, and the span the tower layer records today (short strings inline):
    // what the load benchmark's server exports.
    for (group, spans) in [
        ("otlp_encode_server_span", server_spans()),
        ("otlp_encode_layer_span", layer_server_spans()),
    ] {
        let mut group = c.benchmark_group(group);
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
}

criterion_group!(benches, encode);
criterion_main!(benches);
