//! `ClientTraceLayer` around hyper-util's client (and hyper's connection-level `SendRequest`,
//! which sends the origin form with a `Host` header), over real HTTP: client spans as children of
//! the server span being handled, their attributes and status, and what is injected into the
//! outgoing headers (W3C by default, Jaeger and B3 on request), with or without a parent.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tower::{Layer, ServiceExt};
use trace_core::propagation::CompositePropagator;
use trace_core::sampler::{AlwaysOn, Sampler, SamplingDecision, SamplingRequest};
use trace_core::{InMemoryCollector, Span, SpanContext, SpanKind, Status, TraceFlags, TraceId};
use trace_http::{ClientTraceLayer, TraceLayer};

use support::{Caller, Captured, attr_i64, attr_str};

/// Service A (traced, calling the capturing downstream through `layer`) and the downstream.
struct Hop {
    addr: SocketAddr,
    downstream: SocketAddr,
    captured: Captured,
    collector: Arc<InMemoryCollector>,
}

async fn hop(layer: ClientTraceLayer) -> Hop {
    let (downstream, captured) = support::serve_capturing().await;
    let collector = support::collector();
    let app = support::calling_app(downstream, layer).layer(TraceLayer::new(collector.clone()));
    Hop {
        addr: support::serve(app).await,
        downstream,
        captured,
        collector,
    }
}

/// The server and client spans of one call through service A.
async fn server_and_client_spans(collector: &InMemoryCollector) -> (Span, Span) {
    let spans = support::wait_for_spans(collector, 2).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let server = spans.iter().find(|s| s.kind == SpanKind::Server).unwrap();
    let client = spans.iter().find(|s| s.kind == SpanKind::Client).unwrap();
    (server.clone(), client.clone())
}

/// `traceparent` fields: trace id, span id, flags byte.
fn traceparent(headers: &HeaderMap) -> (String, String, u8) {
    let value = headers
        .get("traceparent")
        .expect("traceparent injected")
        .to_str()
        .unwrap();
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    assert_eq!(parts[0], "00");
    (
        parts[1].to_owned(),
        parts[2].to_owned(),
        u8::from_str_radix(parts[3], 16).unwrap(),
    )
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn outgoing_call_in_a_handler_gets_a_client_span_child_of_the_server_span() {
    let hop = hop(ClientTraceLayer::new()).await;
    let reply = support::get(
        hop.addr,
        "/call/items/9?token=secret-query",
        &[("x-userinfo", "alice:secret-password")],
    )
    .await;
    assert_eq!(reply.body, "200 ok");
    let (server, client) = server_and_client_spans(&hop.collector).await;

    assert_eq!(client.kind, SpanKind::Client);
    assert_eq!(client.name, "GET");
    assert_eq!(client.trace_id, server.trace_id);
    assert_eq!(client.parent_span_id, Some(server.span_id));
    assert_eq!(client.status, Status::Unset);
    assert_eq!(attr_str(&client, "http.request.method"), Some("GET"));
    assert_eq!(attr_str(&client, "server.address"), Some("127.0.0.1"));
    assert_eq!(
        attr_i64(&client, "server.port"),
        Some(i64::from(hop.downstream.port()))
    );
    assert_eq!(
        attr_str(&client, "url.full"),
        Some(format!("http://127.0.0.1:{}/items/9", hop.downstream.port()).as_str()),
        "no query, no credentials"
    );
    assert_eq!(attr_i64(&client, "http.response.status_code"), Some(200));
    for kv in &client.attributes {
        assert!(!kv.value.to_string().contains("secret"), "{kv:?}");
    }

    let sent = hop.captured.only();
    let (trace, span, flags) = traceparent(&sent);
    assert_eq!(trace, server.trace_id.to_string());
    assert_eq!(
        span,
        client.span_id.to_string(),
        "the downstream's parent is the client span"
    );
    assert_eq!(flags & 0x01, 0x01, "sampled");
    assert!(client.start_time >= server.start_time);
    assert!(client.end_time() <= server.end_time());
}

#[tokio::test]
async fn record_query_keeps_the_query_in_url_full() {
    let hop = hop(ClientTraceLayer::new().record_query(true)).await;
    support::get(hop.addr, "/call/search?q=rust", &[]).await;
    let (_, client) = server_and_client_spans(&hop.collector).await;
    assert_eq!(
        attr_str(&client, "url.full"),
        Some(format!("http://127.0.0.1:{}/search?q=rust", hop.downstream.port()).as_str())
    );
}

async fn assert_downstream_status_fails_the_client_span(code: u16) {
    let hop = hop(ClientTraceLayer::new()).await;
    let reply = support::get(hop.addr, &format!("/call/status/{code}"), &[]).await;
    assert_eq!(reply.body, format!("{code} ok"));
    let (server, client) = server_and_client_spans(&hop.collector).await;
    assert!(client.status.is_error(), "{code}: {:?}", client.status);
    assert_eq!(
        attr_str(&client, "error.type"),
        Some(code.to_string().as_str())
    );
    assert_eq!(
        attr_i64(&client, "http.response.status_code"),
        Some(i64::from(code))
    );
    assert_eq!(
        server.status,
        Status::Unset,
        "service A itself answered 200"
    );
}

#[tokio::test]
async fn downstream_404_makes_the_client_span_an_error() {
    assert_downstream_status_fails_the_client_span(404).await;
}

#[tokio::test]
async fn downstream_500_makes_the_client_span_an_error() {
    assert_downstream_status_fails_the_client_span(500).await;
}

#[tokio::test]
async fn unsampled_request_still_propagates_its_trace_unsampled() {
    let hop = hop(ClientTraceLayer::new()).await;
    let caller = Caller::random();
    let reply = support::get(
        hop.addr,
        "/call/hop",
        &[("traceparent", &caller.traceparent(false))],
    )
    .await;
    assert_eq!(reply.body, "200 ok");
    let (trace, span, flags) = traceparent(&hop.captured.only());
    assert_eq!(trace, caller.trace_id.to_string());
    assert_ne!(span, caller.span_id.to_string());
    assert_eq!(flags, 0x00, "sampled flag 00");
    support::assert_no_spans(&hop.collector).await;
}

fn plain_request(addr: SocketAddr, path: &str) -> Request<Full<Bytes>> {
    support::request(Method::GET, addr, path, &[])
}

#[tokio::test]
async fn outside_any_request_nothing_is_injected_by_default() {
    let (downstream, captured) = support::serve_capturing().await;
    let client = support::traced_client(ClientTraceLayer::new());
    let reply = support::send_traced(&client, plain_request(downstream, "/plain")).await;
    assert_eq!(reply.status, 200);
    let sent = captured.only();
    for name in [
        "traceparent",
        "tracestate",
        "baggage",
        "uber-trace-id",
        "b3",
    ] {
        assert!(!sent.contains_key(name), "{name} injected: {sent:?}");
    }
}

#[tokio::test]
async fn root_traces_start_a_client_span_and_inject_it() {
    let (downstream, captured) = support::serve_capturing().await;
    let collector = support::collector();
    let client =
        support::traced_client(ClientTraceLayer::new().root_traces(AlwaysOn, collector.clone()));
    support::send_traced(&client, plain_request(downstream, "/job")).await;
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.kind, SpanKind::Client);
    assert_eq!(span.name, "GET");
    assert_eq!(span.parent_span_id, None, "a new trace");
    let (trace, span_id, flags) = traceparent(&captured.only());
    assert_eq!(trace, span.trace_id.to_string());
    assert_eq!(span_id, span.span_id.to_string());
    assert_eq!(flags & 0x01, 0x01);
}

#[tokio::test]
async fn a_context_in_the_request_extensions_is_the_parent() {
    let (downstream, captured) = support::serve_capturing().await;
    let collector = support::collector();
    let client = support::traced_client(ClientTraceLayer::new());
    let parent = SpanContext::new_root(TraceFlags::SAMPLED).with_collector(collector.clone());
    let mut request = plain_request(downstream, "/job");
    request.extensions_mut().insert(parent.clone());
    support::send_traced(&client, request).await;
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.trace_id, parent.trace_id());
    assert_eq!(span.parent_span_id, Some(parent.span_id()));
    let (_, span_id, _) = traceparent(&captured.only());
    assert_eq!(span_id, span.span_id.to_string());
}

#[tokio::test]
async fn unreachable_downstream_makes_the_client_span_an_error() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let collector = support::collector();
    let client =
        support::traced_client(ClientTraceLayer::new().root_traces(AlwaysOn, collector.clone()));
    let result = tokio::time::timeout(
        support::REQUEST_TIMEOUT,
        client.oneshot(plain_request(closed, "/nobody-home")),
    )
    .await
    .expect("the connection is refused in time");
    assert!(result.is_err());
    let span = support::wait_for_one_span(&collector).await;
    assert!(span.status.is_error(), "{:?}", span.status);
    assert_eq!(attr_str(&span, "error.type"), Some("_OTHER"));
    assert_eq!(attr_i64(&span, "http.response.status_code"), None);
}

#[tokio::test]
async fn jaeger_and_b3_are_injected_when_configured() {
    let layer = ClientTraceLayer::new()
        .propagation(CompositePropagator::from_otel_propagators("jaeger,b3multi").unwrap());
    let hop = hop(layer).await;
    support::get(hop.addr, "/call/hop", &[]).await;
    let (server, client) = server_and_client_spans(&hop.collector).await;
    let sent = hop.captured.only();

    assert!(
        !sent.contains_key("traceparent"),
        "only the configured formats: {sent:?}"
    );
    assert!(!sent.contains_key("b3"), "multi, not single: {sent:?}");
    assert_eq!(
        header(&sent, "uber-trace-id"),
        Some(
            format!(
                "{}:{}:{}:01",
                client.trace_id, client.span_id, server.span_id
            )
            .as_str()
        )
    );
    assert_eq!(
        header(&sent, "x-b3-traceid"),
        Some(client.trace_id.to_string().as_str())
    );
    assert_eq!(
        header(&sent, "x-b3-spanid"),
        Some(client.span_id.to_string().as_str())
    );
    assert_eq!(
        header(&sent, "x-b3-parentspanid"),
        Some(server.span_id.to_string().as_str())
    );
    assert_eq!(header(&sent, "x-b3-sampled"), Some("1"));
}

#[tokio::test]
async fn a_debug_request_propagates_the_debug_flag_in_jaeger_and_b3() {
    let layer = ClientTraceLayer::new()
        .propagation(CompositePropagator::from_otel_propagators("jaeger,b3").unwrap());
    let hop = hop(layer).await;
    support::get(hop.addr, "/call/hop", &[("jaeger-debug-id", "dbg-1")]).await;
    let (_, client) = server_and_client_spans(&hop.collector).await;
    let sent = hop.captured.only();
    let uber = header(&sent, "uber-trace-id").unwrap();
    assert!(uber.ends_with(":03"), "sampled + debug: {uber}");
    let b3 = header(&sent, "b3").unwrap();
    assert!(
        b3.starts_with(&format!("{}-{}-d", client.trace_id, client.span_id)),
        "b3 debug state `d`: {b3}"
    );
    assert!(
        !sent.contains_key("jaeger-debug-id"),
        "the debug id is not forwarded"
    );
}

#[tokio::test]
async fn unknown_method_client_span_is_named_http_with_the_original_method() {
    let (downstream, captured) = support::serve_capturing().await;
    let collector = support::collector();
    let client =
        support::traced_client(ClientTraceLayer::new().root_traces(AlwaysOn, collector.clone()));
    let purge = Method::from_bytes(b"PURGE").unwrap();
    let reply = support::send_traced(
        &client,
        support::request(purge, downstream, "/cache/logo", &[]),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(captured.len(), 1);
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(attr_str(&span, "http.request.method"), Some("_OTHER"));
    assert_eq!(
        attr_str(&span, "http.request.method_original"),
        Some("PURGE")
    );
    // OpenTelemetry HTTP span names: "{method} MUST be HTTP" when http.request.method is _OTHER.
    assert_eq!(span.name, "HTTP");
}

/// hyper's connection-level client sends the origin form (`/items`) with the target in `Host`:
/// the span's address, port and `url.full` must all come from that header.
#[tokio::test]
async fn origin_form_request_over_send_request_takes_the_target_from_host() {
    let (downstream, captured) = support::serve_capturing().await;
    let collector = support::collector();
    let stream = tokio::net::TcpStream::connect(downstream).await.unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    // `SendRequest` is not a tower service; one request at a time over the one connection.
    let sender = Arc::new(tokio::sync::Mutex::new(sender));
    let send = tower::service_fn(move |request: Request<Full<Bytes>>| {
        let sender = sender.clone();
        async move { sender.lock().await.send_request(request).await }
    });
    let client = ClientTraceLayer::new().layer(send);

    let host = format!("localhost:{}", downstream.port());
    let mut request = Request::get("/items?token=secret")
        .header(http::header::HOST, &host)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let parent = SpanContext::new_root(TraceFlags::SAMPLED).with_collector(collector.clone());
    request.extensions_mut().insert(parent.clone());
    let exchange = async {
        let response = client.oneshot(request).await.unwrap();
        let status = response.status();
        response.into_body().collect().await.unwrap();
        status
    };
    let status = tokio::time::timeout(support::REQUEST_TIMEOUT, exchange)
        .await
        .expect("request finished in time");
    assert_eq!(status, 200);

    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.kind, SpanKind::Client);
    assert_eq!(span.parent_span_id, Some(parent.span_id()));
    assert_eq!(attr_str(&span, "server.address"), Some("localhost"));
    assert_eq!(
        attr_i64(&span, "server.port"),
        Some(i64::from(downstream.port()))
    );
    assert_eq!(
        attr_str(&span, "url.full"),
        Some(format!("http://localhost:{}/items", downstream.port()).as_str()),
        "the Host header's authority and port, no query"
    );
    assert_eq!(attr_i64(&span, "http.response.status_code"), Some(200));
    let sent = captured.only();
    assert_eq!(header(&sent, "host"), Some(host.as_str()));
    let (trace, span_id, _) = traceparent(&sent);
    assert_eq!(trace, span.trace_id.to_string());
    assert_eq!(span_id, span.span_id.to_string());
}

/// A root sampler that samples everything and keeps the trace ids it was asked about.
#[derive(Debug, Clone, Default)]
struct RecordingSampler(Arc<Mutex<Vec<TraceId>>>);

impl Sampler for RecordingSampler {
    fn should_sample(&self, request: &SamplingRequest<'_>) -> SamplingDecision {
        self.0.lock().unwrap().push(request.trace_id);
        SamplingDecision::Sample
    }
}

#[tokio::test]
async fn a_root_trace_carries_the_trace_id_its_sampler_judged() {
    let (downstream, captured) = support::serve_capturing().await;
    let collector = support::collector();
    let sampler = RecordingSampler::default();
    let client = support::traced_client(
        ClientTraceLayer::new().root_traces(sampler.clone(), collector.clone()),
    );
    support::send_traced(&client, plain_request(downstream, "/job")).await;
    let judged = sampler.0.lock().unwrap().clone();
    assert_eq!(judged.len(), 1, "one decision per root request: {judged:?}");

    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.trace_id, judged[0]);
    assert_eq!(span.parent_span_id, None);
    let (trace, span_id, flags) = traceparent(&captured.only());
    assert_eq!(trace, judged[0].to_string());
    assert_eq!(span_id, span.span_id.to_string());
    assert_eq!(flags, 0x03, "sampled and random, as a new root");
}
