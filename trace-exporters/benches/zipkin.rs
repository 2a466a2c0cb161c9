//! Zipkin v2 JSON encoding of a batch of typical HTTP server spans.
//!
//! Run with `cargo bench -p trace-exporters --bench zipkin`. The per-span figure is the batch's
//! time divided by [`BATCH`]; the design budget for encoding and sending is 350 ns a span.

mod common;

use std::hint::black_box;

use common::{BATCH, server_spans};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use trace_exporters::Resource;
use trace_exporters::zipkin::ZipkinExporter;

fn encode(c: &mut Criterion) {
    let exporter = ZipkinExporter::builder()
        .resource(Resource::new("checkout"))
        .build()
        .expect("default endpoint");
    let batch = server_spans();
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
