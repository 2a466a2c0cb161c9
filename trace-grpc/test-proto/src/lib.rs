//! The gRPC service trace-grpc's tests and benchmarks run against: `tracewire.test.v1.Echo`,
//! with one method per call shape (unary, server, client and bidirectional streaming), generated
//! from `proto/echo.proto` at build time.

#![allow(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    clippy::all
)]

tonic::include_proto!("tracewire.test.v1");
