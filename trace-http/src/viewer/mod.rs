//! The embedded trace viewer: recent, slowest and failed traces of this process, and each trace
//! as a waterfall, served from the application itself — no other service, no network access.
//!
//! [`TraceViewer`] is a tower service over trace-core's [`InMemoryCollector`]. It answers:
//!
//! | path (under the mount point) | answer |
//! |---|---|
//! | `/` | one self-contained HTML page (inline CSS and JS, nothing fetched from elsewhere) |
//! | `/api/traces?service=&route=&status=&min_duration_ms=&trace_id=&debug_id=&order=&limit=` | trace summaries, JSON |
//! | `/api/traces/{trace_id}` | one trace's spans in waterfall order, with depth, attributes, events |
//! | `/api/services` | the services seen, with their trace counts |
//!
//! List filters: `service` (exact), `route` (part of an `http.route`), `status` (`error`, `ok`,
//! `4xx`, `503`…, of the root span), `min_duration_ms`, `trace_id`, `debug_id` (the
//! `jaeger-debug-id` that forced a trace); `order` is `recent` (default), `slowest` or `errors`
//! (failed traces only); `limit` defaults to 50 and is capped at 500. A bad value is a `400`
//! with a message saying what was expected.
//!
//! The page uses only URLs relative to itself, so the viewer works under any prefix: mount it
//! with axum's `nest_service`, which strips the prefix. Mount it *after* the trace layer (axum's
//! `layer` wraps only the routes added before it), or the viewer's own requests get traced.
//!
//! The store can be the application's only collector, or sit beside an exporter through
//! [`FanOut`](trace_core::FanOut).
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use axum::{Router, routing::get};
//! use trace_core::InMemoryCollector;
//! use trace_http::TraceLayer;
//! use trace_http::viewer::TraceViewer;
//!
//! let store = Arc::new(
//!     InMemoryCollector::builder()
//!         .max_traces(1_000)
//!         .max_spans_per_trace(500)
//!         .build(),
//! );
//! let app: Router = Router::new()
//!     .route("/hello", get(|| async { "hello" }))
//!     .layer(TraceLayer::new(store.clone()).service_name("hello"))
//!     .nest_service("/debug/traces", TraceViewer::new(store));
//! ```

mod json;
mod query;

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use serde::Serialize;
use tower_service::Service;
use trace_core::{InMemoryCollector, TraceId};

use json::{ErrorJson, ListJson, ServicesJson, TraceJson};
use query::ListQuery;

/// The page: markup, style and script in one file, so that it works offline.
const PAGE: &str = include_str!("page.html");

/// What the page may load and where it may connect: nothing but itself and its own API.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'";

/// The embedded trace viewer: an HTML page and its JSON API over an [`InMemoryCollector`].
/// See the [module docs](self) for the paths and an axum example.
///
/// Cheap to clone; answers every request at once (`Ready` future, `Infallible` error).
#[derive(Debug, Clone)]
pub struct TraceViewer {
    store: Arc<InMemoryCollector>,
}

impl TraceViewer {
    /// A viewer of the traces in `store` (the collector the trace layers record into).
    pub fn new(store: Arc<InMemoryCollector>) -> Self {
        Self { store }
    }

    /// The store it shows.
    pub fn store(&self) -> &Arc<InMemoryCollector> {
        &self.store
    }

    fn answer(&self, method: &Method, path: &str, query: Option<&str>) -> Response<Full<Bytes>> {
        if method != Method::GET && method != Method::HEAD {
            let mut response = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "the trace viewer answers GET and HEAD only\n",
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        match path {
            "" | "/" => page(),
            "/api/traces" | "/api/traces/" => match ListQuery::parse(query) {
                Ok(query) => {
                    let summaries = self.store.summaries();
                    json(
                        StatusCode::OK,
                        &ListJson::new(&query, &summaries, self.store.stats()),
                    )
                }
                Err(error) => json_error(StatusCode::BAD_REQUEST, &error.to_string()),
            },
            "/api/services" => json(StatusCode::OK, &ServicesJson::new(&self.store.summaries())),
            _ => match path.strip_prefix("/api/traces/") {
                Some(id) => self.trace(id),
                None if path.starts_with("/api/") => {
                    json_error(StatusCode::NOT_FOUND, "no such API path")
                }
                None => text(
                    StatusCode::NOT_FOUND,
                    "not found: the viewer's page is at its root\n",
                ),
            },
        }
    }

    fn trace(&self, id: &str) -> Response<Full<Bytes>> {
        let id = id.strip_suffix('/').unwrap_or(id);
        let Ok(trace_id) = TraceId::from_hex(id.to_ascii_lowercase().as_bytes()) else {
            return json_error(
                StatusCode::BAD_REQUEST,
                "the trace id must be 32 hex digits, not all zero",
            );
        };
        match self.store.trace(trace_id) {
            Some(trace) => json(StatusCode::OK, &TraceJson::new(&trace)),
            None => json_error(
                StatusCode::NOT_FOUND,
                "no such trace in the store (never recorded, or evicted)",
            ),
        }
    }
}

impl<B> Service<Request<B>> for TraceViewer {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let uri = request.uri();
        ready(Ok(self.answer(request.method(), uri.path(), uri.query())))
    }
}

fn with_headers(
    status: StatusCode,
    body: impl Into<Bytes>,
    content_type: &'static str,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn page() -> Response<Full<Bytes>> {
    let mut response = with_headers(
        StatusCode::OK,
        Bytes::from_static(PAGE.as_bytes()),
        "text/html; charset=utf-8",
    );
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_POLICY),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn text(status: StatusCode, message: &'static str) -> Response<Full<Bytes>> {
    with_headers(
        status,
        Bytes::from_static(message.as_bytes()),
        "text/plain; charset=utf-8",
    )
}

fn json(status: StatusCode, value: &impl Serialize) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(body) => with_headers(status, body, "application/json"),
        // Our own structs of strings and numbers: serializing them does not fail.
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed to encode the answer\n",
        ),
    }
}

fn json_error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json(status, &ErrorJson { error: message })
}
