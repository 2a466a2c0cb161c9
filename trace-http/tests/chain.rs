//! Three hops over real HTTP — test client → service A (`TraceLayer`, its handler calling B
//! through a `ClientTraceLayer`-wrapped hyper client) → service B (`TraceLayer`) — recorded
//! as one trace, including a debug trace forced at A and carried to B.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use trace_core::propagation::CompositePropagator;
use trace_core::sampler::AlwaysOff;
use trace_core::{InMemoryCollector, Span, SpanKind};
use trace_http::{ClientTraceLayer, TraceIdHeader, TraceLayer};

use support::{Caller, Echo, attr_str, echo_context};

struct Chain {
    a: SocketAddr,
    a_layer: TraceLayer,
    b_layer: TraceLayer,
    collector: Arc<InMemoryCollector>,
}

/// Services A and B recording into one collector; `configure` adjusts both trace layers.
async fn chain(configure: impl Fn(TraceLayer) -> TraceLayer, client: ClientTraceLayer) -> Chain {
    let collector = support::collector();
    let b_layer = configure(
        TraceLayer::new(collector.clone())
            .service_name("b")
            .trace_id_header(TraceIdHeader::TraceResponse),
    );
    let b = support::serve(
        Router::new()
            .route("/hop", get(echo_context))
            .layer(b_layer.clone()),
    )
    .await;
    let a_layer = configure(
        TraceLayer::new(collector.clone())
            .service_name("a")
            .trace_id_header(TraceIdHeader::TraceResponse),
    );
    let a = support::serve(support::calling_app(b, client).layer(a_layer.clone())).await;
    Chain {
        a,
        a_layer,
        b_layer,
        collector,
    }
}

/// A's server span, A's client span and B's server span.
async fn three_spans(collector: &InMemoryCollector) -> (Span, Span, Span) {
    let spans = support::wait_for_spans(collector, 3).await;
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let find = |kind: SpanKind, service: Option<&str>| {
        spans
            .iter()
            .find(|s| {
                s.kind == kind
                    && service.is_none_or(|name| attr_str(s, "service.name") == Some(name))
            })
            .unwrap_or_else(|| panic!("no {kind:?} span of {service:?} in {spans:#?}"))
            .clone()
    };
    (
        find(SpanKind::Server, Some("a")),
        find(SpanKind::Client, None),
        find(SpanKind::Server, Some("b")),
    )
}

fn assert_one_trace_with_parentage(a_server: &Span, a_client: &Span, b_server: &Span) {
    assert_eq!(a_client.trace_id, a_server.trace_id);
    assert_eq!(b_server.trace_id, a_server.trace_id);
    assert_eq!(
        a_client.parent_span_id,
        Some(a_server.span_id),
        "A client ← A server"
    );
    assert_eq!(
        b_server.parent_span_id,
        Some(a_client.span_id),
        "B server ← A client"
    );
    assert_eq!(a_server.name, "GET /call/{*path}");
    assert_eq!(a_client.name, "GET");
    assert_eq!(b_server.name, "GET /hop");
}

#[tokio::test]
async fn three_hops_are_one_trace() {
    let chain = chain(|layer| layer, ClientTraceLayer::new()).await;
    let reply = support::get(chain.a, "/call/hop", &[]).await;
    let (a_server, a_client, b_server) = three_spans(&chain.collector).await;
    assert_one_trace_with_parentage(&a_server, &a_client, &b_server);
    assert_eq!(
        a_server.parent_span_id, None,
        "the test client sent no context"
    );

    // B's handler saw the same trace, as its request context and as the current context.
    let echo = Echo::parse(reply.body.strip_prefix("200 ").unwrap());
    assert_eq!(echo.trace_id, a_server.trace_id.to_string());
    assert_eq!(echo.current_trace_id, a_server.trace_id.to_string());
    assert_eq!(echo.span_id, b_server.span_id.to_string());
    assert_eq!(echo.parent_span_id, a_client.span_id.to_string());
    assert_eq!(
        reply.header("traceresponse"),
        Some(support::w3c_value(&a_server).as_str())
    );
}

#[tokio::test]
async fn three_hops_continue_the_callers_trace_and_carry_its_tracestate() {
    let chain = chain(|layer| layer, ClientTraceLayer::new()).await;
    let caller = Caller::random();
    let tracestate = "vendor=opaque-value";
    support::get(
        chain.a,
        "/call/hop",
        &[
            ("traceparent", &caller.traceparent(true)),
            ("tracestate", tracestate),
        ],
    )
    .await;
    let (a_server, a_client, b_server) = three_spans(&chain.collector).await;
    assert_one_trace_with_parentage(&a_server, &a_client, &b_server);
    assert_eq!(a_server.trace_id, caller.trace_id);
    assert_eq!(a_server.parent_span_id, Some(caller.span_id));
    for span in [&a_server, &a_client, &b_server] {
        assert_eq!(
            span.trace_state.header_value(),
            Some(tracestate),
            "{}",
            span.name
        );
    }
}

#[tokio::test]
async fn debug_request_is_recorded_across_the_chain_under_always_off() {
    let chain = chain(|layer| layer.sampler(AlwaysOff), ClientTraceLayer::new()).await;

    // Without the debug header nothing is recorded anywhere.
    let plain = support::get(chain.a, "/call/hop", &[]).await;
    assert!(!Echo::parse(plain.body.strip_prefix("200 ").unwrap()).sampled);
    support::assert_no_spans(&chain.collector).await;

    let reply = support::get(chain.a, "/call/hop", &[("jaeger-debug-id", "chain-debug")]).await;
    let (a_server, a_client, b_server) = three_spans(&chain.collector).await;
    assert_one_trace_with_parentage(&a_server, &a_client, &b_server);
    assert!(a_server.flags.is_debug());
    assert_eq!(attr_str(&a_server, "jaeger-debug-id"), Some("chain-debug"));
    assert!(
        b_server.flags.is_sampled(),
        "B follows the sampled flag A sent"
    );
    assert_eq!(
        reply.header("traceresponse"),
        Some(support::w3c_value(&a_server).as_str())
    );
    assert_eq!(chain.a_layer.debug_sampler().forced(), 1);
}

#[tokio::test]
async fn debug_flag_carried_by_jaeger_forces_the_downstream_too() {
    let client = ClientTraceLayer::new()
        .propagation(CompositePropagator::from_otel_propagators("jaeger").unwrap());
    let chain = chain(|layer| layer.sampler(AlwaysOff), client).await;
    support::get(chain.a, "/call/hop", &[("jaeger-debug-id", "chain-debug")]).await;
    let (a_server, a_client, b_server) = three_spans(&chain.collector).await;
    assert_one_trace_with_parentage(&a_server, &a_client, &b_server);
    assert!(a_server.flags.is_debug());
    assert!(b_server.flags.is_debug(), "Jaeger's debug bit reached B");
    assert_eq!(chain.a_layer.debug_sampler().forced(), 1);
    assert_eq!(chain.b_layer.debug_sampler().forced(), 1);
}
