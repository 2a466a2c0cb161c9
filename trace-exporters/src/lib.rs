//! Exporters that ship finished spans out of the process.
//!
//! Spans leave the request path through a [`BatchExporter`]: a [`Collector`](trace_core::Collector)
//! that puts each finished span on a bounded queue (for OTLP protobuf, already encoded: see
//! [where spans are encoded](pipeline#where-spans-are-encoded)) and returns at once. One
//! background task takes batches off the queue (by count and by time), hands them to a
//! [`SpanExporter`] (one per protocol, each behind a cargo feature), bounds every call with a
//! timeout, retries what is worth retrying with backoff (honouring `Retry-After`), and drops and
//! counts what it must.
//! Its health is exported as Prometheus metrics ([`ExporterMetrics`]); on shutdown it flushes
//! within a deadline.
//!
//! - [`pipeline`]: [`BatchExporter`], [`BatchConfig`], [`ExporterMetrics`], drop reasons.
//! - `stdout`: one JSON object per span per line.
//! - `jaeger`, `otlp`, `zipkin`: the wire protocols.
//! - `bridge`: any `opentelemetry_sdk` span exporter, driven with our spans.
//! - [`config`]: the exporter settings from `OTEL_*` environment variables or the command line.
//!
//! # Example
//!
//! Batch spans to standard output, report the pipeline's health into a Prometheus registry,
//! hand the pipeline to whatever records spans (a `TraceLayer`, here a stand-in), and flush on
//! the way out:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use prometheus_client::registry::Registry;
//! use trace_core::{Collector, SpanContext, SpanKind, TraceFlags};
//! use trace_exporters::stdout::StdoutExporter;
//! use trace_exporters::{BatchConfig, BatchExporter, ExporterMetrics, Resource};
//!
//! /// Stands in for `trace_http::TraceLayer::new(collector)`: records one span per request.
//! fn handle_request(collector: &Arc<dyn Collector>) {
//!     let context = SpanContext::new_root(TraceFlags::SAMPLED).with_collector(collector.clone());
//!     let mut span = context.child_of_kind("GET /users/{id}", SpanKind::Server);
//!     span.set_attribute("http.response.status_code", 200);
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mut registry = Registry::default();
//! let metrics = ExporterMetrics::register(&mut registry);
//!
//! let exporter = StdoutExporter::new(Resource::new("checkout"));
//! # let exporter = exporter.with_writer(Box::new(std::io::sink()));
//! let batch = BatchExporter::builder(exporter)
//!     .config(BatchConfig { scheduled_delay: Duration::from_millis(200), ..BatchConfig::default() })
//!     .metrics(&metrics)
//!     .build();
//!
//! let collector: Arc<dyn Collector> = batch.clone();
//! handle_request(&collector);
//!
//! let report = batch.shutdown(Duration::from_secs(5)).await;
//! assert_eq!(report.exported, 1);
//! assert_eq!(report.lost, 0);
//! # }
//! ```

#![forbid(unsafe_code)]

mod duration_ms;
mod export;
mod resource;
mod telemetry;
mod transport;

pub mod pipeline;

#[cfg(feature = "stdout")]
pub mod stdout;

#[cfg(feature = "opentelemetry")]
pub mod bridge;

#[cfg(any(feature = "jaeger-agent", feature = "jaeger-collector"))]
pub mod jaeger;

#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
pub mod otlp;

#[cfg(feature = "zipkin")]
pub mod zipkin;

pub mod config;

pub use export::{
    EncodedSpans, ExportError, ExportFuture, ExportOutcome, ExportResult, SpanEncodeFn,
    SpanExporter,
};
#[cfg(feature = "jaeger-agent")]
pub use jaeger::JaegerAgentExporter;
#[cfg(feature = "jaeger-collector")]
pub use jaeger::JaegerCollectorExporter;
pub use pipeline::{
    BatchConfig, BatchExporter, BatchExporterBuilder, ExporterMetrics, FlushReport, ShutdownError,
    ShutdownReport,
};
pub use resource::{Resource, SDK_NAME, SDK_VERSION};
pub use telemetry::{BuildError, Telemetry};

#[cfg(feature = "clap")]
pub use config::ExporterArgs;
pub use config::{ConfigError, ExporterConfig, ExporterKind};
pub use transport::tls::{TlsConfig, TlsError};
#[cfg(feature = "zipkin")]
pub use zipkin::{ZipkinError, ZipkinExporter};
