//! The server span a real axum (or plain hyper) server records: its name, its OpenTelemetry
//! HTTP attributes, its status for successes, client errors, server errors, failing services
//! and panics, and the response header that returns the trace id.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::routing::{any, get};
use bytes::Bytes;
use http::{HeaderName, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use trace_core::{Span, SpanKind, Status};
use trace_http::{TraceIdHeader, TraceLayer};

use support::{Caller, attr_bool, attr_i64, attr_str};

async fn user(axum::extract::Path(id): axum::extract::Path<String>) -> String {
    format!("user {id}")
}

fn users_app() -> Router {
    Router::new().route("/users/{id}", get(user))
}

async fn traced(app: Router, layer: TraceLayer) -> SocketAddr {
    support::serve(app.layer(layer)).await
}

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn span_is_named_after_the_matched_route_with_router_layer() {
    let collector = support::collector();
    let addr = traced(users_app(), TraceLayer::new(collector.clone())).await;
    let reply = support::get(addr, "/users/42", &[]).await;
    assert_eq!(reply.body, "user 42");
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.name, "GET /users/{id}");
    assert_eq!(attr_str(&span, "http.route"), Some("/users/{id}"));
    assert_eq!(attr_str(&span, "url.path"), Some("/users/42"));
}

#[tokio::test]
async fn span_is_named_after_the_matched_route_with_route_layer() {
    let collector = support::collector();
    let app = users_app().route_layer(TraceLayer::new(collector.clone()));
    let addr = support::serve(app).await;
    support::get(addr, "/users/7", &[]).await;
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.name, "GET /users/{id}");
    assert_eq!(attr_str(&span, "http.route"), Some("/users/{id}"));
    assert_eq!(attr_str(&span, "url.path"), Some("/users/7"));
}

/// Samples the routes under `/users` only, by the name the layer hands it.
#[derive(Debug, Default)]
struct UsersOnly {
    names_seen: std::sync::Mutex<Vec<String>>,
}

impl trace_core::sampler::Sampler for UsersOnly {
    fn should_sample(
        &self,
        request: &trace_core::sampler::SamplingRequest<'_>,
    ) -> trace_core::sampler::SamplingDecision {
        self.names_seen
            .lock()
            .unwrap()
            .push(request.name.to_owned());
        if request.name.starts_with("/users") {
            trace_core::sampler::SamplingDecision::Sample
        } else {
            trace_core::sampler::SamplingDecision::Drop
        }
    }
}

#[tokio::test]
async fn a_sampler_that_decides_by_name_is_handed_the_matched_route() {
    // The built-in samplers never read the name, so the layer looks up the route only for a
    // request it records; a sampler of the user's (which reads it, as far as the layer knows)
    // must still see the route on every request, sampled or not.
    let collector = support::collector();
    let sampler = std::sync::Arc::new(UsersOnly::default());
    let app = users_app().route("/health", get(|| async { "ok" }));
    let addr = traced(
        app,
        TraceLayer::new(collector.clone()).sampler(sampler.clone()),
    )
    .await;
    assert_eq!(support::get(addr, "/health", &[]).await.status, 200);
    assert_eq!(support::get(addr, "/users/42", &[]).await.status, 200);
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.name, "GET /users/{id}");
    assert_eq!(
        *sampler.names_seen.lock().unwrap(),
        ["/health", "/users/{id}"]
    );
}

#[tokio::test]
async fn unmatched_path_is_named_by_the_method_alone_never_the_raw_path() {
    let collector = support::collector();
    let addr = traced(users_app(), TraceLayer::new(collector.clone())).await;
    let reply = support::get(addr, "/no/such/page/123", &[]).await;
    assert_eq!(reply.status, 404);
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.name, "GET");
    assert!(!span.name.contains("/no/such"), "raw path in the name");
    assert_eq!(attr_str(&span, "http.route"), None);
    assert_eq!(attr_i64(&span, "http.response.status_code"), Some(404));
}

// ---------------------------------------------------------------------------------------------
// Attributes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn server_span_carries_the_http_semantic_convention_attributes() {
    let collector = support::collector();
    let layer = TraceLayer::new(collector.clone()).service_name("users");
    let addr = traced(users_app(), layer).await;
    let reply = support::get(
        addr,
        "/users/42?expand=true",
        &[("user-agent", "tracewire-tests/1.0")],
    )
    .await;
    assert_eq!(reply.body, "user 42");

    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.kind, SpanKind::Server);
    assert_eq!(span.status, Status::Unset);
    assert_eq!(attr_str(&span, "http.request.method"), Some("GET"));
    assert_eq!(attr_str(&span, "http.request.method_original"), None);
    assert_eq!(attr_str(&span, "url.path"), Some("/users/42"));
    assert_eq!(attr_str(&span, "url.scheme"), Some("http"));
    assert_eq!(attr_str(&span, "http.route"), Some("/users/{id}"));
    assert_eq!(attr_str(&span, "server.address"), Some("127.0.0.1"));
    assert_eq!(attr_i64(&span, "server.port"), Some(i64::from(addr.port())));
    assert_eq!(attr_str(&span, "network.protocol.version"), Some("1.1"));
    assert_eq!(
        attr_str(&span, "user_agent.original"),
        Some("tracewire-tests/1.0")
    );
    assert_eq!(attr_i64(&span, "http.response.status_code"), Some(200));
    assert_eq!(
        attr_i64(&span, "http.response.body.size"),
        Some("user 42".len() as i64)
    );
    assert_eq!(attr_str(&span, "service.name"), Some("users"));
    assert_eq!(attr_str(&span, "error.type"), None);
    assert!(
        span.attributes
            .iter()
            .all(|kv| !kv.value.to_string().contains("expand")),
        "the query string is not recorded: {:?}",
        span.attributes
    );
    // Without ConnectInfo the server does not know the peer.
    assert_eq!(attr_str(&span, "client.address"), None);
}

/// Without a `Host` header (HTTP/1.0) the server address comes from an absolute-form request
/// target, whose `user:password@` a peer may have filled: never recorded.
#[tokio::test]
async fn server_address_from_the_request_target_leaves_out_its_credentials() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let collector = support::collector();
    let addr = traced(users_app(), TraceLayer::new(collector.clone())).await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET http://alice:s3cret@example.com:8080/users/7 HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(support::REQUEST_TIMEOUT, stream.read_to_end(&mut reply))
        .await
        .expect("reply in time")
        .expect("reply");
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply
            .lines()
            .next()
            .is_some_and(|status| status.contains(" 200 ")),
        "{reply}"
    );

    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(attr_str(&span, "server.address"), Some("example.com"));
    assert_eq!(attr_i64(&span, "server.port"), Some(8080));
    assert!(
        span.attributes
            .iter()
            .all(|kv| !kv.value.to_string().contains("s3cret")),
        "{:?}",
        span.attributes
    );
}

#[tokio::test]
async fn request_body_size_is_recorded_from_content_length() {
    let collector = support::collector();
    let app = Router::new().route(
        "/upload",
        axum::routing::post(|body: String| async move { body.len().to_string() }),
    );
    let addr = traced(app, TraceLayer::new(collector.clone())).await;
    let mut request = support::request(Method::POST, addr, "/upload", &[]);
    *request.body_mut() = Full::new(Bytes::from_static(b"0123456789"));
    let reply = support::send(&support::client(), request).await;
    assert_eq!(reply.body, "10");
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.name, "POST /upload");
    assert_eq!(attr_str(&span, "http.request.method"), Some("POST"));
    assert_eq!(attr_i64(&span, "http.request.body.size"), Some(10));
    assert_eq!(attr_i64(&span, "http.response.body.size"), Some(2));
}

#[tokio::test]
async fn http2_requests_record_protocol_version_2() {
    let collector = support::collector();
    let addr = traced(users_app(), TraceLayer::new(collector.clone())).await;
    let client = support::client_http2();
    let reply = support::send(
        &client,
        support::request(Method::GET, addr, "/users/1", &[]),
    )
    .await;
    assert_eq!(reply.status, 200);
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(attr_str(&span, "network.protocol.version"), Some("2"));
    assert_eq!(span.name, "GET /users/{id}");
    // No Host header in HTTP/2: the address comes from the `:authority` pseudo-header.
    assert_eq!(attr_str(&span, "server.address"), Some("127.0.0.1"));
    assert_eq!(attr_i64(&span, "server.port"), Some(i64::from(addr.port())));
    assert_eq!(attr_str(&span, "url.scheme"), Some("http"));
    assert_eq!(attr_i64(&span, "http.response.body.size"), Some(6));
}

#[tokio::test]
async fn head_request_through_axum_is_complete_not_aborted() {
    let collector = support::collector();
    let addr = traced(users_app(), TraceLayer::new(collector.clone())).await;
    let reply = support::send(
        &support::client(),
        support::request(Method::HEAD, addr, "/users/1", &[]),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "");
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.name, "HEAD /users/{id}");
    assert_eq!(attr_bool(&span, "tracewire.response.aborted"), None);
}

#[tokio::test]
async fn unknown_method_is_reported_as_other_with_the_original() {
    let collector = support::collector();
    let app = Router::new().route("/cache/{key}", any(|| async { "purged" }));
    let addr = traced(app, TraceLayer::new(collector.clone())).await;
    let purge = Method::from_bytes(b"PURGE").unwrap();
    let reply = support::send(
        &support::client(),
        support::request(purge, addr, "/cache/logo", &[]),
    )
    .await;
    assert_eq!(reply.body, "purged");
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(attr_str(&span, "http.request.method"), Some("_OTHER"));
    assert_eq!(
        attr_str(&span, "http.request.method_original"),
        Some("PURGE")
    );
    assert_eq!(attr_str(&span, "http.route"), Some("/cache/{key}"));
}

#[tokio::test]
async fn unknown_method_span_is_named_http_not_other() {
    // OpenTelemetry HTTP span names: "{method} MUST be HTTP" when http.request.method is _OTHER
    // (semantic-conventions#270), with or without a route.
    let collector = support::collector();
    let app = Router::new().route("/cache/{key}", any(|| async { "purged" }));
    let addr = traced(app, TraceLayer::new(collector.clone())).await;
    let client = support::client();
    let purge = Method::from_bytes(b"PURGE").unwrap();
    support::send(
        &client,
        support::request(purge.clone(), addr, "/cache/logo", &[]),
    )
    .await;
    support::send(&client, support::request(purge, addr, "/unrouted", &[])).await;
    let spans = support::wait_for_spans(&collector, 2).await;
    let mut names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(names, ["HTTP", "HTTP /cache/{key}"]);
}

#[tokio::test]
async fn listed_request_headers_are_recorded_but_never_credentials() {
    let collector = support::collector();
    let layer = TraceLayer::new(collector.clone()).record_request_headers([
        "x-request-id",
        "authorization",
        "cookie",
    ]);
    let addr = traced(users_app(), layer).await;
    support::get(
        addr,
        "/users/1",
        &[
            ("x-request-id", "req-7f3a"),
            ("authorization", "Bearer secret-token"),
            ("cookie", "session=secret-session"),
            ("x-not-listed", "nope"),
        ],
    )
    .await;
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(
        attr_str(&span, "http.request.header.x-request-id"),
        Some("req-7f3a")
    );
    assert_eq!(span.attribute("http.request.header.authorization"), None);
    assert_eq!(span.attribute("http.request.header.cookie"), None);
    assert_eq!(span.attribute("http.request.header.x-not-listed"), None);
    for kv in &span.attributes {
        let value = kv.value.to_string();
        assert!(
            !value.contains("secret"),
            "credential leaked into {}: {value}",
            kv.key
        );
    }
}

#[tokio::test]
async fn header_values_beyond_ascii_are_recorded_as_text() {
    let collector = support::collector();
    let layer = TraceLayer::new(collector.clone()).record_request_headers(["x-tenant"]);
    let addr = traced(users_app(), layer).await;
    // A user agent in UTF-8, and a header repeated with a Latin-1 byte (not UTF-8) in one value.
    let request = support::request_raw(
        Method::GET,
        addr,
        "/users/1",
        vec![
            support::header("user-agent", "Käfer/2.0 (Zürich)".as_bytes()),
            support::header("x-tenant", b"m\xfcller"),
            support::header("x-tenant", b"acme"),
        ],
    );
    let reply = support::send(&support::client(), request).await;
    assert_eq!(reply.status, 200);
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(
        attr_str(&span, "user_agent.original"),
        Some("Käfer/2.0 (Zürich)")
    );
    assert_eq!(
        attr_str(&span, "http.request.header.x-tenant"),
        Some("m\u{fffd}ller,acme")
    );
}

#[tokio::test]
async fn client_address_is_recorded_with_connect_info() {
    let collector = support::collector();
    let app = users_app().layer(TraceLayer::new(collector.clone()));
    let addr = support::serve_with_connect_info(app).await;
    support::get(addr, "/users/1", &[]).await;
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(attr_str(&span, "client.address"), Some("127.0.0.1"));
    let port = attr_i64(&span, "client.port").expect("client.port");
    assert!(
        port > 0 && port != i64::from(addr.port()),
        "peer port {port}"
    );
}

// ---------------------------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------------------------

fn status_app() -> Router {
    Router::new()
        .route("/ok", get(|| async { "fine" }))
        .route(
            "/missing",
            get(|| async { (StatusCode::NOT_FOUND, "no such thing") }),
        )
        .route(
            "/broken",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "it broke") }),
        )
}

async fn status_span(path: &str) -> (support::Reply, Span) {
    let collector = support::collector();
    let addr = traced(status_app(), TraceLayer::new(collector.clone())).await;
    let reply = support::get(addr, path, &[]).await;
    (reply, support::wait_for_one_span(&collector).await)
}

#[tokio::test]
async fn ok_response_leaves_the_status_unset() {
    let (reply, span) = status_span("/ok").await;
    assert_eq!(reply.status, 200);
    assert_eq!(span.status, Status::Unset);
    assert_eq!(attr_i64(&span, "http.response.status_code"), Some(200));
    assert_eq!(attr_str(&span, "error.type"), None);
}

#[tokio::test]
async fn not_found_from_a_handler_leaves_the_server_status_unset() {
    let (reply, span) = status_span("/missing").await;
    assert_eq!(reply.status, 404);
    assert_eq!(span.status, Status::Unset, "4xx is the client's fault");
    assert_eq!(attr_i64(&span, "http.response.status_code"), Some(404));
    assert_eq!(attr_str(&span, "error.type"), None);
}

#[tokio::test]
async fn not_found_from_the_fallback_leaves_the_server_status_unset() {
    let (reply, span) = status_span("/nowhere").await;
    assert_eq!(reply.status, 404);
    assert_eq!(span.status, Status::Unset);
    assert_eq!(span.name, "GET");
}

#[tokio::test]
async fn internal_server_error_from_a_handler_is_an_error() {
    let (reply, span) = status_span("/broken").await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.body, "it broke");
    assert!(span.status.is_error(), "{:?}", span.status);
    assert_eq!(attr_str(&span, "error.type"), Some("500"));
    assert_eq!(attr_i64(&span, "http.response.status_code"), Some(500));
}

#[tokio::test]
async fn failing_service_behind_handle_error_is_recorded_as_500() {
    let collector = support::collector();
    let failing = tower::service_fn(|_request: Request<Body>| async {
        Err::<Response<Body>, std::io::Error>(std::io::Error::other("database unreachable"))
    });
    let app = Router::new()
        .route_service(
            "/fail",
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|error: std::io::Error| async move {
                    (StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
                }))
                .service(failing),
        )
        .layer(TraceLayer::new(collector.clone()));
    let addr = support::serve(app).await;
    let reply = support::get(addr, "/fail", &[]).await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.body, "database unreachable");
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.name, "GET /fail");
    assert!(span.status.is_error());
    assert_eq!(attr_str(&span, "error.type"), Some("500"));
}

#[tokio::test]
async fn service_error_through_hyper_util_is_an_error_span() {
    let collector = support::collector();
    let failing = tower::service_fn(|_request: Request<Incoming>| async {
        Err::<Response<Full<Bytes>>, std::io::Error>(std::io::Error::other("database unreachable"))
    });
    let service = ServiceBuilder::new()
        .layer(TraceLayer::new(collector.clone()))
        .service(failing);
    let addr = support::serve_tower(service).await;

    let caller = Caller::random();
    let request = support::request(
        Method::GET,
        addr,
        "/fail",
        &[("traceparent", &caller.traceparent(true))],
    );
    let result = tokio::time::timeout(support::REQUEST_TIMEOUT, support::client().request(request))
        .await
        .expect("the client gives up in time");
    assert!(result.is_err(), "hyper closes the connection: {result:?}");

    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.name, "GET");
    assert_eq!(span.trace_id, caller.trace_id);
    match &span.status {
        Status::Error { message } => assert!(
            message.contains("database unreachable"),
            "status message {message:?}"
        ),
        other => panic!("error status expected, got {other:?}"),
    }
    assert_eq!(attr_str(&span, "error.type"), Some("_OTHER"));
    assert_eq!(attr_i64(&span, "http.response.status_code"), None);
}

async fn panics() -> &'static str {
    panic!("handler bug (expected by the test)")
}

#[tokio::test]
async fn panic_caught_inside_the_trace_layer_is_recorded_as_500() {
    let collector = support::collector();
    let app = Router::new()
        .route("/panic", get(panics))
        .layer(CatchPanicLayer::new())
        .layer(TraceLayer::new(collector.clone()));
    let addr = support::serve(app).await;
    let reply = support::get(addr, "/panic", &[]).await;
    assert_eq!(reply.status, 500);
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.name, "GET /panic");
    assert!(span.status.is_error());
    assert_eq!(attr_str(&span, "error.type"), Some("500"));
    assert_eq!(attr_i64(&span, "http.response.status_code"), Some(500));
}

#[tokio::test]
async fn panic_caught_outside_the_trace_layer_marks_the_span_as_panicked() {
    let collector = support::collector();
    let app = Router::new()
        .route("/panic", get(panics))
        .layer(TraceLayer::new(collector.clone()))
        .layer(CatchPanicLayer::new());
    let addr = support::serve(app).await;
    let reply = support::get(addr, "/panic", &[]).await;
    assert_eq!(reply.status, 500, "CatchPanicLayer answers");
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.name, "GET /panic");
    assert!(span.status.is_error(), "{:?}", span.status);
    assert_eq!(attr_str(&span, "error.type"), Some("panic"));
    assert_eq!(attr_i64(&span, "http.response.status_code"), None);

    // The server keeps serving, with a clean context, after the panic.
    let again = support::get(addr, "/nowhere", &[]).await;
    assert_eq!(again.status, 404);
    support::wait_for_spans(&collector, 2).await;
}

#[tokio::test]
async fn panicked_span_is_not_marked_as_aborted_by_the_client() {
    let collector = support::collector();
    let app = Router::new()
        .route("/panic", get(panics))
        .layer(TraceLayer::new(collector.clone()))
        .layer(CatchPanicLayer::new());
    let addr = support::serve(app).await;
    let reply = support::get(addr, "/panic", &[]).await;
    assert_eq!(reply.status, 500);
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(attr_str(&span, "error.type"), Some("panic"));
    // `tracewire.response.aborted` means "the client went away before the end"; the client
    // here waited for, and got, CatchPanicLayer's 500.
    assert_eq!(
        attr_bool(&span, "tracewire.response.aborted"),
        None,
        "{:?}",
        span.attributes
    );
}

// ---------------------------------------------------------------------------------------------
// The trace id in the response
// ---------------------------------------------------------------------------------------------

async fn trace_id_header_reply(header: TraceIdHeader) -> (support::Reply, Span) {
    let collector = support::collector();
    let app = Router::new().route(
        "/timed",
        get(|| async { ([("server-timing", "db;dur=53")], "timed") }),
    );
    let addr = traced(
        app,
        TraceLayer::new(collector.clone()).trace_id_header(header),
    )
    .await;
    let reply = support::get(addr, "/timed", &[]).await;
    assert_eq!(reply.body, "timed");
    (reply, support::wait_for_one_span(&collector).await)
}

#[tokio::test]
async fn traceresponse_header_returns_the_span_context() {
    let (reply, span) = trace_id_header_reply(TraceIdHeader::TraceResponse).await;
    assert_eq!(
        reply.header("traceresponse"),
        Some(support::w3c_value(&span).as_str())
    );
}

#[tokio::test]
async fn server_timing_header_returns_the_span_context_beside_the_handlers_entry() {
    let (reply, span) = trace_id_header_reply(TraceIdHeader::ServerTiming).await;
    let values: Vec<&str> = reply
        .headers
        .get_all("server-timing")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let expected = format!("trace;desc={}", support::w3c_value(&span));
    assert!(
        values.contains(&"db;dur=53"),
        "handler's entry kept: {values:?}"
    );
    assert!(values.contains(&expected.as_str()), "{values:?}");
    assert_eq!(reply.header("traceresponse"), None);
}

#[tokio::test]
async fn custom_header_returns_the_bare_trace_id() {
    let (reply, span) =
        trace_id_header_reply(TraceIdHeader::Custom(HeaderName::from_static("trace-id"))).await;
    let value = reply.header("trace-id").expect("trace-id header");
    assert_eq!(value.len(), 32);
    assert!(
        value
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(value, span.trace_id.to_string());
    assert_eq!(reply.header("traceresponse"), None);
}

#[tokio::test]
async fn no_trace_id_header_when_configured_none() {
    let (reply, span) = trace_id_header_reply(TraceIdHeader::None).await;
    assert!(span.flags.is_sampled());
    assert_eq!(reply.header("traceresponse"), None);
    assert_eq!(reply.header("trace-id"), None);
    let timing: Vec<_> = reply.headers.get_all("server-timing").iter().collect();
    assert_eq!(timing, ["db;dur=53"]);
}

// ---------------------------------------------------------------------------------------------
// Plain hyper, no axum
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn plain_hyper_server_through_hyper_util_continues_the_trace() {
    let collector = support::collector();
    let service = ServiceBuilder::new()
        .layer(TraceLayer::new(collector.clone()))
        .service(support::hello_service());
    let addr = support::serve_tower(service).await;
    let caller = Caller::random();
    let reply = support::get(
        addr,
        "/any/path/at/all",
        &[("traceparent", &caller.traceparent(true))],
    )
    .await;
    assert_eq!(reply.body, "hello");
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.name, "GET", "no route without axum: the method alone");
    assert_eq!(span.trace_id, caller.trace_id);
    assert_eq!(span.parent_span_id, Some(caller.span_id));
    assert_eq!(attr_str(&span, "http.route"), None);
    assert_eq!(attr_str(&span, "url.path"), Some("/any/path/at/all"));
    assert_eq!(attr_i64(&span, "http.response.body.size"), Some(5));
    assert_eq!(attr_bool(&span, "tracewire.response.aborted"), None);
}

#[tokio::test]
async fn plain_hyper_server_records_the_peer_from_a_socket_addr_extension() {
    let collector = support::collector();
    let inner = support::hello_service();
    // What a hand-written accept loop does: put the peer address in the request extensions.
    let peer: SocketAddr = "192.0.2.10:40000".parse().unwrap();
    let service = ServiceBuilder::new()
        .map_request(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(peer);
            request
        })
        .layer(TraceLayer::new(collector.clone()))
        .service(inner);
    let addr = support::serve_tower(service).await;
    support::get(addr, "/", &[]).await;
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(attr_str(&span, "client.address"), Some("192.0.2.10"));
    assert_eq!(attr_i64(&span, "client.port"), Some(40000));
}

#[tokio::test]
async fn not_modified_response_is_complete_not_aborted() {
    // hyper never sends a body with 304 (nor 204), whatever body the handler returned.
    let collector = support::collector();
    let app = Router::new().route(
        "/cached",
        get(|| async { (StatusCode::NOT_MODIFIED, "unchanged body") }),
    );
    let addr = traced(app, TraceLayer::new(collector.clone())).await;
    let reply = support::get(addr, "/cached", &[("if-none-match", "\"v1\"")]).await;
    assert_eq!(reply.status, 304);
    assert_eq!(reply.body, "");
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.status, Status::Unset);
    assert_eq!(
        attr_bool(&span, "tracewire.response.aborted"),
        None,
        "{:?}",
        span.attributes
    );
}

async fn assert_head_on_plain_hyper_is_not_aborted(client: support::HttpClient) {
    // Load balancers' health checks often use HEAD. hyper sends no body for HEAD, whatever body
    // the service returned: the request is complete, nobody went away.
    let collector = support::collector();
    let service = ServiceBuilder::new()
        .layer(TraceLayer::new(collector.clone()))
        .service(support::hello_service());
    let addr = support::serve_tower(service).await;
    let response = tokio::time::timeout(
        support::REQUEST_TIMEOUT,
        client.request(support::request(Method::HEAD, addr, "/health", &[])),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(response.status(), 200);
    // hyper's HTTP/2 client resets a HEAD response whose content-length announces a body (a
    // hyper matter, with or without the trace layer): only the head matters here.
    let _ = tokio::time::timeout(support::REQUEST_TIMEOUT, response.into_body().collect()).await;
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.name, "HEAD");
    assert_eq!(span.status, Status::Unset);
    assert_eq!(
        attr_bool(&span, "tracewire.response.aborted"),
        None,
        "{:?}",
        span.attributes
    );
}

#[tokio::test]
async fn head_request_on_plain_hyper_http1_is_not_marked_aborted() {
    assert_head_on_plain_hyper_is_not_aborted(support::client()).await;
}

#[tokio::test]
async fn head_request_on_plain_hyper_http2_is_not_marked_aborted() {
    assert_head_on_plain_hyper_is_not_aborted(support::client_http2()).await;
}
