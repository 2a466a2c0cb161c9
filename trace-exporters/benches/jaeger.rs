//! Thrift encoding throughput for a typical server span (10 attributes, 1 event).
//!
//! `cargo bench -p trace-exporters --bench jaeger`; the target is a million spans a second on
//! one core for the compact protocol.

#![allow(missing_docs)]

mod common;

use std::hint::black_box;

use common::{BATCH, server_spans};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use trace_exporters::jaeger::{ThriftProtocol, encode_span};

fn encode(c: &mut Criterion) {
    let spans = server_spans();
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
