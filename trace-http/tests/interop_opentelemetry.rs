//! The `opentelemetry` crates' propagators as independent peers over real HTTP: as callers whose
//! injected headers our `TraceLayer` continues, and as readers of what our `ClientTraceLayer`
//! injects into outgoing requests.

#![allow(clippy::unwrap_used)]
// opentelemetry-zipkin 0.33 marks its whole crate deprecated (in favour of OTLP export); its B3
// propagator is still the independent implementation to compare with.
#![allow(deprecated)]

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use http::HeaderMap;
use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    SpanContext as OtelSpanContext, SpanId as OtelSpanId, TraceContextExt,
    TraceFlags as OtelTraceFlags, TraceId as OtelTraceId, TraceState as OtelTraceState,
};
use opentelemetry_sdk::propagation::TraceContextPropagator as OtelTraceContext;
use opentelemetry_zipkin::{B3Encoding as ZipkinEncoding, Propagator as ZipkinB3};
use trace_core::propagation::CompositePropagator;
use trace_core::{InMemoryCollector, SpanId, SpanKind, TraceId};
use trace_http::{ClientTraceLayer, TraceLayer};

use support::{Caller, Echo, echo_context};

/// What an `opentelemetry` propagator injects for a remote caller with these ids, as header
/// pairs for our request.
fn otel_injected(
    propagator: &dyn TextMapPropagator,
    caller: Caller,
    sampled: bool,
) -> Vec<(String, String)> {
    let flags = if sampled {
        OtelTraceFlags::SAMPLED
    } else {
        OtelTraceFlags::default()
    };
    let span_context = OtelSpanContext::new(
        OtelTraceId::from_bytes(caller.trace_id.to_bytes()),
        OtelSpanId::from_bytes(caller.span_id.to_bytes()),
        flags,
        true,
        OtelTraceState::default(),
    );
    let context = Context::new().with_remote_span_context(span_context);
    let mut carrier: HashMap<String, String> = HashMap::new();
    propagator.inject_context(&context, &mut carrier);
    assert!(!carrier.is_empty(), "the propagator injected nothing");
    let mut pairs: Vec<(String, String)> = carrier.into_iter().collect();
    pairs.sort();
    pairs
}

/// What an `opentelemetry` propagator reads from headers our client sent.
fn otel_extracted(propagator: &dyn TextMapPropagator, headers: &HeaderMap) -> OtelSpanContext {
    let carrier: HashMap<String, String> = headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().expect("ASCII header").to_owned(),
            )
        })
        .collect();
    let context = propagator.extract(&carrier);
    context.span().span_context().clone()
}

fn ours(id: OtelTraceId) -> TraceId {
    TraceId::from_bytes(id.to_bytes()).expect("non-zero trace id")
}

fn ours_span(id: OtelSpanId) -> SpanId {
    SpanId::from_bytes(id.to_bytes()).expect("non-zero span id")
}

async fn traced_echo_server() -> (std::net::SocketAddr, Arc<InMemoryCollector>) {
    let collector = support::collector();
    let app = Router::new()
        .route("/echo", get(echo_context))
        .layer(TraceLayer::new(collector.clone()));
    (support::serve(app).await, collector)
}

/// Sends the headers an `opentelemetry` propagator injected and checks the recorded span (or,
/// unsampled, the handler's context) continues that caller.
async fn assert_otel_caller_is_continued(propagator: &dyn TextMapPropagator, sampled: bool) {
    let caller = Caller::random();
    let pairs = otel_injected(propagator, caller, sampled);
    let headers: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let (addr, collector) = traced_echo_server().await;
    let reply = support::get(addr, "/echo", &headers).await;
    let echo = Echo::parse(&reply.body);
    assert_eq!(
        echo.trace_id,
        caller.trace_id.to_string(),
        "headers {pairs:?}"
    );
    assert_eq!(
        echo.parent_span_id,
        caller.span_id.to_string(),
        "headers {pairs:?}"
    );
    assert_eq!(echo.sampled, sampled, "headers {pairs:?}");
    if sampled {
        let span = support::wait_for_one_span(&collector).await;
        assert_eq!(span.trace_id, caller.trace_id);
        assert_eq!(span.parent_span_id, Some(caller.span_id));
        assert_eq!(span.span_id.to_string(), echo.span_id);
    } else {
        support::assert_no_spans(&collector).await;
    }
}

#[tokio::test]
async fn opentelemetry_traceparent_caller_is_continued() {
    assert_otel_caller_is_continued(&OtelTraceContext::new(), true).await;
}

#[tokio::test]
async fn opentelemetry_unsampled_traceparent_caller_is_honoured() {
    assert_otel_caller_is_continued(&OtelTraceContext::new(), false).await;
}

#[tokio::test]
async fn opentelemetry_zipkin_b3_single_caller_is_continued() {
    let b3 = ZipkinB3::with_encoding(ZipkinEncoding::SingleHeader);
    assert_otel_caller_is_continued(&b3, true).await;
    assert_otel_caller_is_continued(&b3, false).await;
}

#[tokio::test]
async fn opentelemetry_zipkin_b3_multi_caller_is_continued() {
    let b3 = ZipkinB3::with_encoding(ZipkinEncoding::MultipleHeader);
    assert_otel_caller_is_continued(&b3, true).await;
    assert_otel_caller_is_continued(&b3, false).await;
}

/// A traced service A whose handler calls a capturing downstream through our client layer;
/// returns what the downstream received, the client span (if recorded) and the server span's
/// context as the handler saw it.
async fn headers_sent_by_our_client(
    layer: ClientTraceLayer,
    incoming: &[(&str, &str)],
) -> (HeaderMap, Arc<InMemoryCollector>) {
    let (downstream, captured) = support::serve_capturing().await;
    let collector = support::collector();
    let app = support::calling_app(downstream, layer).layer(TraceLayer::new(collector.clone()));
    let addr = support::serve(app).await;
    let reply = support::get(addr, "/call/hop", incoming).await;
    assert_eq!(reply.body, "200 ok");
    (captured.only(), collector)
}

#[tokio::test]
async fn opentelemetry_reads_the_traceparent_our_client_injects() {
    let (headers, collector) = headers_sent_by_our_client(ClientTraceLayer::new(), &[]).await;
    let spans = support::wait_for_spans(&collector, 2).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let client = spans.iter().find(|s| s.kind == SpanKind::Client).unwrap();

    let read = otel_extracted(&OtelTraceContext::new(), &headers);
    assert!(read.is_valid() && read.is_remote(), "{headers:?}");
    assert_eq!(ours(read.trace_id()), client.trace_id);
    assert_eq!(ours_span(read.span_id()), client.span_id);
    assert!(read.is_sampled());
}

#[tokio::test]
async fn opentelemetry_reads_an_unsampled_traceparent_from_our_client() {
    let caller = Caller::random();
    let (headers, collector) = headers_sent_by_our_client(
        ClientTraceLayer::new(),
        &[("traceparent", &caller.traceparent(false))],
    )
    .await;
    support::assert_no_spans(&collector).await;

    let read = otel_extracted(&OtelTraceContext::new(), &headers);
    assert!(read.is_valid(), "{headers:?}");
    assert_eq!(ours(read.trace_id()), caller.trace_id);
    assert_ne!(
        ours_span(read.span_id()),
        caller.span_id,
        "a new span id for the call"
    );
    assert!(!read.is_sampled());
}

#[tokio::test]
async fn opentelemetry_zipkin_reads_the_b3_headers_our_client_injects() {
    for (ours_name, encoding) in [
        ("b3", ZipkinEncoding::SingleHeader),
        ("b3multi", ZipkinEncoding::MultipleHeader),
    ] {
        let layer = ClientTraceLayer::new()
            .propagation(CompositePropagator::from_otel_propagators(ours_name).unwrap());
        let (headers, collector) = headers_sent_by_our_client(layer, &[]).await;
        let spans = support::wait_for_spans(&collector, 2).await;
        let client = spans.iter().find(|s| s.kind == SpanKind::Client).unwrap();
        let server = spans.iter().find(|s| s.kind == SpanKind::Server).unwrap();

        let read = otel_extracted(&ZipkinB3::with_encoding(encoding), &headers);
        assert!(read.is_valid(), "{ours_name}: {headers:?}");
        assert_eq!(ours(read.trace_id()), client.trace_id, "{ours_name}");
        assert_eq!(ours_span(read.span_id()), client.span_id, "{ours_name}");
        assert!(read.is_sampled(), "{ours_name}");
        assert_eq!(client.parent_span_id, Some(server.span_id), "{ours_name}");
        assert!(
            !headers.contains_key("traceparent"),
            "{ours_name}: only B3 configured"
        );
    }
}
