//! OTLP/HTTP against a real axum receiver on loopback that decodes with `opentelemetry-proto`
//! (prost for protobuf, its serde types for JSON).

#![cfg(feature = "otlp-http")]

mod otlp_common;

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use otlp_common::{GUARD, assert_request, spans, temp_path};
use prost::Message;
use trace_exporters::otlp::{OtlpHttpExporter, OtlpProtocol};
use trace_exporters::{ExportOutcome, ExportResult, SpanExporter};

/// One request as the receiver saw it, body already gunzipped.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Vec<u8>,
}

/// What the receiver answers with.
#[derive(Debug, Clone)]
struct Answer {
    status: StatusCode,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
}

impl Default for Answer {
    fn default() -> Self {
        Self {
            status: StatusCode::OK,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
}

#[derive(Debug, Default)]
struct Receiver {
    received: Mutex<Vec<Received>>,
    answer: Mutex<Answer>,
}

impl Receiver {
    fn answer_with(&self, answer: Answer) {
        *self.answer.lock().expect("answer lock") = answer;
    }

    fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.received.lock().expect("received lock"))
    }
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = match headers.get("content-encoding").map(|v| v.as_bytes()) {
        Some(b"gzip") => {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut plain)
                .expect("a valid gzip body");
            plain
        }
        _ => body.to_vec(),
    };
    receiver
        .received
        .lock()
        .expect("received lock")
        .push(Received { headers, body });
    let answer = receiver.answer.lock().expect("answer lock").clone();
    let mut response = (answer.status, answer.body).into_response();
    for (name, value) in answer.headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("a valid test header value"));
    }
    response
}

/// An OTLP/HTTP receiver on 127.0.0.1; returns it and its traces URL.
async fn start_receiver() -> (Arc<Receiver>, String) {
    let receiver = Arc::new(Receiver::default());
    let app = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (receiver, format!("http://{address}/v1/traces"))
}

async fn export(exporter: &mut OtlpHttpExporter) -> ExportResult {
    let batch = spans();
    tokio::time::timeout(GUARD, exporter.export(&batch))
        .await
        .expect("the export finishes")
}

fn decode_protobuf(body: &[u8]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest::decode(body).expect("a protobuf ExportTraceServiceRequest")
}

fn decode_json(body: &[u8]) -> ExportTraceServiceRequest {
    serde_json::from_slice(body).unwrap_or_else(|error| {
        panic!(
            "an OTLP/JSON ExportTraceServiceRequest ({error}): {}",
            String::from_utf8_lossy(body)
        )
    })
}

#[tokio::test]
async fn protobuf_fields_arrive_as_sent_with_and_without_gzip() {
    let (receiver, url) = start_receiver().await;
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
async fn json_fields_arrive_as_sent_with_and_without_gzip() {
    let (receiver, url) = start_receiver().await;
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
    let (receiver, url) = start_receiver().await;
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
    let (receiver, url) = start_receiver().await;
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
    let (receiver, url) = start_receiver().await;
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
            body: Vec::new(),
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
