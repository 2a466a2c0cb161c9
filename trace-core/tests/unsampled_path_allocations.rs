//! The unsampled path allocates nothing: extracting no (or an unsampled) parent, a sampler that
//! says no, and a recorder without a span.
//!
//! `allocation-counter` replaces the global allocator in this test binary and counts the
//! allocations made by the measuring thread only, so tests running in parallel do not disturb
//! each other.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use support::realistic_headers;
use trace_core::propagation::CompositePropagator;
use trace_core::sampler::{AlwaysOff, DebugForced, ParentBased, TraceIdRatio};
use trace_core::{Collector, NoopCollector, SpanKind, SpanRecorder};

mod support;

fn assert_unsampled_path_allocates_nothing(headers: &HeaderMap) {
    let propagation = CompositePropagator::default();
    let sampler = DebugForced::new(ParentBased::new(TraceIdRatio::new(0.0)), 1.0);
    let collector: Arc<dyn Collector> = Arc::new(NoopCollector);
    let request = || {
        let context = propagation
            .extract(headers)
            .into_span_context(&sampler, "GET /users/{id}")
            .with_collector(collector.clone());
        assert!(!context.is_sampled());
        let mut span = SpanRecorder::start(context.clone(), "GET /users/{id}", SpanKind::Server);
        span.set_attribute("http.request.method", "GET");
        span.set_attribute("http.route", "/users/{id}");
        span.set_attribute("http.response.status_code", 200_i64);
        span.set_attribute("network.protocol.version", "1.1");
        span.set_attribute("url.scheme", "http");
        drop(context.child("db query"));
        span.end();
    };
    // First use of the thread-local RNG and clocks is not the steady state.
    request();
    let info = allocation_counter::measure(request);
    assert_eq!(info.count_total, 0, "{info:?}");
}

#[test]
fn no_trace_headers() {
    assert_unsampled_path_allocates_nothing(&realistic_headers());
}

#[test]
fn unsampled_w3c_parent() {
    let mut headers = realistic_headers();
    headers.insert(
        "traceparent",
        HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
    );
    assert_unsampled_path_allocates_nothing(&headers);
}

#[test]
fn unsampled_jaeger_parent() {
    let mut headers = realistic_headers();
    headers.insert(
        "uber-trace-id",
        HeaderValue::from_static("4bf92f3577b34da6:00f067aa0ba902b7:0:0"),
    );
    assert_unsampled_path_allocates_nothing(&headers);
}

#[test]
fn unsampled_b3_parent() {
    let mut headers = realistic_headers();
    headers.insert(
        "b3",
        HeaderValue::from_static("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0"),
    );
    assert_unsampled_path_allocates_nothing(&headers);
}

#[test]
fn sampler_that_never_samples() {
    let sampler = AlwaysOff;
    let headers = realistic_headers();
    let propagation = CompositePropagator::default();
    let info = allocation_counter::measure(|| {
        let context = propagation
            .extract(&headers)
            .into_span_context(&sampler, "GET");
        assert!(!context.is_sampled());
    });
    assert_eq!(info.count_total, 0, "{info:?}");
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the tests above against a counter that counts nothing.
    let info = allocation_counter::measure(|| {
        std::hint::black_box(Box::new(7_u64));
    });
    assert_eq!(info.count_total, 1);
}
