//! How the layers classify what a gRPC peer sends, including what no well-behaved peer sends:
//! driven in process with hand-made responses (the loopback tests cover real tonic peers).

use std::convert::Infallible;
use std::future::{Future as _, ready};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{Empty, Full};
use tower::{Layer, Service, service_fn};
use trace_core::{InMemoryCollector, Span, SpanContext, TraceFlags, Value};
use trace_grpc::semconv::*;
use trace_grpc::{GrpcClientLayer, GrpcTraceLayer};

fn text<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    match span.attribute(key)? {
        Value::String(value) => Some(value.as_str()),
        _ => None,
    }
}

/// Calls `service` once, drains the response body, and returns the one span recorded.
fn call<S, B>(service: &mut S, request: Request<Full<Bytes>>, collector: &InMemoryCollector) -> Span
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
{
    let mut cx = Context::from_waker(Waker::noop());
    let Poll::Ready(Ok(response)) = pin!(service.call(request)).poll(&mut cx) else {
        panic!("the inner service answers at once");
    };
    let mut body = pin!(response.into_body());
    while let Poll::Ready(Some(_)) = body.as_mut().poll_frame(&mut cx) {}
    let spans = collector.spans();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    collector.clear();
    spans.into_iter().next().expect("one span")
}

fn grpc_request(path: &str) -> Request<Full<Bytes>> {
    Request::post(format!("http://backend:50051{path}"))
        .header("content-type", "application/grpc")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(Full::new(Bytes::new()))
        .expect("valid request")
}

fn answer(status: StatusCode, headers: &[Header]) -> Response<Empty<Bytes>> {
    let mut response = Response::new(Empty::new());
    *response.status_mut() = status;
    for (name, value) in headers {
        response
            .headers_mut()
            .insert(*name, value.parse().expect("valid value"));
    }
    response
}

/// A response status and headers, the status code expected, whether a server span fails.
type Case = (StatusCode, &'static [Header], &'static str, bool);
type Header = (&'static str, &'static str);

#[test]
fn odd_responses_are_classified_without_failing_the_call() {
    let collector = Arc::new(InMemoryCollector::new(100));
    let cases: [Case; 6] = [
        // A proxy's answer, no grpc-status: gRPC's HTTP-to-status mapping.
        (StatusCode::SERVICE_UNAVAILABLE, &[], "UNAVAILABLE", true),
        (StatusCode::NOT_FOUND, &[], "UNIMPLEMENTED", true),
        (StatusCode::UNAUTHORIZED, &[], "UNAUTHENTICATED", false),
        // A status that is no number, or out of range: UNKNOWN.
        (
            StatusCode::OK,
            &[("grpc-status", "banana")],
            "UNKNOWN",
            true,
        ),
        (StatusCode::OK, &[("grpc-status", "99")], "UNKNOWN", true),
        // A body that ends without any status.
        (StatusCode::OK, &[], "UNKNOWN", true),
    ];
    for (status, headers, expected, server_error) in cases {
        let inner = service_fn(move |_request: Request<_>| {
            ready(Ok::<_, Infallible>(answer(status, headers)))
        });
        let mut server = GrpcTraceLayer::new(collector.clone()).layer(inner);
        let span = call(&mut server, grpc_request("/shop.Cart/Add"), &collector);
        assert_eq!(
            text(&span, RPC_RESPONSE_STATUS_CODE),
            Some(expected),
            "{status} {headers:?}"
        );
        assert_eq!(span.status.is_error(), server_error, "{status} {headers:?}");
    }
}

#[test]
fn a_long_grpc_message_is_cut_and_decoded() {
    let collector = Arc::new(InMemoryCollector::new(100));
    let long: &'static str = Box::leak(format!("caf%C3%A9{}", "x".repeat(5000)).into_boxed_str());
    let inner = service_fn(move |_request: Request<_>| {
        ready(Ok::<_, Infallible>(answer(
            StatusCode::OK,
            &[("grpc-status", "13"), ("grpc-message", long)],
        )))
    });
    let mut server = GrpcTraceLayer::new(collector.clone()).layer(inner);
    let span = call(&mut server, grpc_request("/shop.Cart/Add"), &collector);
    let trace_core::Status::Error { message } = &span.status else {
        panic!("INTERNAL fails the span: {:?}", span.status);
    };
    assert!(message.starts_with("café"));
    assert!(message.len() <= 1024);
}

#[test]
fn a_path_that_is_no_grpc_method_is_other() {
    let collector = Arc::new(InMemoryCollector::new(100));
    let inner = service_fn(|_request: Request<_>| {
        ready(Ok::<_, Infallible>(answer(
            StatusCode::OK,
            &[("grpc-status", "0")],
        )))
    });
    let mut server = GrpcTraceLayer::new(collector.clone()).layer(inner);
    for path in ["/", "/no-method", "/a/b/c", "/sp%20ace/x"] {
        let span = call(&mut server, grpc_request(path), &collector);
        assert_eq!(span.name, "grpc", "{path}");
        assert_eq!(text(&span, RPC_METHOD), Some(OTHER_METHOD), "{path}");
    }
}

#[test]
fn a_panicking_handler_ends_its_span_as_unknown() {
    let collector = Arc::new(InMemoryCollector::new(100));
    let inner = service_fn(|_request: Request<_>| async {
        if true {
            panic!("the handler fails");
        }
        Ok::<_, Infallible>(answer(StatusCode::OK, &[]))
    });
    let mut server = GrpcTraceLayer::new(collector.clone()).layer(inner);
    let mut future = Box::pin(server.call(grpc_request("/shop.Cart/Add")));
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
    }));
    assert!(panicked.is_err());
    drop(future);
    let spans = collector.spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(text(&spans[0], RPC_RESPONSE_STATUS_CODE), Some("UNKNOWN"));
    assert!(spans[0].status.is_error());
}

#[test]
fn a_client_reads_the_server_address_from_a_full_uri_and_propagates() {
    let collector = Arc::new(InMemoryCollector::new(100));
    let seen = Arc::new(std::sync::Mutex::new(None));
    let seen_by_server = seen.clone();
    let inner = service_fn(move |request: Request<Full<Bytes>>| {
        *seen_by_server.lock().expect("not poisoned") =
            request.headers().get("traceparent").cloned();
        ready(Ok::<_, Infallible>(answer(
            StatusCode::OK,
            &[("grpc-status", "0")],
        )))
    });
    let mut client = GrpcClientLayer::new().layer(inner);
    let parent = SpanContext::new_root(TraceFlags::SAMPLED).with_collector(collector.clone());
    let mut request = grpc_request("/shop.Cart/Add");
    request.headers_mut().remove("traceparent");
    request.extensions_mut().insert(parent.clone());
    let span = call(&mut client, request, &collector);
    assert_eq!(span.parent_span_id, Some(parent.span_id()));
    assert_eq!(text(&span, SERVER_ADDRESS), Some("backend"));
    assert_eq!(span.attribute(SERVER_PORT), Some(&Value::I64(50051)));
    let traceparent = seen
        .lock()
        .expect("not poisoned")
        .clone()
        .expect("injected");
    // Sampled, and the trace id random (W3C level 2): flags 03.
    let expected = format!("00-{}-{}-03", span.trace_id, span.span_id);
    assert_eq!(traceparent.to_str().expect("ascii"), expected);
}
