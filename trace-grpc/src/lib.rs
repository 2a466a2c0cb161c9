//! Tracing and metrics for gRPC services and clients built with tonic (or any tower gRPC stack).
//!
//! - [`GrpcTraceLayer`]: for servers, on `tonic::transport::Server::builder().layer(...)` or
//!   around a tonic service inside an axum router. A server span per call named
//!   `{package.Service}/{Method}` with the OpenTelemetry RPC attributes (`rpc.system.name`,
//!   `rpc.method`, `rpc.response.status_code`, `error.type`, `server.address`), ending with the
//!   response stream, its status from the trailers; the caller's trace continued from the
//!   metadata; and, with [`GrpcServerMetrics`], `rpc_server_call_duration_seconds` with trace
//!   exemplars.
//! - [`GrpcClientLayer`]: for clients, around a tonic `Channel`. A client span per call, child
//!   of the current request's context, injected into the call's metadata; with
//!   [`GrpcClientMetrics`], `rpc_client_call_duration_seconds`.
//! - [`GrpcTraceBinPropagator`]: the binary `grpc-trace-bin` context of OpenCensus-era clients.
//!
//! The machinery is `trace-http`'s — propagation, sampling and debug headers of its
//! [`TraceLayer`](trace_http::TraceLayer), the response-body wrapper that ends spans when the
//! body ends, the bounded metric families and exemplars — with gRPC's classification: the
//! status comes from `grpc-status`, not from the HTTP status.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use prometheus_client::registry::Registry;
//! use trace_core::InMemoryCollector;
//! use trace_grpc::{GrpcClientLayer, GrpcClientMetrics, GrpcServerMetrics, GrpcTraceLayer};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let collector = Arc::new(InMemoryCollector::new(10_000));
//! let mut registry = Registry::default();
//!
//! // The server: every call traced and measured.
//! let layer = GrpcTraceLayer::new(collector.clone())
//!     .service_name("checkout")
//!     .metrics(GrpcServerMetrics::new(&mut registry));
//! let server = tonic::transport::Server::builder()
//!     .layer(layer)
//!     .add_routes(tonic::service::Routes::default()); // .add_service(MyServer::new(...))
//! # drop(server);
//!
//! // A client: calls made while handling a request continue its trace.
//! let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:50051").connect_lazy();
//! let channel = tower::ServiceBuilder::new()
//!     .layer(GrpcClientLayer::new().metrics(GrpcClientMetrics::new(&mut registry)))
//!     .service(channel);
//! // let client = MyClient::new(channel);
//! # drop(channel);
//! # Ok(())
//! # }
//! ```
//!
//! A tonic service inside an axum router takes the layer on the router:
//!
//! ```
//! use std::sync::Arc;
//! use trace_core::InMemoryCollector;
//! use trace_grpc::GrpcTraceLayer;
//!
//! let collector = Arc::new(InMemoryCollector::new(10_000));
//! let app: axum::Router = tonic::service::Routes::default() // Routes::new(MyServer::new(...))
//!     .into_axum_router()
//!     .layer(GrpcTraceLayer::new(collector));
//! ```
//!
//! A tonic `Channel` adds the server's address to each request below the client layer: give it
//! to the layer with [`GrpcClientLayer::server_address`] for `server.address` and `server.port`.
//!
//! Inside a handler, the call's [`SpanContext`](trace_core::SpanContext) is in the tonic
//! request's extensions:
//!
//! ```
//! use trace_core::SpanContext;
//!
//! fn handle<T>(request: &tonic::Request<T>) {
//!     if let Some(context) = request.extensions().get::<SpanContext>() {
//!         let _lookup = context.child("lookup"); // a child span, ended when dropped
//!     }
//! }
//! ```

#![forbid(unsafe_code)]

mod call;
mod client;
mod messages;
mod method;
mod metrics;
pub mod semconv;
mod server;
pub mod status;
mod trace_bin;

pub use call::{CallBody, CallObserver, ResponseFuture};
pub use client::{BoxErrorFuture, GrpcClientLayer, GrpcClientService};
pub use messages::RequestBody;
pub use metrics::{GrpcClientMetrics, GrpcMetricsExt, GrpcServerMetrics};
pub use server::{GrpcTraceLayer, GrpcTraceService};
pub use trace_bin::GrpcTraceBinPropagator;
