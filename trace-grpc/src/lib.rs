//! Tracing and metrics for gRPC services built with tonic.
//!
//! This crate will hold the gRPC flavour of the HTTP layers: spans named after the RPC method,
//! status taken from `grpc-status` in headers or trailers, RPC duration histograms, and a client
//! layer for tonic channels. Nothing is public yet: it arrives with its issue, built on
//! `trace-http` and [`trace_core`].

#![forbid(unsafe_code)]
