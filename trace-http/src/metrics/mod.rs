//! Request metrics for Prometheus, linked to traces by exemplars, and the `/metrics` endpoint.
//!
//! [`MetricsLayer`] records `http_server_request_duration_seconds` (the OpenTelemetry HTTP
//! conventions' histogram, with `trace_id`/`span_id` exemplars for sampled requests, each bucket
//! taking a new one at most every [`MetricsBuilder::exemplar_interval`]),
//! `http_server_active_requests` and body-size histograms; [`ClientMetricsLayer`] records
//! `http_client_request_duration_seconds`. Both register into a `prometheus_client` registry the
//! application owns, which [`metrics_service`] serves.

mod duration;
mod endpoint;
mod family;
mod gauge;
mod histogram;
mod layer;
mod service;

pub use duration::DEFAULT_EXEMPLAR_INTERVAL;
pub use endpoint::{
    MetricsEndpoint, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE, metrics_service,
};
pub(crate) use layer::ServerMetrics;
pub use layer::{
    ClientMetricsLayer, DEFAULT_MAX_SERIES, DURATION_BUCKETS, DurationEnd, MetricsBuilder,
    MetricsLayer,
};
pub use service::{ClientMetricsService, MetricsFuture, MetricsObserver, MetricsService};
pub(crate) use service::{content_length, parse_content_length};

pub use family::{Interner, OVERFLOW, Overflow, SeriesCache, SeriesLabels, TraceExemplar};
/// The bounded label-set machinery and the trace exemplar, shared with `trace-grpc` (whose RPC
/// metrics are these with other labels). Not a stable API.
#[doc(hidden)]
pub(crate) use family::{KeptText, OVERFLOW_TEXT};
/// The lock-free histogram the metrics layers record sizes into. Not a stable API.
#[doc(hidden)]
pub use histogram::AtomicHistogram;
