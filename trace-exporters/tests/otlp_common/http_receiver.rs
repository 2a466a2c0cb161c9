//! An OTLP/HTTP receiver on loopback (axum) that decodes with `opentelemetry-proto`: prost for
//! protobuf, its serde types for JSON. It can be told to answer with any status and headers
//! (for a given number of requests, then the standing answer), or to hold requests unanswered
//! until released.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tokio::sync::watch;

use super::GUARD;

/// One request as the receiver saw it, body already gunzipped.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived.
    pub at: Instant,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// What it was answered with (`None` while held, or if never answered).
    pub status: Option<StatusCode>,
}

impl Received {
    /// The request decoded by its content type.
    pub fn decode(&self) -> ExportTraceServiceRequest {
        match self.headers.get("content-type").map(|v| v.as_bytes()) {
            Some(b"application/json") => decode_json(&self.body),
            _ => decode_protobuf(&self.body),
        }
    }
}

/// What the receiver answers with.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: Vec<u8>,
    /// Hold the request unanswered until [`Receiver::release`] (forever if never released).
    pub hold: bool,
}

impl Default for Answer {
    fn default() -> Self {
        Self {
            status: StatusCode::OK,
            headers: Vec::new(),
            body: Vec::new(),
            hold: false,
        }
    }
}

impl Answer {
    /// `status` with a `Retry-After` header.
    pub fn retry_after(status: StatusCode, seconds: &'static str) -> Self {
        Self {
            status,
            headers: vec![("retry-after", seconds)],
            ..Self::default()
        }
    }

    /// Never answers (until released).
    pub fn hold() -> Self {
        Self {
            hold: true,
            ..Self::default()
        }
    }
}

#[derive(Debug)]
pub struct Receiver {
    received: Mutex<Vec<Received>>,
    scripted: Mutex<VecDeque<Answer>>,
    answer: Mutex<Answer>,
    released: watch::Sender<bool>,
}

impl Default for Receiver {
    fn default() -> Self {
        Self {
            received: Mutex::default(),
            scripted: Mutex::default(),
            answer: Mutex::default(),
            released: watch::Sender::new(false),
        }
    }
}

impl Receiver {
    /// Answers every later request so (after any scripted answers).
    pub fn answer_with(&self, answer: Answer) {
        *self.answer.lock().expect("answer lock") = answer;
    }

    /// Answers the next requests with these, in order, then with the standing answer.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.scripted.lock().expect("script lock").extend(answers);
    }

    /// Lets held requests (and later ones asked to be held) go on to their answer.
    pub fn release(&self) {
        self.released.send_replace(true);
    }

    /// Takes every request received so far.
    pub fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.received.lock().expect("received lock"))
    }

    /// A copy of every request received so far.
    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().expect("received lock").clone()
    }

    /// Waits (at most [`GUARD`]) until `count` requests have arrived.
    pub async fn wait_for_requests(&self, count: usize) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let requests = self.requests();
            if requests.len() >= count {
                return requests;
            }
            assert!(
                started.elapsed() < GUARD,
                "{count} requests expected, {} arrived",
                requests.len()
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// The span ids of every span in a request that was answered with a success, in order of
    /// arrival (duplicates kept, so that a test can see them).
    pub fn delivered_span_ids(&self) -> Vec<Vec<u8>> {
        self.requests()
            .iter()
            .filter(|request| request.status.is_some_and(|status| status.is_success()))
            .flat_map(|request| span_ids(&request.decode()))
            .collect()
    }
}

/// The span ids in a request.
pub fn span_ids(request: &ExportTraceServiceRequest) -> Vec<Vec<u8>> {
    request
        .resource_spans
        .iter()
        .flat_map(|resource| &resource.scope_spans)
        .flat_map(|scope| &scope.spans)
        .map(|span| span.span_id.clone())
        .collect()
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
    let answer = receiver
        .scripted
        .lock()
        .expect("script lock")
        .pop_front()
        .unwrap_or_else(|| receiver.answer.lock().expect("answer lock").clone());
    let index = {
        let mut received = receiver.received.lock().expect("received lock");
        received.push(Received {
            at: Instant::now(),
            headers,
            body,
            status: None,
        });
        received.len() - 1
    };
    if answer.hold {
        let mut released = receiver.released.subscribe();
        // Dropped with the connection when the client gives up; never answers otherwise.
        let _ = released.wait_for(|released| *released).await;
    }
    receiver.received.lock().expect("received lock")[index].status = Some(answer.status);
    let mut response = (answer.status, answer.body).into_response();
    for (name, value) in answer.headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("a valid test header value"));
    }
    response
}

/// An OTLP/HTTP receiver on 127.0.0.1; returns it and its traces URL.
pub async fn start() -> (Arc<Receiver>, String) {
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

/// A loopback URL where nobody listens (a port bound and released).
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    format!("http://{address}/v1/traces")
}

pub fn decode_protobuf(body: &[u8]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest::decode(body).expect("a protobuf ExportTraceServiceRequest")
}

pub fn decode_json(body: &[u8]) -> ExportTraceServiceRequest {
    serde_json::from_slice(body).unwrap_or_else(|error| {
        panic!(
            "an OTLP/JSON ExportTraceServiceRequest ({error}): {}",
            String::from_utf8_lossy(body)
        )
    })
}
