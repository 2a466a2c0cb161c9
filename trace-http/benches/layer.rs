//! Micro-benchmarks of what the trace layers add to a request, with no network.
//!
//! Each case calls the layered service directly around a trivial service whose future is ready at
//! once, polls that future once with a no-op waker, drains the response body to its end (which
//! ends the span) and drops it. Requests carry twenty realistic headers and are cloned from a
//! template inside the timed loop, in every case, so that the layer reads headers that are hot in
//! cache as they are in a server that has just parsed them (made ahead in `iter_batched` setup,
//! they are cold, and reading them costs the layer cache misses a server would not see). The
//! request is dropped inside the inner service, in the baselines too. Subtract the matching
//! `no_layer` case for what the layer adds.
//!
//! Run with `cargo bench -p trace-http --bench layer`. Targets, added over `no_layer`: the
//! unsampled cases at most 150 ns with no allocation beyond the request's `SpanContext` in the
//! extensions (`tests/unsampled_allocations.rs` counts them), a sampled request at most 1 µs.
//! The `floor_*` cases are a reference, not a layer: `traceparent` alone, the context in the
//! extensions and current, nothing else (see `ContextFloor`), on the unsampled cases' requests.
//! The `added` group times the cases with targets against their baselines in alternating chunks
//! (see `bench_added`): on a shared machine its differences hold still where those of separate
//! cases move by tens of ns, so the targets are judged by it.

use std::convert::Infallible;
use std::future::{Future as _, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Request, Response};
use http_body::Body;
use http_body_util::Full;
use prometheus_client::registry::Registry;
use tower::{Layer, Service, service_fn};
use trace_core::current::WithContext;
use trace_core::sampler::{AlwaysOff, AlwaysOn};
use trace_core::{NoopCollector, SpanContext, SpanId, TraceFlags, TraceId};
use trace_http::{ClientTraceLayer, MetricsLayer, TraceLayer};

#[path = "../../trace-core/tests/support/mod.rs"]
mod support;

const UNSAMPLED_PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
const SAMPLED_PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

type Handler = fn(Request<Full<Bytes>>) -> Ready<Result<Response<Full<Bytes>>, Infallible>>;

/// The inner service: answers at once with a small body (a static `Bytes`, no allocation).
fn ok(_request: Request<Full<Bytes>>) -> Ready<Result<Response<Full<Bytes>>, Infallible>> {
    ready(Ok(Response::new(Full::new(Bytes::from_static(
        b"{\"id\":42,\"name\":\"alice\"}",
    )))))
}

fn bare() -> tower::util::ServiceFn<Handler> {
    service_fn(ok as Handler)
}

/// One request through `service`: ready check, call, a single poll, the body drained to its end,
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

/// `GET /users/42` with the twenty realistic headers, plus `extra` headers.
/// Stands for an extension a router inserts before the layer runs.
#[derive(Debug, Clone, Copy)]
struct RoutedMarker;

fn request(extra: &[(&'static str, &'static str)]) -> Request<Full<Bytes>> {
    let mut request = Request::get("/users/42")
        .body(Full::new(Bytes::new()))
        .expect("a valid request");
    *request.headers_mut() = support::realistic_headers();
    for (name, value) in extra {
        request
            .headers_mut()
            .insert(*name, HeaderValue::from_static(value));
    }
    request
}

/// Times `serve` on requests made by `setup` (inside the timed loop, as in every case).
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
    // First use of the thread-local RNG, clocks and current-context slot, outside the timing.
    serve(&mut service, setup());
    group.bench_function(name, |b| {
        // The request is cloned inside the timed loop, as a server hands the layer headers it
        // has just parsed (hot in cache); the clone is in every case, `no_layer` included, so
        // the differences are the layers' own cost.
        b.iter(|| serve(&mut service, setup()))
    });
}

/// Like [`bench_case`], with a second thread serving the same request through a clone of the
/// service at the same time, as a server's worker threads do: the time per request on one of
/// them. What every request writes in common (a gauge, a count) shows as the difference to the
/// one-thread case.
fn bench_two_threads<S, B>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    service: S,
    request: &Request<Full<Bytes>>,
) where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send,
    S::Error: std::fmt::Debug,
    B: Body,
    B::Error: std::fmt::Debug,
{
    // Each thread clones a request of its own: clones of one request would share its URI's
    // reference count, which the harness itself would then fight over between the cores (a
    // server parses each request's URI apart). The extensions stay shared, as axum's matched
    // path is between a server's requests.
    let (my_request, their_request) = (own_copy(request), own_copy(request));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut mine = service.clone();
            let mut theirs = service.clone();
            let their_request = &their_request;
            std::thread::scope(|scope| {
                let other = scope.spawn(move || {
                    for _ in 0..iters {
                        serve(&mut theirs, their_request.clone());
                    }
                });
                let started = std::time::Instant::now();
                for _ in 0..iters {
                    serve(&mut mine, my_request.clone());
                }
                let elapsed = started.elapsed();
                other.join().expect("the other thread serves to the end");
                elapsed
            })
        })
    });
}

/// A reference floor for the unsampled cases, not a layer to ship: the least a layer meeting
/// `TraceLayer`'s unsampled duties can do. It reads `traceparent` alone, strictly (no other
/// format, no `tracestate`, no debug header, no sampler), puts the context in the request
/// extensions, and makes it the current context while the inner future is polled. It wraps no
/// body and reads no clock. Its cost beside `unsampled` shows how much of the layer's cost is
/// those duties themselves, measured in the same run.
#[derive(Clone)]
struct ContextFloor<S>(S);

impl<S, B> Service<Request<Full<Bytes>>> for ContextFloor<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = WithContext<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Full<Bytes>>) -> Self::Future {
        let context = request
            .headers()
            .get(&TRACEPARENT)
            .and_then(|value| strict_traceparent(value.as_bytes()))
            .unwrap_or_else(|| SpanContext::new_root(TraceFlags::default()));
        request.extensions_mut().insert(context.clone());
        WithContext::new(Some(context), self.0.call(request))
    }
}

static TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// A version-00 `traceparent` with flags `00` or `01`, and nothing else.
fn strict_traceparent(value: &[u8]) -> Option<SpanContext> {
    let (version, rest) = value.split_at_checked(3)?;
    let (trace_id, rest) = rest.split_at_checked(32)?;
    let (dash, rest) = rest.split_at_checked(1)?;
    let (span_id, rest) = rest.split_at_checked(16)?;
    let flags = match rest {
        b"-01" => TraceFlags::SAMPLED,
        b"-00" => TraceFlags::default(),
        _ => return None,
    };
    if version != b"00-" || dash != b"-" {
        return None;
    }
    Some(SpanContext::new(
        TraceId::from_hex(trace_id).ok()?,
        SpanId::from_hex(span_id).ok()?,
        flags,
    ))
}

/// A clone of `request` whose URI shares nothing with the original's.
fn own_copy(request: &Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    let mut copy = request.clone();
    *copy.uri_mut() = request
        .uri()
        .to_string()
        .parse()
        .expect("a URI that parsed once parses again");
    copy
}

fn trace_layer(c: &mut Criterion) {
    let mut group = c.benchmark_group("trace_layer");
    let plain = request(&[]);
    let unsampled_parent = request(&[("traceparent", UNSAMPLED_PARENT)]);
    let sampled_parent = request(&[("traceparent", SAMPLED_PARENT)]);
    let debug = request(&[("jaeger-debug-id", "bench-debug-id")]);

    bench_case(&mut group, "no_layer", bare(), || plain.clone());

    let unsampled = TraceLayer::new(Arc::new(NoopCollector)).sampler(AlwaysOff);
    bench_case(&mut group, "unsampled", unsampled.layer(bare()), || {
        plain.clone()
    });
    // Behind axum's router the request already has extensions (the matched path, path
    // parameters), so inserting the context costs one allocation rather than three.
    let mut routed = request(&[]);
    routed.extensions_mut().insert(RoutedMarker);
    bench_case(
        &mut group,
        "unsampled_request_with_extensions",
        unsampled.layer(bare()),
        || routed.clone(),
    );
    // The layer with no propagation format: what it costs beyond reading headers.
    let no_propagation = TraceLayer::new(Arc::new(NoopCollector))
        .sampler(AlwaysOff)
        .propagation(trace_core::propagation::CompositePropagator::new(Vec::new()))
        .debug_headers(Vec::<String>::new());
    bench_case(
        &mut group,
        "unsampled_without_propagation",
        no_propagation.layer(bare()),
        || routed.clone(),
    );
    let mut routed_baseline = request(&[]);
    routed_baseline.extensions_mut().insert(RoutedMarker);
    bench_case(
        &mut group,
        "no_layer_request_with_extensions",
        bare(),
        || routed_baseline.clone(),
    );
    bench_case(
        &mut group,
        "unsampled_parent",
        unsampled.layer(bare()),
        || unsampled_parent.clone(),
    );
    // The floor under the three unsampled cases, on the same requests.
    bench_case(&mut group, "floor_unsampled", ContextFloor(bare()), || {
        plain.clone()
    });
    bench_case(
        &mut group,
        "floor_unsampled_request_with_extensions",
        ContextFloor(bare()),
        || routed.clone(),
    );
    bench_case(
        &mut group,
        "floor_unsampled_parent",
        ContextFloor(bare()),
        || unsampled_parent.clone(),
    );

    // The default sampler (parent-based, always on) follows the sampled parent.
    let sampled = TraceLayer::new(Arc::new(NoopCollector));
    bench_case(
        &mut group,
        "sampled_noop_collector",
        sampled.layer(bare()),
        || sampled_parent.clone(),
    );
    // The same with a second thread tracing through the same layer at once: every sampled
    // context holds the collector, so whatever count they share shows here.
    bench_two_threads(&mut group, "no_layer_two_threads", bare(), &sampled_parent);
    bench_two_threads(
        &mut group,
        "sampled_noop_collector_two_threads",
        sampled.clone().service_name("users").layer(bare()),
        &sampled_parent,
    );

    // Forced by the debug header over a sampler that never samples.
    let forced = TraceLayer::new(Arc::new(NoopCollector))
        .sampler(AlwaysOff)
        .debug_cap(f64::INFINITY);
    bench_case(&mut group, "debug", forced.layer(bare()), || debug.clone());
    group.finish();
}

fn client_layer(c: &mut Criterion) {
    let mut group = c.benchmark_group("client_layer");
    let parent = SpanContext::new(
        TraceId::from_hex(b"4bf92f3577b34da6a3ce929d0e0e4736").expect("a valid trace id"),
        SpanId::from_hex(b"00f067aa0ba902b7").expect("a valid span id"),
        TraceFlags::SAMPLED,
    )
    .with_collector(Arc::new(NoopCollector));
    // Built afresh rather than cloned: a cloned `HeaderMap` has no spare room, so injecting
    // `traceparent` would reallocate its entries (over 4 KiB), which a request built header by
    // header, with room to spare, does not pay.
    let outgoing = || {
        let mut request = Request::get("http://api.example.com/users/42")
            .body(Full::new(Bytes::new()))
            .expect("a valid request");
        *request.headers_mut() = support::realistic_headers();
        request.extensions_mut().insert(parent.clone());
        request
    };

    bench_case(&mut group, "no_layer", bare(), outgoing);
    bench_case(
        &mut group,
        "sampled_parent",
        ClientTraceLayer::new().layer(bare()),
        outgoing,
    );
    group.finish();
}

/// The sampled context `TraceLayer` leaves in the request extensions when it is outside the
/// metrics layer: the metrics layer turns it into an exemplar.
fn sampled_context() -> SpanContext {
    SpanContext::new(
        TraceId::from_hex(b"4bf92f3577b34da6a3ce929d0e0e4736").expect("a valid trace id"),
        SpanId::from_hex(b"00f067aa0ba902b7").expect("a valid span id"),
        TraceFlags::SAMPLED,
    )
}

/// axum's `MatchedPath` for `path` under the route `template`. It has no public constructor:
/// it is taken from a request that went through a real `Router`, and can then be put into other
/// requests' extensions, as the router does before the layers it wraps around its routes run.
fn matched_path(template: &str, path: &str) -> axum::extract::MatchedPath {
    let slot = Arc::new(Mutex::new(None));
    let seen = slot.clone();
    let mut router: axum::Router = axum::Router::new().route_service(
        template,
        service_fn(move |request: Request<axum::body::Body>| {
            *seen.lock().expect("not poisoned") = request
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .cloned();
            ready(Ok::<_, Infallible>(
                Response::new(axum::body::Body::empty()),
            ))
        }),
    );
    let request = Request::get(path)
        .body(Full::new(Bytes::new()))
        .expect("a valid request");
    let mut cx = Context::from_waker(Waker::noop());
    let Poll::Ready(response) = pin!(router.call(request)).poll(&mut cx) else {
        panic!("the route answers at once");
    };
    drop(response);
    let matched = slot.lock().expect("not poisoned").take();
    matched.expect("the router matched the route")
}

/// The metrics layer with its own registry (so every case creates its own label sets, in the
/// warm-up request of `bench_case`).
fn metrics() -> MetricsLayer {
    MetricsLayer::new(&mut Registry::default())
}

/// A real axum router with one route answering a small static body, `layer` on its routes, its
/// routes made eager with `with_state(())` as `axum::serve` does for every connection.
fn router<L>(layer: L) -> axum::Router
where
    L: Layer<axum::routing::Route> + Clone + Send + Sync + 'static,
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

/// What `MetricsLayer` adds to a request: three histogram observations (duration with its
/// exemplar, request size from `Content-Length`, response size), the active-requests gauge up
/// and down, the clock read twice. Each case has its matching baseline, a bare service given the
/// same request (same extensions), in this group so that both run in the same process:
///
/// - `metrics_only` − `no_layer`: no route (no `MatchedPath`: empty `http_route`), no exemplar;
/// - `metrics_with_exemplar` − `no_layer_with_context`: a sampled `SpanContext` in the
///   extensions, as when `TraceLayer` is outside, so the duration writes an exemplar;
/// - `metrics_routed` − `no_layer_routed` and `metrics_routed_with_exemplar` −
///   `no_layer_routed_with_context`: a `MatchedPath` taken from a real router in the extensions,
///   so the route is interned and hashed into the label set;
/// - `metrics_routed_with_exemplar_two_threads` − `no_layer_routed_with_context_two_threads`:
///   the same with a second thread serving the same route at once (per request, on one of the
///   two): what the threads' common writes (gauge, histograms, the shared metrics' reference
///   count) cost when two cores make them;
/// - `trace_and_metrics_{sampled,unsampled}` − `no_layer`: `TraceLayer` (no-op collector,
///   `AlwaysOn` / `AlwaysOff`) outside `MetricsLayer`, as the README layers them; the
///   `trace_only_*` cases give the metrics layer's share of the pair;
/// - `trace_with_metrics_{sampled,unsampled}` − `no_layer`: the same pair as one layer
///   (`TraceLayer::metrics`), sharing one future, body wrapper and clock pair;
/// - `router_metrics` − `router_no_layer`: a real `axum::Router` with the layer on its routes
///   (`Router::layer`, the route in `MatchedPath`), and `router_identity_layer`, the same router
///   with a layer that does nothing, for axum's own cost of layering a route (two allocations a
///   request: the layered type-erased route cloned and its future boxed; and the metrics layer's
///   response body is boxed into `axum::body::Body`, a third: see
///   `tests/metrics_allocations.rs`).
fn metrics_layer(c: &mut Criterion) {
    let mut group = c.benchmark_group("metrics_layer");
    let plain = request(&[]);
    let mut with_context = request(&[]);
    with_context.extensions_mut().insert(sampled_context());
    let mut routed = request(&[]);
    routed
        .extensions_mut()
        .insert(matched_path("/users/{id}", "/users/42"));
    let mut routed_with_context = routed.clone();
    routed_with_context
        .extensions_mut()
        .insert(sampled_context());

    bench_case(&mut group, "no_layer", bare(), || plain.clone());
    bench_case(&mut group, "metrics_only", metrics().layer(bare()), || {
        plain.clone()
    });

    bench_case(&mut group, "no_layer_with_context", bare(), || {
        with_context.clone()
    });
    bench_case(
        &mut group,
        "metrics_with_exemplar",
        metrics().layer(bare()),
        || with_context.clone(),
    );

    bench_case(&mut group, "no_layer_routed", bare(), || routed.clone());
    bench_case(
        &mut group,
        "metrics_routed",
        metrics().layer(bare()),
        || routed.clone(),
    );
    bench_case(&mut group, "no_layer_routed_with_context", bare(), || {
        routed_with_context.clone()
    });
    bench_case(
        &mut group,
        "metrics_routed_with_exemplar",
        metrics().layer(bare()),
        || routed_with_context.clone(),
    );
    bench_two_threads(
        &mut group,
        "no_layer_routed_with_context_two_threads",
        bare(),
        &routed_with_context,
    );
    bench_two_threads(
        &mut group,
        "metrics_routed_with_exemplar_two_threads",
        metrics().layer(bare()),
        &routed_with_context,
    );

    let sampled = TraceLayer::new(Arc::new(NoopCollector)).sampler(AlwaysOn);
    let unsampled = TraceLayer::new(Arc::new(NoopCollector)).sampler(AlwaysOff);
    bench_case(
        &mut group,
        "trace_and_metrics_sampled",
        sampled.layer(metrics().layer(bare())),
        || plain.clone(),
    );
    bench_case(
        &mut group,
        "trace_only_sampled",
        sampled.layer(bare()),
        || plain.clone(),
    );
    bench_case(
        &mut group,
        "trace_and_metrics_unsampled",
        unsampled.layer(metrics().layer(bare())),
        || plain.clone(),
    );
    bench_case(
        &mut group,
        "trace_only_unsampled",
        unsampled.layer(bare()),
        || plain.clone(),
    );
    bench_case(
        &mut group,
        "trace_with_metrics_sampled",
        sampled.clone().metrics(metrics()).layer(bare()),
        || plain.clone(),
    );
    bench_case(
        &mut group,
        "trace_with_metrics_unsampled",
        unsampled.clone().metrics(metrics()).layer(bare()),
        || plain.clone(),
    );

    let no_layer: axum::Router = axum::Router::new()
        .route(
            "/users/{id}",
            axum::routing::get(|| async { "{\"id\":42,\"name\":\"alice\"}" }),
        )
        .with_state(());
    bench_case(&mut group, "router_no_layer", no_layer, || plain.clone());
    bench_case(
        &mut group,
        "router_identity_layer",
        router(tower::layer::util::Identity::new()),
        || plain.clone(),
    );
    bench_case(&mut group, "router_metrics", router(metrics()), || {
        plain.clone()
    });
    group.finish();
}

/// Requests per chunk in [`bench_added`]: short enough (some 20 µs) that the machine's speed
/// hardly changes between a chunk and the next, long enough that the two clock reads a chunk
/// costs are lost in it.
const ADDED_CHUNK: u64 = 32;

/// What `layered` adds to `baseline` on the same requests, timed in alternating chunks: a
/// chunk of requests through `baseline`, then one through `layered`, and so on. The reported
/// time per iteration is the layered requests' time minus the baseline's. On a shared machine
/// whose speed drifts over seconds, separate cases (as in the other groups) are timed at
/// different speeds; here both sides of every difference are timed within microseconds of each
/// other, so the difference holds still from run to run.
///
/// The baseline is the bare service, and every request is a clone of `prototype`.
fn bench_added<T, C>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    mut layered: T,
    prototype: &Request<Full<Bytes>>,
) where
    T: Service<Request<Full<Bytes>>, Response = Response<C>>,
    T::Error: std::fmt::Debug,
    C: Body,
    C::Error: std::fmt::Debug,
{
    let mut baseline = bare();
    let setup = || prototype.clone();
    serve(&mut baseline, setup());
    serve(&mut layered, setup());
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let (mut base, mut added) = (Duration::ZERO, Duration::ZERO);
            let mut done = 0;
            while done < iters {
                let chunk = ADDED_CHUNK.min(iters - done);
                let started = Instant::now();
                for _ in 0..chunk {
                    serve(&mut baseline, setup());
                }
                let middle = Instant::now();
                for _ in 0..chunk {
                    serve(&mut layered, setup());
                }
                added += middle.elapsed();
                base += middle - started;
                done += chunk;
            }
            added.saturating_sub(base)
        })
    });
}

/// Each layer's added cost, measured against its baseline in one interleaved run (see
/// [`bench_added`]): the figures the targets are judged by. The cases, on the requests of the
/// groups above:
///
/// - `trace_unsampled`, `floor_unsampled`: `TraceLayer` (`AlwaysOff`) and the `ContextFloor`
///   reference on a request with a router's extension and no trace header;
/// - `trace_unsampled_parent`, `floor_unsampled_parent`: the same with an unsampled
///   `traceparent`;
/// - `trace_sampled`: the default sampler following a sampled `traceparent`, no-op collector;
/// - `trace_with_metrics_sampled`, `trace_with_metrics_unsampled`: `TraceLayer::metrics` (the
///   default sampler) on a request with axum's `MatchedPath` and a sampled or unsampled
///   `traceparent`;
/// - `metrics_with_exemplar`, `metrics_routed_with_exemplar`: `MetricsLayer` with a sampled
///   context in the extensions (and axum's `MatchedPath`).
fn added(c: &mut Criterion) {
    let mut group = c.benchmark_group("added");
    let mut routed = request(&[]);
    routed.extensions_mut().insert(RoutedMarker);
    let mut routed_parent = request(&[("traceparent", UNSAMPLED_PARENT)]);
    routed_parent.extensions_mut().insert(RoutedMarker);
    let sampled_parent = request(&[("traceparent", SAMPLED_PARENT)]);
    let unsampled = TraceLayer::new(Arc::new(NoopCollector)).sampler(AlwaysOff);
    let sampled = TraceLayer::new(Arc::new(NoopCollector));

    bench_added(
        &mut group,
        "trace_unsampled",
        unsampled.layer(bare()),
        &routed,
    );
    bench_added(&mut group, "floor_unsampled", ContextFloor(bare()), &routed);
    bench_added(
        &mut group,
        "trace_unsampled_parent",
        unsampled.layer(bare()),
        &routed_parent,
    );
    bench_added(
        &mut group,
        "floor_unsampled_parent",
        ContextFloor(bare()),
        &routed_parent,
    );
    bench_added(
        &mut group,
        "trace_sampled",
        sampled.layer(bare()),
        &sampled_parent,
    );

    let mut routed_sampled_parent = request(&[("traceparent", SAMPLED_PARENT)]);
    routed_sampled_parent
        .extensions_mut()
        .insert(matched_path("/users/{id}", "/users/42"));
    let mut routed_unsampled_parent = request(&[("traceparent", UNSAMPLED_PARENT)]);
    routed_unsampled_parent
        .extensions_mut()
        .insert(matched_path("/users/{id}", "/users/42"));
    bench_added(
        &mut group,
        "trace_with_metrics_sampled",
        sampled.clone().metrics(metrics()).layer(bare()),
        &routed_sampled_parent,
    );
    bench_added(
        &mut group,
        "trace_with_metrics_unsampled",
        TraceLayer::new(Arc::new(NoopCollector))
            .metrics(metrics())
            .layer(bare()),
        &routed_unsampled_parent,
    );

    let mut with_context = request(&[]);
    with_context.extensions_mut().insert(sampled_context());
    let mut routed_with_context = request(&[]);
    routed_with_context
        .extensions_mut()
        .insert(matched_path("/users/{id}", "/users/42"));
    routed_with_context
        .extensions_mut()
        .insert(sampled_context());
    bench_added(
        &mut group,
        "metrics_with_exemplar",
        metrics().layer(bare()),
        &with_context,
    );
    bench_added(
        &mut group,
        "metrics_routed_with_exemplar",
        metrics().layer(bare()),
        &routed_with_context,
    );
    group.finish();
}

criterion_group!(benches, trace_layer, client_layer, metrics_layer, added);
criterion_main!(benches);
