//! `ExporterConfig::build` end to end: every exporter kind is built from settings alone and
//! delivers a span to a real loopback receiver of its protocol, which decodes it with an
//! independent implementation (`opentelemetry-proto`, the `thrift` crate, `serde_json`).

#![cfg(all(
    feature = "stdout",
    feature = "jaeger-agent",
    feature = "jaeger-collector",
    feature = "otlp-http",
    feature = "otlp-grpc",
    feature = "zipkin"
))]

mod jaeger_support;
mod otlp_common;
mod zipkin_support;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use jaeger_support::plain_span;
use jaeger_support::receivers::{
    AgentReceiver, CollectorReceiver, decode_agent_datagram, decode_collector_body,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use otlp_common::{grpc_receiver, http_receiver};
use prometheus_client::registry::Registry;
use trace_core::{InMemoryCollector, Span};
use trace_exporters::config::{ExporterConfig, ExporterKind, OtlpProtocol};
use trace_exporters::{BuildError, ExporterMetrics, ShutdownReport, Telemetry};

/// Generous guard against a hung test; never what a test measures.
const GUARD: Duration = Duration::from_secs(10);

const TRACE: u128 = 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736;
const SPAN: u64 = 0x00f0_67aa_0ba9_02b7;

fn span() -> Span {
    plain_span(TRACE, SPAN, "GET /users/{id}")
}

fn config(exporter: ExporterKind) -> ExporterConfig {
    ExporterConfig::default()
        .with_exporter(exporter)
        .with_service_name("checkout")
}

/// Builds, hands over one span, and flushes.
async fn deliver_one(config: &ExporterConfig) -> (Telemetry, ShutdownReport) {
    let telemetry = config.build().expect("the settings build");
    telemetry.collector().collect(span());
    let report = tokio::time::timeout(GUARD, telemetry.shutdown(GUARD))
        .await
        .expect("shutdown within the guard");
    (telemetry, report)
}

fn assert_delivered_one(report: &ShutdownReport) {
    assert_eq!(report.exported, 1, "{report:?}");
    assert_eq!(report.lost, 0, "{report:?}");
    assert!(!report.deadline_reached, "{report:?}");
}

/// The one span of an OTLP request, checked field by field against what was sent.
fn assert_otlp_span(request: &ExportTraceServiceRequest) {
    let [resource_spans] = &request.resource_spans[..] else {
        panic!("one resource: {request:?}");
    };
    let service = resource_spans
        .resource
        .as_ref()
        .expect("a resource")
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref()?.value.clone());
    assert_eq!(
        service,
        Some(any_value::Value::StringValue("checkout".to_owned()))
    );
    let spans: Vec<_> = resource_spans
        .scope_spans
        .iter()
        .flat_map(|scope| &scope.spans)
        .collect();
    let [span] = &spans[..] else {
        panic!("one span: {spans:?}");
    };
    assert_eq!(span.name, "GET /users/{id}");
    assert_eq!(span.trace_id, TRACE.to_be_bytes());
    assert_eq!(span.span_id, SPAN.to_be_bytes());
}

#[tokio::test]
async fn none_builds_without_an_exporter() {
    let (telemetry, report) = deliver_one(&config(ExporterKind::None)).await;
    assert!(telemetry.exporter().is_none());
    assert_eq!(telemetry.description(), "none");
    assert_eq!(report, ShutdownReport::default());
}

#[tokio::test]
async fn stdout_exports_through_the_pipeline() {
    let (telemetry, report) = deliver_one(&config(ExporterKind::Stdout)).await;
    assert!(telemetry.description().starts_with("stdout"));
    assert_delivered_one(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jaeger_agent_delivers_compact_thrift_over_udp() {
    let mut agent = AgentReceiver::start().await;
    let config = config(ExporterKind::Jaeger).with_jaeger_agent("127.0.0.1", agent.address.port());
    let (telemetry, report) = deliver_one(&config).await;
    assert_delivered_one(&report);
    assert!(
        telemetry.description().contains(&agent.address.to_string()),
        "{}",
        telemetry.description()
    );
    let batch = decode_agent_datagram(&agent.next().await);
    assert_eq!(batch.process.service_name, "checkout");
    let [span] = &batch.spans[..] else {
        panic!("one span: {batch:?}");
    };
    assert_eq!(span.operation_name, "GET /users/{id}");
    assert_eq!(span.trace_id_high, (TRACE >> 64) as u64 as i64);
    assert_eq!(span.trace_id_low, TRACE as u64 as i64);
    assert_eq!(span.span_id, SPAN as i64);
}

#[tokio::test]
async fn jaeger_collector_delivers_binary_thrift_over_http() {
    let mut collector = CollectorReceiver::start(StatusCode::ACCEPTED).await;
    // host:port alone: the exporter adds the scheme and /api/traces.
    let config = config(ExporterKind::JaegerHttp)
        .with_jaeger_collector_endpoint(collector.address.to_string());
    let (telemetry, report) = deliver_one(&config).await;
    assert_delivered_one(&report);
    assert!(
        telemetry.description().ends_with("/api/traces"),
        "{}",
        telemetry.description()
    );
    let batch = decode_collector_body(&collector.next().await.body);
    assert_eq!(batch.process.service_name, "checkout");
    let [span] = &batch.spans[..] else {
        panic!("one span: {batch:?}");
    };
    assert_eq!(span.operation_name, "GET /users/{id}");
    assert_eq!(span.span_id, SPAN as i64);
}

#[tokio::test]
async fn otlp_http_delivers_protobuf_and_json() {
    for (protocol, content_type) in [
        (OtlpProtocol::HttpProtobuf, "application/x-protobuf"),
        (OtlpProtocol::HttpJson, "application/json"),
    ] {
        let (receiver, url) = http_receiver::start().await;
        let mut config = config(ExporterKind::Otlp);
        config.otlp.protocol = protocol;
        config.otlp.traces_endpoint = Some(url.clone());
        let (telemetry, report) = deliver_one(&config).await;
        assert_delivered_one(&report);
        assert!(telemetry.description().contains(&url));
        let [request] = &receiver.take()[..] else {
            panic!("one request for {protocol}");
        };
        assert_eq!(request.headers["content-type"], content_type);
        assert_otlp_span(&request.decode());
    }
}

#[tokio::test]
async fn otlp_grpc_delivers_to_a_trace_service() {
    let (receiver, url) = grpc_receiver::start().await;
    let config = config(ExporterKind::OtlpGrpc).with_otlp_endpoint(url);
    let (_, report) = deliver_one(&config).await;
    assert_delivered_one(&report);
    let [(_, request)] = &receiver.take()[..] else {
        panic!("one request");
    };
    assert_otlp_span(request);
}

#[tokio::test]
async fn zipkin_delivers_v2_json() {
    let (address, mut received) = zipkin_support::receiver().await;
    let config =
        config(ExporterKind::Zipkin).with_zipkin_endpoint(format!("http://{address}/api/v2/spans"));
    let (_, report) = deliver_one(&config).await;
    assert_delivered_one(&report);
    let request = zipkin_support::next(&mut received).await;
    let spans: serde_json::Value = serde_json::from_slice(&request.body).expect("JSON");
    assert_eq!(spans.as_array().map(Vec::len), Some(1), "{spans}");
    assert_eq!(spans[0]["name"], "GET /users/{id}");
    assert_eq!(spans[0]["traceId"], format!("{TRACE:032x}"));
    assert_eq!(spans[0]["id"], format!("{SPAN:016x}"));
    assert_eq!(spans[0]["localEndpoint"]["serviceName"], "checkout");
}

#[tokio::test]
async fn also_collect_into_tees_spans_to_a_local_collector_and_the_exporter() {
    let (receiver, url) = http_receiver::start().await;
    let mut config = config(ExporterKind::Otlp);
    config.otlp.traces_endpoint = Some(url);
    let local = Arc::new(InMemoryCollector::new(16));
    let telemetry = config
        .build()
        .expect("the settings build")
        .also_collect_into(local.clone());
    telemetry.collector().collect(span());
    let report = telemetry.shutdown(GUARD).await;
    assert_delivered_one(&report);
    let kept = local.spans();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].span_id, span().span_id);
    let [request] = &receiver.take()[..] else {
        panic!("one request");
    };
    assert_otlp_span(&request.decode());
}

#[tokio::test]
async fn also_collect_into_adds_a_collector_each_call_with_or_without_an_exporter() {
    for kind in [ExporterKind::None, ExporterKind::Stdout] {
        let first = Arc::new(InMemoryCollector::new(16));
        let second = Arc::new(InMemoryCollector::new(16));
        let telemetry = config(kind)
            .build()
            .expect("the settings build")
            .also_collect_into(first.clone())
            .also_collect_into(second.clone());
        telemetry.collector().collect(span());
        assert_eq!((first.len(), second.len()), (1, 1), "{kind:?}");
        let report = telemetry.shutdown(GUARD).await;
        assert_eq!(report.exported, u64::from(kind == ExporterKind::Stdout));
    }
}

#[tokio::test]
async fn build_with_metrics_reports_the_pipelines_health() {
    let (_receiver, url) = http_receiver::start().await;
    let mut config = config(ExporterKind::Otlp);
    config.otlp.traces_endpoint = Some(url);
    let mut registry = Registry::default();
    let metrics = ExporterMetrics::register(&mut registry);
    let telemetry = config
        .build_with_metrics(&metrics)
        .expect("the settings build");
    telemetry.collector().collect(span());
    assert_delivered_one(&telemetry.shutdown(GUARD).await);

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    let exported = text
        .lines()
        .find(|line| line.starts_with("trace_exporter_spans_exported_total"))
        .unwrap_or_else(|| panic!("an exported counter in\n{text}"));
    assert!(exported.ends_with(" 1"), "{exported}");
    assert!(
        text.contains("trace_exporter_export_duration_seconds_count"),
        "{text}"
    );
}

#[test]
fn a_bad_setting_is_a_build_error_naming_it() {
    let mut bad_queue = config(ExporterKind::Otlp);
    bad_queue.batch.max_queue_size = 0;
    let mut bad_endpoint = config(ExporterKind::Otlp);
    bad_endpoint.otlp.endpoint = Some("http://collector:port".to_owned());
    let mut bad_packet = config(ExporterKind::Jaeger);
    bad_packet.jaeger.max_packet_size = 10;
    for (config, setting) in [
        (bad_queue, "batch.max_queue_size"),
        (bad_endpoint, "otlp.endpoint"),
        (bad_packet, "jaeger.max_packet_size"),
    ] {
        let error = config.build().expect_err("a bad setting");
        assert!(matches!(error, BuildError::Config(_)), "{error:?}");
        assert!(error.to_string().contains(setting), "{setting}: {error}");
    }
}

#[cfg(feature = "tls")]
#[test]
fn a_setting_the_exporter_refuses_is_a_build_error_naming_the_exporter() {
    let missing = otlp_common::temp_path("no-such-ca.pem");
    let mut config = config(ExporterKind::Otlp).with_otlp_endpoint("https://127.0.0.1:4318");
    config.otlp.certificate = Some(missing.clone());
    let error = config.build().expect_err("a missing CA file");
    let message = error.to_string();
    assert!(
        matches!(
            error,
            BuildError::Exporter {
                exporter: "otlp",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
}

#[tokio::test]
async fn shutdown_reports_what_was_lost() {
    let mut config = config(ExporterKind::Otlp);
    config.otlp.traces_endpoint = Some(http_receiver::closed_port_url());
    let telemetry = config.build().expect("the settings build");
    telemetry.collector().collect(span());
    telemetry.collector().collect(span());
    // Nobody listens: the batch is retried until the deadline passes, then given up.
    let report = tokio::time::timeout(GUARD, telemetry.shutdown(Duration::from_millis(300)))
        .await
        .expect("shutdown within the guard");
    assert_eq!(report.exported, 0, "{report:?}");
    assert_eq!(report.lost, 2, "{report:?}");
    assert!(report.deadline_reached, "{report:?}");
    let exporter = telemetry.exporter().expect("an exporter");
    assert_eq!(exporter.dropped_for("shutdown_deadline"), 2);
}
