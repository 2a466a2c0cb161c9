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
pub use resource::{Resource, SDK_NAME, SDK_VERSION};
pub use transport::tls::{TlsConfig, TlsError};
