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

/// Writes one finished span, in an exporter's wire format, at the end of a buffer.
///
/// See [`SpanExporter::span_encoder`]: the pipeline calls it on the thread that ends the span.
pub type SpanEncodeFn = fn(&Span, &mut Vec<u8>);

/// Encodes batches of finished spans and sends them to one destination.
///
/// The pipeline ([`BatchExporter`](crate::BatchExporter)) owns the exporter, calls it from one
/// task at a time, bounds every call with its timeout and retries the batch when the error is
/// [retryable](ExportError::is_retryable). An exporter therefore neither queues, nor retries, nor
/// sleeps: it encodes and sends once.
///
/// # Spans encoded as they end
///
/// An exporter whose wire format is a sequence of independently encoded spans wrapped in a
/// fixed envelope (OTLP protobuf: each span is one `ScopeSpans.spans` field) can offer a
/// [`span_encoder`](Self::span_encoder). The pipeline then encodes every span on the thread that
/// ends it, while the span is still in that core's cache, frees the span there, and hands the
/// export task batches of bytes ([`export_encoded`](Self::export_encoded)) instead of spans.
/// On the load benchmark (`bench/`, one core serving) that took about half of the export's
/// user-space CPU per span away: 0.29 µs instead of 0.65 µs in one run.
pub trait SpanExporter: Send + fmt::Debug + 'static {
    /// A short label for health metrics and logs, such as `"otlp_http"` or `"jaeger_agent"`.
    fn kind(&self) -> &'static str;

    /// Sends one batch. The spans stay borrowed, so a retry can send them again.
    fn export<'a>(&'a mut self, batch: &'a [Span]) -> ExportFuture<'a>;

    /// The function that encodes one span for [`export_encoded`](Self::export_encoded), if this
    /// exporter takes encoded spans (default: it does not, and gets [`export`](Self::export)
    /// calls). Asked once, when the pipeline is built; the function must not fail, block, or
    /// depend on anything the exporter may change later.
    fn span_encoder(&self) -> Option<SpanEncodeFn> {
        None
    }

    /// Sends one batch of spans written by [`span_encoder`](Self::span_encoder)'s function. The
    /// batch stays borrowed, so a retry can send the same bytes again. Only called when
    /// `span_encoder` returned a function; the default refuses the batch.
    fn export_encoded<'a>(&'a mut self, batch: &'a EncodedSpans) -> ExportFuture<'a> {
        let spans = batch.spans();
        Box::pin(async move {
            Err(ExportError::permanent(format_args!(
                "{} exporter offered no span encoder but was given {spans} encoded spans",
                self.kind()
            )))
        })
    }

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

    fn span_encoder(&self) -> Option<SpanEncodeFn> {
        (**self).span_encoder()
    }

    fn export_encoded<'a>(&'a mut self, batch: &'a EncodedSpans) -> ExportFuture<'a> {
        (**self).export_encoded(batch)
    }

    fn shutdown(&mut self) -> ExportFuture<'_> {
        (**self).shutdown()
    }
}

/// A batch of spans, each written by an exporter's [span encoder](SpanExporter::span_encoder),
/// in the chunks the pipeline gathered them in (one chunk per thread's run of spans).
///
/// ```
/// use trace_exporters::EncodedSpans;
///
/// let batch = EncodedSpans::new();
/// assert_eq!((batch.spans(), batch.len_bytes()), (0, 0));
/// assert!(batch.chunks().next().is_none());
/// ```
#[derive(Debug, Default)]
pub struct EncodedSpans {
    // Boxed: a chunk moves between a thread's slot (an atomic cell one pointer wide), the ready
    // list, a batch and the spare list without its header being copied or reallocated.
    #[allow(clippy::vec_box)]
    pub(crate) chunks: Vec<Box<EncodedChunk>>,
    pub(crate) spans: usize,
    pub(crate) bytes: usize,
}

/// One thread's run of encoded spans.
#[derive(Debug, Default)]
pub(crate) struct EncodedChunk {
    pub(crate) bytes: Vec<u8>,
    pub(crate) spans: usize,
}

impl EncodedSpans {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many spans the batch holds.
    pub fn spans(&self) -> usize {
        self.spans
    }

    /// How many bytes the encoded spans take, all chunks together.
    pub fn len_bytes(&self) -> usize {
        self.bytes
    }

    /// Whether the batch holds no span.
    pub fn is_empty(&self) -> bool {
        self.spans == 0
    }

    /// The encoded spans, chunk by chunk, in the order the pipeline took them; each chunk holds
    /// whole spans, written one after another.
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.chunks.iter().map(|chunk| chunk.bytes.as_slice())
    }

    /// Appends one encoded span (for exporters' own tests and for code outside the pipeline):
    /// `bytes` must be exactly what the exporter's span encoder wrote for one span.
    pub fn push_span(&mut self, bytes: &[u8]) {
        self.chunks.push(Box::new(EncodedChunk {
            bytes: bytes.to_vec(),
            spans: 1,
        }));
        self.spans += 1;
        self.bytes += bytes.len();
    }

    /// Adds a chunk the pipeline gathered.
    pub(crate) fn push_chunk(&mut self, chunk: Box<EncodedChunk>) {
        self.spans += chunk.spans;
        self.bytes += chunk.bytes.len();
        self.chunks.push(chunk);
    }

    /// Empties the batch, giving back its chunks.
    pub(crate) fn drain_chunks(&mut self) -> impl Iterator<Item = Box<EncodedChunk>> + '_ {
        self.spans = 0;
        self.bytes = 0;
        self.chunks.drain(..)
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
