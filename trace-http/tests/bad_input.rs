//! Malformed, oversized and non-UTF-8 trace headers over real HTTP: the response is exactly the
//! one a request without them gets, a new root trace is recorded, and the rejection is counted
//! per format.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use http::{HeaderName, HeaderValue, Method};
use trace_core::InMemoryCollector;
use trace_core::propagation::FormatStats;
use trace_core::sampler::AlwaysOn;
use trace_http::{TraceIdHeader, TraceLayer};

use support::{Caller, header};

struct Fixture {
    addr: SocketAddr,
    layer: TraceLayer,
    collector: Arc<InMemoryCollector>,
}

async fn fixture() -> Fixture {
    let collector = support::collector();
    let layer = TraceLayer::new(collector.clone())
        .sampler(AlwaysOn)
        .trace_id_header(TraceIdHeader::TraceResponse);
    let app = Router::new()
        .route(
            "/hello",
            get(|| async { ([("x-app", "v1")], "hello, world") }),
        )
        .layer(layer.clone());
    let addr = support::serve(app).await;
    Fixture {
        addr,
        layer,
        collector,
    }
}

fn stats(layer: &TraceLayer, format: &str) -> FormatStats {
    layer
        .propagation_stats()
        .into_iter()
        .find(|s| s.name == format)
        .unwrap_or_else(|| panic!("no {format} format in {:?}", layer.propagation_stats()))
}

/// Sends a clean request and one with `bad` headers; both answers must match, the bad one must
/// be traced as a new root, and `format` must have counted one rejection.
async fn assert_ignored_like_no_header(bad: Vec<(HeaderName, HeaderValue)>, format: &str) {
    let Fixture {
        addr,
        layer,
        collector,
    } = fixture().await;
    let client = support::client();
    let clean = support::send(&client, support::request(Method::GET, addr, "/hello", &[])).await;
    support::wait_for_spans(&collector, 1).await;
    collector.clear();

    let reply = support::send(
        &client,
        support::request_raw(Method::GET, addr, "/hello", bad.clone()),
    )
    .await;
    assert_eq!(reply.status, clean.status, "headers {bad:?}");
    assert_eq!(reply.body, clean.body, "headers {bad:?}");
    for name in ["content-type", "content-length", "x-app"] {
        assert_eq!(reply.header(name), clean.header(name), "{name}");
    }
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.parent_span_id, None, "a new root, headers {bad:?}");
    assert!(span.flags.is_sampled());
    assert!(span.trace_state.is_empty());
    assert_eq!(
        reply.header("traceresponse"),
        Some(support::w3c_value(&span).as_str())
    );
    let counted = stats(&layer, format);
    assert_eq!(
        counted.rejected, 1,
        "{format} rejection counted: {counted:?}"
    );
    assert_eq!(counted.found, 0, "{counted:?}");
}

#[tokio::test]
async fn malformed_traceparent_is_ignored_and_counted() {
    assert_ignored_like_no_header(
        vec![header("traceparent", b"00-not-a-trace-01")],
        "tracecontext",
    )
    .await;
}

#[tokio::test]
async fn upper_case_traceparent_is_ignored_and_counted() {
    assert_ignored_like_no_header(
        vec![header(
            "traceparent",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
        )],
        "tracecontext",
    )
    .await;
}

#[tokio::test]
async fn all_zero_traceparent_is_ignored_and_counted() {
    assert_ignored_like_no_header(
        vec![header(
            "traceparent",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        )],
        "tracecontext",
    )
    .await;
}

#[tokio::test]
async fn oversized_traceparent_is_ignored_and_counted() {
    let huge = format!("00-{}", "a".repeat(10 * 1024));
    assert_ignored_like_no_header(vec![header("traceparent", huge.as_bytes())], "tracecontext")
        .await;
}

#[tokio::test]
async fn non_utf8_traceparent_is_ignored_and_counted() {
    let mut value = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902".to_vec();
    value.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
    value.extend_from_slice(b"-01");
    assert_ignored_like_no_header(vec![header("traceparent", &value)], "tracecontext").await;
}

#[tokio::test]
async fn garbage_uber_trace_id_is_ignored_and_counted() {
    assert_ignored_like_no_header(
        vec![header("uber-trace-id", b"garbage:not:an:id:at:all")],
        "jaeger",
    )
    .await;
}

#[tokio::test]
async fn non_utf8_uber_trace_id_is_ignored_and_counted() {
    assert_ignored_like_no_header(
        vec![header("uber-trace-id", b"\xe9\xe9:\xff:0:1")],
        "jaeger",
    )
    .await;
}

#[tokio::test]
async fn garbage_b3_is_ignored_and_counted() {
    assert_ignored_like_no_header(vec![header("b3", b"zzzz-yyyy-1")], "b3").await;
}

#[tokio::test]
async fn oversized_tracestate_is_dropped_but_the_traceparent_kept() {
    // W3C Trace Context: an invalid tracestate is discarded, the traceparent beside it is not.
    let Fixture {
        addr,
        layer,
        collector,
    } = fixture().await;
    let caller = Caller::random();
    let members: Vec<String> = (0..1000).map(|i| format!("k{i}=v{i:05}")).collect();
    let tracestate = members.join(",");
    assert!(tracestate.len() > 10 * 1024);
    let reply = support::get(
        addr,
        "/hello",
        &[
            ("traceparent", &caller.traceparent(true)),
            ("tracestate", &tracestate),
        ],
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "hello, world");
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.trace_id, caller.trace_id);
    assert_eq!(span.parent_span_id, Some(caller.span_id));
    assert!(span.trace_state.is_empty(), "{:?}", span.trace_state);
    assert_eq!(stats(&layer, "tracecontext").rejected, 1);
}

#[tokio::test]
async fn oversized_tracestate_without_traceparent_starts_a_new_root() {
    let Fixture {
        addr, collector, ..
    } = fixture().await;
    let tracestate = format!("big={}", "x".repeat(10 * 1024));
    let reply = support::get(addr, "/hello", &[("tracestate", &tracestate)]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "hello, world");
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.parent_span_id, None);
    assert!(span.trace_state.is_empty());
}

#[tokio::test]
async fn every_bad_header_at_once_is_ignored_and_each_format_counts_it() {
    let Fixture {
        addr,
        layer,
        collector,
    } = fixture().await;
    let bad = vec![
        header("traceparent", b"00-\xff\xff-01"),
        header("uber-trace-id", b"nope"),
        header("b3", b"\x80\x81"),
    ];
    let reply = support::send(
        &support::client(),
        support::request_raw(Method::GET, addr, "/hello", bad),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "hello, world");
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.parent_span_id, None);
    for format in ["tracecontext", "jaeger", "b3"] {
        assert_eq!(stats(&layer, format).rejected, 1, "{format}");
    }
}
