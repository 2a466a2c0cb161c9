//! Micro-benchmarks of the per-request steps trace-core owns.
//!
//! Run with `cargo bench -p trace-core --bench core`. Targets on the project's 2-core machine:
//! `traceparent` parse at most 50 ns, the unsampled path at most 20 ns, a sampled span with five
//! attributes at most 250 ns.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
#[path = "../tests/support/mod.rs"]
mod support;
use http::{HeaderMap, HeaderName, HeaderValue};
use support::realistic_headers;
use trace_core::propagation::{CompositePropagator, Extracted, Propagator, TraceContextPropagator};
use trace_core::sampler::{AlwaysOn, DebugForced, ParentBased, TraceIdRatio};
use trace_core::{
    Collector, NoopCollector, SpanContext, SpanId, SpanKind, SpanRecorder, TraceFlags, TraceId,
};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn ids(c: &mut Criterion) {
    c.bench_function("ids/trace_id_random", |b| b.iter(TraceId::random));
    c.bench_function("ids/span_id_random", |b| b.iter(SpanId::random));
    c.bench_function("ids/trace_id_from_hex", |b| {
        b.iter(|| TraceId::from_hex(black_box(b"4bf92f3577b34da6a3ce929d0e0e4736")))
    });
    let headers: HeaderMap = [(
        HeaderName::from_static("traceparent"),
        HeaderValue::from_static(TRACEPARENT),
    )]
    .into_iter()
    .collect();
    let name = HeaderName::from_static("traceparent");
    c.bench_function("reference/headermap_get_one_header", |b| {
        b.iter(|| black_box(&headers).get(&name).is_some())
    });
}

fn traceparent(c: &mut Criterion) {
    let w3c = TraceContextPropagator::new();
    let mut headers = HeaderMap::new();
    headers.insert("traceparent", HeaderValue::from_static(TRACEPARENT));
    c.bench_function("traceparent/parse", |b| {
        b.iter(|| {
            let mut extracted = Extracted::default();
            let _ = w3c.extract(black_box(&headers), &mut extracted);
            extracted
        })
    });
    let context = SpanContext::new(
        TraceId::random(),
        SpanId::random(),
        TraceFlags::SAMPLED | TraceFlags::RANDOM,
    );
    let mut out = HeaderMap::new();
    c.bench_function("traceparent/format", |b| {
        b.iter(|| w3c.inject(black_box(&context), &mut out))
    });
}

fn extract_realistic_request(c: &mut Criterion) {
    let propagation = CompositePropagator::default();
    let plain = realistic_headers();
    let mut traced = realistic_headers();
    traced.insert("traceparent", HeaderValue::from_static(TRACEPARENT));
    traced.insert(
        "tracestate",
        HeaderValue::from_static("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
    );
    c.bench_function("extract/20_headers_no_trace_headers", |b| {
        b.iter(|| propagation.extract(black_box(&plain)))
    });
    c.bench_function("extract/20_headers_with_traceparent_and_tracestate", |b| {
        b.iter(|| propagation.extract(black_box(&traced)))
    });
    // A request carrying only a `traceparent`, on one thread and on two at once sharing the
    // composite as a server's worker threads do (the time per call on one of them). Anything
    // every call writes to in common shows as the difference between the two.
    let mut minimal = HeaderMap::new();
    minimal.insert("traceparent", HeaderValue::from_static(TRACEPARENT));
    c.bench_function("extract/traceparent_only", |b| {
        b.iter(|| propagation.extract(black_box(&minimal)))
    });
    c.bench_function("extract/traceparent_only_two_threads_at_once", |b| {
        b.iter_custom(|iters| {
            std::thread::scope(|scope| {
                let other = scope.spawn(|| {
                    for _ in 0..iters {
                        black_box(propagation.extract(black_box(&minimal)));
                    }
                });
                let started = std::time::Instant::now();
                for _ in 0..iters {
                    black_box(propagation.extract(black_box(&minimal)));
                }
                let elapsed = started.elapsed();
                let _ = other.join();
                elapsed
            })
        })
    });
}

fn spans(c: &mut Criterion) {
    let collector: Arc<dyn Collector> = Arc::new(NoopCollector);
    let record = |context: SpanContext| {
        let mut span = SpanRecorder::start(context, "GET /users/{id}", SpanKind::Server);
        span.set_attribute("http.request.method", "GET");
        span.set_attribute("http.route", "/users/{id}");
        span.set_attribute("url.scheme", "http");
        span.set_attribute("network.protocol.version", "1.1");
        span.set_attribute("http.response.status_code", 200_i64);
        span.end();
    };
    c.bench_function("span/sampled_5_attributes_noop_collector", |b| {
        b.iter(|| {
            record(
                SpanContext::new(TraceId::random(), SpanId::random(), TraceFlags::SAMPLED)
                    .with_collector(collector.clone()),
            )
        })
    });
    c.bench_function("span/unsampled_5_attributes", |b| {
        b.iter(|| {
            record(
                SpanContext::new(TraceId::random(), SpanId::random(), TraceFlags::EMPTY)
                    .with_collector(collector.clone()),
            )
        })
    });

    // The whole unsampled request as a server layer runs it: extract from a realistic request,
    // a sampler that says no, the recorder that records nothing.
    let propagation = CompositePropagator::default();
    let headers = realistic_headers();
    let sampler = DebugForced::new(ParentBased::new(TraceIdRatio::new(0.0)), 1.0);
    c.bench_function("request/unsampled_extract_sample_record", |b| {
        b.iter(|| {
            record(
                propagation
                    .extract(black_box(&headers))
                    .into_span_context(&sampler, "GET /users/{id}")
                    .with_collector(collector.clone()),
            )
        })
    });
    let always = ParentBased::new(AlwaysOn);
    c.bench_function("request/sampled_extract_sample_record", |b| {
        b.iter(|| {
            record(
                propagation
                    .extract(black_box(&headers))
                    .into_span_context(&always, "GET /users/{id}")
                    .with_collector(collector.clone()),
            )
        })
    });
}

criterion_group!(benches, ids, traceparent, extract_realistic_request, spans);
criterion_main!(benches);
