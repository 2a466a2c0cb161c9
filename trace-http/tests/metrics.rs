//! The metrics layers through a real axum server and hyper client: the duration histogram's
//! buckets and labels, when a duration ends, requests in flight, body sizes, the client layer,
//! trace exemplars with the trace layer in either order, and the cap on distinct series.

#![allow(clippy::unwrap_used)]

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::routing::{any, get, post};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use prometheus_client::registry::Registry;
use tokio::sync::{Semaphore, mpsc};
use tower::{ServiceBuilder, ServiceExt};
use trace_core::sampler::AlwaysOff;
use trace_core::{InMemoryCollector, Span};
use trace_http::TraceLayer;
use trace_http::metrics::{
    ClientMetricsLayer, DURATION_BUCKETS, DurationEnd, MetricsBuilder, MetricsLayer,
    metrics_service,
};

use support::{PROMETHEUS_ACCEPT, Sample, sample_value, samples_of};

const DURATION: &str = "http_server_request_duration_seconds";
const DURATION_BUCKET: &str = "http_server_request_duration_seconds_bucket";
const DURATION_COUNT: &str = "http_server_request_duration_seconds_count";
const DURATION_SUM: &str = "http_server_request_duration_seconds_sum";
const ACTIVE: &str = "http_server_active_requests";
const CLIENT_COUNT: &str = "http_client_request_duration_seconds_count";
const CLIENT_BUCKET: &str = "http_client_request_duration_seconds_bucket";

/// Delay before each of the [`CHUNKS`] chunks of `/stream`.
const CHUNK_DELAY: Duration = Duration::from_millis(100);
const CHUNKS: usize = 3;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// A response body fed by a channel, one data frame per message, ended when the sender drops.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|data| Ok(Frame::data(data))))
    }
}

/// Headers at once, then [`CHUNKS`] chunks each after [`CHUNK_DELAY`] (≥ 300 ms of body).
async fn stream() -> Body {
    let (sender, receiver) = mpsc::channel(1);
    tokio::spawn(async move {
        for _ in 0..CHUNKS {
            tokio::time::sleep(CHUNK_DELAY).await;
            if sender.send(Bytes::from_static(b"chunk")).await.is_err() {
                return;
            }
        }
    });
    Body::new(ChannelBody(receiver))
}

/// Waits for a permit of the semaphore (the test hands one out to let the request finish).
async fn gated(State(gate): State<Arc<Semaphore>>) -> &'static str {
    gate.acquire().await.unwrap().forget();
    "released"
}

/// Reads the request body and answers with 5000 bytes.
async fn upload(body: Bytes) -> String {
    assert!(!body.is_empty());
    "x".repeat(5000)
}

/// The routes most tests use.
fn routes(gate: Arc<Semaphore>) -> Router {
    Router::new()
        .route(
            "/users/{id}",
            get(|Path(id): Path<String>| async move { format!("user {id}") }),
        )
        .route("/purge", any(|| async { "purged" }))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route("/stream", get(stream))
        .route("/gate", get(gated))
        .route("/upload", post(upload))
        .with_state(gate)
}

/// Registers the server metrics of `builder`, lets `apply` put the layer (and any other) on the
/// routes, then adds an unmeasured `/metrics` serving the registry.
fn instrumented(builder: MetricsBuilder, apply: impl FnOnce(MetricsLayer) -> Router) -> Router {
    let mut registry = Registry::default();
    let layer = builder.server(&mut registry);
    apply(layer).route_service("/metrics", metrics_service(Arc::new(registry)))
}

/// How the metrics are put on the routes.
#[derive(Debug, Clone, Copy)]
enum Stack {
    /// `MetricsLayer` as a layer of its own.
    Separate,
    /// Recorded by a `TraceLayer` given the `MetricsLayer` (`TraceLayer::metrics`), every
    /// request traced.
    Combined,
}

/// Both ways, for the tests that must hold for either.
const STACKS: [Stack; 2] = [Stack::Separate, Stack::Combined];

/// [`routes`] with the server metrics of `builder` put on as `stack` says, served on loopback.
async fn serve_routes_as(builder: MetricsBuilder, stack: Stack) -> (SocketAddr, Arc<Semaphore>) {
    let gate = Arc::new(Semaphore::new(0));
    let app = instrumented(builder, |metrics| match stack {
        Stack::Separate => routes(gate.clone()).layer(metrics),
        Stack::Combined => {
            routes(gate.clone()).layer(TraceLayer::new(support::collector()).metrics(metrics))
        }
    });
    (support::serve(app).await, gate)
}

/// Sends `method path` with an empty body and reads the whole response.
async fn call(addr: SocketAddr, method: Method, path: &str) -> support::Reply {
    support::send(
        &support::client(),
        support::request(method, addr, path, &[]),
    )
    .await
}

/// The `le` bounds of a histogram series' buckets, in exposition order.
fn bucket_bounds(samples: &[Sample], bucket: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    samples_of(samples, bucket, labels)
        .iter()
        .map(|s| s.label("le").unwrap().parse::<f64>().unwrap())
        .collect()
}

/// The cumulative count of one bucket.
fn bucket(samples: &[Sample], bucket: &str, labels: &[(&str, &str)], le: &str) -> f64 {
    let le_value: f64 = le.parse().unwrap();
    let found: Vec<&Sample> = samples_of(samples, bucket, labels)
        .into_iter()
        .filter(|s| s.label("le").unwrap().parse::<f64>().unwrap() == le_value)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one bucket le={le} of {labels:?}: {found:#?}"
    );
    found[0].value
}

/// Scrapes until the duration histogram has counted `count` requests with these labels.
async fn wait_for_count(
    addr: SocketAddr,
    labels: &[(&str, &str)],
    count: f64,
) -> (String, Vec<Sample>) {
    support::scrape_until(
        addr,
        &format!("{DURATION_COUNT}{labels:?} == {count}"),
        |s| {
            samples_of(s, DURATION_COUNT, labels)
                .iter()
                .map(|s| s.value)
                .sum::<f64>()
                == count
        },
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// The duration histogram and its labels
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn duration_histogram_has_the_14_semconv_buckets_and_route_labels() {
    for stack in STACKS {
        let (addr, _gate) = serve_routes_as(MetricsBuilder::new(), stack).await;
        let reply = call(addr, Method::GET, "/users/42").await;
        assert_eq!(reply.body, "user 42");
        let labels = [
            ("http_request_method", "GET"),
            ("http_route", "/users/{id}"),
            ("http_response_status_code", "200"),
        ];
        let (text, samples) = wait_for_count(addr, &labels, 1.0).await;

        let mut expected: Vec<f64> = DURATION_BUCKETS.to_vec();
        assert_eq!(
            expected,
            [
                0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0
            ]
        );
        expected.push(f64::INFINITY);
        assert_eq!(bucket_bounds(&samples, DURATION_BUCKET, &labels), expected);
        assert_eq!(bucket(&samples, DURATION_BUCKET, &labels, "+Inf"), 1.0);
        let series = samples_of(&samples, DURATION_COUNT, &labels);
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].label("error_type"), None, "a 200 is no failure");
        assert!(sample_value(&samples, DURATION_SUM, &labels).unwrap() > 0.0);
        assert!(text.contains(&format!("# TYPE {DURATION} histogram\n")));
        assert!(text.contains(&format!("# UNIT {DURATION} seconds\n")));
        assert!(
            !text.contains("/users/42"),
            "raw path in the exposition:\n{text}"
        );
    }
}

#[tokio::test]
async fn an_unknown_method_is_labelled_other() {
    for stack in STACKS {
        let (addr, _gate) = serve_routes_as(MetricsBuilder::new(), stack).await;
        let purge = Method::from_bytes(b"PURGE").unwrap();
        let reply = call(addr, purge, "/purge").await;
        assert_eq!(reply.body, "purged");
        let labels = [
            ("http_request_method", "_OTHER"),
            ("http_route", "/purge"),
            ("http_response_status_code", "200"),
        ];
        let (text, _) = wait_for_count(addr, &labels, 1.0).await;
        assert!(
            !text.contains("PURGE"),
            "the raw method is a label:\n{text}"
        );
    }
}

#[tokio::test]
async fn an_unmatched_request_has_an_empty_route_never_the_raw_path() {
    for stack in STACKS {
        let (addr, _gate) = serve_routes_as(MetricsBuilder::new(), stack).await;
        let reply = call(addr, Method::GET, "/no/such/page/123").await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        let labels = [
            ("http_request_method", "GET"),
            ("http_route", ""),
            ("http_response_status_code", "404"),
        ];
        let (text, samples) = wait_for_count(addr, &labels, 1.0).await;
        let series = samples_of(&samples, DURATION_COUNT, &labels);
        assert_eq!(
            series[0].label("error_type"),
            None,
            "a 404 is no server failure"
        );
        assert!(text.contains("http_route=\"\""), "{text}");
        assert!(
            !text.contains("/no/such"),
            "raw path in the exposition:\n{text}"
        );
    }
}

#[tokio::test]
async fn a_server_error_has_error_type_set_to_its_status() {
    for stack in STACKS {
        let (addr, _gate) = serve_routes_as(MetricsBuilder::new(), stack).await;
        let reply = call(addr, Method::GET, "/fail").await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        let labels = [
            ("http_request_method", "GET"),
            ("http_route", "/fail"),
            ("http_response_status_code", "500"),
            ("error_type", "500"),
        ];
        let (_, samples) = wait_for_count(addr, &labels, 1.0).await;
        // And the successful series elsewhere carry no `error_type` at all.
        call(addr, Method::GET, "/users/1").await;
        let (_, samples_after) = wait_for_count(addr, &[("http_route", "/users/{id}")], 1.0).await;
        assert_eq!(samples_of(&samples, DURATION_COUNT, &labels).len(), 1);
        for sample in samples_of(
            &samples_after,
            DURATION_COUNT,
            &[("http_route", "/users/{id}")],
        ) {
            assert_eq!(sample.label("error_type"), None, "{sample:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// When the duration ends
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_duration_runs_until_the_response_body_ends() {
    for stack in STACKS {
        let (addr, _gate) = serve_routes_as(MetricsBuilder::new(), stack).await;
        let reply = call(addr, Method::GET, "/stream").await;
        assert_eq!(reply.body, "chunk".repeat(CHUNKS));
        let labels = [
            ("http_route", "/stream"),
            ("http_response_status_code", "200"),
        ];
        let (_, samples) = wait_for_count(addr, &labels, 1.0).await;
        let sum = sample_value(&samples, DURATION_SUM, &labels).unwrap();
        assert!(sum >= 0.3, "the body took 300 ms, the duration is {sum}");
        assert_eq!(bucket(&samples, DURATION_BUCKET, &labels, "0.1"), 0.0);
        assert_eq!(
            bucket(&samples, DURATION_BUCKET, &labels, "0.25"),
            0.0,
            "a 300 ms request landed at or below 0.25 (sum {sum})"
        );
        assert_eq!(bucket(&samples, DURATION_BUCKET, &labels, "+Inf"), 1.0);
    }
}

#[tokio::test]
async fn with_duration_end_headers_the_duration_stops_at_the_response_head() {
    for stack in STACKS {
        let (addr, _gate) = serve_routes_as(
            MetricsBuilder::new().duration_end(DurationEnd::Headers),
            stack,
        )
        .await;
        let reply = call(addr, Method::GET, "/stream").await;
        assert_eq!(reply.body, "chunk".repeat(CHUNKS));
        let labels = [
            ("http_route", "/stream"),
            ("http_response_status_code", "200"),
        ];
        let (_, samples) = wait_for_count(addr, &labels, 1.0).await;
        let sum = sample_value(&samples, DURATION_SUM, &labels).unwrap();
        assert!(
            sum < 0.25,
            "the head was ready at once, the duration is {sum}"
        );
        assert_eq!(bucket(&samples, DURATION_BUCKET, &labels, "0.25"), 1.0);
    }
}

// ---------------------------------------------------------------------------------------------
// Requests in flight
// ---------------------------------------------------------------------------------------------

fn active(samples: &[Sample], method: &str) -> Option<f64> {
    sample_value(samples, ACTIVE, &[("http_request_method", method)])
}

#[tokio::test]
async fn active_requests_go_up_while_a_request_is_in_flight_and_back_to_zero() {
    for stack in STACKS {
        let (addr, gate) = serve_routes_as(MetricsBuilder::new(), stack).await;
        let first = tokio::spawn(async move { call(addr, Method::GET, "/gate").await });
        let (text, _) =
            support::scrape_until(addr, "one GET in flight", |s| active(s, "GET") == Some(1.0))
                .await;
        assert!(text.contains(&format!("# TYPE {ACTIVE} gauge\n")), "{text}");
        let second = tokio::spawn(async move { call(addr, Method::GET, "/gate").await });
        support::scrape_until(addr, "two GETs in flight", |s| {
            active(s, "GET") == Some(2.0)
        })
        .await;

        gate.add_permits(1);
        assert_eq!(first.await.unwrap().body, "released");
        support::scrape_until(addr, "one GET left", |s| active(s, "GET") == Some(1.0)).await;
        gate.add_permits(1);
        assert_eq!(second.await.unwrap().body, "released");
        let (_, samples) =
            support::scrape_until(addr, "none in flight", |s| active(s, "GET") == Some(0.0)).await;
        assert_eq!(
            sample_value(&samples, DURATION_COUNT, &[("http_route", "/gate")]),
            Some(2.0)
        );
    }
}

#[tokio::test]
async fn a_streaming_response_is_in_flight_until_its_body_ends() {
    for stack in STACKS {
        let (addr, _gate) = serve_routes_as(MetricsBuilder::new(), stack).await;
        let client = support::client();
        let response = client
            .request(support::request(Method::GET, addr, "/stream", &[]))
            .await
            .unwrap();
        // The head has arrived, the body has not.
        let (_, samples) = support::scrape_until(addr, "the stream in flight", |s| {
            active(s, "GET") == Some(1.0)
        })
        .await;
        assert_eq!(
            sample_value(&samples, DURATION_COUNT, &[("http_route", "/stream")]),
            None,
            "the duration was recorded before the body ended"
        );
        let body = tokio::time::timeout(support::REQUEST_TIMEOUT, response.into_body().collect())
            .await
            .unwrap()
            .unwrap()
            .to_bytes();
        assert_eq!(body.len(), "chunk".len() * CHUNKS);
        support::scrape_until(addr, "the stream done", |s| {
            active(s, "GET") == Some(0.0)
                && sample_value(s, DURATION_COUNT, &[("http_route", "/stream")]) == Some(1.0)
        })
        .await;
    }
}

// ---------------------------------------------------------------------------------------------
// Body sizes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn request_and_response_body_sizes_are_recorded() {
    for stack in STACKS {
        let (addr, _gate) = serve_routes_as(MetricsBuilder::new(), stack).await;
        let request = Request::post(format!("http://{addr}/upload"))
            .body(Full::new(Bytes::from(vec![b'y'; 1000])))
            .unwrap();
        let reply = support::send(&support::client(), request).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body.len(), 5000);

        let labels = [
            ("http_request_method", "POST"),
            ("http_route", "/upload"),
            ("http_response_status_code", "200"),
        ];
        let request_size = "http_server_request_body_size_bytes";
        let response_size = "http_server_response_body_size_bytes";
        let (text, samples) = support::scrape_until(addr, "both body sizes", |s| {
            sample_value(s, &format!("{request_size}_count"), &labels) == Some(1.0)
                && sample_value(s, &format!("{response_size}_count"), &labels) == Some(1.0)
        })
        .await;
        for name in [request_size, response_size] {
            assert!(
                text.contains(&format!("# TYPE {name} histogram\n")),
                "{text}"
            );
            assert!(text.contains(&format!("# UNIT {name} bytes\n")), "{text}");
        }
        let req_bucket = format!("{request_size}_bucket");
        assert_eq!(
            sample_value(&samples, &format!("{request_size}_sum"), &labels),
            Some(1000.0)
        );
        assert_eq!(bucket(&samples, &req_bucket, &labels, "256"), 0.0);
        assert_eq!(bucket(&samples, &req_bucket, &labels, "1024"), 1.0);

        let res_bucket = format!("{response_size}_bucket");
        assert_eq!(
            sample_value(&samples, &format!("{response_size}_sum"), &labels),
            Some(5000.0)
        );
        assert_eq!(bucket(&samples, &res_bucket, &labels, "4096"), 0.0);
        assert_eq!(bucket(&samples, &res_bucket, &labels, "16384"), 1.0);
    }
}

// ---------------------------------------------------------------------------------------------
// The client layer
// ---------------------------------------------------------------------------------------------

/// Encodes `registry` the way Prometheus asks for it.
async fn exposition(registry: &Arc<Registry>) -> Vec<Sample> {
    let request = Request::get("/metrics")
        .header("accept", PROMETHEUS_ACCEPT)
        .body(())
        .unwrap();
    let response = metrics_service(registry.clone())
        .oneshot(request)
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    support::parse_exposition(std::str::from_utf8(&body).unwrap())
}

#[tokio::test]
async fn the_client_layer_records_durations_by_server_address() {
    let (downstream, captured) = support::serve_capturing().await;
    let mut registry = Registry::default();
    let layer = ClientMetricsLayer::new(&mut registry);
    let registry = Arc::new(registry);
    let client = ServiceBuilder::new()
        .layer(layer)
        .service(support::client());

    for path in ["/ok", "/ok", "/status/404", "/status/503"] {
        let request = support::request(Method::GET, downstream, path, &[]);
        let response = client.clone().oneshot(request).await.unwrap();
        response.into_body().collect().await.unwrap();
    }
    assert_eq!(captured.len(), 4);

    let samples = exposition(&registry).await;
    let address = ("server_address", "127.0.0.1");
    let ok = [
        ("http_request_method", "GET"),
        address,
        ("http_response_status_code", "200"),
    ];
    assert_eq!(sample_value(&samples, CLIENT_COUNT, &ok), Some(2.0));
    assert_eq!(
        samples_of(&samples, CLIENT_COUNT, &ok)[0].label("error_type"),
        None
    );
    assert_eq!(
        bucket_bounds(&samples, CLIENT_BUCKET, &ok).len(),
        DURATION_BUCKETS.len() + 1
    );
    for code in ["404", "503"] {
        let failed = [
            address,
            ("http_response_status_code", code),
            ("error_type", code),
        ];
        assert_eq!(
            sample_value(&samples, CLIENT_COUNT, &failed),
            Some(1.0),
            "a client sees {code} as a failure"
        );
    }
    assert!(
        samples.iter().all(|s| !s.name.starts_with("http_server")),
        "the client layer registers no server metric"
    );
}

/// An IPv6 server is labelled with its bare address, as servers label themselves.
#[tokio::test]
async fn the_client_layer_labels_an_ipv6_server_without_brackets() {
    let mut registry = Registry::default();
    let client = ServiceBuilder::new()
        .layer(ClientMetricsLayer::new(&mut registry))
        .service(tower::service_fn(|_request: Request<Full<Bytes>>| {
            std::future::ready(Ok::<_, Infallible>(http::Response::new(Full::new(
                Bytes::new(),
            ))))
        }));
    let request = Request::get("http://[::1]:9000/x")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = client.oneshot(request).await.expect("response");
    response.into_body().collect().await.expect("body");
    let registry = Arc::new(registry);
    let samples = exposition(&registry).await;
    assert_eq!(
        sample_value(&samples, CLIENT_COUNT, &[("server_address", "::1")]),
        Some(1.0),
        "{samples:#?}"
    );
}

#[derive(Clone)]
struct Downstream {
    client: trace_http::metrics::ClientMetricsService<support::HttpClient>,
    addr: SocketAddr,
}

#[tokio::test]
async fn a_client_call_inside_a_traced_request_carries_its_trace_as_exemplar() {
    async fn call_downstream(State(downstream): State<Downstream>) -> String {
        let request = support::request(Method::GET, downstream.addr, "/ok", &[]);
        let response = downstream.client.oneshot(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&body).into_owned()
    }

    let (downstream, _captured) = support::serve_capturing().await;
    let mut registry = Registry::default();
    let layer = ClientMetricsLayer::new(&mut registry);
    let registry = Arc::new(registry);
    let collector = support::collector();
    let app = Router::new()
        .route("/call", get(call_downstream))
        .with_state(Downstream {
            client: ServiceBuilder::new()
                .layer(layer)
                .service(support::client()),
            addr: downstream,
        })
        .layer(TraceLayer::new(collector.clone()));
    let addr = support::serve(app).await;
    assert_eq!(support::get(addr, "/call", &[]).await.body, "ok");

    let span = support::wait_for_one_span(&collector).await;
    let samples = exposition(&registry).await;
    let exemplars: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == CLIENT_BUCKET && s.exemplar.is_some())
        .collect();
    assert_eq!(exemplars.len(), 1, "{samples:#?}");
    let exemplar = exemplars[0].exemplar.as_ref().unwrap();
    assert_eq!(
        exemplar.label("trace_id"),
        Some(&*span.trace_id.to_string())
    );
}

// ---------------------------------------------------------------------------------------------
// Exemplars
// ---------------------------------------------------------------------------------------------

/// Which way round the two layers are.
#[derive(Debug, Clone, Copy)]
enum Order {
    /// `.layer(metrics).layer(trace)`: the trace layer runs first.
    TraceOutside,
    /// `.layer(trace).layer(metrics)`: the metrics layer runs first.
    MetricsOutside,
    /// `.layer(trace.metrics(metrics))`: one layer records both.
    Combined,
}

/// `/users/{id}` with the metrics layer and, if given, the trace layer in `order`.
async fn serve_traced(trace: Option<TraceLayer>, order: Order) -> SocketAddr {
    let app = instrumented(MetricsBuilder::new(), |metrics| {
        let routes = routes(Arc::new(Semaphore::new(0)));
        match (trace, order) {
            (None, _) => routes.layer(metrics),
            (Some(trace), Order::TraceOutside) => routes.layer(metrics).layer(trace),
            (Some(trace), Order::MetricsOutside) => routes.layer(trace).layer(metrics),
            (Some(trace), Order::Combined) => routes.layer(trace.metrics(metrics)),
        }
    });
    support::serve(app).await
}

const USER_LABELS: [(&str, &str); 2] = [
    ("http_route", "/users/{id}"),
    ("http_response_status_code", "200"),
];

/// The duration bucket lines of `/users/{id}` that carry an exemplar.
fn exemplar_buckets(samples: &[Sample]) -> Vec<&Sample> {
    samples_of(samples, DURATION_BUCKET, &USER_LABELS)
        .into_iter()
        .filter(|s| s.exemplar.is_some())
        .collect()
}

async fn assert_exemplar_links_to_the_trace(order: Order) {
    let collector = support::collector();
    let addr = serve_traced(Some(TraceLayer::new(collector.clone())), order).await;
    call(addr, Method::GET, "/users/1").await;
    let span: Span = support::wait_for_one_span(&collector).await;
    let (text, samples) = wait_for_count(addr, &USER_LABELS, 1.0).await;

    let with_exemplar = exemplar_buckets(&samples);
    assert_eq!(
        with_exemplar.len(),
        1,
        "{order:?}: one exemplar expected:\n{text}"
    );
    let bucket_line = with_exemplar[0];
    let exemplar = bucket_line.exemplar.as_ref().unwrap();
    let trace_id = exemplar.label("trace_id").unwrap();
    let span_id = exemplar.label("span_id").unwrap();
    assert!(support::is_hex_id(trace_id, 32), "trace_id {trace_id:?}");
    assert!(support::is_hex_id(span_id, 16), "span_id {span_id:?}");
    assert_eq!(exemplar.labels.len(), 2, "{exemplar:?}");
    assert_eq!(trace_id, span.trace_id.to_string(), "{order:?}");
    assert_eq!(
        span_id,
        span.span_id.to_string(),
        "{order:?}: the server span"
    );
    assert!(
        collector
            .trace_ids()
            .iter()
            .any(|id| id.to_string() == trace_id),
        "the exemplar's trace is in the collector"
    );
    assert!(
        text.contains(&format!(
            " # {{trace_id=\"{trace_id}\",span_id=\"{span_id}\"}} "
        )),
        "{text}"
    );
    // On the bucket that holds the observed value.
    let le: f64 = bucket_line.label("le").unwrap().parse().unwrap();
    let sum = sample_value(&samples, DURATION_SUM, &USER_LABELS).unwrap();
    assert!(
        exemplar.value > 0.0 && exemplar.value <= le,
        "{exemplar:?} in le={le}"
    );
    assert!(
        (exemplar.value - sum).abs() < 1e-9,
        "{exemplar:?}, sum {sum}"
    );
    let lower = DURATION_BUCKETS
        .iter()
        .copied()
        .filter(|b| *b < le)
        .fold(0.0, f64::max);
    assert!(exemplar.value > lower, "{exemplar:?} belongs below le={le}");
}

#[tokio::test]
async fn exemplar_links_the_bucket_to_the_trace_with_the_trace_layer_outside() {
    assert_exemplar_links_to_the_trace(Order::TraceOutside).await;
}

#[tokio::test]
async fn exemplar_links_the_bucket_to_the_trace_with_the_metrics_layer_outside() {
    assert_exemplar_links_to_the_trace(Order::MetricsOutside).await;
}

#[tokio::test]
async fn exemplar_links_the_bucket_to_the_trace_when_the_trace_layer_records_the_metrics() {
    assert_exemplar_links_to_the_trace(Order::Combined).await;
}

async fn assert_no_exemplar(addr: SocketAddr, collector: Option<&InMemoryCollector>) {
    let (text, samples) = wait_for_count(addr, &USER_LABELS, 1.0).await;
    assert!(exemplar_buckets(&samples).is_empty(), "{text}");
    assert!(!text.contains(" # {"), "no exemplar anywhere:\n{text}");
    if let Some(collector) = collector {
        support::assert_no_spans(collector).await;
    }
}

/// A bucket takes at most one exemplar per interval: within an hour, a second sampled request in
/// the same bucket leaves the first one's exemplar; with no interval, it replaces it.
#[tokio::test]
async fn a_bucket_keeps_its_exemplar_for_the_interval() {
    for (interval, kept) in [(Duration::from_secs(3600), 0), (Duration::ZERO, 1)] {
        // Both requests must land in one bucket for the round to tell; a slow machine may put
        // them in two, so a few rounds are allowed.
        let mut told = false;
        for _round in 0..5 {
            let collector = support::collector();
            let builder = MetricsBuilder::new().exemplar_interval(interval);
            let app = instrumented(builder, |metrics| {
                routes(Arc::new(Semaphore::new(0)))
                    .layer(TraceLayer::new(collector.clone()).metrics(metrics))
            });
            let addr = support::serve(app).await;
            let mut traces = Vec::new();
            for (sent, path) in ["/users/1", "/users/2"].into_iter().enumerate() {
                call(addr, Method::GET, path).await;
                let spans = support::wait_for_spans(&collector, sent + 1).await;
                traces.push(spans[sent].trace_id.to_string());
            }
            let (text, samples) = wait_for_count(addr, &USER_LABELS, 2.0).await;
            let with_exemplar = exemplar_buckets(&samples);
            if with_exemplar.len() != 1 {
                continue; // two buckets: each has its own request's exemplar
            }
            let exemplar = with_exemplar[0].exemplar.as_ref().unwrap();
            assert_eq!(
                exemplar.label("trace_id"),
                Some(traces[kept].as_str()),
                "interval {interval:?}:\n{text}"
            );
            told = true;
            break;
        }
        assert!(told, "no round put both requests in one bucket");
    }
}

#[tokio::test]
async fn unsampled_requests_have_no_exemplar_in_either_order() {
    for order in [Order::TraceOutside, Order::MetricsOutside, Order::Combined] {
        let collector = support::collector();
        let layer = TraceLayer::new(collector.clone()).sampler(AlwaysOff);
        let addr = serve_traced(Some(layer), order).await;
        call(addr, Method::GET, "/users/1").await;
        assert_no_exemplar(addr, Some(&collector)).await;
    }
}

#[tokio::test]
async fn a_callers_unsampled_decision_gives_no_exemplar_in_either_order() {
    for order in [Order::TraceOutside, Order::MetricsOutside, Order::Combined] {
        let collector = support::collector();
        let addr = serve_traced(Some(TraceLayer::new(collector.clone())), order).await;
        let traceparent = support::Caller::random().traceparent(false);
        let request = support::request(
            Method::GET,
            addr,
            "/users/1",
            &[("traceparent", &traceparent)],
        );
        support::send(&support::client(), request).await;
        assert_no_exemplar(addr, Some(&collector)).await;
    }
}

#[tokio::test]
async fn without_the_trace_layer_metrics_are_recorded_without_exemplars() {
    let addr = serve_traced(None, Order::TraceOutside).await;
    call(addr, Method::GET, "/users/1").await;
    assert_no_exemplar(addr, None).await;
}

// ---------------------------------------------------------------------------------------------
// Cardinality
// ---------------------------------------------------------------------------------------------

/// The distinct series (label sets without `le`) of a histogram, from its `_count` samples.
fn series_of<'a>(samples: &'a [Sample], count_name: &str) -> Vec<&'a Sample> {
    samples.iter().filter(|s| s.name == count_name).collect()
}

#[tokio::test]
async fn the_series_cap_sends_further_label_sets_to_one_counted_overflow_series() {
    let mut app = Router::new();
    for route in ["/a", "/b", "/c", "/d", "/e", "/f"] {
        app = app.route(route, get(|| async { "ok" }).post(|| async { "posted" }));
    }
    let app = instrumented(MetricsBuilder::new().max_series_per_metric(3), |metrics| {
        app.layer(metrics)
    });
    let addr = support::serve(app).await;
    let requests = [
        (Method::GET, "/a"),
        (Method::GET, "/b"),
        (Method::GET, "/c"),
        // The cap is reached: every new label set from here on overflows.
        (Method::GET, "/d"),
        (Method::GET, "/e"),
        (Method::GET, "/f"),
        (Method::GET, "/a"),
        (Method::POST, "/a"),
        (Method::GET, "/not/routed/1"),
        (Method::GET, "/b"),
    ];
    for (method, path) in &requests {
        call(addr, method.clone(), path).await;
    }
    let overflow = [("http_request_method", "_overflow")];
    let total = requests.len() as f64;
    let (text, samples) = support::scrape_until(addr, "every request recorded", |s| {
        let sum = |name: &str| series_of(s, name).iter().map(|s| s.value).sum::<f64>();
        sum(DURATION_COUNT) == total && sum("http_server_response_body_size_bytes_count") == total
    })
    .await;

    // At most 3 regular series plus the overflow series, in every capped metric.
    let mut overflowed = 0.0;
    for count_name in [
        DURATION_COUNT,
        "http_server_response_body_size_bytes_count",
        "http_server_request_body_size_bytes_count",
    ] {
        let series = series_of(&samples, count_name);
        let regular: Vec<&&Sample> = series
            .iter()
            .filter(|s| s.label("http_request_method") != Some("_overflow"))
            .collect();
        assert!(regular.len() <= 3, "{count_name}: {series:#?}");
        let overflow_series = samples_of(&samples, count_name, &overflow);
        assert!(overflow_series.len() <= 1, "{count_name}: {series:#?}");
        overflowed += overflow_series.iter().map(|s| s.value).sum::<f64>();
    }

    // The duration histogram: the first three label sets, then everything else.
    assert_eq!(series_of(&samples, DURATION_COUNT).len(), 4, "{text}");
    for (route, count) in [("/a", 2.0), ("/b", 2.0), ("/c", 1.0)] {
        let labels = [("http_request_method", "GET"), ("http_route", route)];
        assert_eq!(sample_value(&samples, DURATION_COUNT, &labels), Some(count));
    }
    let overflow_series = samples_of(&samples, DURATION_COUNT, &overflow);
    assert_eq!(overflow_series.len(), 1, "{text}");
    assert_eq!(
        overflow_series[0].value, 5.0,
        "/d, /e, /f, POST /a, the 404"
    );
    assert_eq!(overflow_series[0].label("http_route"), Some(""));
    for path in ["/d", "/e", "/f", "/not/routed"] {
        assert!(!text.contains(&format!("\"{path}")), "{path} in:\n{text}");
    }

    // Every request that went to the overflow label set is counted once (its duration and
    // body sizes are looked up together).
    let counted =
        sample_value(&samples, "tracewire_http_server_series_overflow_total", &[]).unwrap();
    assert_eq!(counted, 5.0, "{text}");
    assert!(
        overflowed >= 2.0 * counted,
        "duration and response size: {text}"
    );
}

// ---------------------------------------------------------------------------------------------
// Requests that end without a response
// ---------------------------------------------------------------------------------------------

/// The samples of `registry` as a scrape would read them.
fn samples_in(registry: &Registry) -> Vec<Sample> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("encodes");
    support::parse_exposition(&text)
}

/// The duration observations labelled `error_type=error`, and the in-flight gauge.
fn counted_as(samples: &[Sample], error: &str) -> (f64, f64) {
    let count = samples_of(samples, DURATION_COUNT, &[("error_type", error)])
        .iter()
        .map(|s| s.value)
        .sum();
    let active = sample_value(samples, ACTIVE, &[("http_request_method", "GET")]).unwrap_or(0.0);
    (count, active)
}

/// Polls a request once through `service` (its response never comes) and drops it, as when the
/// client goes away or a timeout layer gives up.
fn cancel_after_one_poll<S>(mut service: S)
where
    S: tower::Service<Request<Full<Bytes>>>,
{
    let request = Request::get("/slow")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut future = std::pin::pin!(service.call(request));
    assert!(future.as_mut().poll(&mut cx).is_pending());
}

fn never_answers() -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = http::Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<Full<Bytes>>, Infallible>>,
> {
    tower::service_fn(|_request: Request<Full<Bytes>>| {
        std::future::pending::<Result<http::Response<Full<Bytes>>, Infallible>>()
    })
}

/// A request given up before its response was ready still counts its time, as `aborted`: the
/// slowest requests (those a client or a timeout gave up on) stay in the histogram.
#[test]
fn a_request_cancelled_before_its_response_is_counted_as_aborted() {
    use tower::Layer as _;

    let mut registry = Registry::default();
    cancel_after_one_poll(MetricsLayer::new(&mut registry).layer(never_answers()));
    let samples = samples_in(&registry);
    assert_eq!(counted_as(&samples, "aborted"), (1.0, 0.0));
    assert_eq!(
        samples_of(&samples, DURATION_COUNT, &[]).len(),
        1,
        "one observation, with no status: {samples:#?}"
    );

    let mut registry = Registry::default();
    let collector = support::collector();
    let layer = TraceLayer::new(collector.clone()).metrics(MetricsLayer::new(&mut registry));
    cancel_after_one_poll(layer.layer(never_answers()));
    assert_eq!(counted_as(&samples_in(&registry), "aborted"), (1.0, 0.0));
    assert_eq!(collector.spans().len(), 1, "the span is recorded too");
}

/// A handler that panics under a panic-catching layer outside: the client gets the catcher's
/// 500, and the metrics say `panic` (the future is dropped after the panic was caught, when
/// nothing else tells a panic from a cancellation).
#[tokio::test]
async fn a_handler_panic_caught_outside_is_counted_as_panic() {
    let panics = || {
        tower::service_fn(|_request: Request<Full<Bytes>>| async {
            if true {
                panic!("handler bug");
            }
            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
        })
    };
    let request = || {
        Request::get("/boom")
            .body(Full::new(Bytes::new()))
            .expect("request")
    };

    let mut registry = Registry::default();
    let standalone = ServiceBuilder::new()
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(MetricsLayer::new(&mut registry))
        .service(panics());
    let response = standalone.oneshot(request()).await.expect("caught");
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(counted_as(&samples_in(&registry), "panic"), (1.0, 0.0));

    let mut registry = Registry::default();
    let collector = support::collector();
    let combined = ServiceBuilder::new()
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(TraceLayer::new(collector.clone()).metrics(MetricsLayer::new(&mut registry)))
        .service(panics());
    let response = combined.oneshot(request()).await.expect("caught");
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(counted_as(&samples_in(&registry), "panic"), (1.0, 0.0));
    let spans = collector.spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(support::attr_str(&spans[0], "error.type"), Some("panic"));
}

/// A request past the series cap counts once in the overflow counter, also when its duration
/// ends at the head and its body sizes are recorded later (a second lookup of its label set);
/// the help text says where the duration ends.
#[tokio::test]
async fn an_overflowing_request_counts_once_wherever_its_duration_ends() {
    use tower::Layer as _;

    for (end, help) in [
        (DurationEnd::BodyEnd, "until the response body ended"),
        (DurationEnd::Headers, "until the response head was ready"),
    ] {
        let mut registry = Registry::default();
        let layer = MetricsBuilder::new()
            .max_series_per_metric(1)
            .duration_end(end)
            .server(&mut registry);
        for status in [StatusCode::OK, StatusCode::CREATED] {
            let service = layer.layer(tower::service_fn(move |_request: Request<Full<Bytes>>| {
                let mut response = http::Response::new(Full::new(Bytes::from_static(b"hi")));
                *response.status_mut() = status;
                std::future::ready(Ok::<_, Infallible>(response))
            }));
            let request = Request::get("/")
                .body(Full::new(Bytes::new()))
                .expect("request");
            let response = service.oneshot(request).await.expect("response");
            response.into_body().collect().await.expect("body");
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        let samples = support::parse_exposition(&text);
        assert_eq!(
            sample_value(&samples, "tracewire_http_server_series_overflow_total", &[]),
            Some(1.0),
            "{end:?}: {text}"
        );
        let help_line = text
            .lines()
            .find(|line| line.starts_with("# HELP http_server_request_duration_seconds "))
            .expect("help line");
        assert!(
            help_line.trim_end_matches('.').ends_with(help),
            "{end:?}: {help_line}"
        );
    }
}
