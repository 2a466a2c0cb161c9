//! One trace across client -> server A -> client -> server B, in each propagation format.

mod support;

use std::sync::Arc;

use support::*;
use trace_core::propagation::{
    CompositePropagator, JaegerPropagator, Propagator, TraceContextPropagator,
};
use trace_core::sampler::{AlwaysOff, AlwaysOn};
use trace_core::{InMemoryCollector, Span, SpanKind};
use trace_grpc::{GrpcClientLayer, GrpcTraceBinPropagator, GrpcTraceLayer};
use trace_grpc_test_proto::EchoRequest;

fn only(format: impl Propagator + 'static) -> CompositePropagator {
    CompositePropagator::new(vec![Box::new(format)])
}

/// Servers A and B, A forwarding through `forward`; returns the `forward_to` value for A.
async fn chain(
    server: impl Fn() -> GrpcTraceLayer,
    forward: GrpcClientLayer,
) -> (std::net::SocketAddr, String) {
    let b = start_server(server(), forward.clone()).await;
    let a = start_server(server(), forward).await;
    (a, b.to_string())
}

/// The spans of one trace in causal order: each the parent of the next.
fn assert_one_chain(spans: &[Span], kinds: &[SpanKind]) {
    assert_eq!(spans.len(), kinds.len(), "{spans:#?}");
    let trace_id = spans[0].trace_id;
    assert!(spans.iter().all(|s| s.trace_id == trace_id), "one trace");
    let mut ordered: Vec<&Span> = Vec::new();
    let mut parent = spans
        .iter()
        .find(|s| !spans.iter().any(|p| Some(p.span_id) == s.parent_span_id))
        .expect("a first span");
    ordered.push(parent);
    while let Some(child) = spans
        .iter()
        .find(|s| s.parent_span_id == Some(parent.span_id))
    {
        ordered.push(child);
        parent = child;
    }
    let found: Vec<SpanKind> = ordered.iter().map(|s| s.kind).collect();
    assert_eq!(found, kinds, "parent links: {spans:#?}");
}

async fn call_through_chain(
    collector: &Arc<InMemoryCollector>,
    server: impl Fn() -> GrpcTraceLayer,
    client: GrpcClientLayer,
) {
    let (a, b) = chain(
        server,
        client.clone().root_traces(AlwaysOff, collector.clone()),
    )
    .await;
    let mut client = connect(
        &a.to_string(),
        client.root_traces(AlwaysOn, collector.clone()),
    )
    .await;
    let response = client
        .unary(EchoRequest {
            message: "through".into(),
            forward_to: b,
            ..Default::default()
        })
        .await
        .expect("the chain answers")
        .into_inner();
    let spans = wait_for(collector, 4, |_| true).await;
    assert_one_chain(
        &spans,
        &[
            SpanKind::Client,
            SpanKind::Server,
            SpanKind::Client,
            SpanKind::Server,
        ],
    );
    assert_eq!(
        response.trace_id,
        spans[0].trace_id.to_string(),
        "B saw the same trace"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_is_one_trace_in_w3c_format() {
    let collector = collector();
    let server =
        || GrpcTraceLayer::new(collector.clone()).propagation(only(TraceContextPropagator::new()));
    call_through_chain(
        &collector,
        server,
        GrpcClientLayer::new().propagation(only(TraceContextPropagator::new())),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_is_one_trace_in_jaeger_format() {
    let collector = collector();
    let server =
        || GrpcTraceLayer::new(collector.clone()).propagation(only(JaegerPropagator::new()));
    call_through_chain(
        &collector,
        server,
        GrpcClientLayer::new().propagation(only(JaegerPropagator::new())),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debug_header_traces_the_whole_chain_at_sampler_never() {
    let collector = collector();
    let server = || GrpcTraceLayer::new(collector.clone()).sampler(AlwaysOff);
    let (a, b) = chain(server, GrpcClientLayer::new()).await;
    let mut client = connect(&a.to_string(), GrpcClientLayer::new()).await;
    let request = || EchoRequest {
        forward_to: b.clone(),
        ..Default::default()
    };
    // Without the header, nothing is recorded (checked once the debug call's spans are in).
    client.unary(request()).await.expect("the chain answers");
    let mut debug = tonic::Request::new(request());
    debug
        .metadata_mut()
        .insert("jaeger-debug-id", "chain-debug-1".parse().expect("ascii"));
    client.unary(debug).await.expect("the chain answers");

    let spans = wait_for(&collector, 3, |_| true).await;
    assert_one_chain(
        &spans,
        &[SpanKind::Server, SpanKind::Client, SpanKind::Server],
    );
    let first = spans
        .iter()
        .find(|s| s.parent_span_id.is_none())
        .expect("A's span starts the trace");
    assert_eq!(text(first, "jaeger-debug-id"), Some("chain-debug-1"));
    assert!(first.flags.is_debug());
    assert_eq!(
        collector.spans().len(),
        3,
        "the call without the header left no span"
    );
}

/// `grpc-trace-bin` laid out by hand: version 0, trace id, span id, sampled.
fn trace_bin(trace_id: u128, span_id: u64) -> Vec<u8> {
    let mut bytes = vec![0u8, 0];
    bytes.extend(trace_id.to_be_bytes());
    bytes.push(1);
    bytes.extend(span_id.to_be_bytes());
    bytes.extend([2, 1]);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_trace_bin_from_an_opencensus_era_client_is_continued() {
    let collector = collector();
    let propagation = CompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(GrpcTraceBinPropagator::new()),
    ]);
    let address = start_server(
        GrpcTraceLayer::new(collector.clone()).propagation(propagation),
        GrpcClientLayer::new(),
    )
    .await;
    let mut client = connect(&address.to_string(), GrpcClientLayer::new()).await;
    let mut request = tonic::Request::new(EchoRequest::default());
    // tonic encodes binary metadata itself: an encoder independent of ours.
    request.metadata_mut().insert_bin(
        "grpc-trace-bin",
        tonic::metadata::MetadataValue::from_bytes(&trace_bin(
            0x4bf92f3577b34da6a3ce929d0e0e4736,
            0x00f067aa0ba902b7,
        )),
    );
    client.unary(request).await.expect("the call succeeds");
    let spans = wait_for(&collector, 1, server_spans).await;
    assert_eq!(
        spans[0].trace_id.to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(
        spans[0].parent_span_id.map(|id| id.to_string()).as_deref(),
        Some("00f067aa0ba902b7")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_trace_bin_written_by_the_client_layer_decodes_with_tonic() {
    let collector = collector();
    let address = start_server(
        GrpcTraceLayer::new(collector.clone()).propagation(only(GrpcTraceBinPropagator::new())),
        GrpcClientLayer::new(),
    )
    .await;
    let mut client = connect(
        &address.to_string(),
        GrpcClientLayer::new()
            .propagation(only(GrpcTraceBinPropagator::new()))
            .root_traces(AlwaysOn, collector.clone()),
    )
    .await;
    // The handler answers with the bytes tonic's metadata decoder read.
    let decoded = client
        .unary(EchoRequest::default())
        .await
        .expect("the call succeeds")
        .into_inner()
        .message;
    let spans = wait_for(&collector, 2, |_| true).await;
    let client_span = spans
        .iter()
        .find(|s| s.kind == SpanKind::Client)
        .expect("client span");
    let expected: String = trace_bin(client_span.trace_id.to_u128(), client_span.span_id.to_u64())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(decoded, expected);
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server)
        .expect("server span");
    assert_eq!(server.parent_span_id, Some(client_span.span_id));
}

/// A server stream whose messages each come from a call to another server, made while the
/// response stream is polled (after the handler has returned): those calls continue the trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_made_inside_a_server_stream_continue_the_callers_trace() {
    let collector = collector();
    let back = start_server(
        GrpcTraceLayer::new(collector.clone()).service_name("back"),
        GrpcClientLayer::new(),
    )
    .await;
    let front = start_server(
        GrpcTraceLayer::new(collector.clone()).service_name("front"),
        GrpcClientLayer::new(),
    )
    .await;
    let mut client = connect(
        &front.to_string(),
        GrpcClientLayer::new().root_traces(AlwaysOn, collector.clone()),
    )
    .await;
    let mut stream = client
        .server_stream(EchoRequest {
            count: 2,
            forward_to: back.to_string(),
            ..Default::default()
        })
        .await
        .expect("the stream starts")
        .into_inner();
    let mut seen_by_back = Vec::new();
    while let Some(message) = stream.message().await.expect("no error") {
        seen_by_back.push(message.trace_id);
    }
    let spans = wait_for(&collector, 6, |_| true).await;
    assert_eq!(spans.len(), 6, "{spans:#?}");
    let caller = spans
        .iter()
        .find(|s| s.kind == SpanKind::Client && s.name == SERVER_STREAM)
        .expect("the caller's span");
    assert!(
        spans.iter().all(|s| s.trace_id == caller.trace_id),
        "one trace: {spans:#?}"
    );
    assert_eq!(
        seen_by_back,
        [caller.trace_id.to_string(), caller.trace_id.to_string()]
    );
    let front_server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server && s.name == SERVER_STREAM)
        .expect("the front server's span");
    assert_eq!(front_server.parent_span_id, Some(caller.span_id));
    let downstream: Vec<&Span> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Client && s.name == UNARY)
        .collect();
    assert_eq!(downstream.len(), 2);
    for call in downstream {
        assert_eq!(call.parent_span_id, Some(front_server.span_id));
        let served = spans
            .iter()
            .filter(|s| s.kind == SpanKind::Server && s.parent_span_id == Some(call.span_id))
            .count();
        assert_eq!(served, 1, "the back server's span under each call");
    }
}
