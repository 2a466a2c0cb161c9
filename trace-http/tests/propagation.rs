//! Every incoming propagation format continues the caller's trace through a real axum server:
//! W3C `traceparent` (with `tracestate` kept), Jaeger `uber-trace-id` (plain and URL-encoded),
//! B3 single `b3` and B3 multi `x-b3-*`; the caller's sampled flag is honoured both ways.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use trace_core::{InMemoryCollector, Span, SpanKind};
use trace_http::{TraceIdHeader, TraceLayer};

use support::{Caller, Echo, echo_context};

async fn traced_echo_server() -> (std::net::SocketAddr, Arc<InMemoryCollector>) {
    let collector = support::collector();
    let app = Router::new()
        .route("/echo", get(echo_context))
        .layer(TraceLayer::new(collector.clone()).trace_id_header(TraceIdHeader::TraceResponse));
    (support::serve(app).await, collector)
}

/// Sends the headers of a sampled caller and checks that the recorded server span and the
/// handler's context both continue the caller's trace.
async fn assert_sampled_caller_is_continued(caller: Caller, headers: &[(&str, &str)]) -> Span {
    let (addr, collector) = traced_echo_server().await;
    let reply = support::get(addr, "/echo", headers).await;
    assert_eq!(reply.status, 200, "{reply:?}");

    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.trace_id, caller.trace_id, "same trace as the caller");
    assert_eq!(
        span.parent_span_id,
        Some(caller.span_id),
        "child of the caller's span"
    );
    assert_ne!(span.span_id, caller.span_id, "a span of its own");
    assert!(span.flags.is_sampled());
    assert_eq!(span.kind, SpanKind::Server);
    assert_eq!(span.name, "GET /echo");

    let echo = Echo::parse(&reply.body);
    assert_eq!(echo.trace_id, caller.trace_id.to_string());
    assert_eq!(
        echo.span_id,
        span.span_id.to_string(),
        "handler sees the span's context"
    );
    assert_eq!(echo.parent_span_id, caller.span_id.to_string());
    assert!(echo.sampled);
    assert_eq!(echo.current_trace_id, caller.trace_id.to_string());
    span
}

/// Sends the headers of an unsampled caller to a server whose sampler would sample a new trace:
/// nothing is recorded, but the handler still sees the caller's trace, unsampled.
async fn assert_unsampled_caller_is_honoured(caller: Caller, headers: &[(&str, &str)]) {
    let (addr, collector) = traced_echo_server().await;
    let reply = support::get(addr, "/echo", headers).await;
    assert_eq!(reply.status, 200, "{reply:?}");

    let echo = Echo::parse(&reply.body);
    assert_eq!(echo.trace_id, caller.trace_id.to_string());
    assert_eq!(echo.parent_span_id, caller.span_id.to_string());
    assert!(
        !echo.sampled,
        "the caller's decision not to sample is followed"
    );
    assert_eq!(echo.current_trace_id, caller.trace_id.to_string());
    assert_eq!(
        reply.header("traceresponse"),
        None,
        "no trace id for an unsampled request"
    );
    support::assert_no_spans(&collector).await;

    // The same server does sample a request that arrives without a caller.
    let root = support::get(addr, "/echo", &[]).await;
    assert!(Echo::parse(&root.body).sampled);
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.parent_span_id, None);
}

#[tokio::test]
async fn w3c_traceparent_continues_the_trace_and_keeps_tracestate() {
    let caller = Caller::random();
    let tracestate = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
    let traceparent = caller.traceparent(true);
    let span = assert_sampled_caller_is_continued(
        caller,
        &[("traceparent", &traceparent), ("tracestate", tracestate)],
    )
    .await;
    assert_eq!(span.trace_state.header_value(), Some(tracestate));
}

#[tokio::test]
async fn w3c_unsampled_traceparent_records_nothing_but_reaches_the_handler() {
    let caller = Caller::random();
    assert_unsampled_caller_is_honoured(caller, &[("traceparent", &caller.traceparent(false))])
        .await;
}

#[tokio::test]
async fn jaeger_uber_trace_id_continues_the_trace() {
    let caller = Caller::random();
    let value = format!("{}:{}:0:1", caller.trace_id, caller.span_id);
    assert_sampled_caller_is_continued(caller, &[("uber-trace-id", &value)]).await;
}

#[tokio::test]
async fn jaeger_url_encoded_uber_trace_id_continues_the_trace() {
    let caller = Caller::random();
    let value = format!("{}%3A{}%3A0%3A1", caller.trace_id, caller.span_id);
    assert_sampled_caller_is_continued(caller, &[("uber-trace-id", &value)]).await;
}

#[tokio::test]
async fn jaeger_unsampled_uber_trace_id_records_nothing_but_reaches_the_handler() {
    let caller = Caller::random();
    let value = format!("{}:{}:0:0", caller.trace_id, caller.span_id);
    assert_unsampled_caller_is_honoured(caller, &[("uber-trace-id", &value)]).await;
}

#[tokio::test]
async fn b3_single_header_continues_the_trace() {
    let caller = Caller::random();
    let value = format!("{}-{}-1", caller.trace_id, caller.span_id);
    assert_sampled_caller_is_continued(caller, &[("b3", &value)]).await;
}

#[tokio::test]
async fn b3_single_unsampled_header_records_nothing_but_reaches_the_handler() {
    let caller = Caller::random();
    let value = format!("{}-{}-0", caller.trace_id, caller.span_id);
    assert_unsampled_caller_is_honoured(caller, &[("b3", &value)]).await;
}

#[tokio::test]
async fn b3_multi_headers_continue_the_trace() {
    let caller = Caller::random();
    let (trace, span) = (caller.trace_id.to_string(), caller.span_id.to_string());
    assert_sampled_caller_is_continued(
        caller,
        &[
            ("x-b3-traceid", &trace),
            ("x-b3-spanid", &span),
            ("x-b3-sampled", "1"),
        ],
    )
    .await;
}

#[tokio::test]
async fn b3_multi_unsampled_headers_record_nothing_but_reach_the_handler() {
    let caller = Caller::random();
    let (trace, span) = (caller.trace_id.to_string(), caller.span_id.to_string());
    assert_unsampled_caller_is_honoured(
        caller,
        &[
            ("x-b3-traceid", &trace),
            ("x-b3-spanid", &span),
            ("x-b3-sampled", "0"),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_request_without_trace_headers_starts_a_sampled_root() {
    let (addr, collector) = traced_echo_server().await;
    let reply = support::get(addr, "/echo", &[]).await;
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.parent_span_id, None);
    let echo = Echo::parse(&reply.body);
    assert_eq!(echo.trace_id, span.trace_id.to_string());
    assert_eq!(echo.parent_span_id, "-");
    assert_eq!(
        reply.header("traceresponse"),
        Some(support::w3c_value(&span).as_str())
    );
}

#[tokio::test]
async fn b3_ids_without_a_sampling_decision_continue_the_trace_and_let_us_decide() {
    let caller = Caller::random();
    let value = format!("{}-{}", caller.trace_id, caller.span_id);
    // The default sampler samples new traces, so the deferred decision comes out sampled.
    assert_sampled_caller_is_continued(caller, &[("b3", &value)]).await;
}

#[tokio::test]
async fn b3_deferred_decision_follows_our_sampler() {
    let collector = support::collector();
    let app = Router::new().route("/echo", get(echo_context)).layer(
        TraceLayer::new(collector.clone())
            .sampler(trace_core::sampler::AlwaysOff)
            .trace_id_header(TraceIdHeader::TraceResponse),
    );
    let addr = support::serve(app).await;
    let caller = Caller::random();
    let (trace, span) = (caller.trace_id.to_string(), caller.span_id.to_string());
    let reply = support::get(
        addr,
        "/echo",
        &[("x-b3-traceid", &trace), ("x-b3-spanid", &span)],
    )
    .await;
    let echo = Echo::parse(&reply.body);
    assert_eq!(echo.trace_id, trace);
    assert_eq!(echo.parent_span_id, span);
    assert!(!echo.sampled);
    support::assert_no_spans(&collector).await;
}
