//! A thousand concurrent requests, each continuing its own caller's trace, over HTTP/1.1
//! connections and multiplexed HTTP/2 streams: one span per request, each with its own parent,
//! and every handler sees its own context (never a neighbour's) across await points.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http::Method;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use trace_core::{InMemoryCollector, SpanId, TraceId};
use trace_http::TraceLayer;
use trace_http::context::{RequestContext, current_context};

const REQUESTS: u32 = 1_000;
const IN_FLIGHT: usize = 50;

/// Answers `{request context trace} {current trace before} {current trace after} {parent}`,
/// with await points in between, so that requests interleave on the worker threads.
async fn interleaving(RequestContext(context): RequestContext) -> String {
    let before = current_context().map(|c| c.trace_id().to_string());
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    let after = current_context().map(|c| c.trace_id().to_string());
    format!(
        "{} {} {} {}",
        context.trace_id(),
        before.as_deref().unwrap_or("-"),
        after.as_deref().unwrap_or("-"),
        context
            .parent_span_id()
            .map_or_else(|| "-".to_owned(), |p| p.to_string()),
    )
}

fn caller_ids(i: u32) -> (TraceId, SpanId) {
    let trace = TraceId::from_halves(
        0x7777_0000_0000_0000 | u64::from(i),
        0xabc0_0000 + u64::from(i),
    )
    .unwrap();
    let span = SpanId::from_u64(0x5500_0000_0000 + u64::from(i)).unwrap();
    (trace, span)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_requests_each_continue_their_own_trace() {
    let collector: Arc<InMemoryCollector> = support::collector();
    let app = Router::new()
        .route("/work", get(interleaving))
        .layer(TraceLayer::new(collector.clone()));
    let addr = support::serve(app).await;
    let http1 = support::client();
    let http2 = support::client_http2();
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));

    let mut requests = JoinSet::new();
    for i in 0..REQUESTS {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let client = if i % 2 == 0 {
            http1.clone()
        } else {
            http2.clone()
        };
        requests.spawn(async move {
            let (trace, span) = caller_ids(i);
            let traceparent = format!("00-{trace}-{span}-01");
            let request =
                support::request(Method::GET, addr, "/work", &[("traceparent", &traceparent)]);
            let reply = support::send(&client, request).await;
            drop(permit);
            (trace, span, reply)
        });
    }

    let mut callers: HashMap<TraceId, SpanId> = HashMap::new();
    let finished = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(result) = requests.join_next().await {
            let (trace, span, reply) = result.unwrap();
            assert_eq!(reply.status, 200);
            let fields: Vec<&str> = reply.body.split(' ').collect();
            let expected = trace.to_string();
            assert_eq!(fields[0], expected, "RequestContext is the request's own");
            assert_eq!(
                fields[1], expected,
                "current_context() is the request's own"
            );
            assert_eq!(fields[2], expected, "still its own after an await");
            assert_eq!(fields[3], span.to_string(), "parent is the caller's span");
            assert!(callers.insert(trace, span).is_none());
        }
    })
    .await;
    assert!(finished.is_ok(), "all requests answered in time");
    assert_eq!(callers.len(), REQUESTS as usize);

    let spans = support::wait_for_spans(&collector, REQUESTS as usize).await;
    assert_eq!(
        spans.len(),
        REQUESTS as usize,
        "exactly one span per request"
    );
    let mut seen: HashMap<TraceId, usize> = HashMap::new();
    for span in &spans {
        *seen.entry(span.trace_id).or_default() += 1;
        let caller_span = callers
            .get(&span.trace_id)
            .unwrap_or_else(|| panic!("span of an unknown trace {:?}", span.trace_id));
        assert_eq!(span.parent_span_id, Some(*caller_span));
        assert_eq!(span.name, "GET /work");
    }
    assert_eq!(seen.len(), REQUESTS as usize);
    assert!(
        seen.values().all(|&count| count == 1),
        "each trace recorded once"
    );
    assert_eq!(collector.evicted(), 0);
}
