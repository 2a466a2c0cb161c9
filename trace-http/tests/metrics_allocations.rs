//! What `MetricsLayer` allocates per request once its label sets exist: one request through the
//! layer (call, poll, body drained to its end, everything dropped), after a warm-up request that
//! creates the label sets, counted against the same request through the bare service.
//!
//! The target is nothing: the label set is built from a `&'static str` method, an interned
//! `Arc<str>` route, the status and error type (all `Copy` or a reference count), looked up in
//! the families' maps without being cloned, and the exemplar is two ids written at scrape time.
//!
//! `allocation-counter` replaces the global allocator in this test binary and counts the
//! allocations made by the measuring thread only, so tests running in parallel do not disturb
//! each other.

use std::convert::Infallible;
use std::future::ready;
use std::sync::{Arc, Mutex};

use allocation_counter::AllocationInfo;
use axum::extract::MatchedPath;
use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::Full;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use tower::{Layer, Service, service_fn};
use trace_core::sampler::{AlwaysOff, AlwaysOn};
use trace_core::{NoopCollector, SpanContext, SpanId, TraceFlags, TraceId};
use trace_http::TraceLayer;
use trace_http::body::ResponseBody;
use trace_http::metrics::{MetricsLayer, MetricsObserver};

mod drive;
#[path = "../../trace-core/tests/support/mod.rs"]
mod support;

use drive::serve;

type Handler =
    fn(Request<Full<Bytes>>) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>;

/// The inner service: answers at once with a static body (no allocation).
fn ok(
    _request: Request<Full<Bytes>>,
) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>> {
    ready(Ok(Response::new(Full::new(Bytes::from_static(
        b"{\"id\":42,\"name\":\"alice\"}",
    )))))
}

fn bare() -> tower::util::ServiceFn<Handler> {
    service_fn(ok as Handler)
}

/// Allocations of `requests` requests through `service`, after a warm-up request (it creates
/// the label sets, and makes the first use of thread-locals, clocks and the current-context
/// slot, which are not the steady state). The requests are cloned before the measurement and
/// freed inside it.
fn allocations<S, B>(
    service: &mut S,
    prototype: &Request<Full<Bytes>>,
    requests: usize,
) -> AllocationInfo
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body,
    B::Error: std::fmt::Debug,
{
    serve(service, prototype.clone());
    let batch: Vec<_> = (0..requests).map(|_| prototype.clone()).collect();
    allocation_counter::measure(|| {
        for request in batch {
            serve(service, request);
        }
    })
}

/// `(count_total, bytes_total, count_current, bytes_current)`.
fn counts(info: &AllocationInfo) -> (u64, u64, i64, i64) {
    (
        info.count_total,
        info.bytes_total,
        info.count_current,
        info.bytes_current,
    )
}

/// Asserts that `requests` requests (after the warm-up) through `layered` allocate exactly
/// (count and bytes, total and still live) what they allocate through `baseline`.
fn assert_no_added_allocation<S, T, B, C>(
    mut layered: S,
    mut baseline: T,
    prototype: &Request<Full<Bytes>>,
    requests: usize,
) where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body,
    B::Error: std::fmt::Debug,
    T: Service<Request<Full<Bytes>>, Response = Response<C>>,
    T::Error: std::fmt::Debug,
    C: Body,
    C::Error: std::fmt::Debug,
{
    let base = allocations(&mut baseline, prototype, requests);
    let with_layer = allocations(&mut layered, prototype, requests);
    assert_eq!(
        counts(&with_layer),
        counts(&base),
        "(count, bytes, live count, live bytes) of {requests} request(s): layered {with_layer:?}, \
         baseline {base:?}"
    );
}

/// `GET /users/42` with twenty realistic headers (`content-length: 42` among them, so the
/// request-size histogram is observed too).
fn request() -> Request<Full<Bytes>> {
    let mut request = Request::get("/users/42")
        .body(Full::new(Bytes::new()))
        .expect("a valid request");
    *request.headers_mut() = support::realistic_headers();
    request
}

/// The sampled context `TraceLayer` leaves in the request extensions when it is outside.
fn sampled_context() -> SpanContext {
    SpanContext::new(
        TraceId::from_hex(b"4bf92f3577b34da6a3ce929d0e0e4736").expect("a valid trace id"),
        SpanId::from_hex(b"00f067aa0ba902b7").expect("a valid span id"),
        TraceFlags::SAMPLED,
    )
}

/// axum's `MatchedPath` (no public constructor), taken from a request that went through a real
/// router.
fn matched_path(template: &str, path: &str) -> MatchedPath {
    let slot = Arc::new(Mutex::new(None));
    let seen = slot.clone();
    let mut router: axum::Router = axum::Router::new().route_service(
        template,
        service_fn(move |request: Request<axum::body::Body>| {
            *seen.lock().expect("not poisoned") =
                request.extensions().get::<MatchedPath>().cloned();
            ready(Ok::<_, Infallible>(
                Response::new(axum::body::Body::empty()),
            ))
        }),
    );
    serve(
        &mut router,
        Request::get(path)
            .body(Full::new(Bytes::new()))
            .expect("a valid request"),
    );
    let matched = slot.lock().expect("not poisoned").take();
    matched.expect("the router matched the route")
}

fn with_context(mut request: Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    request.extensions_mut().insert(sampled_context());
    request
}

fn routed(mut request: Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    request
        .extensions_mut()
        .insert(matched_path("/users/{id}", "/users/42"));
    request
}

fn exposition(registry: &Registry) -> String {
    let mut text = String::new();
    encode(&mut text, registry).expect("encodes");
    text
}

#[test]
fn no_route_no_exemplar() {
    let layer = MetricsLayer::new(&mut Registry::default());
    assert_no_added_allocation(layer.layer(bare()), bare(), &request(), 1);
}

#[test]
fn exemplar_from_a_sampled_context() {
    let mut registry = Registry::default();
    let layer = MetricsLayer::new(&mut registry);
    assert_no_added_allocation(layer.layer(bare()), bare(), &with_context(request()), 1);
    // The observations did carry the exemplar (so the case measured the exemplar path).
    let text = exposition(&registry);
    assert!(
        text.contains("trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\""),
        "{text}"
    );
}

#[test]
fn matched_route() {
    let mut registry = Registry::default();
    let layer = MetricsLayer::new(&mut registry);
    assert_no_added_allocation(layer.layer(bare()), bare(), &routed(request()), 1);
    let text = exposition(&registry);
    assert!(text.contains("http_route=\"/users/{id}\""), "{text}");
}

#[test]
fn matched_route_and_exemplar() {
    let layer = MetricsLayer::new(&mut Registry::default());
    assert_no_added_allocation(
        layer.layer(bare()),
        bare(),
        &with_context(routed(request())),
        1,
    );
}

#[test]
fn many_requests_allocate_nothing_either() {
    // Nothing is amortised: a hundred requests with exemplars add nothing (the exemplar map
    // keeps one entry per bucket, created once).
    let layer = MetricsLayer::new(&mut Registry::default());
    assert_no_added_allocation(
        layer.layer(bare()),
        bare(),
        &with_context(routed(request())),
        100,
    );
}

#[test]
fn the_first_request_creates_the_label_sets() {
    // Guards the warm-up: the first request through a new layer does allocate (the series of
    // the four metrics), the second does not.
    let mut service = MetricsLayer::new(&mut Registry::default()).layer(bare());
    let prototype = with_context(request());
    let first = prototype.clone();
    let first = allocation_counter::measure(|| serve(&mut service, first));
    let second = prototype.clone();
    let second = allocation_counter::measure(|| serve(&mut service, second));
    let mut bare = bare();
    serve(&mut bare, prototype.clone());
    let baseline = prototype.clone();
    let baseline = allocation_counter::measure(|| serve(&mut bare, baseline));
    assert!(
        first.count_total > baseline.count_total,
        "first {first:?}, bare {baseline:?}"
    );
    assert_eq!(counts(&second), counts(&baseline));
}

#[test]
fn metrics_add_nothing_to_a_sampled_trace() {
    // `TraceLayer` outside, as the README layers them: the metrics layer reads the context and
    // the request start the trace layer put in the extensions. The sampled span allocates (its
    // attributes, the context in the extensions and on the response): the same with and without
    // the metrics layer.
    let trace = TraceLayer::new(Arc::new(NoopCollector)).sampler(AlwaysOn);
    let metrics = MetricsLayer::new(&mut Registry::default());
    assert_no_added_allocation(
        trace.layer(metrics.layer(bare())),
        trace.layer(bare()),
        &request(),
        1,
    );
}

#[test]
fn metrics_add_nothing_to_an_unsampled_trace() {
    let trace = TraceLayer::new(Arc::new(NoopCollector)).sampler(AlwaysOff);
    let metrics = MetricsLayer::new(&mut Registry::default());
    assert_no_added_allocation(
        trace.layer(metrics.layer(bare())),
        trace.layer(bare()),
        &request(),
        1,
    );
}

/// A real router with one route, its layers applied, and its routes made eager with
/// `with_state(())`, as `axum::serve` does for every connection (without it, a `Router<()>`
/// called directly rebuilds each handler's route per request: more of axum's own allocations).
fn router<L>(layer: L) -> axum::Router
where
    L: tower::Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
    L::Service: Service<axum::extract::Request> + Clone + Send + Sync + 'static,
    <L::Service as Service<axum::extract::Request>>::Response:
        axum::response::IntoResponse + 'static,
    <L::Service as Service<axum::extract::Request>>::Error: Into<Infallible> + 'static,
    <L::Service as Service<axum::extract::Request>>::Future: Send + 'static,
{
    axum::Router::new()
        .route(
            "/users/{id}",
            axum::routing::get(|| async { "{\"id\":42,\"name\":\"alice\"}" }),
        )
        .layer(layer)
        .with_state(())
}

#[test]
fn in_an_axum_router() {
    // Through `Router::layer`, the only way to have axum's `MatchedPath`. axum type-erases each
    // route (`BoxCloneSyncService`) and layering one wraps it in a new boxed service, so any
    // layer, even one that does nothing (`Identity`), costs two allocations a request in axum:
    // the layered route cloned for the request (`MethodRouter::call_with_state` clones the
    // `Route`, whose box now holds the inner route: not zero-sized any more, as the bare
    // handler's is) and the layered route's boxed response future. A layer that wraps the
    // response body costs one more, axum's too: a route must answer
    // `Response<axum::body::Body>`, and `Body::new` boxes our `ResponseBody`. The metrics layer
    // adds nothing else (no allocation in `trace_http`).
    let prototype = request();
    let identity = allocations(
        &mut router(tower::layer::util::Identity::new()),
        &prototype,
        1,
    );
    let mut no_layer: axum::Router = axum::Router::new()
        .route(
            "/users/{id}",
            axum::routing::get(|| async { "{\"id\":42,\"name\":\"alice\"}" }),
        )
        .with_state(());
    let none = allocations(&mut no_layer, &prototype, 1);
    let metrics = MetricsLayer::new(&mut Registry::default());
    let layered = allocations(&mut router(metrics), &prototype, 1);

    // Every case frees what it allocated.
    for case in [&identity, &layered] {
        assert_eq!(
            (case.count_current, case.bytes_current),
            (none.count_current, none.bytes_current),
            "{case:?}, no layer {none:?}"
        );
    }
    assert_eq!(
        identity.count_total - none.count_total,
        2,
        "axum's cost of a route layer: identity {identity:?}, no layer {none:?}"
    );
    assert_eq!(
        layered.count_total - identity.count_total,
        1,
        "beyond axum's cost of a route layer, only the boxed response body: metrics \
         {layered:?}, identity {identity:?}"
    );
    // Of the bytes, the boxed body; the rest is the larger layered service and future (the
    // `Arc<ServerMetrics>` in the service, the observer in the future) in axum's two boxes.
    let body_box = std::mem::size_of::<ResponseBody<axum::body::Body, MetricsObserver>>() as u64;
    assert!(
        layered.bytes_total - identity.bytes_total > body_box,
        "metrics {layered:?}, identity {identity:?}, body box {body_box} B"
    );
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the tests above against a counter that counts nothing.
    let info = allocation_counter::measure(|| {
        std::hint::black_box(Box::new(7_u64));
    });
    assert_eq!(info.count_total, 1);
}
