//! Runnable examples of tracewire. Each is a binary of this package:
//!
//! | binary | what it shows |
//! |---|---|
//! | `demo` | the whole toolkit in one process: an axum front calling a tonic service calling an axum service, the trace viewer at `/debug/traces`, `/metrics`, a traffic generator, export configured from the environment (`cargo run --release -p examples --bin demo`) |
//! | `axum_minimal` | the smallest traced axum app (30 lines): spans printed as JSON lines |
//! | `tonic_minimal` | the smallest traced tonic server and client |
//! | `client_propagation` | outgoing HTTP calls that continue the trace (`ClientTraceLayer`) |
//! | `child_spans` | child spans, attributes, events and spawned tasks inside a handler |
//! | `export_jaeger` | export to the Jaeger agent (UDP) or collector (HTTP), with exporter health in `/metrics` |
//! | `export_otlp` | export over OTLP (HTTP or gRPC) configured by the standard `OTEL_*` variables |
//!
//! The library itself holds nothing; the pieces the examples use come from the tracewire crates:
//!
//! ```
//! use std::sync::Arc;
//! use trace_core::InMemoryCollector;
//! use trace_http::TraceLayer;
//!
//! let store = Arc::new(InMemoryCollector::new(1_000));
//! let _layer = TraceLayer::new(store).service_name("example");
//! ```

#![forbid(unsafe_code)]
