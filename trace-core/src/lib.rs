//! The tracewire data model, small enough for every other crate to depend on.
//!
//! - [`TraceId`] and [`SpanId`]: non-zero ids with allocation-free hex conversion.
//! - [`SpanContext`]: where a span sits in a trace, what travels with it ([`TraceState`],
//!   [`Baggage`]) and the [`Collector`] its spans go to.
//! - [`Span`] and [`SpanRecorder`]: the finished span, and the handle that records one and hands
//!   it to the collector when dropped. A recorder for an unsampled context does nothing.
//! - [`sampler`]: always, never, trace-id ratio, parent-based, rate-limited and debug-forced
//!   sampling.
//! - [`current`]: the context current on this thread (around a request's handler), for code
//!   that has no context passed to it.
//! - [`propagation`]: W3C Trace Context and baggage, Jaeger and B3 headers, composed in an order
//!   of preference or from `OTEL_PROPAGATORS`.
//! - [`clock`]: a span's wall-clock start and monotonic reading for one clock read.
//!
//! No async runtime and no I/O live here; the tower layers (`trace-http`, `trace-grpc`) and the
//! exporters (`trace-exporters`) build on it.
//!
//! # Example
//!
//! Continue a trace from incoming headers, record a span with a child, and propagate the context
//! on an outgoing call:
//!
//! ```
//! use std::sync::Arc;
//! use http::HeaderMap;
//! use trace_core::propagation::CompositePropagator;
//! use trace_core::sampler::{DebugForced, ParentBased, TraceIdRatio};
//! use trace_core::{InMemoryCollector, SpanKind, SpanRecorder};
//!
//! let collector = Arc::new(InMemoryCollector::new(1000));
//! let propagation = CompositePropagator::default();
//! let sampler = DebugForced::new(ParentBased::new(TraceIdRatio::new(0.1)), 1.0);
//!
//! let mut incoming = HeaderMap::new();
//! incoming.insert(
//!     "traceparent",
//!     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse()?,
//! );
//! let context = propagation
//!     .extract(&incoming)
//!     .into_span_context(&sampler, "GET /users/{id}")
//!     .with_collector(collector.clone());
//!
//! let mut server = SpanRecorder::start(context.clone(), "GET /users/{id}", SpanKind::Server);
//! server.set_attribute("http.request.method", "GET");
//! {
//!     let call = context.child_of_kind("GET", SpanKind::Client);
//!     let mut outgoing = HeaderMap::new();
//!     if let Some(call_context) = call.context() {
//!         propagation.inject(call_context, &mut outgoing);
//!     }
//!     assert!(outgoing.contains_key("traceparent"));
//! }
//! server.end();
//!
//! let spans = collector.spans_of_trace(context.trace_id());
//! assert_eq!(spans.len(), 2);
//! assert_eq!(spans[1].parent_span_id, Some("00f067aa0ba902b7".parse()?));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]

mod baggage;
pub mod clock;
mod collector;
mod context;
pub mod current;
mod id;
pub mod propagation;
mod recorder;
pub mod sampler;
mod span;
#[doc(hidden)]
pub mod spread;
mod trace_state;

pub use baggage::{Baggage, BaggageBuilder, BaggageEntry, BaggageError};
pub use collector::{
    Collector, CollectorStats, FanOut, InMemoryCollector, InMemoryCollectorBuilder, NoopCollector,
    StoredTrace, TraceSummary,
};
pub use context::{SpanContext, TraceFlags};
pub use id::{HexId, IdParseError, SpanId, TraceId};
pub use recorder::SpanRecorder;
pub use span::{
    Array, DroppedCounts, Event, InlineStr, Key, KeyValue, Link, Span, SpanKind, Status,
    StringValue, Value,
};
pub use trace_state::{TraceState, TraceStateError};

/// Limits that bound what a peer can make this crate store.
pub mod limits {
    pub use crate::baggage::{MAX_ENTRIES, MAX_ENTRY_LEN, MAX_TOTAL_LEN};
    pub use crate::trace_state::{
        MAX_HEADER_LEN as MAX_TRACE_STATE_LEN, MAX_MEMBERS as MAX_TRACE_STATE_MEMBERS,
    };
}
