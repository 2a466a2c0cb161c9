//! The batching pipeline against in-test exporters that record batches and follow scripts.
//!
//! Timing-sensitive cases keep the export task on a runtime the test drives by hand
//! (`stalled_runtime`), so queue contents are exact; elapsed times are only ever checked as
//! lower bounds, and every wait has a 10 s guard.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use trace_core::Collector;
use trace_exporters::pipeline::drop_reason;
use trace_exporters::{BatchConfig, BatchExporter, ExporterMetrics, ShutdownError};

use support::{ScriptedExporter, Step, eventually, guarded, ids, span, stalled_runtime};

mod support {
    //! In-test exporters and spans for the pipeline tests.

    #![allow(dead_code, unreachable_pub)]

    use std::collections::VecDeque;
    use std::future::Future;
    use std::sync::{Arc, Mutex, MutexGuard};
    use std::time::{Duration, Instant, SystemTime};

    use trace_core::{Span, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
    use trace_exporters::{ExportError, ExportFuture, ExportOutcome, SpanExporter};

    /// What the exporter does with one call.
    #[derive(Debug, Clone, Copy)]
    pub enum Step {
        Deliver,
        DeliverDropping(u64, &'static str),
        Retry(Option<Duration>),
        Reject,
        Hang,
    }

    /// One export call as the exporter saw it.
    #[derive(Debug, Clone)]
    pub struct Attempt {
        pub at: Instant,
        pub spans: Vec<SpanId>,
    }

    #[derive(Debug, Default)]
    pub struct Log {
        pub attempts: Vec<Attempt>,
        pub delivered: Vec<Vec<SpanId>>,
        pub shutdowns: u32,
    }

    /// Follows a script of steps, then `otherwise`; records every call.
    #[derive(Debug, Clone)]
    pub struct ScriptedExporter {
        kind: &'static str,
        script: Arc<Mutex<VecDeque<Step>>>,
        otherwise: Step,
        log: Arc<Mutex<Log>>,
    }

    impl ScriptedExporter {
        pub fn new(
            kind: &'static str,
            script: impl IntoIterator<Item = Step>,
            otherwise: Step,
        ) -> Self {
            Self {
                kind,
                script: Arc::new(Mutex::new(script.into_iter().collect())),
                otherwise,
                log: Arc::default(),
            }
        }

        pub fn delivering() -> Self {
            Self::new("scripted", [], Step::Deliver)
        }

        pub fn log(&self) -> MutexGuard<'_, Log> {
            self.log.lock().expect("log lock")
        }

        pub fn attempts(&self) -> usize {
            self.log().attempts.len()
        }

        /// Every delivered span id, in delivery order.
        pub fn delivered_ids(&self) -> Vec<SpanId> {
            self.log().delivered.iter().flatten().copied().collect()
        }

        pub fn delivered_batch_sizes(&self) -> Vec<usize> {
            self.log().delivered.iter().map(Vec::len).collect()
        }
    }

    impl SpanExporter for ScriptedExporter {
        fn kind(&self) -> &'static str {
            self.kind
        }

        fn export<'a>(&'a mut self, batch: &'a [Span]) -> ExportFuture<'a> {
            let ids: Vec<SpanId> = batch.iter().map(|s| s.span_id).collect();
            let step = self
                .script
                .lock()
                .expect("script lock")
                .pop_front()
                .unwrap_or(self.otherwise);
            let mut log = self.log();
            log.attempts.push(Attempt {
                at: Instant::now(),
                spans: ids.clone(),
            });
            let result = match step {
                Step::Deliver => {
                    log.delivered.push(ids);
                    Ok(ExportOutcome::delivered())
                }
                Step::DeliverDropping(count, reason) => {
                    log.delivered.push(ids);
                    Ok(ExportOutcome::with_dropped(count, reason))
                }
                Step::Retry(retry_after) => Err(ExportError::Retryable {
                    message: "try later".into(),
                    retry_after,
                }),
                Step::Reject => Err(ExportError::permanent("bad batch")),
                Step::Hang => return Box::pin(std::future::pending()),
            };
            Box::pin(async move { result })
        }

        fn shutdown(&mut self) -> ExportFuture<'_> {
            self.log().shutdowns += 1;
            Box::pin(async { Ok(ExportOutcome::delivered()) })
        }
    }

    /// A small server span numbered `n` (its span id is `n + 1`).
    pub fn span(n: u64) -> Span {
        Span {
            name: "GET /items/{id}".into(),
            kind: SpanKind::Server,
            trace_id: TraceId::from_u128(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736)
                .expect("non-zero"),
            span_id: SpanId::from_u64(n + 1).expect("non-zero"),
            parent_span_id: None,
            flags: TraceFlags::SAMPLED,
            trace_state: TraceState::default(),
            debug_id: None,
            start_time: SystemTime::now(),
            duration: Duration::from_micros(250),
            status: Status::Unset,
            attributes: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
        }
    }

    pub fn ids(range: std::ops::Range<u64>) -> Vec<SpanId> {
        range
            .map(|n| SpanId::from_u64(n + 1).expect("non-zero"))
            .collect()
    }

    /// Waits (polling) until `condition` holds; a 10 s guard against hanging, never a measurement.
    pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
        let guard = Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(Instant::now() < guard, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Runs `future` to completion, failing the test after the 10 s guard.
    pub async fn guarded<F: Future>(future: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(10), future)
            .await
            .expect("finished within the 10 s guard")
    }

    /// A runtime whose tasks run only while a test drives it with `block_on`: an export task
    /// spawned on it stays put, so queue contents are exact.
    pub fn stalled_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }
}

/// A long scheduled delay, so only a full batch (or a flush) sends anything.
const NEVER: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn batches_by_count() {
    let exporter = ScriptedExporter::delivering();
    let batch = BatchExporter::builder(exporter.clone())
        .max_batch_size(10)
        .scheduled_delay(NEVER)
        .build();
    // The test runtime has one thread, so all 25 spans are queued before the task wakes.
    for n in 0..25 {
        batch.collect(span(n));
    }
    eventually("two full batches", || {
        exporter.delivered_batch_sizes().len() == 2
    })
    .await;
    assert_eq!(exporter.delivered_batch_sizes(), [10, 10]);
    assert_eq!(exporter.delivered_ids(), ids(0..20));
    assert_eq!(batch.queue_len(), 5);

    let flushed = guarded(batch.force_flush()).await;
    assert_eq!((flushed.exported, flushed.dropped), (5, 0));
    assert_eq!(exporter.delivered_batch_sizes(), [10, 10, 5]);
    assert_eq!(exporter.delivered_ids(), ids(0..25));
    assert_eq!(batch.exported(), 25);
}

#[tokio::test]
async fn batches_by_time() {
    let exporter = ScriptedExporter::delivering();
    let batch = BatchExporter::builder(exporter.clone())
        .max_batch_size(512)
        .scheduled_delay(Duration::from_millis(20))
        .build();
    for n in 0..3 {
        batch.collect(span(n));
    }
    // Far fewer spans than a batch: only the scheduled delay can send them.
    eventually("the scheduled export", || {
        exporter.delivered_ids().len() == 3
    })
    .await;
    assert_eq!(exporter.delivered_ids(), ids(0..3));
    assert_eq!(batch.exported(), 3);
    assert_eq!(batch.dropped(), 0);
}

#[test]
fn queue_overflow_drops_exactly_the_excess() {
    let runtime = stalled_runtime();
    let exporter = ScriptedExporter::delivering();
    let batch = BatchExporter::builder(exporter.clone())
        .max_queue_size(100)
        .max_batch_size(50)
        .scheduled_delay(NEVER)
        .runtime(runtime.handle().clone())
        .build();
    for n in 0..150 {
        batch.collect(span(n));
    }
    assert_eq!(batch.queue_len(), 100);
    assert_eq!(batch.dropped_for(drop_reason::QUEUE_FULL), 50);
    assert_eq!(batch.dropped(), 50);

    let report = runtime.block_on(guarded(batch.shutdown(Duration::from_secs(10))));
    assert_eq!((report.exported, report.lost), (100, 0));
    assert!(!report.deadline_reached);
    assert_eq!(exporter.delivered_ids(), ids(0..100));
}

#[tokio::test]
async fn retry_after_is_honoured_and_the_batch_delivered_once() {
    let retry_after = Duration::from_millis(300);
    let exporter =
        ScriptedExporter::new("scripted", [Step::Retry(Some(retry_after))], Step::Deliver);
    let batch = BatchExporter::builder(exporter.clone())
        .scheduled_delay(NEVER)
        .backoff(Duration::from_millis(1), Duration::from_millis(1))
        .build();
    for n in 0..5 {
        batch.collect(span(n));
    }
    let report = guarded(batch.force_flush()).await;
    assert_eq!((report.exported, report.dropped), (5, 0));

    let log = exporter.log();
    assert_eq!(log.attempts.len(), 2);
    assert_eq!(log.attempts[0].spans, ids(0..5));
    assert_eq!(log.attempts[1].spans, ids(0..5));
    assert_eq!(log.delivered, [ids(0..5)], "delivered exactly once");
    let waited = log.attempts[1].at - log.attempts[0].at;
    assert!(
        waited >= retry_after,
        "retried after {waited:?}, asked for {retry_after:?}"
    );
    drop(log);
    assert_eq!(batch.failed_batches(), 1);
    assert_eq!(batch.exported(), 5);
}

#[tokio::test]
async fn retryable_errors_back_off_then_deliver() {
    let exporter = ScriptedExporter::new(
        "scripted",
        [Step::Retry(None), Step::Retry(None), Step::Retry(None)],
        Step::Deliver,
    );
    let batch = BatchExporter::builder(exporter.clone())
        .scheduled_delay(NEVER)
        .backoff(Duration::from_millis(10), Duration::from_millis(40))
        .build();
    batch.collect(span(0));
    let report = guarded(batch.force_flush()).await;
    assert_eq!((report.exported, report.dropped), (1, 0));
    let log = exporter.log();
    assert_eq!(log.attempts.len(), 4);
    // Jitter takes at most half off: waits of at least 5, 10 and 20 ms.
    for (i, floor_ms) in [5, 10, 20].into_iter().enumerate() {
        let waited = log.attempts[i + 1].at - log.attempts[i].at;
        assert!(
            waited >= Duration::from_millis(floor_ms),
            "wait {i} was {waited:?}"
        );
    }
    assert_eq!(log.delivered.len(), 1);
    drop(log);
    assert_eq!(batch.failed_batches(), 3);
}

#[tokio::test]
async fn hanging_exporter_times_out_is_retried_then_dropped() {
    let exporter = ScriptedExporter::new("scripted", [], Step::Hang);
    let batch = BatchExporter::builder(exporter.clone())
        .scheduled_delay(NEVER)
        .export_timeout(Duration::from_millis(50))
        .max_retry_time(Duration::from_secs(2))
        .backoff(Duration::from_millis(10), Duration::from_millis(20))
        .build();
    for n in 0..3 {
        batch.collect(span(n));
    }
    let report = guarded(batch.force_flush()).await;
    assert_eq!((report.exported, report.dropped), (0, 3));
    assert_eq!(batch.dropped_for(drop_reason::RETRIES_EXHAUSTED), 3);
    assert!(exporter.attempts() >= 2, "the timed-out batch was retried");
    assert!(exporter.log().attempts.iter().all(|a| a.spans == ids(0..3)));
    // Every attempt but possibly the last (cut short by the budget) failed by timeout.
    assert!(batch.failed_batches() >= 2);
    assert_eq!(batch.failed_batches(), exporter.attempts() as u64);
}

#[tokio::test]
async fn retry_after_beyond_the_budget_gives_up_at_once() {
    // Duration::MAX: a peer's absurd Retry-After must not overflow the clock.
    for retry_after in [Duration::from_secs(60), Duration::MAX] {
        let exporter = ScriptedExporter::new("scripted", [], Step::Retry(Some(retry_after)));
        let batch = BatchExporter::builder(exporter.clone())
            .scheduled_delay(NEVER)
            .max_retry_time(Duration::from_secs(5))
            .build();
        batch.collect(span(0));
        let report = guarded(batch.force_flush()).await;
        assert_eq!((report.exported, report.dropped), (0, 1));
        assert_eq!(exporter.attempts(), 1);
        assert_eq!(batch.dropped_for(drop_reason::RETRIES_EXHAUSTED), 1);
    }
}

#[tokio::test]
async fn permanent_error_drops_the_batch_without_retrying() {
    let exporter = ScriptedExporter::new("scripted", [Step::Reject], Step::Deliver);
    let batch = BatchExporter::builder(exporter.clone())
        .scheduled_delay(NEVER)
        .build();
    for n in 0..4 {
        batch.collect(span(n));
    }
    let report = guarded(batch.force_flush()).await;
    assert_eq!((report.exported, report.dropped), (0, 4));
    assert_eq!(exporter.attempts(), 1);
    assert_eq!(batch.dropped_for(drop_reason::REJECTED), 4);
    assert_eq!(batch.failed_batches(), 1);

    // The pipeline carries on with the next batch.
    batch.collect(span(4));
    let report = guarded(batch.force_flush()).await;
    assert_eq!((report.exported, report.dropped), (1, 0));
}

#[tokio::test]
async fn spans_the_exporter_drops_are_counted_under_its_reason() {
    let exporter = ScriptedExporter::new(
        "scripted",
        [Step::DeliverDropping(2, "too_large")],
        Step::Deliver,
    );
    let batch = BatchExporter::builder(exporter.clone())
        .scheduled_delay(NEVER)
        .build();
    for n in 0..6 {
        batch.collect(span(n));
    }
    let report = guarded(batch.force_flush()).await;
    assert_eq!((report.exported, report.dropped), (4, 2));
    assert_eq!(batch.exported(), 4);
    assert_eq!(batch.dropped_for("too_large"), 2);
}

#[tokio::test]
async fn force_flush_delivers_everything_queued() {
    let exporter = ScriptedExporter::delivering();
    let batch = BatchExporter::builder(exporter.clone())
        .max_batch_size(100)
        .scheduled_delay(NEVER)
        .build();
    for n in 0..1000 {
        batch.collect(span(n));
    }
    guarded(batch.force_flush()).await;
    assert_eq!(batch.queue_len(), 0);
    assert_eq!(batch.exported(), 1000);
    let mut delivered = exporter.delivered_ids();
    delivered.sort();
    assert_eq!(delivered, ids(0..1000));
    assert!(exporter.delivered_batch_sizes().iter().all(|&n| n <= 100));
}

#[test]
fn shutdown_delivers_a_full_queue_within_the_deadline() {
    let runtime = stalled_runtime();
    let exporter = ScriptedExporter::delivering();
    let batch = BatchExporter::builder(exporter.clone())
        .max_queue_size(100)
        .max_batch_size(10)
        .scheduled_delay(NEVER)
        .runtime(runtime.handle().clone())
        .build();
    for n in 0..100 {
        batch.collect(span(n));
    }
    let report = runtime.block_on(guarded(batch.shutdown(Duration::from_secs(10))));
    assert_eq!((report.exported, report.lost), (100, 0));
    assert!(!report.deadline_reached);
    assert_eq!(exporter.delivered_batch_sizes(), [10; 10]);
    assert_eq!(exporter.delivered_ids(), ids(0..100));
    assert_eq!(exporter.log().shutdowns, 1);

    // Closed: later spans are dropped and counted, a second shutdown does nothing.
    batch.collect(span(100));
    assert_eq!(batch.dropped_for(drop_reason::CLOSED), 1);
    let again = runtime.block_on(batch.shutdown(Duration::from_secs(1)));
    assert_eq!((again.exported, again.lost), (0, 0));
}

#[test]
fn shutdown_past_the_deadline_reports_what_was_lost() {
    let runtime = stalled_runtime();
    let exporter = ScriptedExporter::new("scripted", [], Step::Hang);
    let batch = BatchExporter::builder(exporter.clone())
        .max_queue_size(100)
        .max_batch_size(10)
        .scheduled_delay(NEVER)
        .export_timeout(Duration::from_secs(60))
        .runtime(runtime.handle().clone())
        .build();
    for n in 0..30 {
        batch.collect(span(n));
    }
    let report = runtime.block_on(guarded(batch.shutdown(Duration::from_millis(200))));
    assert_eq!((report.exported, report.lost), (0, 30));
    assert!(report.deadline_reached);
    assert_eq!(batch.dropped_for(drop_reason::SHUTDOWN_DEADLINE), 30);
    assert_eq!(
        exporter.attempts(),
        1,
        "the first batch hung until the deadline"
    );
}

#[test]
fn collects_from_plain_threads_without_a_runtime() {
    let exporter = ScriptedExporter::delivering();
    // Built outside any runtime: the export task gets a thread of its own.
    let batch = BatchExporter::builder(exporter.clone())
        .max_batch_size(16)
        .scheduled_delay(Duration::from_millis(10))
        .build();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let collector: Arc<dyn Collector> = batch.clone();
            std::thread::spawn(move || {
                for n in 0..50 {
                    collector.collect(span(t * 50 + n));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("collecting thread");
    }
    let report = batch
        .shutdown_blocking(Duration::from_secs(10))
        .expect("outside a runtime");
    assert_eq!(batch.exported(), 200);
    assert_eq!(report.lost, 0);
    let mut delivered = exporter.delivered_ids();
    delivered.sort();
    assert_eq!(delivered, ids(0..200));
}

#[tokio::test]
async fn shutdown_blocking_refuses_to_block_a_runtime_thread() {
    let batch = BatchExporter::builder(ScriptedExporter::delivering()).build();
    assert!(matches!(
        batch.shutdown_blocking(Duration::from_secs(1)),
        Err(ShutdownError::InsideRuntime)
    ));
    guarded(batch.shutdown(Duration::from_secs(10))).await;
}

#[test]
fn dropped_without_shutdown_counts_the_queue_as_lost() {
    let runtime = stalled_runtime();
    let mut registry = Registry::default();
    let metrics = ExporterMetrics::register(&mut registry);
    let exporter = ScriptedExporter::delivering();
    let batch = BatchExporter::builder(exporter.clone())
        .scheduled_delay(NEVER)
        .metrics(&metrics)
        .runtime(runtime.handle().clone())
        .build();
    for n in 0..7 {
        batch.collect(span(n));
    }
    drop(batch);
    let text = scrape(&registry);
    assert!(
        text.contains(
            r#"trace_exporter_spans_dropped_total{exporter="scripted",reason="not_shut_down"} 7"#
        ),
        "{text}"
    );
    // The task, told by the drop, shuts the exporter down and ends.
    runtime.block_on(eventually("the exporter shut down", || {
        exporter.log().shutdowns == 1
    }));
    assert!(exporter.delivered_ids().is_empty());
}

#[test]
fn a_runtime_ending_without_shutdown_counts_what_the_task_held() {
    let runtime = stalled_runtime();
    let exporter = ScriptedExporter::new("scripted", [], Step::Hang);
    let batch = BatchExporter::builder(exporter.clone())
        .max_batch_size(10)
        .scheduled_delay(NEVER)
        .runtime(runtime.handle().clone())
        .build();
    for n in 0..15 {
        batch.collect(span(n));
    }
    runtime.block_on(eventually("the first export call", || {
        exporter.attempts() == 1
    }));
    // Ten spans in the hanging call, five still queued.
    drop(runtime);
    assert_eq!(batch.dropped_for(drop_reason::NOT_SHUT_DOWN), 15);
    batch.collect(span(15));
    assert_eq!(batch.dropped_for(drop_reason::CLOSED), 1);
    assert_eq!(batch.dropped(), 16);
}

#[test]
fn config_sets_every_setting() {
    let config = BatchConfig {
        max_queue_size: 64,
        max_batch_size: 100,
        scheduled_delay: Duration::from_millis(250),
        export_timeout: Duration::from_secs(3),
        max_retry_time: Duration::from_secs(7),
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_secs(1),
    };
    let runtime = stalled_runtime();
    let batch = BatchExporter::builder(ScriptedExporter::delivering())
        .config(config.clone())
        .runtime(runtime.handle().clone())
        .build();
    // The batch size is brought down to the queue size.
    assert_eq!(
        batch.config(),
        &BatchConfig {
            max_batch_size: 64,
            ..config
        }
    );
    runtime.block_on(batch.shutdown(Duration::from_secs(1)));
}

fn scrape(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("encodes");
    text
}

#[test]
fn metrics_are_shared_by_exporters_and_labelled_by_kind() {
    let runtime = stalled_runtime();
    let mut registry = Registry::default();
    let metrics = ExporterMetrics::register(&mut registry);

    let a = BatchExporter::builder(ScriptedExporter::new("kind_a", [], Step::Deliver))
        .max_queue_size(10)
        .max_batch_size(5)
        .scheduled_delay(NEVER)
        .metrics(&metrics)
        .runtime(runtime.handle().clone())
        .build();
    let b = BatchExporter::builder(ScriptedExporter::new(
        "kind_b",
        [Step::Reject],
        Step::Deliver,
    ))
    .scheduled_delay(NEVER)
    .metrics(&metrics)
    .runtime(runtime.handle().clone())
    .build();
    for n in 0..12 {
        a.collect(span(n));
    }
    for n in 0..3 {
        b.collect(span(n));
    }
    let text = scrape(&registry);
    assert!(
        text.contains(
            r#"trace_exporter_spans_dropped_total{exporter="kind_a",reason="queue_full"} 2"#
        ),
        "{text}"
    );

    runtime.block_on(async {
        guarded(b.force_flush()).await;
        guarded(a.shutdown(Duration::from_secs(10))).await;
    });
    let text = scrape(&registry);
    for line in [
        "# TYPE trace_exporter_spans_exported counter",
        r#"trace_exporter_spans_exported_total{exporter="kind_a"} 10"#,
        r#"trace_exporter_spans_exported_total{exporter="kind_b"} 0"#,
        "# TYPE trace_exporter_spans_dropped counter",
        r#"trace_exporter_spans_dropped_total{exporter="kind_a",reason="queue_full"} 2"#,
        r#"trace_exporter_spans_dropped_total{exporter="kind_a",reason="rejected"} 0"#,
        r#"trace_exporter_spans_dropped_total{exporter="kind_b",reason="rejected"} 3"#,
        r#"trace_exporter_spans_dropped_total{exporter="kind_b",reason="retries_exhausted"} 0"#,
        "# TYPE trace_exporter_failed_batches counter",
        r#"trace_exporter_failed_batches_total{exporter="kind_a"} 0"#,
        r#"trace_exporter_failed_batches_total{exporter="kind_b"} 1"#,
        "# TYPE trace_exporter_queue_length gauge",
        r#"trace_exporter_queue_length{exporter="kind_a"} 0"#,
        "# TYPE trace_exporter_export_duration_seconds histogram",
        r#"trace_exporter_export_duration_seconds_count{exporter="kind_a"} 2"#,
        r#"trace_exporter_export_duration_seconds_count{exporter="kind_b"} 1"#,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in\n{text}"
        );
    }
    assert_eq!(
        text.matches("# TYPE trace_exporter_spans_exported counter")
            .count(),
        1
    );
    runtime.block_on(b.shutdown(Duration::from_secs(1)));
}
