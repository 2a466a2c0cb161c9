//! Debug traces over real HTTP: a `jaeger-debug-id` header forces a trace whatever the sampler
//! says, the caller gets the trace id back, and forcing is capped.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use tokio::task::JoinSet;
use trace_core::InMemoryCollector;
use trace_core::sampler::AlwaysOff;
use trace_http::{TraceIdHeader, TraceLayer};

use support::{Echo, attr_str, echo_context};

async fn serve_traced(layer: &TraceLayer) -> SocketAddr {
    let app = Router::new()
        .route("/echo", get(echo_context))
        .layer(layer.clone());
    support::serve(app).await
}

fn never_sampling(collector: &Arc<InMemoryCollector>) -> TraceLayer {
    TraceLayer::new(collector.clone()).sampler(AlwaysOff)
}

#[tokio::test]
async fn debug_header_forces_a_trace_under_always_off() {
    let collector = support::collector();
    let layer = never_sampling(&collector);
    let addr = serve_traced(&layer).await;

    let reply = support::get(addr, "/echo", &[("jaeger-debug-id", "my-debug")]).await;
    assert_eq!(reply.status, 200);
    let span = support::wait_for_one_span(&collector).await;
    assert!(
        span.flags.is_sampled() && span.flags.is_debug(),
        "{:?}",
        span.flags
    );
    assert_eq!(attr_str(&span, "jaeger-debug-id"), Some("my-debug"));
    assert_eq!(span.debug_id.as_deref(), Some("my-debug"));
    assert_eq!(span.parent_span_id, None);
    assert_eq!(
        reply.header("traceresponse"),
        Some(support::w3c_value(&span).as_str()),
        "the caller learns which trace its debug request made"
    );
    let echo = Echo::parse(&reply.body);
    assert!(echo.sampled && echo.debug);
    assert_eq!(echo.trace_id, span.trace_id.to_string());
    assert_eq!(layer.debug_sampler().forced(), 1);
    assert_eq!(layer.debug_sampler().refused(), 0);
}

#[tokio::test]
async fn without_the_debug_header_always_off_traces_nothing() {
    let collector = support::collector();
    let layer = never_sampling(&collector);
    let addr = serve_traced(&layer).await;
    let reply = support::get(addr, "/echo", &[]).await;
    assert_eq!(reply.status, 200);
    assert!(!Echo::parse(&reply.body).sampled);
    assert_eq!(reply.header("traceresponse"), None);
    support::assert_no_spans(&collector).await;
    assert_eq!(layer.debug_sampler().forced(), 0);
}

#[tokio::test]
async fn debug_requests_get_traceresponse_even_when_the_header_is_off() {
    let collector = support::collector();
    let layer = never_sampling(&collector).trace_id_header(TraceIdHeader::None);
    let addr = serve_traced(&layer).await;
    let reply = support::get(addr, "/echo", &[("jaeger-debug-id", "my-debug")]).await;
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(
        reply.header("traceresponse"),
        Some(support::w3c_value(&span).as_str())
    );
}

#[tokio::test]
async fn a_configured_debug_header_forces_a_trace_too() {
    let collector = support::collector();
    let layer = never_sampling(&collector).debug_headers(["x-debug-trace"]);
    let addr = serve_traced(&layer).await;
    support::get(addr, "/echo", &[("x-debug-trace", "ticket-1234")]).await;
    let span = support::wait_for_one_span(&collector).await;
    assert!(span.flags.is_debug());
    assert_eq!(attr_str(&span, "jaeger-debug-id"), Some("ticket-1234"));
}

/// Without Jaeger in the propagation, the layer finds `jaeger-debug-id` itself, in the same pass
/// over the headers as the W3C ones; a debug header that a configured format reads (`baggage`
/// here, an odd choice) is still honoured, and the first configured header with a sane value
/// wins.
#[tokio::test]
async fn debug_headers_are_found_with_w3c_propagation_alone() {
    use trace_core::propagation::CompositePropagator;

    let w3c_only = || CompositePropagator::from_otel_propagators("tracecontext").unwrap();
    let collector = support::collector();
    let layer = never_sampling(&collector).propagation(w3c_only());
    let addr = serve_traced(&layer).await;
    support::get(addr, "/echo", &[("jaeger-debug-id", "w3c-only")]).await;
    let span = support::wait_for_one_span(&collector).await;
    assert!(span.flags.is_debug());
    assert_eq!(span.debug_id.as_deref(), Some("w3c-only"));

    let collector = support::collector();
    let layer = never_sampling(&collector)
        .propagation(CompositePropagator::from_otel_propagators("tracecontext,baggage").unwrap())
        .debug_headers(["x-empty-debug", "baggage", "jaeger-debug-id"]);
    let addr = serve_traced(&layer).await;
    support::get(
        addr,
        "/echo",
        &[
            ("jaeger-debug-id", "third"),
            ("baggage", "second"),
            ("x-empty-debug", ""),
        ],
    )
    .await;
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(
        span.debug_id.as_deref(),
        Some("second"),
        "the first configured header with a sane value, read by the baggage format or not"
    );
}

#[tokio::test]
async fn an_insane_debug_id_forces_nothing() {
    let collector = support::collector();
    let layer = never_sampling(&collector);
    let addr = serve_traced(&layer).await;
    let long = "d".repeat(300);
    let reply = support::get(addr, "/echo", &[("jaeger-debug-id", &long)]).await;
    assert_eq!(reply.status, 200);
    assert!(!Echo::parse(&reply.body).sampled);
    support::assert_no_spans(&collector).await;
}

#[tokio::test]
async fn debug_forcing_is_capped() {
    let collector = support::collector();
    let layer = never_sampling(&collector).debug_cap(1.0);
    let addr = serve_traced(&layer).await;
    let client = support::client();

    let mut burst = JoinSet::new();
    for i in 0..5 {
        let client = client.clone();
        burst.spawn(async move {
            let id = format!("burst-{i}");
            let request = support::request(
                http::Method::GET,
                addr,
                "/echo",
                &[("jaeger-debug-id", &id)],
            );
            support::send(&client, request).await
        });
    }
    let mut forced_replies = 0;
    while let Some(reply) = burst.join_next().await {
        let reply = reply.unwrap();
        assert_eq!(reply.status, 200, "refused debug requests are still served");
        if reply.header("traceresponse").is_some() {
            forced_replies += 1;
        }
    }

    let spans = support::wait_for_spans(&collector, 1).await;
    assert_eq!(spans.len(), 1, "exactly one forced trace: {spans:#?}");
    assert!(spans[0].flags.is_debug());
    assert_eq!(forced_replies, 1);
    assert_eq!(layer.debug_sampler().forced(), 1);
    assert_eq!(layer.debug_sampler().refused(), 4);
}

#[tokio::test]
async fn debug_header_overrides_an_unsampled_caller_and_keeps_its_trace() {
    let collector = support::collector();
    let layer = TraceLayer::new(collector.clone());
    let addr = serve_traced(&layer).await;
    let caller = support::Caller::random();
    support::get(
        addr,
        "/echo",
        &[
            ("traceparent", &caller.traceparent(false)),
            ("jaeger-debug-id", "why-is-this-slow"),
        ],
    )
    .await;
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.trace_id, caller.trace_id);
    assert_eq!(span.parent_span_id, Some(caller.span_id));
    assert!(span.flags.is_debug() && span.flags.is_sampled());
    assert_eq!(attr_str(&span, "jaeger-debug-id"), Some("why-is-this-slow"));
}
