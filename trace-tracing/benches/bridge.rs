//! The cost of one bridged `tracing` span, and of tracing-opentelemetry doing the same job.
//!
//! Run with `cargo bench -p trace-tracing --bench bridge`. Every case times the same work: a
//! `tracing::info_span!` with three fields is created, entered and exited once, and closed, with
//! the case's subscriber as the thread's default. `registry_alone` is the registry without any
//! layer; a case's own cost is its time minus that baseline. Targets on the project's 2-core
//! machine: the bridged span (sampled context, no-op collector) at most 300 ns over the baseline,
//! the unsampled context at most 30 ns over it.
//!
//! `tracing_opentelemetry` runs tracing-opentelemetry's layer (default settings) over an
//! `opentelemetry_sdk` tracer provider with the `AlwaysOn` sampler and a span processor that only
//! counts the spans it is handed, under a sampled remote parent — the same job as the sampled
//! tracewire case, measured in the same run so that the two compare as a ratio.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanProcessor};
use trace_core::current::enter;
use trace_core::{InMemoryCollector, NoopCollector, SpanContext, TraceFlags};
use trace_tracing::TracewireLayer;
use tracing::Subscriber;
use tracing_subscriber::prelude::*;

/// The measured work: one span with three fields, entered and exited once, then closed.
fn one_span() {
    let span = tracing::info_span!(
        "db query",
        a = black_box(1_i64),
        b = black_box(true),
        c = black_box("x")
    );
    {
        let _entered = span.enter();
    }
    drop(span);
}

/// Times [`one_span`] as `name`, with `subscriber` as the thread's default.
fn bench_under<S>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, subscriber: S)
where
    S: Subscriber + Send + Sync + 'static,
{
    let _default = tracing::subscriber::set_default(subscriber);
    group.bench_function(name, |b| b.iter(one_span));
}

fn tracewire() -> impl Subscriber + Send + Sync {
    tracing_subscriber::registry().with(TracewireLayer::new())
}

fn context(flags: TraceFlags) -> SpanContext {
    SpanContext::new_root(flags).with_collector(Arc::new(NoopCollector))
}

/// Checks, outside the timings, that the bridge does what the cases assume: a span in a sampled
/// context reaches the collector with its three fields, one in an unsampled context does not.
fn check_bridge() {
    let _default = tracing::subscriber::set_default(tracewire());
    for (flags, expected) in [(TraceFlags::SAMPLED, 1), (TraceFlags::EMPTY, 0)] {
        let collector = Arc::new(InMemoryCollector::new(10));
        {
            let _current = enter(SpanContext::new_root(flags).with_collector(collector.clone()));
            one_span();
        }
        let spans = collector.spans();
        assert_eq!(spans.len(), expected, "bridged spans for {flags:?}");
        if let Some(span) = spans.first() {
            assert_eq!(span.name, "db query");
            assert_eq!(span.attributes.len(), 3, "the three fields, as attributes");
        }
    }
}

/// A span processor that drops what it is given, counting it to prove spans were recorded.
#[derive(Debug, Default)]
struct CountingProcessor(Arc<AtomicU64>);

impl SpanProcessor for CountingProcessor {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, _span: SpanData) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// A sampled remote parent for the OpenTelemetry spans, as a server layer would have extracted.
fn otel_parent() -> opentelemetry::Context {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    let trace_id =
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("a valid hex trace id");
    let span_id = SpanId::from_hex("00f067aa0ba902b7").expect("a valid hex span id");
    opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ))
}

fn bridge(c: &mut Criterion) {
    check_bridge();

    let mut group = c.benchmark_group("span_3_fields_enter_exit_close");

    // Every case runs inside a sampled tracewire context, as a request's handler would, so that
    // the cases differ only in their subscriber (the registry alone and OpenTelemetry ignore it).
    {
        let _current = enter(context(TraceFlags::SAMPLED));
        bench_under(&mut group, "registry_alone", tracing_subscriber::registry());
        bench_under(&mut group, "tracewire_sampled", tracewire());
    }
    {
        let _current = enter(context(TraceFlags::EMPTY));
        bench_under(&mut group, "tracewire_unsampled", tracewire());
    }
    bench_under(&mut group, "tracewire_no_context", tracewire());

    let ended = Arc::new(AtomicU64::new(0));
    let provider = SdkTracerProvider::builder()
        .with_sampler(Sampler::AlwaysOn)
        .with_span_processor(CountingProcessor(ended.clone()))
        .build();
    let tracer = provider.tracer("bridge-bench");
    let otel = || {
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(tracer.clone()))
    };
    {
        let _parent = otel_parent().attach();
        let _default = tracing::subscriber::set_default(otel());
        let before = ended.load(Ordering::Relaxed);
        one_span();
        assert_eq!(
            ended.load(Ordering::Relaxed),
            before + 1,
            "tracing-opentelemetry recorded and ended the span"
        );
    }
    {
        let _parent = otel_parent().attach();
        bench_under(&mut group, "tracing_opentelemetry", otel());
    }
    group.finish();
    provider
        .shutdown()
        .expect("the tracer provider shuts down once");
}

criterion_group!(benches, bridge);
criterion_main!(benches);
