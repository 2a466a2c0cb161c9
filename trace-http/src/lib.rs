//! Tower layers that trace HTTP services and clients (axum, hyper, anything tower).
//!
//! - [`TraceLayer`]: for servers. Continues the caller's trace from W3C, Jaeger or B3 headers,
//!   samples, records a server span named `{METHOD} {route}` with OpenTelemetry HTTP attributes
//!   that ends when the response body ends, honours debug headers (`jaeger-debug-id`), returns
//!   the trace id in a response header, and hands the request's [`SpanContext`] to the handler
//!   (request extensions, [`context::RequestContext`] extractor, [`context::current_context`]).
//! - [`metrics::MetricsLayer`]: Prometheus request metrics with trace exemplars, alone or
//!   recorded by the trace layer itself ([`TraceLayer::metrics`]), and the `/metrics` endpoint.
//! - [`ClientTraceLayer`]: for clients. A client span per outgoing request, child of the current
//!   request's context, with the context injected into the outgoing headers.
//! - [`viewer::TraceViewer`] (feature `viewer`, on by default): the embedded trace viewer, a page
//!   and JSON API over the in-memory collector, to mount at e.g. `/debug/traces`.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use axum::{Router, routing::get};
//! use trace_core::InMemoryCollector;
//! use trace_http::TraceLayer;
//! use trace_http::context::RequestContext;
//!
//! async fn handler(RequestContext(context): RequestContext) -> &'static str {
//!     let _db = context.child("db query"); // a child span, ended when dropped
//!     "hello"
//! }
//!
//! let collector = Arc::new(InMemoryCollector::new(10_000));
//! let app: Router = Router::new()
//!     .route("/hello", get(handler))
//!     .layer(TraceLayer::new(collector.clone()));
//! ```
//!
//! [`SpanContext`]: trace_core::SpanContext

#![forbid(unsafe_code)]

pub mod body;
pub mod client;
pub mod context;
pub mod metrics;
mod route;
pub mod semconv;
pub mod trace;
#[cfg(feature = "viewer")]
pub mod viewer;

use std::time::{Instant, SystemTime};

pub use client::ClientTraceLayer;
pub use metrics::{ClientMetricsLayer, MetricsLayer};
pub use trace::{TraceIdHeader, TraceLayer};
#[cfg(feature = "viewer")]
pub use viewer::TraceViewer;

/// When a request started, read once and shared through the request extensions by the layers
/// that need it (the trace layer's span start, the metrics layer's duration).
#[derive(Debug, Clone, Copy)]
pub struct RequestStart {
    /// Monotonic clock reading, for durations.
    pub instant: Instant,
    /// Wall clock reading, for the span's start time.
    pub time: SystemTime,
}

impl RequestStart {
    /// Now.
    pub fn now() -> Self {
        // One clock read: the wall time is derived from the monotonic one.
        let (time, instant) = trace_core::clock::now();
        Self { instant, time }
    }
}
