//! What `GrpcTraceLayer` allocates on the unsampled path, without metrics: exactly what inserting
//! the call's `SpanContext` into the request extensions allocates, as for trace-http's
//! `TraceLayer` (whose extraction and sampling it reuses).
//!
//! `allocation-counter` replaces the global allocator in this test binary and counts the
//! allocations of the measuring thread only.

use std::convert::Infallible;
use std::future::ready;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use allocation_counter::AllocationInfo;
use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::Body;
use http_body_util::Full;
use tower::{Layer, Service, service_fn};
use trace_core::sampler::AlwaysOff;
use trace_core::{NoopCollector, SpanContext, TraceFlags};
use trace_grpc::GrpcTraceLayer;

/// One call: ready check, call, one poll, the body drained to its end, everything dropped.
fn serve<S, B>(service: &mut S, request: Request<Full<Bytes>>)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body,
    B::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    let Poll::Ready(ready) = service.poll_ready(&mut cx) else {
        panic!("the service is always ready");
    };
    ready.expect("the service never fails");
    let Poll::Ready(response) = pin!(service.call(request)).poll(&mut cx) else {
        panic!("the inner service answers at once");
    };
    let mut body = pin!(response.expect("the service never fails").into_body());
    while let Poll::Ready(Some(frame)) = body.as_mut().poll_frame(&mut cx) {
        drop(frame.expect("the body never fails"));
    }
}

/// A trailers-only answer with static values (no allocation of its own beyond the header map).
fn answer<B>(
    _request: Request<B>,
) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"\0\0\0\0\0")));
    response
        .headers_mut()
        .insert("grpc-status", HeaderValue::from_static("0"));
    ready(Ok(response))
}

fn allocations<S, B>(mut service: S, prototype: &Request<Full<Bytes>>) -> AllocationInfo
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body,
    B::Error: std::fmt::Debug,
{
    // Warm-up: first use of the thread-local RNG and current-context slot.
    serve(&mut service, prototype.clone());
    let request = prototype.clone();
    allocation_counter::measure(|| serve(&mut service, request))
}

#[test]
fn an_unsampled_call_allocates_only_its_context_in_the_extensions() {
    for traceparent in [
        None,
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
    ] {
        let mut prototype = Request::post("http://127.0.0.1:50051/shop.Cart/Add")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("grpc-timeout", "100m")
            .body(Full::new(Bytes::from_static(b"\0\0\0\0\0")))
            .expect("a valid request");
        if let Some(value) = traceparent {
            prototype
                .headers_mut()
                .insert("traceparent", HeaderValue::from_static(value));
        }
        let layer = GrpcTraceLayer::new(Arc::new(NoopCollector)).sampler(AlwaysOff);
        let bare = allocations(service_fn(answer), &prototype);
        let traced = allocations(layer.layer(service_fn(answer)), &prototype);
        assert_eq!(
            (traced.count_current, traced.bytes_current),
            (bare.count_current, bare.bytes_current),
            "the layer frees all it allocates"
        );
        let added = (
            traced.count_total - bare.count_total,
            traced.bytes_total - bare.bytes_total,
        );
        let mut extensions = prototype.extensions().clone();
        let context =
            SpanContext::new_root(TraceFlags::EMPTY).with_collector(Arc::new(NoopCollector));
        let insert = allocation_counter::measure(|| {
            extensions.insert(context);
        });
        assert_eq!(
            added,
            (insert.count_total, insert.bytes_total),
            "(count, bytes) added by the layer, then by `Extensions::insert` alone"
        );
    }
}
