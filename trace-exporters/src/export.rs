//! The contract between the batching pipeline and a protocol.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use trace_core::Span;

/// The future an exporter returns for one batch.
pub type ExportFuture<'a> = Pin<Box<dyn Future<Output = ExportResult> + Send + 'a>>;

/// What became of one batch.
pub type ExportResult = Result<ExportOutcome, ExportError>;

/// Encodes batches of finished spans and sends them to one destination.
///
/// The pipeline ([`BatchExporter`](crate::BatchExporter)) owns the exporter, calls it from one
/// task at a time, bounds every call with its timeout and retries the batch when the error is
/// [retryable](ExportError::is_retryable). An exporter therefore neither queues, nor retries, nor
/// sleeps: it encodes and sends once.
pub trait SpanExporter: Send + fmt::Debug + 'static {
    /// A short label for health metrics and logs, such as `"otlp_http"` or `"jaeger_agent"`.
    fn kind(&self) -> &'static str;

    /// Sends one batch. The spans stay borrowed, so a retry can send them again.
    fn export<'a>(&'a mut self, batch: &'a [Span]) -> ExportFuture<'a>;

    /// Releases what the exporter holds (connections, sockets). Called once, after the last batch.
    fn shutdown(&mut self) -> ExportFuture<'_> {
        Box::pin(async { Ok(ExportOutcome::default()) })
    }
}

impl SpanExporter for Box<dyn SpanExporter> {
    fn kind(&self) -> &'static str {
        (**self).kind()
    }

    fn export<'a>(&'a mut self, batch: &'a [Span]) -> ExportFuture<'a> {
        (**self).export(batch)
    }

    fn shutdown(&mut self) -> ExportFuture<'_> {
        (**self).shutdown()
    }
}

/// A batch that was sent: how many of its spans the destination still did not keep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportOutcome {
    /// Spans of the batch that were not delivered although the batch was sent, for example a span
    /// too large for one Jaeger agent datagram, or spans an OTLP collector rejected in a partial
    /// success.
    pub dropped: u64,
    /// Why those spans were dropped; a `reason` label value of the dropped-spans counter.
    pub drop_reason: &'static str,
}

impl ExportOutcome {
    /// Every span delivered.
    pub const fn delivered() -> Self {
        Self {
            dropped: 0,
            drop_reason: "",
        }
    }

    /// Delivered except `count` spans, dropped for `reason`.
    pub const fn with_dropped(count: u64, reason: &'static str) -> Self {
        Self {
            dropped: count,
            drop_reason: reason,
        }
    }
}

/// Why a batch was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The destination may accept the same batch later: a connection failure, a timeout, HTTP 429
    /// or 502/503/504, gRPC UNAVAILABLE or RESOURCE_EXHAUSTED.
    #[error("export failed, worth retrying: {message}")]
    Retryable {
        /// What went wrong, for logs.
        message: String,
        /// How long the destination asked us to wait (`Retry-After`, gRPC `RetryInfo`).
        retry_after: Option<Duration>,
    },
    /// Sending the batch again would fail the same way: a 400, an authentication failure, a batch
    /// that cannot be encoded.
    #[error("export failed: {message}")]
    Permanent {
        /// What went wrong, for logs.
        message: String,
    },
}

impl ExportError {
    /// A failure worth retrying, with no wait asked for.
    pub fn retryable(message: impl fmt::Display) -> Self {
        Self::Retryable {
            message: message.to_string(),
            retry_after: None,
        }
    }

    /// A failure not worth retrying.
    pub fn permanent(message: impl fmt::Display) -> Self {
        Self::Permanent {
            message: message.to_string(),
        }
    }

    /// Whether the pipeline should send the batch again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. })
    }

    /// The wait the destination asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Retryable { retry_after, .. } => *retry_after,
            Self::Permanent { .. } => None,
        }
    }
}
