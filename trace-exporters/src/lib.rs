//! Exporters that ship finished spans out of the process.
//!
//! This crate will hold the batching export pipeline (a bounded queue drained by a background
//! task, with retries and health metrics) and the protocols behind cargo features: Jaeger agent
//! and collector, OTLP over HTTP and gRPC, Zipkin v2, stdout, and a bridge to any
//! `opentelemetry_sdk` span exporter, configured from the standard environment variables.
//! Nothing is public yet: it arrives with its issue, built on [`trace_core`].

#![forbid(unsafe_code)]
