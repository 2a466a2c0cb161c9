//! Exporters that ship finished spans out of the process.
//!
//! (Crate documentation with a compiling example is completed when the pipeline lands.)

#![forbid(unsafe_code)]

mod export;
mod resource;
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

pub use export::{ExportError, ExportFuture, ExportOutcome, ExportResult, SpanExporter};
#[cfg(feature = "jaeger-agent")]
pub use jaeger::JaegerAgentExporter;
#[cfg(feature = "jaeger-collector")]
pub use jaeger::JaegerCollectorExporter;
pub use resource::{Resource, SDK_NAME, SDK_VERSION};

#[cfg(feature = "clap")]
pub use config::ExporterArgs;
pub use config::{ConfigError, ExporterConfig, ExporterKind};
#[cfg(feature = "zipkin")]
pub use zipkin::{ZipkinError, ZipkinExporter};
