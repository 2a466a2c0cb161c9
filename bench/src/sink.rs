//! A loopback OTLP/HTTP collector that counts the spans it receives and acknowledges them.
//!
//! It decodes with opentelemetry-proto's generated types, independent of every exporter under
//! test, so a span counted here really crossed the wire in a valid OTLP request.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message as _;

/// The largest request body accepted, compressed or not.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// What the sink has seen.
#[derive(Debug, Default)]
pub(crate) struct SinkCounts {
    /// Spans in the requests it acknowledged.
    pub(crate) spans: AtomicU64,
    /// Requests it acknowledged.
    pub(crate) requests: AtomicU64,
    /// Requests it refused: undecodable body or compression.
    pub(crate) rejected: AtomicU64,
    /// Spans by service name and span name, to show what was exported.
    names: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
}

/// The sink's routes: `POST /v1/traces` (protobuf, optionally gzip), `GET /count` (spans
/// received, a decimal number), `GET /stats` (`spans requests rejected`) and `GET /names`
/// (spans by service and span name, a line each).
pub(crate) fn router(counts: Arc<SinkCounts>) -> Router {
    Router::new()
        .route("/v1/traces", post(export))
        .route("/count", get(count))
        .route("/stats", get(stats))
        .route("/names", get(names))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(counts)
}

async fn count(State(counts): State<Arc<SinkCounts>>) -> String {
    format!("{}\n", counts.spans.load(Ordering::Relaxed))
}

async fn stats(State(counts): State<Arc<SinkCounts>>) -> String {
    format!(
        "{} {} {}\n",
        counts.spans.load(Ordering::Relaxed),
        counts.requests.load(Ordering::Relaxed),
        counts.rejected.load(Ordering::Relaxed)
    )
}

async fn names(State(counts): State<Arc<SinkCounts>>) -> String {
    let names = counts
        .names
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut out = String::new();
    for (service, spans) in names.iter() {
        for (name, count) in spans {
            let _ = writeln!(out, "{count}\t{service}\t{name}");
        }
    }
    out
}

async fn export(
    State(counts): State<Arc<SinkCounts>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    match decode(&headers, &body) {
        Ok(request) => {
            let spans: usize = request
                .resource_spans
                .iter()
                .flat_map(|resource| &resource.scope_spans)
                .map(|scope| scope.spans.len())
                .sum();
            counts.spans.fetch_add(spans as u64, Ordering::Relaxed);
            count_names(&counts, &request);
            counts.requests.fetch_add(1, Ordering::Relaxed);
            let response = ExportTraceServiceResponse::default().encode_to_vec();
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                response,
            )
        }
        Err(reason) => {
            counts.rejected.fetch_add(1, Ordering::Relaxed);
            (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "text/plain")],
                reason.into_bytes(),
            )
        }
    }
}

fn count_names(counts: &SinkCounts, request: &ExportTraceServiceRequest) {
    let mut names = counts
        .names
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for resource in &request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|resource| &resource.attributes)
            .find(|attribute| attribute.key == "service.name")
            .and_then(|attribute| attribute.value.as_ref()?.value.as_ref())
            .map_or("", |value| match value {
                any_value::Value::StringValue(name) => name.as_str(),
                _ => "(not a string)",
            });
        if !names.contains_key(service) {
            names.insert(service.to_owned(), BTreeMap::new());
        }
        let Some(by_name) = names.get_mut(service) else {
            continue;
        };
        for span in resource.scope_spans.iter().flat_map(|scope| &scope.spans) {
            // Looked up by reference: only a name not seen before is copied.
            match by_name.get_mut(span.name.as_str()) {
                Some(count) => *count += 1,
                None => {
                    by_name.insert(span.name.clone(), 1);
                }
            }
        }
    }
}

fn decode(headers: &HeaderMap, body: &[u8]) -> Result<ExportTraceServiceRequest, String> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|value| value.to_str().unwrap_or("?"));
    let inflated;
    let body = match encoding {
        None | Some("identity") => body,
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .take(MAX_BODY as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|error| format!("bad gzip body: {error}\n"))?;
            if out.len() > MAX_BODY {
                return Err("inflated body too large\n".to_owned());
            }
            inflated = out;
            &inflated
        }
        Some(other) => return Err(format!("unsupported content-encoding {other:?}\n")),
    };
    ExportTraceServiceRequest::decode(body).map_err(|error| format!("bad protobuf: {error}\n"))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use axum::body::Body;
    use axum::http::Request;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use tower::ServiceExt as _;

    use super::*;

    fn request_with(spans_per_scope: &[usize]) -> Vec<u8> {
        let scope_spans = spans_per_scope
            .iter()
            .map(|&n| ScopeSpans {
                spans: (0..n)
                    .map(|i| Span {
                        name: format!("span {i}"),
                        trace_id: vec![1; 16],
                        span_id: vec![2; 8],
                        ..Span::default()
                    })
                    .collect(),
                ..ScopeSpans::default()
            })
            .collect();
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans,
                ..ResourceSpans::default()
            }],
        }
        .encode_to_vec()
    }

    async fn post(router: &Router, body: Vec<u8>, gzip: bool) -> (StatusCode, Bytes) {
        let mut request =
            Request::post("/v1/traces").header("content-type", "application/x-protobuf");
        if gzip {
            request = request.header("content-encoding", "gzip");
        }
        let response = router
            .clone()
            .oneshot(request.body(Body::from(body)).expect("valid request"))
            .await
            .expect("infallible");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), MAX_BODY)
            .await
            .expect("small body");
        (status, body)
    }

    #[tokio::test]
    async fn counts_spans_across_scopes_plain_and_gzip() {
        let counts = Arc::new(SinkCounts::default());
        let router = router(counts.clone());

        let (status, body) = post(&router, request_with(&[3, 4]), false).await;
        assert_eq!(status, StatusCode::OK);
        ExportTraceServiceResponse::decode(body).expect("an ExportTraceServiceResponse");

        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(&request_with(&[5])).expect("in memory");
        let (status, _) = post(&router, gzip.finish().expect("in memory"), true).await;
        assert_eq!(status, StatusCode::OK);

        assert_eq!(counts.spans.load(Ordering::Relaxed), 12);
        assert_eq!(counts.requests.load(Ordering::Relaxed), 2);
        assert_eq!(counts.rejected.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn refuses_garbage_and_counts_it() {
        let counts = Arc::new(SinkCounts::default());
        let router = router(counts.clone());
        let (status, _) = post(&router, vec![0xff; 7], false).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = post(&router, b"not gzip".to_vec(), true).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(counts.rejected.load(Ordering::Relaxed), 2);
        assert_eq!(counts.spans.load(Ordering::Relaxed), 0);
    }
}
