//! Faults against a real OTLP/HTTP receiver on loopback, through the real OTLP/HTTP exporter in
//! a `BatchExporter`: a receiver that is absent, overloaded (503/429 with `Retry-After`), hung
//! or blocked, and a shutdown with a full queue. The receiver decodes every request with
//! `opentelemetry-proto` and counts span ids, so a duplicate or a loss shows.
//!
//! Retry budgets and timeouts are small so the whole file runs in a few seconds; the
//! ten-second guards only stop a hung test.

#![cfg(feature = "otlp-http")]

mod otlp_common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use otlp_common::http_receiver::{self, Answer, Receiver};
use otlp_common::{GUARD, numbered_span};
use trace_core::Collector;
use trace_exporters::otlp::OtlpHttpExporter;
use trace_exporters::pipeline::drop_reason;
use trace_exporters::{BatchExporter, BatchExporterBuilder};

/// A pipeline around the real OTLP/HTTP exporter sending to `url`.
fn pipeline(url: &str) -> BatchExporterBuilder {
    let exporter = OtlpHttpExporter::builder()
        .endpoint(url)
        .build_http()
        .expect("exporter");
    BatchExporter::builder(exporter)
}

fn collect(batch: &BatchExporter, spans: std::ops::Range<u64>) {
    for index in spans {
        batch.collect(numbered_span(index));
    }
}

/// Waits (at most [`GUARD`]) until `done` holds.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < GUARD, "still waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The span ids delivered, checking that none arrived twice.
fn delivered_once(receiver: &Receiver) -> BTreeSet<Vec<u8>> {
    let delivered = receiver.delivered_span_ids();
    let unique: BTreeSet<Vec<u8>> = delivered.iter().cloned().collect();
    assert_eq!(unique.len(), delivered.len(), "a span was delivered twice");
    unique
}

fn span_ids(spans: std::ops::Range<u64>) -> BTreeSet<Vec<u8>> {
    spans
        .map(|index| (index + 1).to_be_bytes().to_vec())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_receiver_costs_dropped_and_counted_spans_and_nothing_else() {
    const QUEUE: usize = 16;
    const SPANS: u64 = 64;
    let retry_budget = Duration::from_millis(500);
    let batch = pipeline(&http_receiver::closed_port_url())
        .max_queue_size(QUEUE)
        .max_batch_size(QUEUE)
        .scheduled_delay(Duration::from_millis(10))
        .export_timeout(Duration::from_secs(2))
        .max_retry_time(retry_budget)
        .backoff(Duration::from_millis(20), Duration::from_millis(50))
        .build();

    let started = Instant::now();
    let mut longest_queue = 0;
    for index in 0..SPANS {
        batch.collect(numbered_span(index));
        longest_queue = longest_queue.max(batch.queue_len());
    }
    // Had collect waited for the exporter even once, it would have waited for a whole retry
    // budget: the first batch is retried that long.
    assert!(
        started.elapsed() < retry_budget,
        "collecting took {:?}",
        started.elapsed()
    );
    // OTLP protobuf spans are encoded as they are collected, into a chunk per thread that
    // joins the queue when it holds a batch's worth (at most 32): one thread's chunk may hold
    // up to one span short of that beyond the queue's limit.
    let chunk_allowance = QUEUE.min(32) - 1;
    assert!(
        longest_queue <= QUEUE + chunk_allowance,
        "queue grew to {longest_queue}"
    );

    wait_until("every span dropped", || batch.dropped() == SPANS).await;
    let queue_full = batch.dropped_for(drop_reason::QUEUE_FULL);
    let exhausted = batch.dropped_for(drop_reason::RETRIES_EXHAUSTED);
    assert_eq!(queue_full + exhausted, SPANS);
    // At most one batch in flight plus a full queue escaped the overflow.
    assert!(queue_full >= SPANS - 2 * QUEUE as u64, "{queue_full}");
    assert!(exhausted >= QUEUE as u64, "{exhausted}");
    assert_eq!(batch.exported(), 0);
    assert!(batch.failed_batches() >= 2, "each batch is retried");

    let report = batch.shutdown(GUARD).await;
    assert_eq!((report.exported, report.lost), (0, 0), "{report:?}");
}

/// One batch answered with `status` and `Retry-After: 1`, then with 200.
async fn overload_then_success(status: StatusCode) {
    const SPANS: u64 = 5;
    let (receiver, url) = http_receiver::start().await;
    receiver.script([Answer::retry_after(status, "1")]);
    // A full batch wakes the export task at once; the long delay keeps the batch whole.
    let batch = pipeline(&url)
        .max_batch_size(SPANS as usize)
        .scheduled_delay(GUARD)
        .max_retry_time(GUARD)
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .build();
    collect(&batch, 0..SPANS);

    wait_until("the retried batch", || batch.exported() == SPANS).await;
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2, "one refusal, one delivery");
    assert_eq!(requests[0].status, Some(status));
    assert_eq!(requests[1].status, Some(StatusCode::OK));
    let waited = requests[1].at - requests[0].at;
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    assert_eq!(delivered_once(&receiver), span_ids(0..SPANS));
    assert_eq!(batch.failed_batches(), 1);
    assert_eq!(batch.dropped(), 0);

    let report = batch.shutdown(GUARD).await;
    assert_eq!(report.lost, 0, "{report:?}");
    assert_eq!(receiver.requests().len(), 2, "nothing sent again");
}

#[tokio::test]
async fn service_unavailable_with_retry_after_then_success_delivers_the_batch_once() {
    overload_then_success(StatusCode::SERVICE_UNAVAILABLE).await;
}

#[tokio::test]
async fn too_many_requests_with_retry_after_then_success_delivers_the_batch_once() {
    overload_then_success(StatusCode::TOO_MANY_REQUESTS).await;
}

#[tokio::test]
async fn a_hung_receiver_times_out_is_retried_then_dropped_and_counted() {
    const SPANS: u64 = 3;
    let (receiver, url) = http_receiver::start().await;
    receiver.answer_with(Answer::hold());
    let batch = pipeline(&url)
        .max_batch_size(SPANS as usize)
        .scheduled_delay(GUARD)
        .export_timeout(Duration::from_millis(150))
        .max_retry_time(Duration::from_millis(700))
        .backoff(Duration::from_millis(20), Duration::from_millis(50))
        .build();
    collect(&batch, 0..SPANS);

    wait_until("the batch given up", || batch.dropped() == SPANS).await;
    assert_eq!(batch.dropped_for(drop_reason::RETRIES_EXHAUSTED), SPANS);
    assert_eq!(batch.exported(), 0);
    let requests = receiver.requests();
    assert!(requests.len() >= 2, "retried: {} requests", requests.len());
    assert!(requests.iter().all(|request| request.status.is_none()));
    assert!(
        batch.failed_batches() >= requests.len() as u64,
        "every timed-out attempt counts: {} failed, {} requests",
        batch.failed_batches(),
        requests.len()
    );
    let report = batch.shutdown(GUARD).await;
    assert_eq!((report.exported, report.lost), (0, 0), "{report:?}");
}

#[tokio::test]
async fn a_burst_against_a_blocked_receiver_drops_exactly_the_overflow() {
    const QUEUE: usize = 8;
    const OVERFLOW: u64 = 5;
    let (receiver, url) = http_receiver::start().await;
    receiver.answer_with(Answer::hold());
    let batch = pipeline(&url)
        .max_queue_size(QUEUE)
        .max_batch_size(1)
        .scheduled_delay(GUARD)
        .export_timeout(GUARD)
        .max_retry_time(GUARD)
        .build();

    // The first span goes out and hangs at the receiver; the export task waits on it.
    batch.collect(numbered_span(0));
    receiver.wait_for_requests(1).await;
    assert_eq!(batch.queue_len(), 0);

    let burst = QUEUE as u64 + OVERFLOW;
    collect(&batch, 1..1 + burst);
    assert_eq!(batch.dropped_for(drop_reason::QUEUE_FULL), OVERFLOW);
    assert_eq!(batch.dropped(), OVERFLOW);
    assert_eq!(batch.queue_len(), QUEUE);

    receiver.answer_with(Answer::default());
    receiver.release();
    let report = batch.shutdown(GUARD).await;
    assert!(!report.deadline_reached, "{report:?}");
    assert_eq!(report.lost, 0, "{report:?}");
    assert_eq!(batch.exported(), 1 + QUEUE as u64);
    // The spans that got a place in the queue: the first and the first QUEUE of the burst.
    assert_eq!(delivered_once(&receiver), span_ids(0..1 + QUEUE as u64));
}

// A current-thread runtime: the export task cannot run while the test collects, so the queue
// is full when the shutdown begins.
#[tokio::test(flavor = "current_thread")]
async fn shutdown_with_a_full_queue_delivers_everything_within_the_deadline() {
    const QUEUE: usize = 256;
    let (receiver, url) = http_receiver::start().await;
    let batch: Arc<BatchExporter> = pipeline(&url)
        .max_queue_size(QUEUE)
        .max_batch_size(64)
        .scheduled_delay(GUARD)
        .build();
    collect(&batch, 0..QUEUE as u64);
    assert_eq!(batch.queue_len(), QUEUE);

    let report = batch.shutdown(GUARD).await;
    assert_eq!(report.exported, QUEUE as u64, "{report:?}");
    assert_eq!(report.lost, 0, "{report:?}");
    assert!(!report.deadline_reached, "{report:?}");
    assert_eq!(receiver.requests().len(), QUEUE / 64);
    assert_eq!(delivered_once(&receiver), span_ids(0..QUEUE as u64));
}
