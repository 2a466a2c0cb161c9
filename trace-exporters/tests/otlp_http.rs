//! OTLP/HTTP against a real axum receiver on loopback that decodes with `opentelemetry-proto`
//! (prost for protobuf, its serde types for JSON).

#![cfg(feature = "otlp-http")]

mod otlp_common;

use std::time::Duration;

use axum::http::StatusCode;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use otlp_common::http_receiver::{self, Answer, decode_json, decode_protobuf};
use otlp_common::{assert_request, export, export_encoded, export_through_pipeline, temp_path};
use prost::Message;
use trace_exporters::otlp::{OtlpHttpExporter, OtlpProtocol};
use trace_exporters::{ExportOutcome, SpanExporter};

#[tokio::test]
async fn protobuf_fields_arrive_as_sent_with_and_without_gzip() {
    let (receiver, url) = http_receiver::start().await;
    for gzip in [false, true] {
        let mut exporter = OtlpHttpExporter::builder()
            .endpoint(&url)
            .gzip(gzip)
            .resource(otlp_common::resource())
            .build_http()
            .expect("exporter");
        assert_eq!(
            export(&mut exporter).await.ok(),
            Some(ExportOutcome::delivered())
        );
        let received = receiver.take();
        assert_eq!(received.len(), 1);
        let headers = &received[0].headers;
        assert_eq!(headers["content-type"], "application/x-protobuf");
        assert_eq!(
            headers.get("content-encoding").map(|v| v.as_bytes()),
            gzip.then_some(&b"gzip"[..])
        );
        assert_request(&decode_protobuf(&received[0].body));
    }
}

#[tokio::test]
async fn protobuf_spans_encoded_as_they_end_arrive_as_sent() {
    let (receiver, url) = http_receiver::start().await;
    let exporter = |gzip: bool| {
        OtlpHttpExporter::builder()
            .endpoint(&url)
            .gzip(gzip)
            .resource(otlp_common::resource())
            .build_http()
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
        for request in &received {
            assert_eq!(request.headers["content-type"], "application/x-protobuf");
            assert_eq!(
                request
                    .headers
                    .get("content-encoding")
                    .map(|v| v.as_bytes()),
                gzip.then_some(&b"gzip"[..])
            );
            assert_request(&decode_protobuf(&request.body));
        }
    }
}

#[tokio::test]
async fn json_spans_go_through_the_pipeline_unencoded() {
    let (receiver, url) = http_receiver::start().await;
    let exporter = OtlpHttpExporter::builder()
        .endpoint(&url)
        .protocol(OtlpProtocol::HttpJson)
        .resource(otlp_common::resource())
        .build_http()
        .expect("exporter");
    assert!(
        exporter.span_encoder().is_none(),
        "OTLP/JSON is written batch by batch"
    );
    let report = export_through_pipeline(exporter).await;
    assert_eq!((report.exported, report.lost), (3, 0), "{report:?}");
    let received = receiver.take();
    assert_eq!(received.len(), 1);
    assert_request(&decode_json(&received[0].body));
}

#[tokio::test]
async fn json_fields_arrive_as_sent_with_and_without_gzip() {
    let (receiver, url) = http_receiver::start().await;
    for gzip in [false, true] {
        let mut exporter = OtlpHttpExporter::builder()
            .endpoint(&url)
            .protocol(OtlpProtocol::HttpJson)
            .gzip(gzip)
            .resource(otlp_common::resource())
            .build_http()
            .expect("exporter");
        assert_eq!(
            export(&mut exporter).await.ok(),
            Some(ExportOutcome::delivered())
        );
        let received = receiver.take();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].headers["content-type"], "application/json");
        let body = &received[0].body;
        assert_request(&decode_json(body));
        // OTLP/JSON specifics the serde types would also accept otherwise.
        let json: serde_json::Value = serde_json::from_slice(body).expect("JSON");
        let span = &json["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(
            span["traceId"],
            otlp_common::TRACE_ID,
            "ids as lower-case hex"
        );
        assert_eq!(span["kind"], 2, "enums as integers");
        assert!(
            span["startTimeUnixNano"].is_string(),
            "64-bit integers as strings"
        );
        assert_eq!(span["attributes"][2]["value"]["intValue"], "504");
    }
}

#[tokio::test]
async fn custom_headers_and_a_rotated_token_are_sent() {
    let (receiver, url) = http_receiver::start().await;
    let token_file = temp_path("http-token");
    std::fs::write(&token_file, "first-token\n").expect("write the token file");
    let mut exporter = OtlpHttpExporter::builder()
        .endpoint(&url)
        .header("x-tenant", "shop")
        .headers([("x-api-key", "k1")])
        .token_file(&token_file)
        .build_http()
        .expect("exporter");

    assert!(export(&mut exporter).await.is_ok());
    // A new token of another length, so the change shows even with a coarse modification time.
    std::fs::write(&token_file, "second-token-rotated").expect("rewrite the token file");
    assert!(export(&mut exporter).await.is_ok());
    let _ = std::fs::remove_file(&token_file);

    let received = receiver.take();
    assert_eq!(received.len(), 2);
    for request in &received {
        assert_eq!(request.headers["x-tenant"], "shop");
        assert_eq!(request.headers["x-api-key"], "k1");
        assert!(
            request.headers["user-agent"]
                .to_str()
                .expect("ASCII")
                .starts_with("tracewire/")
        );
    }
    assert_eq!(received[0].headers["authorization"], "Bearer first-token");
    assert_eq!(
        received[1].headers["authorization"],
        "Bearer second-token-rotated"
    );
}

#[tokio::test]
async fn a_missing_token_file_fails_the_build() {
    let result = OtlpHttpExporter::builder()
        .token_file(temp_path("no-such-token"))
        .build_http();
    assert!(matches!(
        result,
        Err(trace_exporters::otlp::OtlpError::TokenFile { .. })
    ));
}

#[tokio::test]
async fn partial_success_counts_rejected_spans() {
    let (receiver, url) = http_receiver::start().await;
    let response = ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: 2,
            error_message: "spans too old".to_owned(),
        }),
    };
    receiver.answer_with(Answer {
        body: response.encode_to_vec(),
        headers: vec![("content-type", "application/x-protobuf")],
        ..Answer::default()
    });
    let mut exporter = OtlpHttpExporter::builder()
        .endpoint(&url)
        .build_http()
        .expect("exporter");
    assert_eq!(
        export(&mut exporter).await.ok(),
        Some(ExportOutcome::with_dropped(2, "rejected_by_collector"))
    );

    receiver.answer_with(Answer {
        body: br#"{"partialSuccess":{"rejectedSpans":"1","errorMessage":"x"}}"#.to_vec(),
        headers: vec![("content-type", "application/json")],
        ..Answer::default()
    });
    let mut exporter = OtlpHttpExporter::builder()
        .endpoint(&url)
        .protocol(OtlpProtocol::HttpJson)
        .build_http()
        .expect("exporter");
    assert_eq!(
        export(&mut exporter).await.ok(),
        Some(ExportOutcome::with_dropped(1, "rejected_by_collector"))
    );
}

#[tokio::test]
async fn overload_is_retryable_after_the_servers_delay_and_a_bad_request_is_not() {
    let (receiver, url) = http_receiver::start().await;
    let mut exporter = OtlpHttpExporter::builder()
        .endpoint(&url)
        .build_http()
        .expect("exporter");
    for (status, retry_after, expected) in [
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "7",
            Some(Duration::from_secs(7)),
        ),
        (
            StatusCode::TOO_MANY_REQUESTS,
            "2",
            Some(Duration::from_secs(2)),
        ),
    ] {
        receiver.answer_with(Answer {
            status,
            headers: vec![("retry-after", retry_after)],
            ..Answer::default()
        });
        let error = export(&mut exporter).await.expect_err("an overload error");
        assert!(error.is_retryable(), "{status} is retryable");
        assert_eq!(error.retry_after(), expected);
    }
    receiver.answer_with(Answer {
        status: StatusCode::BAD_REQUEST,
        ..Answer::default()
    });
    let error = export(&mut exporter).await.expect_err("a bad request");
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn a_closed_port_is_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    let mut exporter = OtlpHttpExporter::builder()
        .endpoint(format!("http://{address}/v1/traces"))
        .build_http()
        .expect("exporter");
    let error = export(&mut exporter).await.expect_err("nobody listens");
    assert!(error.is_retryable());
}

#[test]
fn bad_settings_fail_the_build() {
    use trace_exporters::otlp::OtlpError;
    let error = OtlpHttpExporter::builder()
        .endpoint("localhost:4318")
        .build_http()
        .expect_err("no scheme");
    assert!(matches!(error, OtlpError::InvalidEndpoint { .. }));
    let error = OtlpHttpExporter::builder()
        .protocol(OtlpProtocol::Grpc)
        .build_http()
        .expect_err("gRPC is not HTTP");
    assert!(matches!(error, OtlpError::WrongProtocol { .. }));
}
