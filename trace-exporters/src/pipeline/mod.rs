//! The batching pipeline between the request path and an exporter.
//!
//! [`BatchExporter`] is the [`Collector`](trace_core::Collector) the tower layers hand finished
//! spans to. It puts each span on a bounded lock-free queue and returns; one background task
//! takes batches off the queue (by count and by time), calls the [`SpanExporter`] under a
//! timeout, retries what is worth retrying with backoff, and reports its health
//! ([`ExporterMetrics`]).
//!
//! # Where spans are encoded
//!
//! DESIGN.md has the background task encode every batch. For an exporter that offers a
//! [span encoder](crate::SpanExporter::span_encoder) (OTLP over protobuf, HTTP or gRPC) the
//! pipeline departs from that: `collect` encodes the span into a chunk kept per part of the
//! threads (no lock: one atomic swap out and one back), frees the span on that thread, and hands
//! over whole chunks; the task only wraps the bytes of a batch's chunks in one request. Measured on the
//! load benchmark (`bench/`, modes `tracewire` and `tracewire-span-queue`), this is cheaper in
//! CPU per span than queueing the span and encoding it later: the span is encoded while it is
//! still in the cache of the core that built it, and its memory is freed by the thread that
//! allocated it. JSON, Jaeger, Zipkin, stdout and the OpenTelemetry bridge keep the span queue.
//!
//! [`SpanExporter`]: crate::SpanExporter

mod batch;
mod config;
mod metrics;
mod queue;
mod worker;

pub use batch::{BatchExporter, BatchExporterBuilder, FlushReport, ShutdownError, ShutdownReport};
pub use config::BatchConfig;
pub use metrics::ExporterMetrics;

/// The `reason` label values of `trace_exporter_spans_dropped_total`, and the keys of
/// [`BatchExporter::dropped_for`].
///
/// Exporters add their own reasons through
/// [`ExportOutcome::drop_reason`](crate::ExportOutcome::drop_reason).
pub mod drop_reason {
    /// The queue was full when the span was collected.
    pub const QUEUE_FULL: &str = "queue_full";
    /// The batch kept failing with retryable errors (or timeouts) for the whole retry budget,
    /// or the destination asked for a wait longer than what was left of it.
    pub const RETRIES_EXHAUSTED: &str = "retries_exhausted";
    /// The destination refused the batch with a permanent error.
    pub const REJECTED: &str = "rejected";
    /// Still queued or being retried when the shutdown deadline passed.
    pub const SHUTDOWN_DEADLINE: &str = "shutdown_deadline";
    /// Still queued when the exporter was dropped, or its runtime ended, without a shutdown.
    pub const NOT_SHUT_DOWN: &str = "not_shut_down";
    /// Collected after shutdown began (or after the export task ended).
    pub const CLOSED: &str = "closed";
    /// Dropped by the exporter after sending, when it named no reason.
    pub const EXPORTER: &str = "exporter";
    /// The exporter's span encoder panicked on the span (the panic reaches the code that ended
    /// the span; the spans queued before it are kept).
    pub const ENCODER_PANICKED: &str = "encoder_panicked";
    /// The exporter panicked exporting the batch (the export task goes on with the next one).
    pub const EXPORTER_PANICKED: &str = "exporter_panicked";
}
