//! A Zipkin receiver on loopback (axum) that hands over each request for the test to decode
//! with `serde_json`.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use tokio::sync::mpsc;

/// Generous guard against a hung test; never what a test measures.
pub const GUARD: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Received {
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// A receiver on 127.0.0.1: `/api/v2/spans` accepts (202) and forwards each request;
/// `/busy` answers 503 with `Retry-After: 2`; `/bad` answers 400.
pub async fn receiver() -> (SocketAddr, mpsc::Receiver<Received>) {
    let (sender, received) = mpsc::channel(16);
    async fn accept(
        State(sender): State<Arc<mpsc::Sender<Received>>>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let _ = sender.send(Received { content_type, body }).await;
        StatusCode::ACCEPTED
    }
    let app = Router::new()
        .route("/api/v2/spans", post(accept))
        .route(
            "/busy",
            post(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "2")],
                    "busy",
                )
            }),
        )
        .route(
            "/bad",
            post(|| async { (StatusCode::BAD_REQUEST, "malformed") }),
        )
        .with_state(Arc::new(sender));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (address, received)
}

/// The next request, within [`GUARD`].
pub async fn next(received: &mut mpsc::Receiver<Received>) -> Received {
    tokio::time::timeout(GUARD, received.recv())
        .await
        .expect("a request within the guard")
        .expect("receiver running")
}
