//! The application the viewer tests look at: service A (`TraceLayer`, service name `a`) with a
//! few routes and the trace viewer nested at `/debug/traces`; service B (`b`), which A calls
//! through a `ClientTraceLayer`; service C (`c`), whose sampler is `AlwaysOff`, so that only a
//! debug header gets it traced. All three record into one in-memory store.

// Each test binary uses its own part of the harness.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use trace_core::sampler::AlwaysOff;
use trace_core::{InMemoryCollector, TraceId};
use trace_http::viewer::TraceViewer;
use trace_http::{ClientTraceLayer, TraceIdHeader, TraceLayer};

use crate::support::{self, Reply, echo_context};

/// Where the viewer is mounted in service A.
pub(crate) const VIEWER: &str = "/debug/traces";
/// How long `/slow` takes: far longer than anything else the tests send.
pub(crate) const SLOW: Duration = Duration::from_millis(600);
/// The debug id of the debug request.
pub(crate) const DEBUG_ID: &str = "abc";
/// Spans the traffic of [`send_traffic`] records: 3 for the chain, 1 each for the rest.
pub(crate) const TRAFFIC_SPANS: usize = 7;

/// The running services.
#[derive(Debug, Clone)]
pub(crate) struct Demo {
    /// Service A, with the viewer.
    pub(crate) a: SocketAddr,
    /// Service C, sampling nothing.
    pub(crate) c: SocketAddr,
    pub(crate) store: Arc<InMemoryCollector>,
}

/// The trace of each request [`send_traffic`] sends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Traffic {
    /// A's server span → A's client span → B's server span.
    pub(crate) chain: TraceId,
    pub(crate) user: TraceId,
    pub(crate) failure: TraceId,
    pub(crate) slow: TraceId,
    /// C's server span, forced by `jaeger-debug-id: abc`.
    pub(crate) debug: TraceId,
}

async fn user() -> &'static str {
    "user"
}

async fn fail() -> (StatusCode, &'static str) {
    (StatusCode::INTERNAL_SERVER_ERROR, "failed")
}

/// Streams "sl", waits, then "ow": a response whose first byte goes out well before its end.
async fn slow() -> axum::body::Body {
    axum::body::Body::new(SlowBody {
        sent: 0,
        pause: Box::pin(tokio::time::sleep(SLOW)),
    })
}

struct SlowBody {
    sent: u8,
    pause: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for SlowBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        let chunk = match self.sent {
            0 => "sl",
            1 => {
                if self.pause.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                "ow"
            }
            _ => return Poll::Ready(None),
        };
        self.sent += 1;
        Poll::Ready(Some(Ok(http_body::Frame::data(bytes::Bytes::from_static(
            chunk.as_bytes(),
        )))))
    }
}

/// Starts A, B and C over `store`.
pub(crate) async fn start(store: Arc<InMemoryCollector>) -> Demo {
    let b = support::serve(
        Router::new().route("/hop", get(echo_context)).layer(
            TraceLayer::new(store.clone())
                .service_name("b")
                .trace_id_header(TraceIdHeader::TraceResponse),
        ),
    )
    .await;
    let a_app = support::calling_app(b, ClientTraceLayer::new())
        .route("/users/{id}", get(user))
        .route("/fail", get(fail))
        .route("/slow", get(slow))
        .layer(
            TraceLayer::new(store.clone())
                .service_name("a")
                .trace_id_header(TraceIdHeader::TraceResponse),
        )
        // After the layer, so that looking at traces makes none.
        .nest_service(VIEWER, TraceViewer::new(store.clone()));
    let a = support::serve(a_app).await;
    let c = support::serve(
        Router::new().route("/echo", get(echo_context)).layer(
            TraceLayer::new(store.clone())
                .service_name("c")
                .sampler(AlwaysOff),
        ),
    )
    .await;
    Demo { a, c, store }
}

/// The trace id a response names in its `traceresponse` header.
pub(crate) fn trace_of(reply: &Reply) -> TraceId {
    let header = reply
        .header("traceresponse")
        .expect("a sampled request gets traceresponse");
    header
        .split('-')
        .nth(1)
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("malformed traceresponse {header:?}"))
}

/// One request of each kind, then a wait (bounded) until every span is stored.
pub(crate) async fn send_traffic(demo: &Demo) -> Traffic {
    let chain = support::get(demo.a, "/call/hop", &[]).await;
    assert!(chain.body.starts_with("200 "), "{}", chain.body);
    let user = support::get(demo.a, "/users/42", &[]).await;
    let failure = support::get(demo.a, "/fail", &[]).await;
    assert_eq!(failure.status, 500);
    let slow = support::get(demo.a, "/slow", &[]).await;
    let ignored = support::get(demo.c, "/echo", &[]).await;
    assert_eq!(ignored.header("traceresponse"), None, "C samples nothing");
    let debug = support::get(demo.c, "/echo", &[("jaeger-debug-id", DEBUG_ID)]).await;
    let spans = support::wait_for_spans(&demo.store, TRAFFIC_SPANS).await;
    assert_eq!(spans.len(), TRAFFIC_SPANS, "{spans:#?}");
    Traffic {
        chain: trace_of(&chain),
        user: trace_of(&user),
        failure: trace_of(&failure),
        slow: trace_of(&slow),
        debug: trace_of(&debug),
    }
}
