//! The harness shared by the integration tests: real servers on loopback (axum, or hyper-util
//! around any tower service), a real hyper-util client, bounded waits for spans, and span
//! attribute accessors.
//!
//! Every wait here is bounded: requests by [`REQUEST_TIMEOUT`], span polling by [`SPAN_WAIT`].

// Each test binary uses its own part of the harness.
#![allow(dead_code)]

use std::convert::Infallible;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;
use trace_core::{InMemoryCollector, Span, SpanId, TraceId, Value};
use trace_http::ClientTraceLayer;
use trace_http::client::ClientTraceService;
use trace_http::context::{RequestContext, current_context};

/// The hyper-util client every test uses.
pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Longest wait for one request and its whole response body.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for spans to reach the collector (they end on the server task, when the response
/// body ends, possibly a moment after the client has read it).
pub(crate) const SPAN_WAIT: Duration = Duration::from_secs(2);
/// Polling step while waiting for spans.
pub(crate) const SPAN_STEP: Duration = Duration::from_millis(5);
/// How long to watch for spans that should *not* appear (or for extra ones).
pub(crate) const QUIET_PERIOD: Duration = Duration::from_millis(150);
/// Most connections a hyper-util test server accepts before it stops listening.
const MAX_CONNECTIONS: usize = 2_000;

/// A collector large enough for any one test.
pub(crate) fn collector() -> Arc<InMemoryCollector> {
    Arc::new(InMemoryCollector::new(10_000))
}

async fn bind() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("bound address");
    (listener, addr)
}

/// Serves `app` with `axum::serve` on a fresh loopback port, until the test's runtime ends.
/// Serves `/metrics` of a registry holding the server layer's metrics, plus whatever `register`
/// adds, beside a `/` the layer measures; one request to `/` is made before returning.
#[allow(dead_code)]
pub(crate) async fn serve_layer_metrics_with(
    register: impl FnOnce(&mut prometheus_client::registry::Registry),
) -> SocketAddr {
    let mut registry = prometheus_client::registry::Registry::default();
    let server = trace_http::metrics::MetricsBuilder::new().server(&mut registry);
    register(&mut registry);
    let app = Router::new()
        .route("/", routing::get(|| async { "ok" }))
        .layer(server)
        .route_service(
            "/metrics",
            trace_http::metrics::metrics_service(Arc::new(registry)),
        );
    let addr = serve(app).await;
    get(addr, "/", &[]).await;
    addr
}

/// Registers what the text format has to rewrite: an `info` metric `build`, and a `jobs`
/// counter whose label value is `job` and whose exemplar's is `trace`.
#[allow(dead_code)]
pub(crate) fn register_info_and_jobs(
    registry: &mut prometheus_client::registry::Registry,
    job: &str,
    trace: &str,
) {
    use prometheus_client::metrics::exemplar::CounterWithExemplar;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::info::Info;

    type Labels = Vec<(String, String)>;
    registry.register(
        "build",
        "Build information",
        Info::new(vec![("version", "1.2.3")]),
    );
    let jobs = Family::<Labels, CounterWithExemplar<Labels>>::default();
    registry.register("jobs", "Jobs run", jobs.clone());
    jobs.get_or_create(&vec![("name".to_owned(), job.to_owned())])
        .inc_by(
            1,
            Some(vec![("trace_id".to_owned(), trace.to_owned())]),
            None,
        );
}

pub(crate) async fn serve(app: Router) -> SocketAddr {
    let (listener, addr) = bind().await;
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("axum server");
    });
    addr
}

/// Like [`serve`], with the peer address available as `ConnectInfo<SocketAddr>`.
pub(crate) async fn serve_with_connect_info(app: Router) -> SocketAddr {
    let (listener, addr) = bind().await;
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("axum server");
    });
    addr
}

/// Serves any tower service with hyper-util's HTTP/1 + HTTP/2 server (no axum), one task per
/// connection, until the test's runtime ends (or after [`MAX_CONNECTIONS`] connections).
pub(crate) async fn serve_tower<S, B>(service: S) -> SocketAddr
where
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let (listener, addr) = bind().await;
    tokio::spawn(async move {
        for _ in 0..MAX_CONNECTIONS {
            let Ok((stream, _peer)) = listener.accept().await else {
                continue;
            };
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                // A connection ends in an error when the service fails a request: expected by
                // the tests that make it fail.
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// An HTTP/1.1 client (plain TCP, connection pool).
pub(crate) fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An HTTP/2 (prior knowledge, h2c) client.
pub(crate) fn client_http2() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// A request to `addr` with these headers and an empty body.
pub(crate) fn request(
    method: Method,
    addr: SocketAddr,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> Request<Full<Bytes>> {
    let raw: Vec<(HeaderName, HeaderValue)> = headers
        .iter()
        .map(|(name, value)| header(name, value.as_bytes()))
        .collect();
    request_raw(method, addr, path_and_query, raw)
}

/// A request with header values given as raw bytes (for values that are not UTF-8).
pub(crate) fn request_raw(
    method: Method,
    addr: SocketAddr,
    path_and_query: &str,
    headers: Vec<(HeaderName, HeaderValue)>,
) -> Request<Full<Bytes>> {
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path_and_query}"))
        .body(Full::new(Bytes::new()))
        .expect("valid test request");
    for (name, value) in headers {
        request.headers_mut().append(name, value);
    }
    request
}

/// A header line from a name and raw value bytes.
pub(crate) fn header(name: &str, value: &[u8]) -> (HeaderName, HeaderValue) {
    (
        HeaderName::from_bytes(name.as_bytes()).expect("valid test header name"),
        HeaderValue::from_bytes(value).expect("valid test header value"),
    )
}

/// A response read to its end.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Reply {
    /// A response header as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends `request` and reads the whole response, within [`REQUEST_TIMEOUT`].
pub(crate) async fn send(client: &HttpClient, request: Request<Full<Bytes>>) -> Reply {
    let exchange = async {
        let response = client.request(request).await.expect("response head");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("response body").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .expect("request finished in time")
}

/// `GET http://{addr}{path}` with these headers, on a fresh client.
pub(crate) async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    send(&client(), request(Method::GET, addr, path, headers)).await
}

/// Waits (bounded) until the collector holds at least `count` spans, then for a short quiet
/// period so that extra spans would show up too, and returns every stored span.
pub(crate) async fn wait_for_spans(collector: &InMemoryCollector, count: usize) -> Vec<Span> {
    let steps = SPAN_WAIT.as_millis() / SPAN_STEP.as_millis();
    for _ in 0..steps {
        if collector.len() >= count {
            tokio::time::sleep(SPAN_STEP * 4).await;
            return collector.spans();
        }
        tokio::time::sleep(SPAN_STEP).await;
    }
    panic!(
        "expected {count} spans within {SPAN_WAIT:?}, the collector holds {}: {:#?}",
        collector.len(),
        collector.spans()
    );
}

/// Waits (bounded) for exactly one span and returns it.
pub(crate) async fn wait_for_one_span(collector: &InMemoryCollector) -> Span {
    let spans = wait_for_spans(collector, 1).await;
    assert_eq!(spans.len(), 1, "exactly one span expected: {spans:#?}");
    spans.into_iter().next().expect("one span")
}

/// Watches the collector for [`QUIET_PERIOD`] and asserts that no span arrives.
pub(crate) async fn assert_no_spans(collector: &InMemoryCollector) {
    tokio::time::sleep(QUIET_PERIOD).await;
    assert!(
        collector.is_empty(),
        "no span expected, got {:#?}",
        collector.spans()
    );
}

/// A string attribute.
pub(crate) fn attr_str<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    match span.attribute(key)? {
        Value::String(s) => Some(s.as_str()),
        other => panic!("attribute {key} is not a string: {other:?}"),
    }
}

/// An integer attribute.
pub(crate) fn attr_i64(span: &Span, key: &str) -> Option<i64> {
    match span.attribute(key)? {
        Value::I64(i) => Some(*i),
        other => panic!("attribute {key} is not an integer: {other:?}"),
    }
}

/// A boolean attribute.
pub(crate) fn attr_bool(span: &Span, key: &str) -> Option<bool> {
    match span.attribute(key)? {
        Value::Bool(b) => Some(*b),
        other => panic!("attribute {key} is not a boolean: {other:?}"),
    }
}

/// The span of `spans` with this name.
pub(crate) fn span_named<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    let found: Vec<&Span> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(
        found.len(),
        1,
        "one span named {name:?} expected in {spans:#?}"
    );
    found[0]
}

/// A caller's ids, as an upstream service would have them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
}

impl Caller {
    /// Fresh random ids.
    pub(crate) fn random() -> Self {
        Self {
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
        }
    }

    /// A W3C `traceparent` for these ids.
    pub(crate) fn traceparent(&self, sampled: bool) -> String {
        let flags = if sampled { "01" } else { "00" };
        format!("00-{}-{}-{flags}", self.trace_id, self.span_id)
    }
}

/// What [`echo_context`] saw, parsed back from its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Echo {
    /// Trace id of the `RequestContext`.
    pub(crate) trace_id: String,
    /// Span id of the `RequestContext` (the server span's id).
    pub(crate) span_id: String,
    /// Parent span id of the `RequestContext`, `-` when none.
    pub(crate) parent_span_id: String,
    /// Whether the `RequestContext` is sampled.
    pub(crate) sampled: bool,
    /// Whether the `RequestContext` is a debug trace.
    pub(crate) debug: bool,
    /// Trace id of `current_context()`, `-` when none.
    pub(crate) current_trace_id: String,
}

impl Echo {
    /// Parses the body [`echo_context`] writes.
    pub(crate) fn parse(body: &str) -> Self {
        let fields: Vec<&str> = body.split(' ').collect();
        assert_eq!(fields.len(), 6, "unexpected echo body {body:?}");
        Self {
            trace_id: fields[0].to_owned(),
            span_id: fields[1].to_owned(),
            parent_span_id: fields[2].to_owned(),
            sampled: fields[3] == "1",
            debug: fields[4] == "1",
            current_trace_id: fields[5].to_owned(),
        }
    }
}

/// A handler that answers with the request's context, from the `RequestContext` extractor and
/// from `current_context()`: `{trace} {span} {parent|-} {sampled 0|1} {debug 0|1} {current|-}`.
pub(crate) async fn echo_context(RequestContext(context): RequestContext) -> String {
    let current = current_context().map_or_else(|| "-".to_owned(), |c| c.trace_id().to_string());
    let parent = context
        .parent_span_id()
        .map_or_else(|| "-".to_owned(), |p| p.to_string());
    format!(
        "{} {} {} {} {} {}",
        context.trace_id(),
        context.span_id(),
        parent,
        u8::from(context.is_sampled()),
        u8::from(context.is_debug()),
        current
    )
}

/// A service that answers every request with `200 hello` (for plain hyper servers).
pub(crate) fn hello_service() -> impl tower::Service<
    Request<Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(|_request: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
    })
}

/// The request headers a capturing server received, in order of arrival.
#[derive(Debug, Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<Vec<HeaderMap>>>);

impl Captured {
    /// How many requests arrived.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// The headers of the only request that arrived.
    pub(crate) fn only(&self) -> HeaderMap {
        let all = self.lock();
        assert_eq!(all.len(), 1, "one captured request expected: {all:#?}");
        all[0].clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<HeaderMap>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A plain (untraced) server that records every request's headers and answers `ok`, or with
/// the status `{code}` for paths `/status/{code}`.
pub(crate) async fn serve_capturing() -> (SocketAddr, Captured) {
    async fn capture(
        State(captured): State<Captured>,
        uri: Uri,
        headers: HeaderMap,
    ) -> (StatusCode, &'static str) {
        captured.lock().push(headers);
        let status = uri
            .path()
            .strip_prefix("/status/")
            .and_then(|code| code.parse::<u16>().ok())
            .and_then(|code| StatusCode::from_u16(code).ok())
            .unwrap_or(StatusCode::OK);
        (status, "ok")
    }
    let captured = Captured::default();
    let app = Router::new().fallback(capture).with_state(captured.clone());
    (serve(app).await, captured)
}

/// The hyper-util client wrapped in the client trace layer.
pub(crate) type TracedClient = ClientTraceService<HttpClient>;

/// Wraps a fresh hyper-util client in `layer`, the way applications do.
pub(crate) fn traced_client(layer: ClientTraceLayer) -> TracedClient {
    tower::ServiceBuilder::new().layer(layer).service(client())
}

/// Sends `request` through a traced client and reads the whole response (bounded).
pub(crate) async fn send_traced(client: &TracedClient, request: Request<Full<Bytes>>) -> Reply {
    let exchange = async {
        let response = client
            .clone()
            .oneshot(request)
            .await
            .expect("response head");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("response body").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .expect("request finished in time")
}

#[derive(Clone)]
struct Hop {
    client: TracedClient,
    downstream: SocketAddr,
}

/// An app (without any trace layer: the test adds it) whose route `/call/{*path}` calls
/// `http://{downstream}/{path}?{query}` through a traced client, and answers `200` with
/// `{downstream status} {downstream body}`. A request header `x-userinfo: user:pass` makes the
/// outgoing URL carry those credentials (`http://user:pass@host:port/...`).
pub(crate) fn calling_app(downstream: SocketAddr, layer: ClientTraceLayer) -> Router {
    async fn call(State(hop): State<Hop>, uri: Uri, headers: HeaderMap) -> String {
        let path_and_query = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .strip_prefix("/call")
            .unwrap_or("/");
        let userinfo = headers
            .get("x-userinfo")
            .and_then(|v| v.to_str().ok())
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let request = Request::get(format!(
            "http://{userinfo}{}{path_and_query}",
            hop.downstream
        ))
        .body(Full::new(Bytes::new()))
        .expect("valid downstream request");
        let reply = send_traced(&hop.client, request).await;
        format!("{} {}", reply.status.as_u16(), reply.body)
    }
    let hop = Hop {
        client: traced_client(layer),
        downstream,
    };
    Router::new()
        .route("/call/{*path}", routing::get(call))
        .with_state(hop)
}

/// The W3C form (`traceresponse`, `traceparent`) of a recorded span's context: version 00 with
/// the sampled and random flags it carries.
#[allow(dead_code)]
pub(crate) fn w3c_value(span: &trace_core::Span) -> String {
    let flags = u8::from(span.flags.is_sampled()) | (u8::from(span.flags.is_random()) << 1);
    format!("00-{}-{}-{flags:02x}", span.trace_id, span.span_id)
}

// ---------------------------------------------------------------------------------------------
// Metrics: scraping `/metrics` and reading the exposition back
// ---------------------------------------------------------------------------------------------

/// The `Accept` header Prometheus sends when it scrapes.
#[allow(dead_code)]
pub(crate) const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// An exemplar attached to a sample line (` # {labels} value [timestamp]`).
#[allow(dead_code)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Exemplar {
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) value: f64,
}

#[allow(dead_code)]
impl Exemplar {
    /// The value of one of the exemplar's labels.
    pub(crate) fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One sample line of a text exposition (OpenMetrics or Prometheus text).
#[allow(dead_code)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) value: f64,
    pub(crate) exemplar: Option<Exemplar>,
}

#[allow(dead_code)]
impl Sample {
    /// The value of one of the sample's labels.
    pub(crate) fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether every `(name, value)` pair is among the sample's labels.
    pub(crate) fn has_labels(&self, wanted: &[(&str, &str)]) -> bool {
        wanted
            .iter()
            .all(|(name, value)| self.label(name) == Some(*value))
    }

    /// The labels other than `le` (the series a histogram bucket belongs to).
    pub(crate) fn series_labels(&self) -> Vec<(String, String)> {
        self.labels
            .iter()
            .filter(|(k, _)| k != "le")
            .cloned()
            .collect()
    }
}

/// Reads `{name="value",...}` starting at `rest` (just after the `{`); returns the labels and
/// what follows the closing `}`.
#[allow(dead_code)]
fn parse_label_set(mut rest: &str, line: &str) -> (Vec<(String, String)>, String) {
    let mut labels = Vec::new();
    loop {
        rest = rest.trim_start_matches(',');
        if let Some(after) = rest.strip_prefix('}') {
            return (labels, after.to_owned());
        }
        let (name, after_name) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("malformed label set in {line:?}"));
        let mut value = String::new();
        let mut chars = after_name.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => panic!("dangling escape in {line:?}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in {line:?}"),
            }
        };
        labels.push((name.to_owned(), value));
        rest = &after_name[end + 1..];
    }
}

#[allow(dead_code)]
fn parse_value(text: &str, line: &str) -> f64 {
    match text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => text
            .parse()
            .unwrap_or_else(|_| panic!("bad value {text:?} in {line:?}")),
    }
}

/// Every sample line of an exposition (comment lines skipped); panics on a malformed line.
#[allow(dead_code)]
pub(crate) fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, labels, rest) = match line.find(['{', ' ']) {
            Some(i) if line.as_bytes()[i] == b'{' => {
                let (labels, rest) = parse_label_set(&line[i + 1..], line);
                (line[..i].to_owned(), labels, rest)
            }
            Some(i) => (line[..i].to_owned(), Vec::new(), line[i..].to_owned()),
            None => panic!("sample line without a value: {line:?}"),
        };
        let (value_part, exemplar_part) = match rest.split_once(" # {") {
            Some((value, exemplar)) => (value.to_owned(), Some(exemplar.to_owned())),
            None => (rest, None),
        };
        let value_text = value_part
            .split_whitespace()
            .next()
            .unwrap_or_else(|| panic!("sample line without a value: {line:?}"));
        let value = parse_value(value_text, line);
        let exemplar = exemplar_part.map(|part| {
            let (labels, rest) = parse_label_set(&part, line);
            let value_text = rest
                .split_whitespace()
                .next()
                .unwrap_or_else(|| panic!("exemplar without a value: {line:?}"));
            Exemplar {
                labels,
                value: parse_value(value_text, line),
            }
        });
        samples.push(Sample {
            name,
            labels,
            value,
            exemplar,
        });
    }
    samples
}

/// The samples named `name` that carry every `(label, value)` pair of `labels`.
#[allow(dead_code)]
pub(crate) fn samples_of<'a>(
    samples: &'a [Sample],
    name: &str,
    labels: &[(&str, &str)],
) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.name == name && s.has_labels(labels))
        .collect()
}

/// The value of the one sample named `name` with these labels, `None` if there is none; panics
/// if several match.
#[allow(dead_code)]
pub(crate) fn sample_value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found = samples_of(samples, name, labels);
    assert!(
        found.len() <= 1,
        "one sample {name}{labels:?} expected, found {found:#?}"
    );
    found.first().map(|s| s.value)
}

/// `GET http://{addr}/metrics`, with this `Accept` header if any.
#[allow(dead_code)]
pub(crate) async fn scrape(addr: SocketAddr, accept: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
    let reply = get(addr, "/metrics", &headers).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "scrape failed: {}",
        reply.body
    );
    reply
}

/// Scrapes `addr` (OpenMetrics) until `done` holds for the parsed samples, bounded by
/// [`METRICS_WAIT`]; returns the last exposition text and its samples.
#[allow(dead_code)]
pub(crate) async fn scrape_until(
    addr: SocketAddr,
    what: &str,
    mut done: impl FnMut(&[Sample]) -> bool,
) -> (String, Vec<Sample>) {
    let deadline = tokio::time::Instant::now() + METRICS_WAIT;
    loop {
        let reply = scrape(addr, Some(PROMETHEUS_ACCEPT)).await;
        let samples = parse_exposition(&reply.body);
        if done(&samples) {
            return (reply.body, samples);
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "{what}: not seen within {METRICS_WAIT:?}; last scrape:\n{}",
                reply.body
            );
        }
        tokio::time::sleep(SPAN_STEP * 2).await;
    }
}

/// Longest wait for a metric to reach an expected value (metrics are recorded on the server
/// task when the response body ends, possibly a moment after the client has read it).
#[allow(dead_code)]
pub(crate) const METRICS_WAIT: Duration = Duration::from_secs(3);

/// Whether `text` is `len` lower-case hexadecimal digits, not all zero.
#[allow(dead_code)]
pub(crate) fn is_hex_id(text: &str, len: usize) -> bool {
    text.len() == len
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && text.bytes().any(|b| b != b'0')
}
