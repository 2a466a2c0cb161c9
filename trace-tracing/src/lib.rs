//! A bridge from the `tracing` crate to tracewire.
//!
//! Most Rust services are already instrumented with `tracing` (`#[instrument]`, `info_span!`, and
//! libraries such as sqlx or tower-http). With [`TracewireLayer`] in the subscriber, those spans
//! become child spans of the request's trace, with their fields, events and timing; with
//! [`WithTraceIds`] around the `fmt` layer's format, every log line printed inside a traced request
//! carries its `trace_id` and `span_id`; [`TracingSpanExt`] moves contexts between `tracing` spans
//! and tracewire. Apps that do not use `tracing` do not depend on this crate.
//!
//! # Fields, and what a span keeps
//!
//! A field recorded again (`span.record("attempt", n)` in a retry loop) replaces its attribute's
//! value: each key appears once, as OTLP requires. An integer that does not fit an `i64` (a `u64`
//! hash above `i64::MAX`, an `i128`) is kept as its decimal digits, a string, rather than
//! changed. Like every tracewire span, a bridged span keeps at most 128 attributes, 128 events and
//! 128 links ([`SpanRecorder::MAX_EVENTS`](trace_core::SpanRecorder::MAX_EVENTS) and its
//! siblings, OpenTelemetry's default limits): a long-lived span, such as a worker loop's, keeps
//! its first 128 events and drops later ones without formatting their fields (an ERROR event
//! still sets the error status). What was dropped is counted on the span
//! ([`Span::dropped`](trace_core::Span::dropped)) and exported with it.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use tracing_subscriber::prelude::*;
//! use trace_core::{InMemoryCollector, SpanContext, TraceFlags};
//! use trace_core::current::enter;
//! use trace_tracing::{TracewireLayer, WithTraceIds};
//!
//! let subscriber = tracing_subscriber::registry()
//!     .with(TracewireLayer::new())
//!     .with(
//!         tracing_subscriber::fmt::layer()
//!             .event_format(WithTraceIds::new(tracing_subscriber::fmt::format())),
//!     );
//! let collector = Arc::new(InMemoryCollector::new(100));
//!
//! tracing::subscriber::with_default(subscriber, || {
//!     // What the server layer does for every request: make its context current.
//!     let request = SpanContext::new_root(TraceFlags::SAMPLED).with_collector(collector.clone());
//!     let _current = enter(request.clone());
//!
//!     let span = tracing::info_span!("load user", user.id = 42_i64);
//!     let _entered = span.enter();
//!     tracing::info!("cache miss"); // a span event, and a log line with the trace id
//! });
//!
//! let spans = collector.spans();
//! assert_eq!(spans[0].name, "load user");
//! assert_eq!(spans[0].events[0].name, "cache miss");
//! ```

#![forbid(unsafe_code)]

mod format;
mod layer;
mod span_ext;

pub use format::WithTraceIds;
pub use layer::TracewireLayer;
pub use span_ext::TracingSpanExt;
