//! The Jaeger agent exporter against a real UDP receiver on loopback, each datagram decoded with
//! the `thrift` crate's compact protocol.

#![cfg(feature = "jaeger-agent")]

mod jaeger_support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use jaeger_support::TagValue;
use jaeger_support::receivers::{AgentReceiver, decode_agent_datagram};
use trace_core::{KeyValue, Span};
use trace_exporters::jaeger::{JaegerAgentExporter, JaegerError};
use trace_exporters::{Resource, SpanExporter};

fn resource() -> Resource {
    Resource::new("checkout").with_attribute("deployment.environment", "test")
}

fn exporter(address: SocketAddr, max_packet_size: usize) -> JaegerAgentExporter {
    JaegerAgentExporter::builder()
        .endpoint(address.to_string())
        .max_packet_size(max_packet_size)
        .resource(resource())
        .build()
        .expect("agent exporter")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_span_field_arrives_as_sent() {
    let mut receiver = AgentReceiver::start().await;
    let mut exporter = exporter(receiver.address, 65_000);
    assert_eq!(exporter.kind(), "jaeger_agent");

    let outcome = exporter
        .export(&jaeger_support::rich_spans())
        .await
        .expect("sent");
    assert_eq!(outcome.dropped, 0);

    let batch = decode_agent_datagram(&receiver.next().await);
    jaeger_support::assert_process(&batch.process, "checkout");
    let expected = jaeger_support::expected_rich_spans();
    assert_eq!(batch.spans.len(), expected.len());
    for (got, want) in batch.spans.iter().zip(&expected) {
        assert_eq!(got, want);
    }
    assert!(
        receiver.rest().await.is_empty(),
        "one datagram for a small batch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_name_is_resolved_at_the_first_export() {
    let mut receiver = AgentReceiver::start().await;
    let mut exporter = JaegerAgentExporter::builder()
        .endpoint(format!("localhost:{}", receiver.address.port()))
        .resource(resource())
        .build()
        .expect("agent exporter");
    let span = jaeger_support::plain_span(1, 2, "resolved");
    exporter.export(&[span]).await.expect("sent");
    let batch = decode_agent_datagram(&receiver.next().await);
    assert_eq!(batch.spans[0].operation_name, "resolved");
    jaeger_support::assert_process(&batch.process, "checkout");
}

/// Spans of about 100 bytes each, with a 40-byte attribute. The 500-span batch comes to about
/// 50 kB, seven or so datagrams of 8,192 bytes: enough to prove the split, yet little enough that
/// the receiver's default socket buffer (212 kB on Linux) holds them all even if the receiving
/// task is slow to run on a loaded machine.
fn big_spans(count: u64) -> Vec<Span> {
    (1..=count)
        .map(|id| {
            let mut span = jaeger_support::plain_span(7, id, "work");
            span.attributes = vec![
                KeyValue::new("payload", "x".repeat(40)),
                KeyValue::new("index", id as i64),
            ];
            span
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_is_split_over_datagrams_within_the_limit() {
    const LIMIT: usize = 8_192;
    const COUNT: u64 = 500;
    let mut receiver = AgentReceiver::start().await;
    let mut exporter = exporter(receiver.address, LIMIT);

    let outcome = exporter.export(&big_spans(COUNT)).await.expect("sent");
    assert_eq!(outcome.dropped, 0);

    let mut seen = HashSet::new();
    let mut datagrams = 0;
    while seen.len() < COUNT as usize {
        let datagram = receiver.next().await;
        assert!(datagram.len() <= LIMIT, "{} bytes", datagram.len());
        let batch = decode_agent_datagram(&datagram);
        assert_eq!(batch.process.service_name, "checkout");
        for span in batch.spans {
            let index = span
                .tags
                .iter()
                .find(|tag| tag.key == "index")
                .map(|tag| tag.value.clone());
            assert_eq!(index, Some(TagValue::Long(span.span_id)));
            assert!(seen.insert(span.span_id), "span {} twice", span.span_id);
        }
        datagrams += 1;
    }
    assert!(datagrams > 1, "a batch this size needs several datagrams");
    assert!(receiver.rest().await.is_empty(), "no span sent twice");
    assert_eq!(seen, (1..=COUNT as i64).collect::<HashSet<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_too_large_for_any_datagram_is_dropped_and_counted() {
    const LIMIT: usize = 2_048;
    let mut receiver = AgentReceiver::start().await;
    let mut exporter = exporter(receiver.address, LIMIT);

    let mut spans = big_spans(5);
    spans[2]
        .attributes
        .push(KeyValue::new("huge", "y".repeat(4_000)));
    let outcome = exporter.export(&spans).await.expect("sent");
    assert_eq!((outcome.dropped, outcome.drop_reason), (1, "too_large"));

    let mut ids = Vec::new();
    while ids.len() < 4 {
        let datagram = receiver.next().await;
        assert!(datagram.len() <= LIMIT);
        ids.extend(
            decode_agent_datagram(&datagram)
                .spans
                .iter()
                .map(|span| span.span_id),
        );
    }
    assert!(receiver.rest().await.is_empty());
    assert_eq!(ids, [1, 2, 4, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_errors_are_retryable() {
    // A port nothing listens on: loopback answers with ICMP port unreachable, which the
    // connected socket reports on a following send.
    let closed = {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.local_addr().expect("address")
    };
    let mut exporter = exporter(closed, 65_000);
    let spans = [jaeger_support::plain_span(1, 1, "lost")];
    let mut error = None;
    for _ in 0..50 {
        if let Err(failure) = exporter.export(&spans).await {
            error = Some(failure);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let error = error.expect("a send to a closed port fails within 50 tries");
    assert!(error.is_retryable(), "{error}");
}

#[test]
fn building_needs_no_runtime_and_names_bad_settings() {
    let built = JaegerAgentExporter::builder()
        .endpoint("127.0.0.1:6831")
        .build()
        .expect("builds outside a runtime");
    assert_eq!(built.endpoint(), "127.0.0.1:6831");
    assert_eq!(built.max_packet_size(), 65_000);

    let error = JaegerAgentExporter::builder()
        .max_packet_size(100)
        .build()
        .expect_err("too small");
    assert!(matches!(
        error,
        JaegerError::BadPacketSize { size: 100, .. }
    ));
    assert!(error.to_string().contains("100"), "{error}");

    let error = JaegerAgentExporter::builder()
        .endpoint("agent:port")
        .build()
        .expect_err("bad port");
    assert!(error.to_string().contains("`agent:port`"), "{error}");
}
