//! The client-side trace layer: a span per outgoing request, and the trace context injected
//! into its headers.

mod layer;
mod service;

pub use layer::ClientTraceLayer;
pub use service::ClientTraceService;
