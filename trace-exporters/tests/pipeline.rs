//! The batching pipeline against in-test exporters that record batches and follow scripts.
//!
//! Every case runs twice: in `spans` mode the exporter takes `export(&[Span])` calls; in
//! `encoded` mode it offers a span encoder (the span id's 8 bytes), so `collect` encodes each
//! span into its thread's chunk and the exporter gets `export_encoded` calls, which it decodes
//! back into span ids. Where a case's exact expectation differs between the modes, the case says
//! why. The `encoded` module also holds the cases only encoded mode has.
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

use support::{Mode, ScriptedExporter, Step, eventually, guarded, ids, span, stalled_runtime};

mod support {
    //! In-test exporters and spans for the pipeline tests.

    #![allow(dead_code, unreachable_pub)]

    use std::collections::VecDeque;
    use std::future::Future;
    use std::sync::{Arc, Mutex, MutexGuard};
    use std::time::{Duration, Instant, SystemTime};

    use trace_core::{Span, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
    use trace_exporters::{
        EncodedSpans, ExportError, ExportFuture, ExportOutcome, SpanEncodeFn, SpanExporter,
    };

    /// How the pipeline hands spans to the exporter.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Mode {
        /// `export(&[Span])`: the exporter offers no span encoder.
        Spans,
        /// `export_encoded`: the exporter's span encoder writes each span id's 8 bytes.
        Encoded,
    }

    /// What the exporter does with one call.
    #[derive(Debug, Clone, Copy)]
    pub enum Step {
        Deliver,
        DeliverDropping(u64, &'static str),
        Retry(Option<Duration>),
        Reject,
        Hang,
        /// Panics while starting the call (an exporter that encodes before returning its future).
        PanicStarting,
        /// Returns a future that panics when polled.
        PanicPolled,
    }

    /// One export call as the exporter saw it.
    #[derive(Debug, Clone)]
    pub struct Attempt {
        pub at: Instant,
        pub spans: Vec<SpanId>,
        /// In encoded mode, the batch's chunks, byte for byte.
        pub chunks: Option<Vec<Vec<u8>>>,
    }

    #[derive(Debug, Default)]
    pub struct Log {
        pub attempts: Vec<Attempt>,
        pub delivered: Vec<Vec<SpanId>>,
        /// In encoded mode, every delivered chunk's span ids.
        pub delivered_chunks: Vec<Vec<SpanId>>,
        pub shutdowns: u32,
    }

    /// Follows a script of steps, then `otherwise`; records every call.
    #[derive(Debug, Clone)]
    pub struct ScriptedExporter {
        kind: &'static str,
        encoder: Option<SpanEncodeFn>,
        script: Arc<Mutex<VecDeque<Step>>>,
        otherwise: Step,
        log: Arc<Mutex<Log>>,
    }

    impl ScriptedExporter {
        pub fn new(
            mode: Mode,
            kind: &'static str,
            script: impl IntoIterator<Item = Step>,
            otherwise: Step,
        ) -> Self {
            Self {
                kind,
                encoder: match mode {
                    Mode::Spans => None,
                    Mode::Encoded => Some(encode_id),
                },
                script: Arc::new(Mutex::new(script.into_iter().collect())),
                otherwise,
                log: Arc::default(),
            }
        }

        pub fn delivering(mode: Mode) -> Self {
            Self::new(mode, "scripted", [], Step::Deliver)
        }

        /// Encoded mode with this span encoder instead of [`encode_id`]; it must still write
        /// each span's id as 8 bytes, as the decoding expects.
        pub fn encoding_with(mut self, encoder: SpanEncodeFn) -> Self {
            self.encoder = Some(encoder);
            self
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

        /// Checks that the exporter was called, and only with encoded batches.
        pub fn assert_all_encoded(&self) {
            let log = self.log();
            assert!(!log.attempts.is_empty(), "no export call");
            assert!(
                log.attempts.iter().all(|a| a.chunks.is_some()),
                "an export call with spans rather than encoded spans"
            );
        }

        /// Every delivered chunk's span ids (encoded mode), sorted by their first span: the
        /// order chunks go in is not promised, what each holds is.
        pub fn delivered_chunks_sorted(&self) -> Vec<Vec<SpanId>> {
            let mut chunks = self.log().delivered_chunks.clone();
            chunks.sort();
            chunks
        }

        /// Records the call and answers it with the script's next step.
        fn follow(
            &self,
            spans: Vec<SpanId>,
            chunks: Option<Vec<Vec<u8>>>,
        ) -> ExportFuture<'static> {
            let step = self
                .script
                .lock()
                .expect("script lock")
                .pop_front()
                .unwrap_or(self.otherwise);
            let mut log = self.log();
            log.attempts.push(Attempt {
                at: Instant::now(),
                spans: spans.clone(),
                chunks: chunks.clone(),
            });
            let deliver = |log: &mut Log| {
                log.delivered.push(spans);
                let chunks = chunks.iter().flatten().map(|chunk| chunk_ids(chunk));
                log.delivered_chunks.extend(chunks);
            };
            let result = match step {
                Step::Deliver => {
                    deliver(&mut log);
                    Ok(ExportOutcome::delivered())
                }
                Step::DeliverDropping(count, reason) => {
                    deliver(&mut log);
                    Ok(ExportOutcome::with_dropped(count, reason))
                }
                Step::Retry(retry_after) => Err(ExportError::Retryable {
                    message: "try later".into(),
                    retry_after,
                }),
                Step::Reject => Err(ExportError::permanent("bad batch")),
                Step::Hang => return Box::pin(std::future::pending()),
                Step::PanicStarting => {
                    drop(log);
                    panic!("the exporter has a bug")
                }
                Step::PanicPolled => {
                    return Box::pin(async { panic!("the exporter's call has a bug") });
                }
            };
            Box::pin(async move { result })
        }
    }

    impl SpanExporter for ScriptedExporter {
        fn kind(&self) -> &'static str {
            self.kind
        }

        fn export<'a>(&'a mut self, batch: &'a [Span]) -> ExportFuture<'a> {
            assert!(
                self.encoder.is_none(),
                "an exporter with a span encoder was given {} spans to encode",
                batch.len()
            );
            self.follow(batch.iter().map(|s| s.span_id).collect(), None)
        }

        fn span_encoder(&self) -> Option<SpanEncodeFn> {
            self.encoder
        }

        fn export_encoded<'a>(&'a mut self, batch: &'a EncodedSpans) -> ExportFuture<'a> {
            assert!(self.encoder.is_some(), "encoded spans without an encoder");
            let (spans, chunks) = decode(batch);
            self.follow(spans, Some(chunks))
        }

        fn shutdown(&mut self) -> ExportFuture<'_> {
            self.log().shutdowns += 1;
            Box::pin(async { Ok(ExportOutcome::delivered()) })
        }
    }

    /// The span encoder of encoded mode: the span id's 8 bytes.
    pub fn encode_id(span: &Span, out: &mut Vec<u8>) {
        out.extend_from_slice(&span.span_id.to_bytes());
    }

    /// The span ids a batch written by [`encode_id`] holds, in order, and its chunks' bytes.
    /// Panics (failing the test) on a batch that is not whole 8-byte spans.
    pub fn decode(batch: &EncodedSpans) -> (Vec<SpanId>, Vec<Vec<u8>>) {
        let chunks: Vec<Vec<u8>> = batch.chunks().map(<[u8]>::to_vec).collect();
        assert_eq!(batch.len_bytes(), 8 * batch.spans(), "8 bytes per span");
        assert_eq!(
            chunks.iter().map(Vec::len).sum::<usize>(),
            batch.len_bytes()
        );
        assert_eq!(batch.is_empty(), batch.spans() == 0);
        let spans: Vec<SpanId> = chunks.iter().flat_map(|chunk| chunk_ids(chunk)).collect();
        assert_eq!(spans.len(), batch.spans());
        (spans, chunks)
    }

    /// The span ids in one chunk written by [`encode_id`].
    pub fn chunk_ids(chunk: &[u8]) -> Vec<SpanId> {
        assert!(!chunk.is_empty(), "an empty chunk in a batch");
        assert_eq!(chunk.len() % 8, 0, "a chunk holds whole spans");
        chunk
            .chunks_exact(8)
            .map(|bytes| {
                SpanId::from_bytes(bytes.try_into().expect("8 bytes")).expect("non-zero id")
            })
            .collect()
    }

    /// What [`encode_id`] writes for these spans, one after another.
    pub fn encoded(ids: &[SpanId]) -> Vec<u8> {
        ids.iter().flat_map(|id| id.to_bytes()).collect()
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
            dropped: Default::default(),
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

/// One `#[tokio::test]` per async case, calling it in `$mode`.
macro_rules! async_cases {
    ($mode:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                super::$name($mode).await;
            }
        )*
    };
}

/// One `#[test]` per blocking case, calling it in `$mode`.
macro_rules! blocking_cases {
    ($mode:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                super::$name($mode);
            }
        )*
    };
}

/// Every case below that runs in both modes, as tests of the module it is invoked in.
macro_rules! every_case {
    ($mode:expr) => {
        async_cases!($mode;
            batches_by_count,
            batches_by_time,
            retry_after_is_honoured_and_the_batch_delivered_once,
            retryable_errors_back_off_then_deliver,
            hanging_exporter_times_out_is_retried_then_dropped,
            retry_after_beyond_the_budget_gives_up_at_once,
            permanent_error_drops_the_batch_without_retrying,
            spans_the_exporter_drops_are_counted_under_its_reason,
            a_panicking_exporter_loses_its_batch_and_the_task_goes_on,
            force_flush_delivers_everything_queued,
            shutdown_blocking_refuses_to_block_a_runtime_thread,
        );
        blocking_cases!($mode;
            queue_overflow_drops_exactly_the_excess,
            shutdown_delivers_a_full_queue_within_the_deadline,
            shutdown_past_the_deadline_reports_what_was_lost,
            collects_from_plain_threads_without_a_runtime,
            dropped_without_shutdown_counts_the_queue_as_lost,
            a_runtime_ending_without_shutdown_counts_what_the_task_held,
            config_sets_every_setting,
            metrics_are_shared_by_exporters_and_labelled_by_kind,
        );
    };
}

/// A long scheduled delay, so only a full batch (or a flush) sends anything.
const NEVER: Duration = Duration::from_secs(3600);

// In encoded mode a thread's chunk holds min(32, max_batch_size) spans before it is handed to the
// export task. With a batch size of 10 that is 10, so the batches below come out as in spans
// mode: two chunks are handed over (waking the task) and the last 5 spans sit in the thread's
// partly filled chunk, which the flush takes.
async fn batches_by_count(mode: Mode) {
    let exporter = ScriptedExporter::delivering(mode);
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

async fn batches_by_time(mode: Mode) {
    let exporter = ScriptedExporter::delivering(mode);
    let batch = BatchExporter::builder(exporter.clone())
        .max_batch_size(512)
        .scheduled_delay(Duration::from_millis(20))
        .build();
    for n in 0..3 {
        batch.collect(span(n));
    }
    // Far fewer spans than a batch (in encoded mode, than a chunk): only the scheduled delay can
    // send them.
    eventually("the scheduled export", || {
        exporter.delivered_ids().len() == 3
    })
    .await;
    assert_eq!(exporter.delivered_ids(), ids(0..3));
    assert_eq!(batch.exported(), 3);
    assert_eq!(batch.dropped(), 0);
}

fn queue_overflow_drops_exactly_the_excess(mode: Mode) {
    let runtime = stalled_runtime();
    let exporter = ScriptedExporter::delivering(mode);
    let batch = BatchExporter::builder(exporter.clone())
        .max_queue_size(100)
        .max_batch_size(50)
        .scheduled_delay(NEVER)
        .runtime(runtime.handle().clone())
        .build();
    for n in 0..150 {
        batch.collect(span(n));
    }
    let report = match mode {
        Mode::Spans => {
            assert_eq!(batch.queue_len(), 100);
            assert_eq!(batch.dropped_for(drop_reason::QUEUE_FULL), 50);
            assert_eq!(batch.dropped(), 50);

            let report = runtime.block_on(guarded(batch.shutdown(Duration::from_secs(10))));
            assert_eq!((report.exported, report.lost), (100, 0));
            assert_eq!(exporter.delivered_ids(), ids(0..100));
            report
        }
        // Chunks of 32 (the batch size is 50). The limit applies to the chunks handed over, whole:
        // spans 0..96 are three chunks ready (96 spans); the fourth chunk (96..128) would take
        // the ready spans to 128 > 100 and is dropped whole; spans 128..150 sit in the thread's
        // partly filled chunk, outside the limit until it is handed over. So 118 wait and 32
        // are dropped, where spans mode keeps exactly 100.
        Mode::Encoded => {
            assert_eq!(batch.queue_len(), 96 + 22);
            assert_eq!(batch.dropped_for(drop_reason::QUEUE_FULL), 32);
            assert_eq!(batch.dropped(), 32);

            let report = runtime.block_on(guarded(batch.shutdown(Duration::from_secs(10))));
            assert_eq!((report.exported, report.lost), (118, 0));
            // Batches hold whole chunks and at most 50 spans: 32 + 32 would be 64, 32 + 22
            // would be 54, so every chunk goes alone (in an order not promised: the partly
            // filled chunk may go before a handed-over one that did not fit a batch).
            assert_eq!(
                exporter.delivered_chunks_sorted(),
                [ids(0..32), ids(32..64), ids(64..96), ids(128..150)]
            );
            let mut sizes = exporter.delivered_batch_sizes();
            sizes.sort_unstable();
            assert_eq!(sizes, [22, 32, 32, 32]);
            report
        }
    };
    assert!(!report.deadline_reached);
    assert_eq!(batch.queue_len(), 0);
}

async fn retry_after_is_honoured_and_the_batch_delivered_once(mode: Mode) {
    let retry_after = Duration::from_millis(300);
    let exporter = ScriptedExporter::new(
        mode,
        "scripted",
        [Step::Retry(Some(retry_after))],
        Step::Deliver,
    );
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

async fn retryable_errors_back_off_then_deliver(mode: Mode) {
    let exporter = ScriptedExporter::new(
        mode,
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

async fn hanging_exporter_times_out_is_retried_then_dropped(mode: Mode) {
    let exporter = ScriptedExporter::new(mode, "scripted", [], Step::Hang);
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

async fn retry_after_beyond_the_budget_gives_up_at_once(mode: Mode) {
    // Duration::MAX: a peer's absurd Retry-After must not overflow the clock.
    for retry_after in [Duration::from_secs(60), Duration::MAX] {
        let exporter = ScriptedExporter::new(mode, "scripted", [], Step::Retry(Some(retry_after)));
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

async fn permanent_error_drops_the_batch_without_retrying(mode: Mode) {
    let exporter = ScriptedExporter::new(mode, "scripted", [Step::Reject], Step::Deliver);
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
    assert_eq!(exporter.delivered_ids(), ids(4..5));
}

/// An exporter that panics (starting a call, or while it runs) loses that batch, counted, and the
/// export task goes on with the next one instead of dying with everything still queued.
async fn a_panicking_exporter_loses_its_batch_and_the_task_goes_on(mode: Mode) {
    let exporter = ScriptedExporter::new(
        mode,
        "scripted",
        [Step::PanicStarting, Step::PanicPolled],
        Step::Deliver,
    );
    let batch = BatchExporter::builder(exporter.clone())
        .scheduled_delay(NEVER)
        .build();
    for round in 0..3 {
        for n in 0..4 {
            batch.collect(span(round * 4 + n));
        }
        guarded(batch.force_flush()).await;
    }
    assert_eq!(batch.dropped_for(drop_reason::EXPORTER_PANICKED), 8);
    assert_eq!(batch.failed_batches(), 2);
    assert_eq!(batch.exported(), 4);
    assert_eq!(exporter.delivered_ids(), ids(8..12));
    let report = guarded(batch.shutdown(Duration::from_secs(10))).await;
    assert_eq!((report.exported, report.lost), (0, 0));
}

async fn spans_the_exporter_drops_are_counted_under_its_reason(mode: Mode) {
    let exporter = ScriptedExporter::new(
        mode,
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

async fn force_flush_delivers_everything_queued(mode: Mode) {
    let exporter = ScriptedExporter::delivering(mode);
    let batch = BatchExporter::builder(exporter.clone())
        .max_batch_size(100)
        .scheduled_delay(NEVER)
        .build();
    for n in 0..1000 {
        batch.collect(span(n));
    }
    let report = guarded(batch.force_flush()).await;
    assert_eq!((report.exported, report.dropped), (1000, 0));
    assert_eq!(batch.queue_len(), 0);
    assert_eq!(batch.exported(), 1000);
    let mut delivered = exporter.delivered_ids();
    delivered.sort();
    assert_eq!(delivered, ids(0..1000));
    assert!(exporter.delivered_batch_sizes().iter().all(|&n| n <= 100));
    if mode == Mode::Encoded {
        // Batches come in whole chunks: the 31 chunks of 32 the thread handed over and the
        // 8 spans of its partly filled chunk, each chunk in the order its spans were collected
        // (which batch each chunk went in, and so the batch sizes and the chunks' order, depends
        // on how the task packs them; at most 100 spans a batch, checked above).
        let mut chunks: Vec<_> = (0..31).map(|k| ids(32 * k..32 * k + 32)).collect();
        chunks.push(ids(992..1000));
        assert_eq!(exporter.delivered_chunks_sorted(), chunks);
    }
}

fn shutdown_delivers_a_full_queue_within_the_deadline(mode: Mode) {
    let runtime = stalled_runtime();
    let exporter = ScriptedExporter::delivering(mode);
    let batch = BatchExporter::builder(exporter.clone())
        .max_queue_size(100)
        .max_batch_size(10)
        .scheduled_delay(NEVER)
        .runtime(runtime.handle().clone())
        .build();
    for n in 0..100 {
        batch.collect(span(n));
    }
    // In encoded mode: ten chunks of 10, all handed over, exactly at the limit.
    assert_eq!(batch.queue_len(), 100);
    assert_eq!(batch.dropped(), 0);
    let report = runtime.block_on(guarded(batch.shutdown(Duration::from_secs(10))));
    assert_eq!((report.exported, report.lost), (100, 0));
    assert!(!report.deadline_reached);
    assert_eq!(exporter.delivered_batch_sizes(), [10; 10]);
    assert_eq!(exporter.delivered_ids(), ids(0..100));
    assert_eq!(exporter.log().shutdowns, 1);

    // Closed: later spans are dropped and counted, a second shutdown does nothing.
    batch.collect(span(100));
    assert_eq!(batch.dropped_for(drop_reason::CLOSED), 1);
    assert_eq!(batch.queue_len(), 0);
    let again = runtime.block_on(batch.shutdown(Duration::from_secs(1)));
    assert_eq!((again.exported, again.lost), (0, 0));
}

fn shutdown_past_the_deadline_reports_what_was_lost(mode: Mode) {
    let runtime = stalled_runtime();
    let exporter = ScriptedExporter::new(mode, "scripted", [], Step::Hang);
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
    assert_eq!(exporter.log().attempts[0].spans, ids(0..10));
}

fn collects_from_plain_threads_without_a_runtime(mode: Mode) {
    let exporter = ScriptedExporter::delivering(mode);
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
    assert!(exporter.delivered_batch_sizes().iter().all(|&n| n <= 16));
}

async fn shutdown_blocking_refuses_to_block_a_runtime_thread(mode: Mode) {
    let batch = BatchExporter::builder(ScriptedExporter::delivering(mode)).build();
    assert!(matches!(
        batch.shutdown_blocking(Duration::from_secs(1)),
        Err(ShutdownError::InsideRuntime)
    ));
    guarded(batch.shutdown(Duration::from_secs(10))).await;
}

// In encoded mode the 7 spans sit in the thread's partly filled chunk (a chunk holds 32): the
// drop counts them all the same.
fn dropped_without_shutdown_counts_the_queue_as_lost(mode: Mode) {
    let runtime = stalled_runtime();
    let mut registry = Registry::default();
    let metrics = ExporterMetrics::register(&mut registry);
    let exporter = ScriptedExporter::delivering(mode);
    let batch = BatchExporter::builder(exporter.clone())
        .scheduled_delay(NEVER)
        .metrics(&metrics)
        .runtime(runtime.handle().clone())
        .build();
    for n in 0..7 {
        batch.collect(span(n));
    }
    assert_eq!(batch.queue_len(), 7);
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

// In encoded mode, chunks of 10: the first was handed over (and is the batch that hangs), the
// other 5 spans sit in the thread's partly filled chunk; the same 15 are lost.
fn a_runtime_ending_without_shutdown_counts_what_the_task_held(mode: Mode) {
    let runtime = stalled_runtime();
    let exporter = ScriptedExporter::new(mode, "scripted", [], Step::Hang);
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
    assert_eq!(exporter.log().attempts[0].spans, ids(0..10));
    // Ten spans in the hanging call, five still queued.
    assert_eq!(batch.queue_len(), 5);
    drop(runtime);
    assert_eq!(batch.dropped_for(drop_reason::NOT_SHUT_DOWN), 15);
    assert_eq!(batch.queue_len(), 0);
    batch.collect(span(15));
    assert_eq!(batch.dropped_for(drop_reason::CLOSED), 1);
    assert_eq!(batch.dropped(), 16);
}

fn config_sets_every_setting(mode: Mode) {
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
    let batch = BatchExporter::builder(ScriptedExporter::delivering(mode))
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

fn metrics_are_shared_by_exporters_and_labelled_by_kind(mode: Mode) {
    let runtime = stalled_runtime();
    let mut registry = Registry::default();
    let metrics = ExporterMetrics::register(&mut registry);

    let a = BatchExporter::builder(ScriptedExporter::new(mode, "kind_a", [], Step::Deliver))
        .max_queue_size(10)
        .max_batch_size(5)
        .scheduled_delay(NEVER)
        .metrics(&metrics)
        .runtime(runtime.handle().clone())
        .build();
    let b = BatchExporter::builder(ScriptedExporter::new(
        mode,
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
    // Spans mode: the queue holds 10 of a's 12 spans and drops 2, and its shutdown sends two
    // batches of 5. Encoded mode (chunks of 5): two chunks are handed over, filling the queue to
    // its limit of 10, and the last 2 spans sit in the thread's partly filled chunk, which the
    // limit does not cover until it is handed over; so nothing is dropped, and the shutdown
    // sends three batches (5, 5 and the partial 2). Encoded-mode drops are checked in
    // `encoded::queue_overflow_drops_whole_chunks`.
    let (queue_full, exported, a_batches) = match mode {
        Mode::Spans => (2, 10, 2),
        Mode::Encoded => (0, 12, 3),
    };
    let text = scrape(&registry);
    let queue_full_line = format!(
        r#"trace_exporter_spans_dropped_total{{exporter="kind_a",reason="queue_full"}} {queue_full}"#
    );
    assert!(text.lines().any(|l| l == queue_full_line), "{text}");

    runtime.block_on(async {
        guarded(b.force_flush()).await;
        guarded(a.shutdown(Duration::from_secs(10))).await;
    });
    let text = scrape(&registry);
    for line in [
        "# TYPE trace_exporter_spans_exported counter".to_owned(),
        format!(r#"trace_exporter_spans_exported_total{{exporter="kind_a"}} {exported}"#),
        r#"trace_exporter_spans_exported_total{exporter="kind_b"} 0"#.to_owned(),
        "# TYPE trace_exporter_spans_dropped counter".to_owned(),
        queue_full_line,
        r#"trace_exporter_spans_dropped_total{exporter="kind_a",reason="rejected"} 0"#.to_owned(),
        r#"trace_exporter_spans_dropped_total{exporter="kind_b",reason="rejected"} 3"#.to_owned(),
        r#"trace_exporter_spans_dropped_total{exporter="kind_b",reason="retries_exhausted"} 0"#
            .to_owned(),
        "# TYPE trace_exporter_failed_batches counter".to_owned(),
        r#"trace_exporter_failed_batches_total{exporter="kind_a"} 0"#.to_owned(),
        r#"trace_exporter_failed_batches_total{exporter="kind_b"} 1"#.to_owned(),
        "# TYPE trace_exporter_queue_length gauge".to_owned(),
        r#"trace_exporter_queue_length{exporter="kind_a"} 0"#.to_owned(),
        "# TYPE trace_exporter_export_duration_seconds histogram".to_owned(),
        format!(r#"trace_exporter_export_duration_seconds_count{{exporter="kind_a"}} {a_batches}"#),
        r#"trace_exporter_export_duration_seconds_count{exporter="kind_b"} 1"#.to_owned(),
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

/// The cases with an exporter that takes spans.
mod spans {
    every_case!(super::Mode::Spans);
}

/// The cases with an exporter that takes encoded spans, and the cases only that mode has.
///
/// A thread's chunk holds min(32, max_batch_size) spans before it is handed to the export task.
mod encoded {
    use std::collections::HashSet;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Barrier};
    use std::time::{Duration, Instant};

    use prometheus_client::registry::Registry;
    use trace_core::{Collector, Span, SpanId};
    use trace_exporters::pipeline::drop_reason;
    use trace_exporters::{
        BatchExporter, EncodedSpans, ExportError, ExportFuture, ExportOutcome, ExporterMetrics,
        SpanEncodeFn, SpanExporter,
    };

    use super::support::{
        Mode, ScriptedExporter, Step, encoded, eventually, guarded, ids, span, stalled_runtime,
    };
    use super::{NEVER, scrape};

    every_case!(super::Mode::Encoded);

    #[test]
    fn spans_from_more_threads_than_parts_are_delivered_exactly_once() {
        const THREADS: u64 = 12;
        const PER_THREAD: u64 = 500;
        const TOTAL: u64 = THREADS * PER_THREAD;
        // Two workers, so the export task runs (on full-batch wake-ups) while threads collect.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let exporter = ScriptedExporter::delivering(Mode::Encoded);
        let batch = BatchExporter::builder(exporter.clone())
            .max_queue_size(8192)
            .max_batch_size(1000)
            .scheduled_delay(NEVER)
            .runtime(runtime.handle().clone())
            .build();
        // 12 threads share the 8 parts: some chunks are filled by two threads at once.
        let start = Arc::new(Barrier::new(THREADS as usize));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let collector: Arc<dyn Collector> = batch.clone();
                let start = start.clone();
                std::thread::spawn(move || {
                    start.wait();
                    for n in 0..PER_THREAD {
                        collector.collect(span(t * PER_THREAD + n));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("collecting thread");
        }
        assert_eq!(batch.dropped(), 0, "the queue never filled");

        let report = runtime.block_on(guarded(batch.force_flush()));
        assert_eq!(report.dropped, 0);
        assert_eq!(batch.exported(), TOTAL);
        assert_eq!(batch.queue_len(), 0);

        exporter.assert_all_encoded();
        let delivered = exporter.delivered_ids();
        let unique: HashSet<SpanId> = delivered.iter().copied().collect();
        assert_eq!(unique.len(), delivered.len(), "a span was delivered twice");
        let mut delivered = delivered;
        delivered.sort();
        assert_eq!(delivered, ids(0..TOTAL));
        assert!(exporter.delivered_batch_sizes().iter().all(|&n| n <= 1000));
        // Only the set of spans is checked across chunks: no order is promised, even among one
        // thread's chunks (a thread that finds its part's chunk taken starts another, and a
        // batch with no room for the next ready chunk may take a partly filled one first). But
        // within a chunk, which threads sharing a part may both have written to, each thread's
        // spans are in the order it collected them.
        for chunk in exporter.delivered_chunks_sorted() {
            for t in 0..THREADS {
                let of_thread: Vec<SpanId> = chunk
                    .iter()
                    .copied()
                    .filter(|id| (id.to_u64() - 1) / PER_THREAD == t)
                    .collect();
                assert!(of_thread.is_sorted(), "{of_thread:?}");
            }
        }

        let shutdown = runtime.block_on(guarded(batch.shutdown(Duration::from_secs(10))));
        assert_eq!((shutdown.exported, shutdown.lost), (0, 0));
    }

    #[tokio::test]
    async fn a_full_batch_wake_up_takes_only_handed_over_chunks() {
        let exporter = ScriptedExporter::delivering(Mode::Encoded);
        let batch = BatchExporter::builder(exporter.clone())
            .max_batch_size(64)
            .scheduled_delay(NEVER)
            .build();
        // Chunks of 32: the second hand-over makes 64 ready, a full batch, and wakes the task.
        for n in 0..64 {
            batch.collect(span(n));
        }
        eventually("the full batch", || exporter.attempts() == 1).await;
        exporter.assert_all_encoded();
        assert_eq!(exporter.delivered_batch_sizes(), [64]);
        assert_eq!(exporter.delivered_ids(), ids(0..64));
        {
            let log = exporter.log();
            let chunks = log.attempts[0].chunks.as_ref().expect("encoded");
            assert_eq!(
                *chunks,
                [encoded(&ids(0..32)), encoded(&ids(32..64))],
                "two whole chunks"
            );
        }

        // Ten more stay in the thread's chunk: no wake-up, and no timer for an hour.
        for n in 64..74 {
            batch.collect(span(n));
        }
        assert_eq!(batch.queue_len(), 10);
        // Give the task every chance to run; it has nothing to take.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(batch.queue_len(), 10);
        assert_eq!(exporter.attempts(), 1);

        let report = guarded(batch.force_flush()).await;
        assert_eq!((report.exported, report.dropped), (10, 0));
        assert_eq!(exporter.delivered_batch_sizes(), [64, 10]);
        assert_eq!(exporter.delivered_ids(), ids(0..74));
        assert_eq!(batch.queue_len(), 0);
    }

    #[tokio::test]
    async fn a_queue_limit_off_the_chunk_size_still_wakes_the_task_for_full_batches() {
        // Chunks of 32 against a limit of 100: at most 96 spans are ever ready, so 96 (three
        // whole chunks) is what makes a full batch, not the configured 100.
        let exporter = ScriptedExporter::delivering(Mode::Encoded);
        let batch = BatchExporter::builder(exporter.clone())
            .max_queue_size(100)
            .max_batch_size(100)
            .scheduled_delay(NEVER)
            .build();
        for n in 0..96 {
            batch.collect(span(n));
        }
        eventually("the full batch", || exporter.attempts() == 1).await;
        assert_eq!(exporter.delivered_batch_sizes(), [96]);
        assert_eq!(exporter.delivered_ids(), ids(0..96));
        assert_eq!(batch.dropped(), 0);
        let report = guarded(batch.shutdown(Duration::from_secs(10))).await;
        assert_eq!((report.exported, report.lost), (0, 0), "{report:?}");
    }

    #[tokio::test]
    async fn a_full_batch_wake_up_leaves_the_partial_chunk_to_the_timer() {
        let delay = Duration::from_millis(200);
        let exporter = ScriptedExporter::delivering(Mode::Encoded);
        let built = Instant::now();
        let batch = BatchExporter::builder(exporter.clone())
            .max_batch_size(64)
            .scheduled_delay(delay)
            .build();
        // All 74 are collected before the task first runs: it wakes for the full batch (two
        // chunks), and only its timer takes the 10 in the partly filled chunk.
        for n in 0..74 {
            batch.collect(span(n));
        }
        eventually("the timer's batch", || exporter.attempts() == 2).await;
        exporter.assert_all_encoded();
        assert_eq!(exporter.delivered_batch_sizes(), [64, 10]);
        assert_eq!(exporter.delivered_ids(), ids(0..74));
        let log = exporter.log();
        let waited = log.attempts[1].at - built;
        assert!(waited >= delay, "the partial chunk went after {waited:?}");
        drop(log);
        assert_eq!(batch.queue_len(), 0);
        assert_eq!(batch.exported(), 74);
    }

    #[tokio::test]
    async fn a_retried_batch_is_sent_again_with_the_same_bytes() {
        let exporter = ScriptedExporter::new(
            Mode::Encoded,
            "scripted",
            [
                Step::Retry(None),
                Step::Retry(Some(Duration::from_millis(1))),
            ],
            Step::Deliver,
        );
        let batch = BatchExporter::builder(exporter.clone())
            .max_batch_size(64)
            .scheduled_delay(NEVER)
            .backoff(Duration::from_millis(1), Duration::from_millis(1))
            .build();
        // One chunk handed over, 8 spans in the partly filled one: a batch of two chunks.
        for n in 0..40 {
            batch.collect(span(n));
        }
        let report = guarded(batch.force_flush()).await;
        assert_eq!((report.exported, report.dropped), (40, 0));
        let log = exporter.log();
        assert_eq!(log.attempts.len(), 3);
        let first = log.attempts[0].chunks.clone().expect("encoded");
        assert_eq!(first, [encoded(&ids(0..32)), encoded(&ids(32..40))]);
        for attempt in &log.attempts[1..] {
            assert_eq!(
                attempt.chunks.as_ref(),
                Some(&first),
                "the same bytes again"
            );
            assert_eq!(attempt.spans, ids(0..40));
        }
        assert_eq!(log.delivered, [ids(0..40)], "delivered exactly once");
        drop(log);
        assert_eq!(batch.failed_batches(), 2);
    }

    #[test]
    fn queue_overflow_drops_whole_chunks() {
        let runtime = stalled_runtime();
        let mut registry = Registry::default();
        let metrics = ExporterMetrics::register(&mut registry);
        let exporter = ScriptedExporter::delivering(Mode::Encoded);
        let batch = BatchExporter::builder(exporter.clone())
            .max_queue_size(64)
            .max_batch_size(32)
            .scheduled_delay(NEVER)
            .metrics(&metrics)
            .runtime(runtime.handle().clone())
            .build();
        // Five chunks of 32: two fit the limit of 64, the other three are dropped whole. The
        // last 10 spans wait in the thread's partly filled chunk, beyond the limit (a queue of
        // spans would have dropped them too).
        for n in 0..32 * 5 + 10 {
            batch.collect(span(n));
        }
        assert_eq!(batch.queue_len(), 64 + 10);
        assert_eq!(batch.dropped_for(drop_reason::QUEUE_FULL), 96);
        assert_eq!(batch.dropped(), 96);
        let text = scrape(&registry);
        assert!(
            text.lines().any(|l| l
                == r#"trace_exporter_spans_dropped_total{exporter="scripted",reason="queue_full"} 96"#),
            "{text}"
        );

        let report = runtime.block_on(guarded(batch.shutdown(Duration::from_secs(10))));
        assert_eq!((report.exported, report.lost), (74, 0));
        assert!(!report.deadline_reached);
        exporter.assert_all_encoded();
        // No two chunks fit one batch of 32: three batches, one chunk each.
        assert_eq!(
            exporter.delivered_chunks_sorted(),
            [ids(0..32), ids(32..64), ids(160..170)]
        );
        let mut sizes = exporter.delivered_batch_sizes();
        sizes.sort_unstable();
        assert_eq!(sizes, [10, 32, 32]);
        assert_eq!(batch.dropped(), 96);
        assert_eq!(batch.queue_len(), 0);
    }

    #[test]
    fn shutdown_takes_partly_filled_chunks() {
        let runtime = stalled_runtime();
        let exporter = ScriptedExporter::delivering(Mode::Encoded);
        let batch = BatchExporter::builder(exporter.clone())
            .max_batch_size(32)
            .scheduled_delay(NEVER)
            .runtime(runtime.handle().clone())
            .build();
        for n in 0..5 {
            batch.collect(span(n));
        }
        assert_eq!(batch.queue_len(), 5);
        let report = runtime.block_on(guarded(batch.shutdown(Duration::from_secs(10))));
        assert_eq!((report.exported, report.lost), (5, 0));
        assert!(!report.deadline_reached);
        exporter.assert_all_encoded();
        assert_eq!(exporter.delivered_ids(), ids(0..5));
        assert_eq!(batch.queue_len(), 0);
        assert_eq!(batch.dropped(), 0);
    }

    #[test]
    fn shutdown_takes_the_partly_filled_chunks_of_every_thread() {
        let runtime = stalled_runtime();
        let exporter = ScriptedExporter::delivering(Mode::Encoded);
        let batch = BatchExporter::builder(exporter.clone())
            .max_batch_size(32)
            .scheduled_delay(NEVER)
            .runtime(runtime.handle().clone())
            .build();
        // Three threads, 5 spans each: no chunk fills up, so the spans wait in the parts'
        // partly filled chunks (one each, or one shared by threads that share a part).
        let threads: Vec<_> = (0..3u64)
            .map(|t| {
                let collector: Arc<dyn Collector> = batch.clone();
                std::thread::spawn(move || {
                    for n in 0..5 {
                        collector.collect(span(t * 5 + n));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("collecting thread");
        }
        assert_eq!(batch.queue_len(), 15);
        let report = runtime.block_on(guarded(batch.shutdown(Duration::from_secs(10))));
        assert_eq!((report.exported, report.lost), (15, 0));
        exporter.assert_all_encoded();
        let mut delivered = exporter.delivered_ids();
        delivered.sort();
        assert_eq!(delivered, ids(0..15));
        assert_eq!(batch.queue_len(), 0);
    }

    #[test]
    fn dropped_without_shutdown_counts_ready_and_partial_chunks() {
        let runtime = stalled_runtime();
        let mut registry = Registry::default();
        let metrics = ExporterMetrics::register(&mut registry);
        let exporter = ScriptedExporter::delivering(Mode::Encoded);
        let batch = BatchExporter::builder(exporter.clone())
            .max_queue_size(64)
            .max_batch_size(32)
            .scheduled_delay(NEVER)
            .metrics(&metrics)
            .runtime(runtime.handle().clone())
            .build();
        // Two chunks handed over, filling the queue to its limit, and 7 spans in the partly
        // filled chunk beyond it.
        for n in 0..71 {
            batch.collect(span(n));
        }
        assert_eq!(batch.queue_len(), 71);
        assert_eq!(batch.dropped(), 0);
        drop(batch);
        let text = scrape(&registry);
        assert!(
            text.lines().any(|l| l
                == r#"trace_exporter_spans_dropped_total{exporter="scripted",reason="not_shut_down"} 71"#),
            "{text}"
        );
        runtime.block_on(eventually("the exporter shut down", || {
            exporter.log().shutdowns == 1
        }));
        assert!(exporter.delivered_ids().is_empty());
    }

    /// The span that [`encode_id_except_span_5`] refuses: `span(5)`'s id.
    const PANICS_ON: u64 = 6;

    /// [`encode_id`](super::support::encode_id), except that it panics half way through
    /// `span(5)`, having written 4 of its 8 bytes.
    fn encode_id_except_span_5(span: &Span, out: &mut Vec<u8>) {
        let bytes = span.span_id.to_bytes();
        out.extend_from_slice(&bytes[..4]);
        assert_ne!(
            span.span_id.to_u64(),
            PANICS_ON,
            "the encoder refuses this span"
        );
        out.extend_from_slice(&bytes[4..]);
    }

    #[tokio::test]
    async fn an_encoder_panic_loses_only_its_span() {
        let exporter =
            ScriptedExporter::delivering(Mode::Encoded).encoding_with(encode_id_except_span_5);
        let batch = BatchExporter::builder(exporter.clone())
            .max_batch_size(32)
            .scheduled_delay(NEVER)
            .build();
        for n in 0..40 {
            let collected = catch_unwind(AssertUnwindSafe(|| batch.collect(span(n))));
            match collected {
                Ok(()) => assert_ne!(n + 1, PANICS_ON),
                Err(panic) => {
                    assert_eq!(n + 1, PANICS_ON, "only span 5 makes the encoder panic");
                    let message = panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .unwrap_or_default();
                    assert!(
                        message.contains("the encoder refuses this span"),
                        "{message}"
                    );
                }
            }
        }
        // Nothing lost but span 5, which is counted.
        assert_eq!(batch.queue_len(), 39);
        assert_eq!(batch.dropped(), 1);
        assert_eq!(batch.dropped_for(drop_reason::ENCODER_PANICKED), 1);
        let report = guarded(batch.force_flush()).await;
        assert_eq!((report.exported, report.dropped), (39, 0));
        exporter.assert_all_encoded();
        // Decoding checks 8 bytes per span: the 4 bytes written for span 5 were cut off.
        let expected: Vec<SpanId> = ids(0..40)
            .into_iter()
            .filter(|id| id.to_u64() != PANICS_ON)
            .collect();
        let mut delivered = exporter.delivered_ids();
        delivered.sort();
        assert_eq!(delivered, expected, "every other span, once");
        // Every chunk holds its spans in the order they were collected (where the chunk was cut
        // off, and so how the 39 are split into chunks, is the queue's business).
        for chunk in exporter.delivered_chunks_sorted() {
            assert!(chunk.is_sorted(), "{chunk:?}");
        }
        assert_eq!(exporter.delivered_batch_sizes().iter().sum::<usize>(), 39);
        assert!(exporter.delivered_batch_sizes().iter().all(|&n| n <= 32));
        assert_eq!(batch.exported(), 39);
        assert_eq!(batch.queue_len(), 0);
    }

    /// Holds one span's encoding until the test opens it: a collect caught in the middle, with
    /// its part's chunk (and every span already in it) out of the slot.
    struct Gate {
        entered: AtomicBool,
        open: AtomicBool,
    }

    impl Gate {
        const fn new() -> Self {
            Self {
                entered: AtomicBool::new(false),
                open: AtomicBool::new(false),
            }
        }

        /// In the encoder: note the entry, then wait for the test (10 s guard).
        fn pass(&self) {
            self.entered.store(true, Ordering::SeqCst);
            let guard = Instant::now() + Duration::from_secs(10);
            while !self.open.load(Ordering::SeqCst) && Instant::now() < guard {
                std::thread::sleep(Duration::from_millis(1));
            }
        }

        fn wait_entered(&self) {
            let guard = Instant::now() + Duration::from_secs(10);
            while !self.entered.load(Ordering::SeqCst) {
                assert!(Instant::now() < guard, "the gated span was never encoded");
                std::thread::sleep(Duration::from_millis(1));
            }
        }

        fn open(&self) {
            self.open.store(true, Ordering::SeqCst);
        }
    }

    /// The span the gated encoders hold: `span(GATED)`.
    const GATED: u64 = 1000;

    static SHUTDOWN_GATE: Gate = Gate::new();
    static FLUSH_GATE: Gate = Gate::new();

    fn encode_id_holding_at_shutdown_gate(span: &Span, out: &mut Vec<u8>) {
        if span.span_id.to_u64() == GATED + 1 {
            SHUTDOWN_GATE.pass();
        }
        super::support::encode_id(span, out);
    }

    fn encode_id_holding_at_flush_gate(span: &Span, out: &mut Vec<u8>) {
        if span.span_id.to_u64() == GATED + 1 {
            FLUSH_GATE.pass();
        }
        super::support::encode_id(span, out);
    }

    /// Ten spans, then the gated one, from a thread of their own (which stays inside `collect`
    /// until the gate opens).
    fn collect_ten_then_the_gated_span(batch: &Arc<BatchExporter>) -> std::thread::JoinHandle<()> {
        let collector: Arc<dyn Collector> = batch.clone();
        std::thread::spawn(move || {
            for n in 0..10 {
                collector.collect(span(n));
            }
            collector.collect(span(GATED));
        })
    }

    /// A collect in progress when the shutdown closes the queue holds its part's chunk (ten
    /// spans queued earlier, and its own): the shutdown waits for it rather than draining an
    /// empty slot and leaving the chunk behind, unexported and uncounted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_waits_for_a_collect_in_progress() {
        let exporter = ScriptedExporter::delivering(Mode::Encoded)
            .encoding_with(encode_id_holding_at_shutdown_gate);
        let batch = BatchExporter::builder(exporter.clone())
            .max_batch_size(32)
            .scheduled_delay(NEVER)
            .build();
        let collecting = collect_ten_then_the_gated_span(&batch);
        SHUTDOWN_GATE.wait_entered();
        let shutdown = tokio::spawn({
            let batch = batch.clone();
            async move { batch.shutdown(Duration::from_secs(10)).await }
        });
        // Once a span is refused as `closed`, the shutdown has begun.
        let mut probe = 2000;
        eventually("the shutdown to close the queue", || {
            probe += 1;
            batch.collect(span(probe));
            batch.dropped_for(drop_reason::CLOSED) > 0
        })
        .await;
        SHUTDOWN_GATE.open();
        let report = guarded(shutdown).await.expect("the shutdown task");
        collecting.join().expect("collecting thread");

        // Probes collected before the queue closed are queued and delivered like the rest.
        let probes = probe - 2000;
        let refused = batch.dropped_for(drop_reason::CLOSED);
        assert_eq!(batch.dropped(), refused, "only probes refused");
        let accepted_probes = probes - refused;
        assert_eq!(
            (report.exported, report.lost),
            (11 + accepted_probes, 0),
            "{report:?}"
        );
        assert!(!report.deadline_reached);
        let mut delivered: Vec<SpanId> = exporter
            .delivered_ids()
            .into_iter()
            .filter(|id| id.to_u64() <= GATED + 1)
            .collect();
        delivered.sort();
        let mut expected = ids(0..10);
        expected.extend(ids(GATED..GATED + 1));
        assert_eq!(delivered, expected);
        assert_eq!(batch.queue_len(), 0);
    }

    /// A flush exports the spans queued before it, also when a collect that was in progress
    /// when it was asked for holds their chunk.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flush_waits_for_a_collect_in_progress() {
        let exporter = ScriptedExporter::delivering(Mode::Encoded)
            .encoding_with(encode_id_holding_at_flush_gate);
        let batch = BatchExporter::builder(exporter.clone())
            .max_batch_size(32)
            .scheduled_delay(NEVER)
            .build();
        let collecting = collect_ten_then_the_gated_span(&batch);
        FLUSH_GATE.wait_entered();
        let flush = tokio::spawn({
            let batch = batch.clone();
            async move { batch.force_flush().await }
        });
        // Time for the flush to reach the export task and find the part busy (an ordering aid;
        // were it late, the flush would simply find all eleven spans queued).
        tokio::time::sleep(Duration::from_millis(50)).await;
        FLUSH_GATE.open();
        let report = guarded(flush).await.expect("the flush task");
        collecting.join().expect("collecting thread");

        assert_eq!((report.exported, report.dropped), (11, 0), "{report:?}");
        assert_eq!(batch.queue_len(), 0);
        let mut delivered = exporter.delivered_ids();
        delivered.sort();
        let mut expected = ids(0..10);
        expected.extend(ids(GATED..GATED + 1));
        assert_eq!(delivered, expected);
    }

    /// With a queue limit within a chunk of the batch size, ready chunks that are not all whole
    /// (here the one an encoder's panic left) never add up to a batch of whole chunks: the task
    /// is woken as soon as the next whole chunk would not fit, not left asleep until its timer
    /// while chunks are refused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_partly_filled_chunk_does_not_keep_the_task_asleep() {
        let exporter =
            ScriptedExporter::delivering(Mode::Encoded).encoding_with(encode_id_except_span_5);
        let batch = BatchExporter::builder(exporter.clone())
            .max_queue_size(100)
            .max_batch_size(100)
            .scheduled_delay(NEVER)
            .build();
        for n in 0..6 {
            let _ = catch_unwind(AssertUnwindSafe(|| batch.collect(span(n))));
        }
        // Five spans ready, in the chunk span 5 cut short; then whole chunks of 32.
        for n in 6..1006 {
            batch.collect(span(n));
            // Paced, so that the task has time to export between the full batches.
            if n % 32 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        eventually("a full-batch wake-up", || exporter.attempts() > 0).await;
        let report = guarded(batch.shutdown(Duration::from_secs(10))).await;
        assert_eq!(report.lost, 0);
        // Every span accounted for, exactly once.
        assert_eq!(batch.exported() + batch.dropped(), 1006);
        assert_eq!(batch.dropped_for(drop_reason::ENCODER_PANICKED), 1);
        assert!(
            batch.exported() > 500,
            "most spans delivered, not refused while the task slept: {} of 1006",
            batch.exported()
        );
    }

    /// An exporter whose span encoder writes the span id and then `padding` bytes, set by the
    /// span's name; it counts what it is given.
    #[derive(Debug, Clone, Default)]
    struct PaddingExporter {
        calls: Arc<AtomicU64>,
    }

    fn encode_id_and_padding(span: &Span, out: &mut Vec<u8>) {
        out.extend_from_slice(&span.span_id.to_bytes());
        let padding: usize = span.name.parse().unwrap_or(0);
        out.resize(out.len() + padding, 0);
    }

    impl SpanExporter for PaddingExporter {
        fn kind(&self) -> &'static str {
            "padding"
        }

        fn export<'a>(&'a mut self, _batch: &'a [Span]) -> ExportFuture<'a> {
            Box::pin(async { Err(ExportError::permanent("spans come encoded")) })
        }

        fn span_encoder(&self) -> Option<SpanEncodeFn> {
            Some(encode_id_and_padding)
        }

        fn export_encoded<'a>(&'a mut self, _batch: &'a EncodedSpans) -> ExportFuture<'a> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(ExportOutcome::delivered()) })
        }
    }

    /// Spans of 22 KiB fill a chunk's 64 KiB after 3: with the default limits, the ready list
    /// has room for chunks that small up to the queue limit, so a full batch is reached and
    /// the task woken (the list once held 144 chunks, 432 such spans, short of a batch of 512,
    /// and refused the rest while the task slept).
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn chunks_of_a_few_large_spans_still_make_a_full_batch() {
        let exporter = PaddingExporter::default();
        let batch = BatchExporter::builder(exporter.clone())
            .scheduled_delay(NEVER)
            .build();
        for n in 0..1000 {
            let mut large = span(n);
            large.name = (22 * 1024).to_string().into();
            batch.collect(large);
        }
        eventually("a full-batch wake-up", || {
            exporter.calls.load(Ordering::SeqCst) > 0
        })
        .await;
        assert_eq!(
            batch.dropped_for(drop_reason::QUEUE_FULL),
            0,
            "1,000 spans fit a queue of 2,048"
        );
        let report = guarded(batch.shutdown(Duration::from_secs(10))).await;
        assert_eq!(report.lost, 0);
        assert_eq!(batch.exported(), 1000);
    }
}
