//! Whatever bytes arrive in trace headers, the traced service answers exactly as it would
//! without them, and never panics.

use std::convert::Infallible;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response};
use http_body::Body;
use http_body_util::Full;
use proptest::prelude::*;
use tower::{Layer, Service, service_fn};
use trace_core::InMemoryCollector;
use trace_http::TraceLayer;

const TRACE_HEADERS: [&str; 14] = [
    "traceparent",
    "tracestate",
    "baggage",
    "uber-trace-id",
    "jaeger-debug-id",
    "jaeger-baggage",
    "uberctx-user",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "x-request-id",
];

/// Runs one request through a `TraceLayer` around an echo service, synchronously (everything is
/// ready at once), and returns the status and body.
fn answer(headers: &[(HeaderName, HeaderValue)]) -> (u16, Bytes) {
    let collector = Arc::new(InMemoryCollector::new(16));
    let mut service = TraceLayer::new(collector)
        .record_request_headers(["x-request-id"])
        .layer(service_fn(|request: Request<()>| async move {
            let body = format!("{} {}", request.method(), request.uri().path());
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
        }));
    let mut request = Request::get("/echo").body(()).expect("valid request");
    for (name, value) in headers {
        request.headers_mut().append(name.clone(), value.clone());
    }
    let mut cx = Context::from_waker(Waker::noop());
    let future = pin!(service.call(request));
    let Poll::Ready(Ok(response)) = future.poll(&mut cx) else {
        panic!("an echo service answers at once");
    };
    let status = response.status().as_u16();
    let mut body = pin!(response.into_body());
    let mut bytes = Vec::new();
    while let Poll::Ready(Some(frame)) = body.as_mut().poll_frame(&mut cx) {
        if let Ok(data) = frame.expect("infallible body").into_data() {
            bytes.extend_from_slice(&data);
        }
    }
    (status, Bytes::from(bytes))
}

fn header_value() -> impl Strategy<Value = HeaderValue> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        "[0-9a-fA-F:%=,;+ -]{0,80}".prop_map(String::into_bytes),
        Just(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_vec()),
    ]
    .prop_filter_map("not a header value", |bytes| {
        HeaderValue::from_bytes(&bytes).ok()
    })
}

fn headers() -> impl Strategy<Value = Vec<(HeaderName, HeaderValue)>> {
    proptest::collection::vec(
        (
            proptest::sample::select(&TRACE_HEADERS[..]).prop_map(HeaderName::from_static),
            header_value(),
        ),
        0..8,
    )
}

proptest! {
    #[test]
    fn any_trace_header_bytes_leave_the_response_unchanged(headers in headers()) {
        let expected = answer(&[]);
        prop_assert_eq!(answer(&headers), expected);
    }
}
