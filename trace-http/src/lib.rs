//! Tower layers for tracing and measuring HTTP services (axum, hyper).
//!
//! This crate will hold the server `TraceLayer` (trace context from incoming headers, a span per
//! request that ends with the response body), the client layer that propagates context on
//! outgoing calls, the `MetricsLayer` with its Prometheus histograms and trace exemplars, the
//! `/metrics` handler, and the embedded trace viewer. Nothing is public yet: the layers arrive
//! with their issues, built on [`trace_core`].

#![forbid(unsafe_code)]
