//! The export task: takes batches off the queue and drives the exporter.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use trace_core::spread::PARTS;

use super::batch::{FlushReport, Shared, ShutdownReport};
use super::drop_reason;
use super::queue::Batch;
use crate::export::{ExportError, ExportFuture, ExportResult, SpanExporter};

/// Requests from the collector handle.
pub(crate) enum Control {
    /// Export what is queued now.
    Flush(oneshot::Sender<FlushReport>),
    /// Export what is queued before the deadline, shut the exporter down, end.
    Shutdown(oneshot::Sender<ShutdownReport>),
}

/// The export task's state. Dropped before it finishes (its runtime ended, or it panicked), it
/// counts what it still held as lost and says so.
pub(crate) struct Worker {
    shared: Arc<Shared>,
    exporter: Box<dyn SpanExporter>,
    control: mpsc::UnboundedReceiver<Control>,
    deadline: watch::Receiver<Option<Instant>>,
    /// The batch being exported; kept here so a cancelled task can count it.
    batch: Batch,
    /// Spans delivered and given up on by this task, for the flush and shutdown reports.
    delivered: u64,
    given_up: u64,
    /// Whether a batch was given up on because the shutdown deadline would pass before it
    /// could be sent (so the deadline cut the shutdown short even though it has not passed).
    cut_by_deadline: bool,
    finished: bool,
}

/// How a bounded wait ended.
enum Bounded<T> {
    /// The future finished.
    Ready(T),
    /// Its own time ran out (an export call's timeout, a backoff wait).
    Elapsed,
    /// The batch's limit passed: the retry budget, or the shutdown deadline.
    GaveUp(&'static str),
}

/// What woke the main loop.
enum Wake {
    Control(Option<Control>),
    FullBatch,
    Tick,
}

impl Worker {
    pub(crate) fn new(
        shared: Arc<Shared>,
        exporter: Box<dyn SpanExporter>,
        control: mpsc::UnboundedReceiver<Control>,
        deadline: watch::Receiver<Option<Instant>>,
    ) -> Self {
        let batch = shared.queue.empty_batch(shared.config.max_batch_size);
        Self {
            shared,
            exporter,
            control,
            deadline,
            batch,
            delivered: 0,
            given_up: 0,
            cut_by_deadline: false,
            finished: false,
        }
    }

    pub(crate) async fn run(mut self) {
        let shared = self.shared.clone();
        let delay = shared.config.scheduled_delay;
        let mut next_tick = later(delay);
        loop {
            let wake = {
                let mut full = pin!(shared.wake.notified());
                let mut tick = pin!(tokio::time::sleep_until(next_tick.into()));
                let control = &mut self.control;
                poll_fn(|cx| {
                    if let Poll::Ready(message) = control.poll_recv(cx) {
                        return Poll::Ready(Wake::Control(message));
                    }
                    if full.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Wake::FullBatch);
                    }
                    if tick.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Wake::Tick);
                    }
                    Poll::Pending
                })
                .await
            };
            match wake {
                Wake::Control(Some(Control::Flush(reply))) => {
                    let before = (self.delivered, self.given_up);
                    // Collects running when the flush was asked for finish queueing first.
                    let until = later(shared.config.export_timeout);
                    let _ = Self::collects_finished(&shared, Some(until)).await;
                    self.export_everything_queued().await;
                    let _ = reply.send(FlushReport {
                        exported: self.delivered - before.0,
                        dropped: self.given_up - before.1,
                    });
                }
                Wake::Control(Some(Control::Shutdown(reply))) => {
                    let report = self.shut_down().await;
                    self.finished = true;
                    let _ = reply.send(report);
                    return;
                }
                Wake::Control(None) => {
                    // The collector handle was dropped (it has counted what was queued).
                    let timeout = shared.config.export_timeout;
                    let _ = self.bounded_shutdown_call(timeout).await;
                    self.finished = true;
                    return;
                }
                Wake::FullBatch => {
                    shared.wake_pending.store(false, Ordering::Release);
                    while shared.queue.ready_len() >= shared.full_batch {
                        if self.export_queued(shared.full_batch).await == 0 {
                            break;
                        }
                    }
                }
                Wake::Tick => {
                    self.export_everything_queued().await;
                    next_tick = later(delay);
                }
            }
            shared.refresh_queue_gauge();
        }
    }

    /// Waits until every collect in progress now has finished (each part seen with none in
    /// progress once), or until `until`; whether they all finished. Collects take a moment, so
    /// this rarely waits; a thread descheduled in the middle of one is waited for with a pause
    /// between looks.
    async fn collects_finished(shared: &Shared, until: Option<Instant>) -> bool {
        let mut seen_idle = [false; PARTS];
        let mut looks = 0_u32;
        while !shared.collecting.seen_idle(&mut seen_idle) {
            if until.is_some_and(|until| Instant::now() >= until) {
                return false;
            }
            if looks < 64 {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            looks += 1;
        }
        true
    }

    /// Exports every span queued now, the threads' partly filled chunks of encoded spans
    /// included (a flush, a timer tick).
    async fn export_everything_queued(&mut self) {
        self.shared.queue.gather_partial();
        let queued = self.shared.queue.ready_len();
        let _ = self.export_queued(queued).await;
    }

    /// Exports about `spans` ready spans, in batches (encoded spans come in whole chunks, so a
    /// batch may hold a few more, never more than the batch size); how many it sent (or gave up
    /// on).
    async fn export_queued(&mut self, mut spans: usize) -> usize {
        let max_batch_size = self.shared.config.max_batch_size;
        let mut taken = 0;
        while spans > 0 {
            let wanted = spans.min(max_batch_size);
            self.shared
                .queue
                .fill(&mut self.batch, wanted, max_batch_size);
            if self.batch.is_empty() {
                break;
            }
            taken += self.batch.len();
            spans = spans.saturating_sub(self.batch.len());
            self.export_batch().await;
        }
        taken
    }

    /// Sends `self.batch` until it is delivered, refused, or its time is up; empties it.
    async fn export_batch(&mut self) {
        let config = self.shared.config.clone();
        let size = self.batch.len() as u64;
        let give_up = Instant::now().checked_add(config.max_retry_time);
        let mut backoff = config.initial_backoff;
        loop {
            let started = Instant::now();
            let (exporter, batch) = (&mut self.exporter, &self.batch);
            let call = unless_it_panics(move || match batch {
                Batch::Spans(spans) => exporter.export(spans),
                Batch::Encoded(encoded) => exporter.export_encoded(encoded),
            });
            let attempt = bounded(call, config.export_timeout, give_up, &mut self.deadline).await;
            let elapsed = started.elapsed();
            if let Some(metrics) = &self.shared.metrics {
                metrics.export_duration.observe(elapsed.as_secs_f64());
            }
            let error = match attempt {
                Bounded::Ready(None) => {
                    self.record_failed();
                    self.give_up(drop_reason::EXPORTER_PANICKED, size);
                    break;
                }
                Bounded::Ready(Some(Ok(outcome))) => {
                    let dropped = outcome.dropped.min(size);
                    let reason = if outcome.drop_reason.is_empty() {
                        drop_reason::EXPORTER
                    } else {
                        outcome.drop_reason
                    };
                    self.record_delivered(size - dropped);
                    self.give_up(reason, dropped);
                    break;
                }
                Bounded::Ready(Some(Err(error))) => error,
                Bounded::Elapsed => ExportError::retryable(format_args!(
                    "export call timed out after {:?}",
                    config.export_timeout
                )),
                Bounded::GaveUp(reason) => {
                    self.record_failed();
                    self.give_up(reason, size);
                    break;
                }
            };
            self.record_failed();
            if !error.is_retryable() {
                self.give_up(drop_reason::REJECTED, size);
                break;
            }
            // Full jitter on the lower half, so that exporters restarted together spread out.
            let wait = error
                .retry_after()
                .unwrap_or_else(|| backoff.mul_f64(0.5 + fastrand::f64() * 0.5));
            backoff = backoff.saturating_mul(2).min(config.max_backoff);
            let (limit, reason) = effective_limit(give_up, *self.deadline.borrow());
            let retry_at = Instant::now().checked_add(wait);
            if limit.is_some_and(|limit| retry_at.is_none_or(|at| at >= limit)) {
                // The destination cannot be tried again in time.
                self.give_up(reason, size);
                break;
            }
            self.shared.refresh_queue_gauge();
            match bounded(
                std::future::pending::<()>(),
                wait,
                give_up,
                &mut self.deadline,
            )
            .await
            {
                Bounded::GaveUp(reason) => {
                    self.give_up(reason, size);
                    break;
                }
                Bounded::Ready(()) | Bounded::Elapsed => {}
            }
        }
        self.shared.queue.recycle(&mut self.batch);
    }

    fn record_delivered(&mut self, spans: u64) {
        self.delivered += spans;
        self.shared
            .counters
            .exported
            .fetch_add(spans, Ordering::Relaxed);
        if let Some(metrics) = &self.shared.metrics {
            metrics.exported.inc_by(spans);
        }
    }

    fn record_failed(&self) {
        self.shared
            .counters
            .failed_batches
            .fetch_add(1, Ordering::Relaxed);
        if let Some(metrics) = &self.shared.metrics {
            metrics.failed_batches.inc();
        }
    }

    fn give_up(&mut self, reason: &'static str, spans: u64) {
        self.given_up += spans;
        self.cut_by_deadline |= reason == drop_reason::SHUTDOWN_DEADLINE && spans > 0;
        self.shared.count_dropped(reason, spans);
    }

    /// Exports what is queued until the deadline, then shuts the exporter down.
    async fn shut_down(&mut self) -> ShutdownReport {
        let before = (self.delivered, self.given_up);
        let deadline_passed = |deadline: &watch::Receiver<Option<Instant>>| {
            deadline
                .borrow()
                .is_some_and(|deadline| Instant::now() >= deadline)
        };
        // The queue is closed: once the collects that began before it was have finished, nothing
        // more joins it.
        let deadline = *self.deadline.borrow();
        let collects_finished = Self::collects_finished(&self.shared, deadline).await;
        self.shared.queue.gather_partial();
        while self.shared.queue.ready_len() > 0 && !deadline_passed(&self.deadline) {
            let batch_size = self.shared.config.max_batch_size;
            if self.export_queued(batch_size).await == 0 {
                break;
            }
        }
        // Still queued: spans the deadline left no time for. (A collect still running at the
        // deadline queues after this; the handle counts that when it is dropped.)
        let left = self.shared.drain_lost(drop_reason::SHUTDOWN_DEADLINE);
        self.given_up += left;
        let mut deadline_reached = left > 0 || self.cut_by_deadline || !collects_finished;
        let remaining = match *self.deadline.borrow() {
            Some(deadline) => deadline.saturating_duration_since(Instant::now()),
            None => self.shared.config.export_timeout,
        };
        if remaining.is_zero() || !self.bounded_shutdown_call(remaining).await {
            deadline_reached = true;
        }
        self.shared.refresh_queue_gauge();
        ShutdownReport {
            exported: self.delivered - before.0,
            lost: self.given_up - before.1,
            deadline_reached,
        }
    }

    /// Calls the exporter's `shutdown` for at most `timeout`; whether it finished in time.
    async fn bounded_shutdown_call(&mut self, timeout: Duration) -> bool {
        if timeout.is_zero() {
            return false;
        }
        tokio::time::timeout(timeout, self.exporter.shutdown())
            .await
            .is_ok()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.shared.closed.store(true, Ordering::SeqCst);
        let in_flight = self.batch.len() as u64;
        self.shared.queue.recycle(&mut self.batch);
        self.shared
            .count_dropped(drop_reason::NOT_SHUT_DOWN, in_flight);
        let lost = in_flight + self.shared.drain_lost(drop_reason::NOT_SHUT_DOWN);
        if lost > 0 {
            eprintln!(
                "tracewire: {} export task ended without shutdown; {lost} spans lost",
                self.shared.kind
            );
        }
    }
}

/// The export call `make` starts, or `None` if the exporter panics, starting or polled: the
/// batch is then given up (and counted), and the task goes on with the next one, rather than
/// dying with every span still queued.
async fn unless_it_panics<'a>(make: impl FnOnce() -> ExportFuture<'a>) -> Option<ExportResult> {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    // Whatever the exporter left half done is its own state: it is asked again with the next
    // batch, as after any failed call.
    let mut call = catch_unwind(AssertUnwindSafe(make)).ok()?;
    poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| call.as_mut().poll(cx))) {
            Ok(Poll::Ready(result)) => Poll::Ready(Some(result)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(None),
        },
    )
    .await
}

/// `by` from now; a month from now for a delay too long to represent.
fn later(by: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(by)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 24 * 3600))
}

/// The earlier of the batch's retry limit and the shutdown deadline, and the drop reason that
/// goes with it.
fn effective_limit(
    give_up: Option<Instant>,
    shutdown: Option<Instant>,
) -> (Option<Instant>, &'static str) {
    match (give_up, shutdown) {
        (Some(give_up), Some(shutdown)) if give_up < shutdown => {
            (Some(give_up), drop_reason::RETRIES_EXHAUSTED)
        }
        (_, Some(shutdown)) => (Some(shutdown), drop_reason::SHUTDOWN_DEADLINE),
        (give_up, None) => (give_up, drop_reason::RETRIES_EXHAUSTED),
    }
}

/// Runs `future` for at most `timeout`, and not past the batch's limit (`give_up`, or the
/// shutdown deadline, which may be set while it runs).
async fn bounded<F: Future>(
    future: F,
    timeout: Duration,
    give_up: Option<Instant>,
    deadline: &mut watch::Receiver<Option<Instant>>,
) -> Bounded<F::Output> {
    let own_end = Instant::now().checked_add(timeout);
    let mut future = pin!(future);
    let mut watching = true;
    loop {
        let (limit, reason) = effective_limit(give_up, *deadline.borrow_and_update());
        let end = match (own_end, limit) {
            (Some(own), Some(limit)) => Some(own.min(limit)),
            (own, limit) => own.or(limit),
        };
        let mut sleep = pin!(async {
            match end {
                Some(end) => tokio::time::sleep_until(end.into()).await,
                None => std::future::pending().await,
            }
        });
        let mut changed = pin!(deadline.changed());
        let step = poll_fn(|cx| {
            if let Poll::Ready(output) = future.as_mut().poll(cx) {
                return Poll::Ready(Some(Bounded::Ready(output)));
            }
            if sleep.as_mut().poll(cx).is_ready() {
                let gave_up = limit.is_some_and(|limit| Instant::now() >= limit);
                return Poll::Ready(Some(if gave_up {
                    Bounded::GaveUp(reason)
                } else {
                    Bounded::Elapsed
                }));
            }
            if watching && let Poll::Ready(result) = changed.as_mut().poll(cx) {
                // A closed channel never changes again; stop watching it.
                watching = result.is_ok();
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await;
        if let Some(step) = step {
            return step;
        }
    }
}
