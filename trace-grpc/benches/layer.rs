//! What the gRPC layers add to a unary call, with no network.
//!
//! Each case calls the layered service directly around a service whose future is ready at once,
//! polls that future once with a no-op waker, drains the response body to its end (which ends
//! the span and records the metrics) and drops it. The inner service answers a unary call either
//! trailers-only (`grpc-status` in the headers, empty body: how errors are sent) or with one
//! message and `grpc-status: 0` trailers (how a successful unary call is sent). Requests are
//! cloned from a template inside the timed loop in every case, baselines included. Subtract the
//! matching `no_layer_*` case for what the layer adds.
//!
//! `http_trace_layer_sampled_*` is trace-http's `TraceLayer` on the same call, for reference.
//!
//! Run with `cargo bench -p trace-grpc --bench layer`. Target, added over `no_layer_*`: at most
//! 1 µs for a sampled call.

use std::convert::Infallible;
use std::future::{Future as _, Ready, ready};
use std::hint::black_box;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame};
use http_body_util::Full;
use prometheus_client::registry::Registry;
use tower::{Layer, Service};
use trace_core::sampler::AlwaysOff;
use trace_core::{NoopCollector, SpanContext, SpanId, TraceFlags, TraceId};
use trace_grpc::{GrpcClientLayer, GrpcServerMetrics, GrpcTraceLayer};

const SAMPLED_PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A unary response body: one message then the trailers, or nothing (trailers-only).
struct UnaryBody {
    message: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Body for UnaryBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(message) = self.message.take() {
            return Poll::Ready(Some(Ok(Frame::data(message))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.message.is_none() && self.trailers.is_none()
    }
}

/// The inner service: answers at once, dropping the request.
#[derive(Clone, Copy)]
struct Answer {
    trailers_only: bool,
}

impl<B> Service<Request<B>> for Answer {
    type Response = Response<UnaryBody>;
    type Error = Infallible;
    type Future = Ready<Result<Response<UnaryBody>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        drop(request);
        let grpc = HeaderValue::from_static("application/grpc");
        let ok = HeaderValue::from_static("0");
        let response = if self.trailers_only {
            let mut response = Response::new(UnaryBody {
                message: None,
                trailers: None,
            });
            response.headers_mut().insert("content-type", grpc);
            response.headers_mut().insert("grpc-status", ok);
            response
        } else {
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", ok);
            let mut response = Response::new(UnaryBody {
                // A 5-byte gRPC prefix and a 12-byte message.
                message: Some(Bytes::from_static(b"\0\0\0\0\x0c\x0a\x0ahello world")),
                trailers: Some(trailers),
            });
            response.headers_mut().insert("content-type", grpc);
            response
        };
        ready(Ok(response))
    }
}

/// One call through `service`: ready check, call, a single poll, the body drained to its end,
/// everything dropped.
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
    let (parts, body) = response.expect("the service never fails").into_parts();
    let mut body = pin!(body);
    loop {
        match body.as_mut().poll_frame(&mut cx) {
            Poll::Ready(Some(frame)) => {
                black_box(frame.expect("the body never fails"));
            }
            Poll::Ready(None) => break,
            Poll::Pending => panic!("the body is ready at once"),
        }
    }
    black_box(&parts);
}

/// A unary gRPC request as tonic's client sends it, with `extra` headers.
fn request(extra: &[(&'static str, &'static str)]) -> Request<Full<Bytes>> {
    let mut request = Request::post("http://127.0.0.1:50051/tracewire.test.v1.Echo/Unary")
        .version(http::Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", "tonic/0.14.2")
        .header("grpc-accept-encoding", "identity")
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\x07\x0a\x05hello")))
        .expect("a valid request");
    for (name, value) in extra {
        request
            .headers_mut()
            .insert(*name, HeaderValue::from_static(value));
    }
    request
}

fn bench_case<S, B>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    mut service: S,
    mut setup: impl FnMut() -> Request<Full<Bytes>>,
) where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body,
    B::Error: std::fmt::Debug,
{
    // First use of the thread-local RNG, clocks, label sets, outside the timing.
    serve(&mut service, setup());
    group.bench_function(name, |b| b.iter(|| serve(&mut service, setup())));
}

fn server_layer(c: &mut Criterion) {
    let mut group = c.benchmark_group("grpc_server_layer");
    let plain = request(&[]);
    let sampled_parent = request(&[("traceparent", SAMPLED_PARENT)]);
    let sampled = GrpcTraceLayer::new(Arc::new(NoopCollector));
    let unsampled = GrpcTraceLayer::new(Arc::new(NoopCollector)).sampler(AlwaysOff);
    let http_layer = trace_http::TraceLayer::new(Arc::new(NoopCollector));
    let with_metrics = sampled
        .clone()
        .metrics(GrpcServerMetrics::new(&mut Registry::default()));

    for (shape, trailers_only) in [("trailers_only", true), ("body_trailers", false)] {
        let answer = Answer { trailers_only };
        bench_case(&mut group, &format!("no_layer_{shape}"), answer, || {
            sampled_parent.clone()
        });
        bench_case(
            &mut group,
            &format!("unsampled_{shape}"),
            unsampled.layer(answer),
            || plain.clone(),
        );
        bench_case(
            &mut group,
            &format!("sampled_{shape}"),
            sampled.layer(answer),
            || sampled_parent.clone(),
        );
        bench_case(
            &mut group,
            &format!("sampled_metrics_{shape}"),
            with_metrics.layer(answer),
            || sampled_parent.clone(),
        );
        // For reference: trace-http's layer on the same call, classifying by HTTP status.
        bench_case(
            &mut group,
            &format!("http_trace_layer_sampled_{shape}"),
            http_layer.layer(answer),
            || sampled_parent.clone(),
        );
    }
    group.finish();
}

fn client_layer(c: &mut Criterion) {
    let mut group = c.benchmark_group("grpc_client_layer");
    let parent = SpanContext::new(
        TraceId::from_hex(b"4bf92f3577b34da6a3ce929d0e0e4736").expect("a valid trace id"),
        SpanId::from_hex(b"00f067aa0ba902b7").expect("a valid span id"),
        TraceFlags::SAMPLED,
    )
    .with_collector(Arc::new(NoopCollector));
    let outgoing = || {
        let mut request = request(&[]);
        request.extensions_mut().insert(parent.clone());
        request
    };
    let answer = Answer {
        trailers_only: false,
    };
    bench_case(&mut group, "no_layer", answer, outgoing);
    bench_case(
        &mut group,
        "sampled_parent",
        GrpcClientLayer::new().layer(answer),
        outgoing,
    );
    group.finish();
}

criterion_group!(benches, server_layer, client_layer);
criterion_main!(benches);
