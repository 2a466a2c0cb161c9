//! OTLP/gRPC against a real tonic server on loopback implementing `opentelemetry-proto`'s
//! generated `TraceService`.

#![cfg(feature = "otlp-grpc")]

mod otlp_common;

use std::time::Duration;

use otlp_common::grpc_receiver::{self, Answer};
use otlp_common::{assert_request, export, export_encoded, export_through_pipeline, temp_path};
use tonic::Code;
use trace_exporters::ExportOutcome;
use trace_exporters::otlp::{OtlpError, OtlpGrpcExporter, OtlpProtocol};

#[tokio::test]
async fn fields_arrive_as_sent_with_and_without_gzip() {
    let (receiver, url) = grpc_receiver::start().await;
    for gzip in [false, true] {
        let mut exporter = OtlpGrpcExporter::builder()
            .endpoint(&url)
            .gzip(gzip)
            .resource(otlp_common::resource())
            .build_grpc()
            .expect("exporter");
        assert_eq!(
            export(&mut exporter).await.ok(),
            Some(ExportOutcome::delivered())
        );
        let received = receiver.take();
        assert_eq!(received.len(), 1);
        let (metadata, request) = &received[0];
        assert_eq!(
            metadata.get("grpc-encoding").and_then(|v| v.to_str().ok()),
            gzip.then_some("gzip"),
        );
        assert_request(request);
    }
}

#[tokio::test]
async fn spans_encoded_as_they_end_arrive_as_sent() {
    let (receiver, url) = grpc_receiver::start().await;
    let exporter = |gzip: bool| {
        OtlpGrpcExporter::builder()
            .endpoint(&url)
            .gzip(gzip)
            .resource(otlp_common::resource())
            .build_grpc()
            .expect("exporter")
    };
    for gzip in [false, true] {
        assert_eq!(
            export_encoded(&mut exporter(gzip)).await.ok(),
            Some(ExportOutcome::delivered())
        );
        let report = export_through_pipeline(exporter(gzip)).await;
        assert_eq!((report.exported, report.lost), (3, 0), "{report:?}");
        let received = receiver.take();
        assert_eq!(received.len(), 2, "one request from each path");
        for (metadata, request) in &received {
            assert_eq!(
                metadata.get("grpc-encoding").and_then(|v| v.to_str().ok()),
                gzip.then_some("gzip"),
            );
            assert_request(request);
        }
    }
}

#[tokio::test]
async fn metadata_and_a_rotated_token_are_sent() {
    let (receiver, url) = grpc_receiver::start().await;
    let token_file = temp_path("grpc-token");
    std::fs::write(&token_file, "first-token\n").expect("write the token file");
    let mut exporter = OtlpGrpcExporter::builder()
        .endpoint(&url)
        .header("x-tenant", "shop")
        .token_file(&token_file)
        .build_grpc()
        .expect("exporter");
    assert!(export(&mut exporter).await.is_ok());
    std::fs::write(&token_file, "second-token-rotated").expect("rewrite the token file");
    assert!(export(&mut exporter).await.is_ok());
    let _ = std::fs::remove_file(&token_file);

    let received = receiver.take();
    assert_eq!(received.len(), 2);
    let value = |index: usize, name: &str| {
        received[index]
            .0
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(value(0, "x-tenant").as_deref(), Some("shop"));
    assert_eq!(value(1, "x-tenant").as_deref(), Some("shop"));
    assert!(
        value(0, "user-agent").is_some_and(|agent| agent.starts_with("tracewire/")),
        "{:?}",
        value(0, "user-agent")
    );
    assert_eq!(
        value(0, "authorization").as_deref(),
        Some("Bearer first-token")
    );
    assert_eq!(
        value(1, "authorization").as_deref(),
        Some("Bearer second-token-rotated")
    );
}

#[tokio::test]
async fn partial_success_counts_rejected_spans() {
    let (receiver, url) = grpc_receiver::start().await;
    receiver.answer_with(Answer::PartialSuccess(2));
    let mut exporter = OtlpGrpcExporter::builder()
        .endpoint(&url)
        .build_grpc()
        .expect("exporter");
    assert_eq!(
        export(&mut exporter).await.ok(),
        Some(ExportOutcome::with_dropped(2, "rejected_by_collector"))
    );
}

#[tokio::test]
async fn unavailable_is_retryable_after_the_servers_delay_and_unauthenticated_is_not() {
    let (receiver, url) = grpc_receiver::start().await;
    let mut exporter = OtlpGrpcExporter::builder()
        .endpoint(&url)
        .build_grpc()
        .expect("exporter");

    receiver.answer_with(Answer::Error(Code::Unavailable, None));
    let error = export(&mut exporter).await.expect_err("unavailable");
    assert!(error.is_retryable());
    assert_eq!(error.retry_after(), None);

    let delay = Duration::from_millis(1_250);
    receiver.answer_with(Answer::Error(Code::ResourceExhausted, Some(delay)));
    let error = export(&mut exporter).await.expect_err("exhausted");
    assert!(error.is_retryable());
    assert_eq!(error.retry_after(), Some(delay));

    receiver.answer_with(Answer::Error(Code::Unauthenticated, None));
    let error = export(&mut exporter).await.expect_err("unauthenticated");
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn a_closed_port_is_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    let mut exporter = OtlpGrpcExporter::builder()
        .endpoint(format!("http://{address}"))
        .build_grpc()
        .expect("exporter");
    let error = export(&mut exporter).await.expect_err("nobody listens");
    assert!(error.is_retryable(), "{error}");
}

#[tokio::test]
async fn bad_settings_fail_the_build() {
    let error = OtlpGrpcExporter::builder()
        .endpoint("not a url")
        .build_grpc()
        .expect_err("not a URL");
    assert!(matches!(error, OtlpError::InvalidEndpoint { .. }));
    let error = OtlpGrpcExporter::builder()
        .protocol(OtlpProtocol::HttpProtobuf)
        .build_grpc()
        .expect_err("HTTP is not gRPC");
    assert!(matches!(error, OtlpError::WrongProtocol { .. }));
}
