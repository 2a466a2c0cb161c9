//! The collector handle, its builder and the state it shares with the export task.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use trace_core::spread::part_of_this_thread;
use trace_core::{Collector, Span};

use super::config::BatchConfig;
use super::drop_reason;
use super::metrics::{BoundMetrics, ExporterMetrics};
use super::queue::{Collecting, SpanQueue};
use super::worker::{Control, Worker};
use crate::export::SpanExporter;

/// A [`Collector`] that queues spans and exports them in batches from a background task.
///
/// `collect` never blocks and allocates nothing: the span moves into a bounded lock-free queue
/// (or, when the queue is full, is dropped and counted as
/// [`queue_full`](drop_reason::QUEUE_FULL)). For an exporter that offers a
/// [span encoder](SpanExporter::span_encoder) (OTLP over protobuf), `collect` instead encodes the
/// span at once into a buffer that the calling thread shares with few others (one of 8, taken
/// and put back with an atomic swap, no lock) and frees it there; every 32 spans the buffer joins
/// the queue, whole, or is dropped whole when the queue is full. The buffers still being filled
/// hold at most 248 spans beyond the queue's limit; the export task takes them too on its timer,
/// on a flush and at shutdown. A span whose encoder panics is counted as
/// [`encoder_panicked`](drop_reason::ENCODER_PANICKED), and the panic goes on to the code that
/// ended the span. The export task wakes when a full batch is waiting
/// or when the [scheduled delay](BatchConfig::scheduled_delay) has passed, sends batches of at most
/// [`max_batch_size`](BatchConfig::max_batch_size) spans, bounds each call with the
/// [export timeout](BatchConfig::export_timeout) (a timeout is a retryable failure), retries
/// retryable failures with jittered exponential backoff or the wait the destination asked for
/// (`Retry-After`), and drops the batch when the [retry budget](BatchConfig::max_retry_time) is
/// spent ([`retries_exhausted`](drop_reason::RETRIES_EXHAUSTED)) or at once on a permanent error
/// ([`rejected`](drop_reason::REJECTED)).
///
/// # Where the export task runs
///
/// [`build`](BatchExporterBuilder::build) spawns the task on the runtime given to
/// [`runtime`](BatchExporterBuilder::runtime), else on the tokio runtime it is called from, else
/// (called outside any runtime) on a thread of its own running a current-thread runtime with
/// every driver this build of tokio has. A runtime the task is spawned on must have its time
/// driver enabled (`#[tokio::main]` does). Spans may be collected from any thread, inside a
/// runtime or not.
///
/// # Ending
///
/// Call [`shutdown`](Self::shutdown) (or [`shutdown_blocking`](Self::shutdown_blocking) outside
/// a runtime) before the process ends: it exports what is queued within a deadline. An exporter
/// dropped without a shutdown, or whose runtime ends first, loses what was still queued and
/// says so in one line on standard error; those spans are counted as
/// [`not_shut_down`](drop_reason::NOT_SHUT_DOWN).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use trace_core::{Collector, SpanContext, TraceFlags};
/// use trace_exporters::stdout::StdoutExporter;
/// use trace_exporters::{BatchExporter, Resource};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let exporter = StdoutExporter::new(Resource::new("checkout")).with_writer(Box::new(std::io::sink()));
/// let batch = BatchExporter::builder(exporter)
///     .max_batch_size(256)
///     .scheduled_delay(Duration::from_millis(500))
///     .build();
/// let collector: Arc<dyn Collector> = batch.clone();
///
/// let context = SpanContext::new_root(TraceFlags::SAMPLED).with_collector(collector);
/// drop(context.child("work"));
///
/// let report = batch.shutdown(Duration::from_secs(5)).await;
/// assert_eq!((report.exported, report.lost), (1, 0));
/// # }
/// ```
pub struct BatchExporter {
    shared: Arc<Shared>,
    control: mpsc::UnboundedSender<Control>,
}

/// Settings for a [`BatchExporter`], from [`BatchExporter::builder`].
pub struct BatchExporterBuilder {
    exporter: Box<dyn SpanExporter>,
    config: BatchConfig,
    metrics: Option<ExporterMetrics>,
    runtime: Option<Handle>,
}

/// What a [`BatchExporter::force_flush`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Spans delivered by the flush.
    pub exported: u64,
    /// Spans the flush gave up on (permanent errors, exhausted retries, dropped by the exporter).
    pub dropped: u64,
}

/// What a [`BatchExporter::shutdown`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Spans delivered after the shutdown began.
    pub exported: u64,
    /// Spans queued or in flight when the shutdown began that were not delivered: still queued
    /// at the deadline, or given up on for any other reason.
    pub lost: u64,
    /// Whether the deadline passed before everything was sent and the exporter shut down.
    pub deadline_reached: bool,
}

/// Why [`BatchExporter::shutdown_blocking`] did not wait.
#[derive(Debug, thiserror::Error)]
pub enum ShutdownError {
    /// Called on a thread that runs an async runtime, where blocking could stall the export task
    /// itself. Use [`BatchExporter::shutdown`] there.
    #[error("shutdown_blocking was called from inside an async runtime; await shutdown instead")]
    InsideRuntime,
}

/// What the collector handle and the export task both see.
pub(crate) struct Shared {
    pub(crate) kind: &'static str,
    pub(crate) config: BatchConfig,
    pub(crate) queue: SpanQueue,
    /// Collects in progress, which a flush and a shutdown wait for.
    pub(crate) collecting: Collecting,
    /// Ready spans that make a full batch ([`SpanQueue::full_batch`]).
    pub(crate) full_batch: usize,
    /// Wakes the export task when a full batch is waiting.
    pub(crate) wake: Notify,
    /// Set by the collect that sends a wake-up, cleared by the task when it wakes, so that a
    /// burst sends one wake-up rather than one per span.
    pub(crate) wake_pending: AtomicBool,
    /// Spans collected from now on are dropped. Set and read sequentially consistent, for
    /// [`Collecting`]'s handshake.
    pub(crate) closed: AtomicBool,
    /// Set once, by the first shutdown (or drop).
    shutdown_started: AtomicBool,
    /// When the task must stop trying: set by `shutdown`.
    pub(crate) deadline: watch::Sender<Option<Instant>>,
    pub(crate) counters: Counters,
    pub(crate) metrics: Option<BoundMetrics>,
}

/// Exact counts, kept whether or not Prometheus metrics are configured.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) exported: AtomicU64,
    pub(crate) dropped: AtomicU64,
    queue_full: AtomicU64,
    closed: AtomicU64,
    pub(crate) failed_batches: AtomicU64,
    /// Drops other than `queue_full` and `closed` (which `collect` counts), by reason; updated
    /// off the hot path only.
    by_reason: Mutex<Vec<(&'static str, u64)>>,
}

impl Shared {
    /// Counts `count` spans dropped for `reason`.
    pub(crate) fn count_dropped(&self, reason: &'static str, count: u64) {
        if count == 0 {
            return;
        }
        self.counters.dropped.fetch_add(count, Ordering::Relaxed);
        if reason == drop_reason::QUEUE_FULL {
            self.counters.queue_full.fetch_add(count, Ordering::Relaxed);
        } else if reason == drop_reason::CLOSED {
            self.counters.closed.fetch_add(count, Ordering::Relaxed);
        } else {
            let mut by_reason = self
                .counters
                .by_reason
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match by_reason.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, n)) => *n += count,
                None => by_reason.push((reason, count)),
            }
        }
        if let Some(metrics) = &self.metrics {
            match reason {
                drop_reason::QUEUE_FULL => {
                    metrics.queue_full.inc_by(count);
                }
                drop_reason::CLOSED => {
                    metrics.closed.inc_by(count);
                }
                _ => metrics.dropped(reason, count),
            }
        }
    }

    /// Empties the queue, counting what it held as dropped for `reason`.
    pub(crate) fn drain_lost(&self, reason: &'static str) -> u64 {
        let lost = self.queue.drain();
        self.count_dropped(reason, lost);
        lost
    }

    /// Wakes the export task, unless a wake-up is already on its way.
    fn wake_export_task(&self) {
        if !self.wake_pending.load(Ordering::Relaxed)
            && !self.wake_pending.swap(true, Ordering::AcqRel)
        {
            self.wake.notify_one();
        }
    }

    /// Publishes the queue length to the gauge.
    pub(crate) fn refresh_queue_gauge(&self) {
        if let Some(metrics) = &self.metrics {
            metrics
                .queue_length
                .set(i64::try_from(self.queue.len()).unwrap_or(i64::MAX));
        }
    }

    fn dropped_for(&self, reason: &str) -> u64 {
        if reason == drop_reason::QUEUE_FULL {
            return self.counters.queue_full.load(Ordering::Relaxed);
        }
        if reason == drop_reason::CLOSED {
            return self.counters.closed.load(Ordering::Relaxed);
        }
        self.counters
            .by_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }
}

impl BatchExporter {
    /// Starts building a pipeline around `exporter`, with [`BatchConfig::default`] settings.
    pub fn builder(exporter: impl SpanExporter) -> BatchExporterBuilder {
        BatchExporterBuilder {
            exporter: Box::new(exporter),
            config: BatchConfig::default(),
            metrics: None,
            runtime: None,
        }
    }

    /// The exporter's kind (`"otlp_http"`, `"stdout"`, ...).
    pub fn kind(&self) -> &'static str {
        self.shared.kind
    }

    /// The settings in use (out-of-range values already brought into range).
    pub fn config(&self) -> &BatchConfig {
        &self.shared.config
    }

    /// Spans the destination accepted so far.
    pub fn exported(&self) -> u64 {
        self.shared.counters.exported.load(Ordering::Relaxed)
    }

    /// Spans dropped so far, for every reason.
    pub fn dropped(&self) -> u64 {
        self.shared.counters.dropped.load(Ordering::Relaxed)
    }

    /// Spans dropped so far for one [reason](drop_reason).
    pub fn dropped_for(&self, reason: &str) -> u64 {
        self.shared.dropped_for(reason)
    }

    /// Export calls that failed so far (errors and timeouts; every retry counts).
    pub fn failed_batches(&self) -> u64 {
        self.shared.counters.failed_batches.load(Ordering::Relaxed)
    }

    /// Spans waiting in the queue now (with an encoding exporter, also those in the threads'
    /// buffers).
    pub fn queue_len(&self) -> usize {
        self.shared.queue.len()
    }

    /// Exports every span queued when it is called (in batches, with the usual retries) and
    /// reports what became of them. Spans collected meanwhile may go in the same batches.
    /// After a shutdown it does nothing.
    pub async fn force_flush(&self) -> FlushReport {
        let (reply, report) = oneshot::channel();
        if self.control.send(Control::Flush(reply)).is_err() {
            return FlushReport::default();
        }
        report.await.unwrap_or_default()
    }

    /// Stops accepting spans, exports what is queued, and shuts the exporter down, all within
    /// `deadline`; spans still unsent then are dropped
    /// ([`shutdown_deadline`](drop_reason::SHUTDOWN_DEADLINE)) and reported as lost. Retries
    /// continue until the deadline or the batch's retry budget, whichever comes first.
    ///
    /// Only the first call does anything; later ones report zeros.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        match self.begin_shutdown(deadline) {
            Some(report) => match report.await {
                Ok(report) => report,
                Err(_) => self.shutdown_without_task(),
            },
            None => ShutdownReport::default(),
        }
    }

    /// [`shutdown`](Self::shutdown) for code outside any async runtime (a `main` that built its
    /// runtime by hand and dropped it, a signal handler thread): blocks the calling thread until
    /// the export task is done, which is at most about `deadline`.
    pub fn shutdown_blocking(&self, deadline: Duration) -> Result<ShutdownReport, ShutdownError> {
        if Handle::try_current().is_ok() {
            return Err(ShutdownError::InsideRuntime);
        }
        Ok(match self.begin_shutdown(deadline) {
            Some(report) => match report.blocking_recv() {
                Ok(report) => report,
                Err(_) => self.shutdown_without_task(),
            },
            None => ShutdownReport::default(),
        })
    }

    fn begin_shutdown(&self, deadline: Duration) -> Option<oneshot::Receiver<ShutdownReport>> {
        if self.shared.shutdown_started.swap(true, Ordering::AcqRel) {
            return None;
        }
        self.shared.closed.store(true, Ordering::SeqCst);
        let at = Instant::now().checked_add(deadline);
        // `None` (a deadline too far to represent) means no deadline.
        self.shared.deadline.send_replace(at);
        let (reply, report) = oneshot::channel();
        // A send that fails means the task is gone; the dropped reply tells `shutdown` so.
        let _ = self.control.send(Control::Shutdown(reply));
        Some(report)
    }

    /// The export task ended before it could answer (its runtime was shut down).
    fn shutdown_without_task(&self) -> ShutdownReport {
        ShutdownReport {
            exported: 0,
            lost: self.shared.drain_lost(drop_reason::NOT_SHUT_DOWN),
            deadline_reached: false,
        }
    }
}

impl Collector for BatchExporter {
    #[inline]
    fn collect(&self, span: Span) {
        let shared = &*self.shared;
        let part = part_of_this_thread();
        // Counted in before `closed` is read (see `Collecting`): a shutdown waits for this collect
        // or this collect sees the exporter closed.
        let _in_progress = shared.collecting.enter(part);
        if shared.closed.load(Ordering::SeqCst) {
            drop(span);
            shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
            shared.counters.closed.fetch_add(1, Ordering::Relaxed);
            if let Some(metrics) = &shared.metrics {
                metrics.closed.inc();
            }
            return;
        }
        let lost_if_unwinding = CountEncoderPanic(shared);
        let pushed = shared.queue.push(part, span);
        std::mem::forget(lost_if_unwinding);
        match pushed {
            Ok(ready) => {
                if ready >= shared.full_batch {
                    shared.wake_export_task();
                }
            }
            Err(dropped) => {
                shared
                    .counters
                    .dropped
                    .fetch_add(dropped, Ordering::Relaxed);
                shared
                    .counters
                    .queue_full
                    .fetch_add(dropped, Ordering::Relaxed);
                if let Some(metrics) = &shared.metrics {
                    metrics.queue_full.inc_by(dropped);
                }
                // A full queue is worth exporting whatever the count of whole chunks says.
                shared.wake_export_task();
            }
        }
    }
}

/// Counts the span being queued as lost to its encoder's panic when dropped: only when `push`
/// unwinds, since it is forgotten once `push` returns.
struct CountEncoderPanic<'a>(&'a Shared);

impl Drop for CountEncoderPanic<'_> {
    fn drop(&mut self) {
        self.0.count_dropped(drop_reason::ENCODER_PANICKED, 1);
    }
}

impl Drop for BatchExporter {
    fn drop(&mut self) {
        if self.shared.shutdown_started.swap(true, Ordering::AcqRel) {
            // No collect can run any more (this was the last handle): a span a collect queued
            // after the shutdown had taken everything (one still running at its deadline) is
            // counted now.
            self.shared.drain_lost(drop_reason::SHUTDOWN_DEADLINE);
            return;
        }
        self.shared.closed.store(true, Ordering::SeqCst);
        let lost = self.shared.drain_lost(drop_reason::NOT_SHUT_DOWN);
        if lost > 0 {
            eprintln!(
                "tracewire: {} exporter dropped without shutdown; {lost} queued spans lost",
                self.shared.kind
            );
        }
        // Dropping `control` next tells the task to shut the exporter down and end.
    }
}

impl fmt::Debug for BatchExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchExporter")
            .field("kind", &self.kind())
            .field("queue_len", &self.queue_len())
            .field("exported", &self.exported())
            .field("dropped", &self.dropped())
            .field("failed_batches", &self.failed_batches())
            .finish_non_exhaustive()
    }
}

impl BatchExporterBuilder {
    /// Replaces every setting with `config`'s.
    pub fn config(mut self, config: BatchConfig) -> Self {
        self.config = config;
        self
    }

    /// Spans the queue holds before new ones are dropped (default 2,048; at most
    /// [`BatchConfig::MAX_QUEUE_SIZE`]).
    pub fn max_queue_size(mut self, spans: usize) -> Self {
        self.config.max_queue_size = spans;
        self
    }

    /// Spans per export call (default 512; at most the queue size).
    pub fn max_batch_size(mut self, spans: usize) -> Self {
        self.config.max_batch_size = spans;
        self
    }

    /// The longest a span waits before a smaller batch is sent (default 1 s).
    pub fn scheduled_delay(mut self, delay: Duration) -> Self {
        self.config.scheduled_delay = delay;
        self
    }

    /// The longest one export call may take (default 10 s).
    pub fn export_timeout(mut self, timeout: Duration) -> Self {
        self.config.export_timeout = timeout;
        self
    }

    /// The longest one batch is tried, retries included (default 30 s).
    pub fn max_retry_time(mut self, budget: Duration) -> Self {
        self.config.max_retry_time = budget;
        self
    }

    /// The first and the longest wait between retries (defaults 100 ms and 5 s).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.config.initial_backoff = initial;
        self.config.max_backoff = max;
        self
    }

    /// Reports health into these metric families (shared by all exporters of a registry).
    pub fn metrics(mut self, metrics: &ExporterMetrics) -> Self {
        self.metrics = Some(metrics.clone());
        self
    }

    /// Runs the export task on this runtime rather than the current one.
    pub fn runtime(mut self, handle: Handle) -> Self {
        self.runtime = Some(handle);
        self
    }

    /// Starts the export task (see [where it runs](BatchExporter#where-the-export-task-runs)) and
    /// returns the collector.
    pub fn build(self) -> Arc<BatchExporter> {
        let config = self.config.normalized();
        let kind = self.exporter.kind();
        let metrics = self.metrics.map(|metrics| metrics.bind(kind));
        let (deadline, deadline_rx) = watch::channel(None);
        let queue = SpanQueue::new(
            config.max_queue_size,
            config.max_batch_size,
            self.exporter.span_encoder(),
        );
        let shared = Arc::new(Shared {
            kind,
            full_batch: queue.full_batch(config.max_batch_size, config.max_queue_size),
            queue,
            collecting: Collecting::new(),
            config,
            wake: Notify::new(),
            wake_pending: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            shutdown_started: AtomicBool::new(false),
            deadline,
            counters: Counters::default(),
            metrics,
        });
        shared.refresh_queue_gauge();
        let (control, control_rx) = mpsc::unbounded_channel();
        let worker = Worker::new(shared.clone(), self.exporter, control_rx, deadline_rx);
        match self.runtime.or_else(|| Handle::try_current().ok()) {
            Some(handle) => {
                handle.spawn(worker.run());
            }
            None => spawn_export_thread(kind, worker),
        }
        Arc::new(BatchExporter { shared, control })
    }
}

/// Runs the export task on a thread of its own, for exporters built outside any runtime.
fn spawn_export_thread(kind: &'static str, worker: Worker) {
    let spawned = std::thread::Builder::new()
        .name(format!("tracewire-export-{kind}"))
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(worker.run()),
                Err(error) => {
                    eprintln!("tracewire: {kind} exporter could not start its runtime: {error}");
                    drop(worker);
                }
            }
        });
    // The closure, and the worker in it, is dropped when the thread cannot start; the worker's
    // drop closes the queue so spans are counted as `closed` rather than piling up.
    if let Err(error) = spawned {
        eprintln!("tracewire: {kind} exporter could not start its export thread: {error}");
    }
}

impl fmt::Debug for BatchExporterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchExporterBuilder")
            .field("exporter", &self.exporter)
            .field("config", &self.config)
            .field("metrics", &self.metrics.is_some())
            .field("runtime", &self.runtime.is_some())
            .finish()
    }
}
