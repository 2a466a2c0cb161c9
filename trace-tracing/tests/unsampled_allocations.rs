//! What `TracewireLayer` allocates when the current trace is not sampled: a `tracing` span's
//! whole life (creation with fields, enter, a late record, events, a child span with convention
//! fields and an ERROR event, `follows_from`, close), counted with `Registry + TracewireLayer`
//! against `Registry` alone. It must be exactly the same.
//!
//! `allocation-counter` replaces the global allocator in this test binary and counts the
//! allocations made by the measuring thread only, so tests running in parallel do not disturb
//! each other.

use std::sync::Arc;

use allocation_counter::AllocationInfo;
use trace_core::current::enter;
use trace_core::{InMemoryCollector, NoopCollector, SpanContext, TraceFlags};
use trace_tracing::TracewireLayer;
use tracing::field::Empty;
use tracing_core::Subscriber;
use tracing_subscriber::prelude::*;

/// One `tracing` span's life, and a child's.
fn span_life() {
    let cause = tracing::info_span!("cause");
    let span = tracing::info_span!(
        "load user",
        user.id = 42_i64,
        name = "alice",
        admin = true,
        ratio = 0.5_f64,
        otel.name = "GET /users/{id}",
        late = Empty
    );
    span.follows_from(&cause);
    {
        let _entered = span.enter();
        span.record("late", 5_i64);
        tracing::info!(rows = 3_i64, cache = "miss", "cache miss");
        let child = tracing::info_span!("query", otel.kind = "client", error = "boom");
        child.in_scope(|| {
            tracing::error!(attempt = 2_i64, "connection refused");
        });
    }
    drop(span);
    drop(cause);
}

/// Allocations of one [`span_life`] under `subscriber` with `context` (if any) current, after a
/// warm-up run (the registry's slab pages, its per-thread span stack and the callsites'
/// registration are allocated on first use).
fn allocations<S>(subscriber: S, context: Option<SpanContext>) -> AllocationInfo
where
    S: Subscriber + Send + Sync + 'static,
{
    tracing::subscriber::with_default(subscriber, || {
        let _current = context.map(enter);
        span_life();
        allocation_counter::measure(span_life)
    })
}

fn bare() -> impl Subscriber + Send + Sync + 'static {
    tracing_subscriber::registry()
}

fn bridged() -> impl Subscriber + Send + Sync + 'static {
    tracing_subscriber::registry().with(TracewireLayer::new())
}

fn assert_same(with_layer: &AllocationInfo, without: &AllocationInfo) {
    assert_eq!(
        (
            with_layer.count_total,
            with_layer.bytes_total,
            with_layer.count_current,
            with_layer.bytes_current
        ),
        (
            without.count_total,
            without.bytes_total,
            without.count_current,
            without.bytes_current
        ),
        "with TracewireLayer {with_layer:?}, Registry alone {without:?}"
    );
}

#[test]
fn an_unsampled_context_costs_no_allocation() {
    let collector = Arc::new(InMemoryCollector::new(100));
    let context = SpanContext::new_root(TraceFlags::EMPTY).with_collector(collector.clone());
    let without = allocations(bare(), Some(context.clone()));
    let with_layer = allocations(bridged(), Some(context));
    assert_same(&with_layer, &without);
    assert!(collector.is_empty());
}

#[test]
fn an_unsampled_context_from_a_caller_costs_no_allocation() {
    // A context continued from an unsampled `traceparent`: parent span id, no RANDOM flag.
    let context = SpanContext::new(
        trace_core::TraceId::random(),
        trace_core::SpanId::random(),
        TraceFlags::EMPTY,
    )
    .with_parent_span_id(Some(trace_core::SpanId::random()))
    .with_collector(Arc::new(NoopCollector));
    let without = allocations(bare(), Some(context.clone()));
    let with_layer = allocations(bridged(), Some(context));
    assert_same(&with_layer, &without);
}

#[test]
fn no_context_costs_no_allocation() {
    let without = allocations(bare(), None);
    let with_layer = allocations(bridged(), None);
    assert_same(&with_layer, &without);
}

#[test]
fn a_sampled_context_is_seen_to_allocate() {
    // Guards the tests above against a measurement that cannot see the layer's work.
    let collector = Arc::new(InMemoryCollector::new(100));
    let context = SpanContext::new_root(TraceFlags::SAMPLED).with_collector(collector.clone());
    let without = allocations(bare(), Some(context.clone()));
    let with_layer = allocations(bridged(), Some(context));
    assert!(
        with_layer.count_total > without.count_total,
        "with TracewireLayer {with_layer:?}, Registry alone {without:?}"
    );
    assert_eq!(
        collector.len(),
        6,
        "two runs of three spans: {:#?}",
        collector.spans()
    );
}

#[test]
fn the_counter_sees_allocations() {
    let info = allocation_counter::measure(|| {
        std::hint::black_box(Box::new(7_u64));
    });
    assert_eq!(info.count_total, 1);
}
