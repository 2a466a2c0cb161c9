//! A server span lasts as long as its response body: it ends when the last chunk of a streaming
//! body has been sent (not when the handler returns), records the first byte and the bytes
//! sent, and is marked aborted when the client goes away mid-body.

#![allow(clippy::unwrap_used)]

mod support;

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use trace_core::Status;
use trace_http::TraceLayer;

use support::{attr_bool, attr_i64, attr_str};

const CHUNK: &[u8] = b"chunk of 16 byte";
const DELAY: Duration = Duration::from_millis(100);

/// A response body fed by a channel: each message is one data frame; the body ends when the
/// sender is dropped.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|data| Ok(Frame::data(data))))
    }
}

/// One chunk, then an error (a backend stream that broke mid-response).
struct FailingBody(bool);

impl http_body::Body for FailingBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.0 {
            return Poll::Ready(Some(Err(std::io::Error::other("upstream stream broke"))));
        }
        self.0 = true;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(CHUNK)))))
    }
}

/// A body whose stream panics when polled (a handler's stream with a bug in it).
struct PanickingBody;

impl http_body::Body for PanickingBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        panic!("the body's stream has a bug");
    }
}

/// `count` chunks, the first at once and then one every [`DELAY`]; stops early when the client
/// is gone.
fn slow_body(count: usize) -> Body {
    let (sender, receiver) = mpsc::channel(1);
    tokio::spawn(async move {
        for i in 0..count {
            if i > 0 {
                tokio::time::sleep(DELAY).await;
            }
            if sender.send(Bytes::from_static(CHUNK)).await.is_err() {
                return;
            }
        }
    });
    Body::new(ChannelBody(receiver))
}

/// [`slow_body`] with the `Content-Length` of its `count` chunks set by the handler: hyper sends
/// that many bytes and then drops the body, without polling it for its end.
fn announced(count: usize) -> impl axum::response::IntoResponse {
    let length = (count * CHUNK.len()).to_string();
    ([(http::header::CONTENT_LENGTH, length)], slow_body(count))
}

fn streaming_app<M: trace_http::trace::MetricsSlot>(layer: TraceLayer<M>) -> Router {
    Router::new()
        .route("/three", get(|| async { slow_body(3) }))
        .route("/long", get(|| async { slow_body(20) }))
        .route("/announced", get(|| async { announced(3) }))
        .route("/announced-long", get(|| async { announced(20) }))
        .route("/empty", get(|| async { StatusCode::NO_CONTENT }))
        .route("/failing", get(|| async { Body::new(FailingBody(false)) }))
        .route("/panicking", get(|| async { Body::new(PanickingBody) }))
        .route(
            "/slow-head",
            get(|| async {
                tokio::time::sleep(20 * DELAY).await;
                "too late"
            }),
        )
        .layer(layer)
}

/// The next data chunk of a response body (bounded wait).
async fn next_chunk(body: &mut hyper::body::Incoming) -> Option<Bytes> {
    loop {
        let frame = tokio::time::timeout(support::REQUEST_TIMEOUT, body.frame())
            .await
            .expect("frame in time")?
            .expect("frame");
        if let Ok(data) = frame.into_data() {
            return Some(data);
        }
    }
}

#[tokio::test]
async fn streaming_body_span_ends_after_the_last_chunk() {
    let collector = support::collector();
    let addr = support::serve(streaming_app(TraceLayer::new(collector.clone()))).await;
    let client = support::client();

    let started = Instant::now();
    let response = tokio::time::timeout(
        support::REQUEST_TIMEOUT,
        client.request(support::request(Method::GET, addr, "/three", &[])),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();

    // The handler returned long ago, but the body is still being sent: no span yet.
    let mut received = 0;
    for _ in 0..2 {
        let chunk = next_chunk(&mut body).await.expect("a chunk");
        received += chunk.len();
        assert!(
            collector.is_empty(),
            "span ended before the body did: {:#?}",
            collector.spans()
        );
    }
    let last = next_chunk(&mut body).await.expect("the last chunk");
    received += last.len();
    assert!(next_chunk(&mut body).await.is_none(), "three chunks only");
    assert!(started.elapsed() >= 2 * DELAY);

    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.name, "GET /three");
    assert!(
        span.duration >= 2 * DELAY,
        "the span covers the whole body: {:?}",
        span.duration
    );
    assert_eq!(received, 3 * CHUNK.len());
    assert_eq!(
        attr_i64(&span, "http.response.body.size"),
        Some(received as i64)
    );
    let first_byte: Vec<_> = span
        .events
        .iter()
        .filter(|e| e.name == "first byte sent")
        .collect();
    assert_eq!(first_byte.len(), 1, "events: {:?}", span.events);
    assert!(first_byte[0].time >= span.start_time && first_byte[0].time <= span.end_time());
    assert!(
        first_byte[0].time + DELAY <= span.end_time(),
        "the first byte went out with the first chunk, well before the end"
    );
    assert_eq!(attr_bool(&span, "tracewire.response.aborted"), None);
    assert_eq!(span.status, Status::Unset);
}

async fn assert_disconnect_mid_body_marks_the_span_aborted(client: support::HttpClient) {
    let collector = support::collector();
    let addr = support::serve(streaming_app(TraceLayer::new(collector.clone()))).await;

    let response = tokio::time::timeout(
        support::REQUEST_TIMEOUT,
        client.request(support::request(Method::GET, addr, "/long", &[])),
    )
    .await
    .unwrap()
    .unwrap();
    let mut body = response.into_body();
    let first = next_chunk(&mut body).await.expect("first chunk");
    assert_eq!(first.len(), CHUNK.len());
    let dropped_at = Instant::now();
    drop(body);
    drop(client);

    let span = support::wait_for_one_span(&collector).await;
    assert!(
        dropped_at.elapsed() < 20 * DELAY,
        "the span ended because the client left, not because the body was complete"
    );
    assert_eq!(
        attr_bool(&span, "tracewire.response.aborted"),
        Some(true),
        "{span:#?}"
    );
    let sent = attr_i64(&span, "http.response.body.size").expect("body size");
    assert!(
        sent >= CHUNK.len() as i64 && sent < 20 * CHUNK.len() as i64,
        "bytes sent before the client left: {sent}"
    );
    assert_eq!(attr_i64(&span, "http.response.status_code"), Some(200));
}

#[tokio::test]
async fn client_leaving_mid_body_marks_the_span_aborted_http1() {
    assert_disconnect_mid_body_marks_the_span_aborted(support::client()).await;
}

#[tokio::test]
async fn client_leaving_mid_body_marks_the_span_aborted_http2() {
    assert_disconnect_mid_body_marks_the_span_aborted(support::client_http2()).await;
}

async fn assert_an_announced_body_sent_whole_is_complete(client: support::HttpClient) {
    let collector = support::collector();
    let addr = support::serve(streaming_app(TraceLayer::new(collector.clone()))).await;
    let response = tokio::time::timeout(
        support::REQUEST_TIMEOUT,
        client.request(support::request(Method::GET, addr, "/announced", &[])),
    )
    .await
    .unwrap()
    .unwrap();
    let mut body = response.into_body();
    let mut received = 0;
    while let Some(chunk) = next_chunk(&mut body).await {
        received += chunk.len();
    }
    assert_eq!(received, 3 * CHUNK.len());

    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(
        attr_bool(&span, "tracewire.response.aborted"),
        None,
        "{span:#?}"
    );
    assert_eq!(
        attr_i64(&span, "http.response.body.size"),
        Some(3 * CHUNK.len() as i64)
    );
    assert_eq!(span.status, Status::Unset);
}

#[tokio::test]
async fn a_streamed_body_sent_whole_with_its_content_length_is_complete_http1() {
    assert_an_announced_body_sent_whole_is_complete(support::client()).await;
}

#[tokio::test]
async fn a_streamed_body_sent_whole_with_its_content_length_is_complete_http2() {
    assert_an_announced_body_sent_whole_is_complete(support::client_http2()).await;
}

/// The `Content-Length` only tells a whole body from a cut one: a client leaving part way through
/// an announced body still marks the span aborted.
#[tokio::test]
async fn client_leaving_an_announced_body_part_way_marks_the_span_aborted() {
    let collector = support::collector();
    let addr = support::serve(streaming_app(TraceLayer::new(collector.clone()))).await;
    let client = support::client();
    let response = tokio::time::timeout(
        support::REQUEST_TIMEOUT,
        client.request(support::request(Method::GET, addr, "/announced-long", &[])),
    )
    .await
    .unwrap()
    .unwrap();
    let mut body = response.into_body();
    next_chunk(&mut body).await.expect("first chunk");
    drop(body);
    drop(client);

    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(
        attr_bool(&span, "tracewire.response.aborted"),
        Some(true),
        "{span:#?}"
    );
}

#[tokio::test]
async fn response_without_body_ends_the_span_with_the_head() {
    let collector = support::collector();
    let addr = support::serve(streaming_app(TraceLayer::new(collector.clone()))).await;
    let reply = support::get(addr, "/empty", &[]).await;
    assert_eq!(reply.status, 204);
    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(attr_i64(&span, "http.response.body.size"), Some(0));
    assert_eq!(attr_bool(&span, "tracewire.response.aborted"), None);
    assert!(span.events.iter().all(|e| e.name != "first byte sent"));
}

/// hyper drops a body whose `poll_frame` panicked while unwinding: that is the server failing,
/// not the client going away.
#[tokio::test]
async fn a_panicking_response_body_fails_the_span_rather_than_marking_it_aborted() {
    let collector = support::collector();
    let mut registry = prometheus_client::registry::Registry::default();
    let layer = TraceLayer::new(collector.clone())
        .metrics(trace_http::metrics::MetricsLayer::new(&mut registry));
    let addr = support::serve(streaming_app(layer)).await;
    let client = support::client();
    let sent = tokio::time::timeout(
        support::REQUEST_TIMEOUT,
        client.request(support::request(Method::GET, addr, "/panicking", &[])),
    )
    .await
    .expect("an answer or an error in time");
    if let Ok(response) = sent {
        // The head may have gone out before the body panicked; its body then fails.
        let _ = response.into_body().collect().await;
    }

    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(attr_str(&span, "error.type"), Some("panic"), "{span:#?}");
    assert_eq!(attr_bool(&span, "tracewire.response.aborted"), None);
    assert!(matches!(span.status, Status::Error { .. }), "{span:#?}");
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
    let samples = support::parse_exposition(&text);
    assert_eq!(
        support::sample_value(
            &samples,
            "http_server_request_duration_seconds_count",
            &[("error_type", "panic")]
        ),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn response_body_error_fails_the_span() {
    let collector = support::collector();
    let addr = support::serve(streaming_app(TraceLayer::new(collector.clone()))).await;
    let exchange = async {
        let response = support::client()
            .request(support::request(Method::GET, addr, "/failing", &[]))
            .await?;
        response.into_body().collect().await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    };
    let result = tokio::time::timeout(support::REQUEST_TIMEOUT, exchange)
        .await
        .unwrap();
    // hyper aborts the connection: the client sees the body (or, when the head was still in
    // hyper's write buffer, the whole message) break off.
    assert!(result.is_err(), "the response breaks off");

    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(attr_str(&span, "error.type"), Some("response_body"));
    match &span.status {
        Status::Error { message } => {
            assert!(message.contains("upstream stream broke"), "{message}")
        }
        other => panic!("error status expected, got {other:?}"),
    }
    assert_eq!(
        attr_i64(&span, "http.response.body.size"),
        Some(CHUNK.len() as i64)
    );
    assert_eq!(attr_bool(&span, "tracewire.response.aborted"), None);
}

#[tokio::test]
async fn client_leaving_before_the_response_head_marks_the_span_aborted_http2() {
    let collector = support::collector();
    let addr = support::serve(streaming_app(TraceLayer::new(collector.clone()))).await;
    let client = support::client_http2();
    let gave_up = tokio::time::timeout(
        DELAY,
        client.request(support::request(Method::GET, addr, "/slow-head", &[])),
    )
    .await;
    assert!(gave_up.is_err(), "the client gives up before the head");
    drop(client);

    let span = support::wait_for_one_span(&collector).await;
    assert_eq!(span.name, "GET /slow-head");
    assert_eq!(attr_bool(&span, "tracewire.response.aborted"), Some(true));
    assert_eq!(attr_i64(&span, "http.response.status_code"), None);
    assert!(
        span.duration < 20 * DELAY,
        "ended when the client left: {:?}",
        span.duration
    );
}
