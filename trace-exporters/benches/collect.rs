//! What `BatchExporter::collect` costs the request path, and how fast the export task takes
//! spans off the queue.
//!
//! - `collect/server_span`: one typical server span (`common::server_span`: ten attributes, one
//!   event) handed to a pipeline whose exporter discards. Spans are moved in, so they are made
//!   outside the timed part (`iter_batched`); the queue is large enough that none is dropped
//!   (the run says so at the end), and the export task runs on its own thread.
//! - `collect/queue_full`: the same span refused by a full queue: the drop path, including
//!   freeing the span on the caller's thread.
//! - `handoff/spans`: 10,000 spans collected and then exported (`force_flush`) end to end,
//!   as spans per second.
//! - `collect/server_span_otlp_encoded`: `collect/server_span` for an exporter with the OTLP
//!   protobuf span encoder, which the pipeline runs inside `collect`.
//! - `handoff/otlp_spans` and `handoff/otlp_encoded`: `handoff/spans` with the OTLP protobuf
//!   encoding done where each path does it: by the export task for a whole batch of queued
//!   spans, or by `collect` span by span (the export task then only copies the bytes into one
//!   request). Spans freed on the export task's thread in the first, on the collecting one in
//!   the second.
//!
//! Run with `cargo bench -p trace-exporters --bench collect`. Target for `collect/server_span`:
//! at most 100 ns.

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::server_span;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use trace_core::{Collector, Span};
use trace_exporters::otlp::{OtlpEncoder, OtlpHttpExporter};
use trace_exporters::{
    BatchExporter, EncodedSpans, ExportFuture, ExportOutcome, Resource, SpanEncodeFn, SpanExporter,
};

/// Counts and discards.
#[derive(Debug, Clone, Default)]
struct Discard(Arc<AtomicU64>);

impl SpanExporter for Discard {
    fn kind(&self) -> &'static str {
        "discard"
    }

    fn export<'a>(&'a mut self, batch: &'a [Span]) -> ExportFuture<'a> {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Box::pin(async { Ok(ExportOutcome::delivered()) })
    }
}

/// Encodes each batch as OTLP protobuf, either from spans or from spans encoded as they were
/// collected, and discards the request.
#[derive(Debug)]
struct OtlpDiscard {
    encoder: OtlpEncoder,
    /// The OTLP exporter's span encoder, when the pipeline is to use it.
    span_encoder: Option<SpanEncodeFn>,
    body: Vec<u8>,
    exported: Arc<AtomicU64>,
}

impl OtlpDiscard {
    fn new(encode_in_collect: bool) -> Self {
        let resource = Resource::new("bench");
        let span_encoder = encode_in_collect
            .then(|| {
                OtlpHttpExporter::builder()
                    .resource(resource.clone())
                    .build_http()
                    .expect("exporter")
                    .span_encoder()
            })
            .flatten();
        Self {
            encoder: OtlpEncoder::new(&resource),
            span_encoder,
            body: Vec::new(),
            exported: Arc::default(),
        }
    }
}

impl SpanExporter for OtlpDiscard {
    fn kind(&self) -> &'static str {
        "otlp_discard"
    }

    fn export<'a>(&'a mut self, batch: &'a [Span]) -> ExportFuture<'a> {
        self.body.clear();
        self.encoder.encode_protobuf(batch, &mut self.body);
        black_box(&self.body);
        self.exported
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        Box::pin(async { Ok(ExportOutcome::delivered()) })
    }

    fn span_encoder(&self) -> Option<SpanEncodeFn> {
        self.span_encoder
    }

    fn export_encoded<'a>(&'a mut self, batch: &'a EncodedSpans) -> ExportFuture<'a> {
        // What wrapping the spans in one request costs: a few header bytes, then every chunk.
        self.body.clear();
        self.body.reserve(batch.len_bytes() + 64);
        for chunk in batch.chunks() {
            self.body.extend_from_slice(chunk);
        }
        black_box(&self.body);
        self.exported
            .fetch_add(batch.spans() as u64, Ordering::Relaxed);
        Box::pin(async { Ok(ExportOutcome::delivered()) })
    }
}

/// Spans collected between two drains of the queue (fewer than a batch, so no wake-up).
const ROUND: u64 = 256;

fn collect(c: &mut Criterion) {
    let route: Arc<str> = "/users/{id}".into();
    let mut group = c.benchmark_group("collect");

    // The export task on a runtime only this thread drives: it drains the queue between
    // rounds, outside the timed part, as an idle task would between a server's requests.
    let quiet = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for (name, batch) in [
        (
            "server_span",
            BatchExporter::builder(Discard::default())
                .runtime(quiet.handle().clone())
                .build(),
        ),
        (
            "server_span_otlp_encoded",
            BatchExporter::builder(OtlpDiscard::new(true))
                .runtime(quiet.handle().clone())
                .build(),
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let round = left.min(ROUND);
                    let spans: Vec<Span> = (0..round).map(|_| server_span(&route, 42)).collect();
                    let started = Instant::now();
                    for span in spans {
                        batch.collect(black_box(span));
                    }
                    timed += started.elapsed();
                    quiet.block_on(batch.force_flush());
                    left -= round;
                }
                timed
            });
        });
        assert_eq!(batch.dropped(), 0, "a round fits in the queue");
        quiet.block_on(batch.shutdown(Duration::from_secs(30)));
    }

    // The export task on its own thread, draining while spans arrive: on two cores, the
    // queue's slots move between the cores' caches.
    let exported = Discard::default();
    let batch = BatchExporter::builder(exported.clone())
        .max_queue_size(1 << 16)
        .build();
    group.bench_function("server_span_while_draining", |b| {
        b.iter_batched(
            || server_span(&route, 42),
            |span| batch.collect(black_box(span)),
            BatchSize::SmallInput,
        );
    });
    let report = batch
        .shutdown_blocking(Duration::from_secs(30))
        .expect("outside a runtime");
    eprintln!(
        "collect/server_span_while_draining: {} spans exported, {} dropped ({} at shutdown)",
        batch.exported(),
        batch.dropped(),
        report.lost
    );

    // A runtime nobody drives: the task never drains the one-span queue.
    let stalled = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let full = BatchExporter::builder(Discard::default())
        .max_queue_size(1)
        .runtime(stalled.handle().clone())
        .build();
    full.collect(server_span(&route, 42));
    group.bench_function("queue_full", |b| {
        b.iter_batched(
            || server_span(&route, 42),
            |span| full.collect(black_box(span)),
            BatchSize::SmallInput,
        );
    });
    group.finish();
    stalled.block_on(full.shutdown(Duration::ZERO));
}

fn handoff(c: &mut Criterion) {
    const SPANS: usize = 10_000;
    let route: Arc<str> = "/users/{id}".into();
    let mut group = c.benchmark_group("handoff");
    group.throughput(Throughput::Elements(SPANS as u64));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let pipelines: [(&str, Box<dyn SpanExporter>); 3] = [
        ("spans", Box::new(Discard::default())),
        ("otlp_spans", Box::new(OtlpDiscard::new(false))),
        ("otlp_encoded", Box::new(OtlpDiscard::new(true))),
    ];
    for (name, exporter) in pipelines {
        let batch = BatchExporter::builder(exporter)
            .max_queue_size(SPANS)
            .build();
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    (0..SPANS)
                        .map(|_| server_span(&route, 42))
                        .collect::<Vec<_>>()
                },
                |spans| {
                    for span in spans {
                        batch.collect(span);
                    }
                    runtime.block_on(batch.force_flush())
                },
                BatchSize::PerIteration,
            );
        });
        assert_eq!(batch.dropped(), 0, "the queue holds a whole round");
        let report = batch
            .shutdown_blocking(Duration::from_secs(30))
            .expect("outside a runtime");
        assert_eq!(report.lost, 0);
        assert!(batch.exported() > 0);
    }
    group.finish();
}

criterion_group!(benches, collect, handoff);
criterion_main!(benches);
