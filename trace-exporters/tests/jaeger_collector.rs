//! The Jaeger collector exporter against a real axum receiver on loopback, each body decoded with
//! the `thrift` crate's binary protocol.

#![cfg(feature = "jaeger-collector")]

mod jaeger_support;

use std::time::Duration;

use axum::http::StatusCode;
use jaeger_support::receivers::{CollectorReceiver, decode_collector_body};
use trace_exporters::jaeger::{JaegerCollectorExporter, JaegerError};
use trace_exporters::{Resource, SpanExporter};

const WAIT: Duration = Duration::from_secs(10);

fn resource() -> Resource {
    Resource::new("checkout").with_attribute("deployment.environment", "test")
}

async fn export_rich(exporter: &mut JaegerCollectorExporter) {
    let outcome = tokio::time::timeout(WAIT, exporter.export(&jaeger_support::rich_spans()))
        .await
        .expect("export within 10 s")
        .expect("delivered");
    assert_eq!(outcome.dropped, 0);
}

#[tokio::test]
async fn a_batch_arrives_as_thrift_binary_with_every_field() {
    let mut collector = CollectorReceiver::start(StatusCode::ACCEPTED).await;
    let mut exporter = JaegerCollectorExporter::builder()
        .endpoint(format!("http://{}/api/traces", collector.address))
        .resource(resource())
        .build()
        .expect("collector exporter");
    assert_eq!(exporter.kind(), "jaeger_collector");
    export_rich(&mut exporter).await;

    let request = collector.next().await;
    assert_eq!(request.headers["content-type"], "application/x-thrift");
    assert!(!request.headers.contains_key("authorization"));
    let batch = decode_collector_body(&request.body);
    jaeger_support::assert_process(&batch.process, "checkout");
    let expected = jaeger_support::expected_rich_spans();
    assert_eq!(batch.spans.len(), expected.len());
    for (got, want) in batch.spans.iter().zip(&expected) {
        assert_eq!(got, want);
    }
}

#[tokio::test]
async fn host_and_port_mean_the_api_traces_path() {
    let mut collector = CollectorReceiver::start(StatusCode::ACCEPTED).await;
    let mut exporter = JaegerCollectorExporter::builder()
        .endpoint(collector.address.to_string())
        .resource(resource())
        .build()
        .expect("collector exporter");
    assert_eq!(
        exporter.endpoint(),
        format!("http://{}/api/traces", collector.address)
    );
    export_rich(&mut exporter).await;
    let batch = decode_collector_body(&collector.next().await.body);
    assert_eq!(batch.spans.len(), jaeger_support::rich_spans().len());
}

#[tokio::test]
async fn basic_auth_and_bearer_tokens_are_sent() {
    let mut collector = CollectorReceiver::start(StatusCode::ACCEPTED).await;
    let mut basic = JaegerCollectorExporter::builder()
        .endpoint(collector.address.to_string())
        .basic_auth("tracer", "s3crét:x")
        .build()
        .expect("basic auth exporter");
    export_rich(&mut basic).await;
    // base64("tracer:s3crét:x"), worked out apart from the exporter.
    assert_eq!(
        collector.next().await.headers["authorization"],
        "Basic dHJhY2VyOnMzY3LDqXQ6eA=="
    );

    let mut bearer = JaegerCollectorExporter::builder()
        .endpoint(collector.address.to_string())
        .bearer_token("tok-123")
        .build()
        .expect("bearer exporter");
    export_rich(&mut bearer).await;
    assert_eq!(
        collector.next().await.headers["authorization"],
        "Bearer tok-123"
    );
}

#[tokio::test]
async fn an_unavailable_collector_is_worth_retrying() {
    let mut collector = CollectorReceiver::start(StatusCode::SERVICE_UNAVAILABLE).await;
    let mut exporter = JaegerCollectorExporter::builder()
        .endpoint(collector.address.to_string())
        .build()
        .expect("collector exporter");
    let error = tokio::time::timeout(WAIT, exporter.export(&jaeger_support::rich_spans()))
        .await
        .expect("answer within 10 s")
        .expect_err("503 is an error");
    assert!(error.is_retryable(), "{error}");
    collector.next().await;

    let mut rejecting = CollectorReceiver::start(StatusCode::BAD_REQUEST).await;
    let mut exporter = JaegerCollectorExporter::builder()
        .endpoint(rejecting.address.to_string())
        .build()
        .expect("collector exporter");
    let error = exporter
        .export(&jaeger_support::rich_spans())
        .await
        .expect_err("400 is an error");
    assert!(!error.is_retryable(), "{error}");
    rejecting.next().await;
}

#[test]
fn building_needs_no_runtime_and_names_bad_settings() {
    JaegerCollectorExporter::builder()
        .endpoint("jaeger:14268")
        .bearer_token("t")
        .build()
        .expect("builds outside a runtime");

    let error = JaegerCollectorExporter::builder()
        .endpoint("ftp://jaeger/api/traces")
        .build()
        .expect_err("not http");
    assert!(matches!(error, JaegerError::BadCollectorEndpoint(_)));
    assert!(
        error.to_string().contains("`ftp://jaeger/api/traces`"),
        "{error}"
    );

    let error = JaegerCollectorExporter::builder()
        .bearer_token("line\nbreak")
        .build()
        .expect_err("newline in a header");
    assert!(matches!(error, JaegerError::BadCredential("bearer token")));
    assert!(
        !error.to_string().contains("line"),
        "the token is not shown"
    );
}

/// What a span's limits dropped goes out as `otel.dropped_*_count` long tags, each only when
/// not zero; read back with the `thrift` crate's binary and compact protocols.
#[test]
fn dropped_counts_become_long_tags_when_not_zero() {
    use jaeger_support::{TagValue, plain_span, read_span};
    use thrift::protocol::{TBinaryInputProtocol, TCompactInputProtocol};
    use trace_exporters::jaeger::{ThriftProtocol, encode_span};

    let mut span = plain_span(7, 9, "work");
    span.dropped = trace_core::DroppedCounts {
        attributes: 5,
        events: 0,
        links: 200,
    };
    for protocol in [ThriftProtocol::Binary, ThriftProtocol::Compact] {
        let mut bytes = Vec::new();
        encode_span(protocol, &span, &mut bytes);
        let decoded = match protocol {
            ThriftProtocol::Binary => read_span(&mut TBinaryInputProtocol::new(&bytes[..], true)),
            ThriftProtocol::Compact => read_span(&mut TCompactInputProtocol::new(&bytes[..])),
        }
        .expect("a jaeger.Span");
        let count = |key: &str| {
            decoded
                .tags
                .iter()
                .find(|tag| tag.key == key)
                .map(|tag| tag.value.clone())
        };
        assert_eq!(
            count("otel.dropped_attributes_count"),
            Some(TagValue::Long(5))
        );
        assert_eq!(count("otel.dropped_events_count"), None);
        assert_eq!(count("otel.dropped_links_count"), Some(TagValue::Long(200)));
    }
}
