//! A server resetting a response stream mid-way (RST_STREAM after headers and some messages):
//! the client span and the client metrics record the status tonic reports to the caller.

mod support;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use support::*;
use trace_core::sampler::AlwaysOn;
use trace_core::{InMemoryCollector, Span};
use trace_grpc::semconv::*;
use trace_grpc::status::Code;
use trace_grpc::{GrpcClientLayer, GrpcClientMetrics, GrpcTraceLayer};
use trace_grpc_test_proto::EchoRequest;
use trace_grpc_test_proto::echo_server::EchoServer;

/// A server layer whose response bodies fail after `frames` data frames, as a proxy or a
/// server-side filter giving up on a stream would: hyper resets the stream (INTERNAL_ERROR, the
/// body's error carrying no HTTP/2 reason of its own).
#[derive(Clone, Copy)]
struct BreakAfter {
    frames: usize,
}

impl<S> tower::Layer<S> for BreakAfter {
    type Service = BreakingService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        BreakingService {
            inner,
            frames: self.frames,
        }
    }
}

#[derive(Clone)]
struct BreakingService<S> {
    inner: S,
    frames: usize,
}

impl<S, R, B> tower::Service<http::Request<R>> for BreakingService<S>
where
    S: tower::Service<http::Request<R>, Response = http::Response<B>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<BreakingBody<B>>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<R>) -> Self::Future {
        let frames = self.frames;
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|inner| BreakingBody { inner, frames }))
        })
    }
}

struct BreakingBody<B> {
    inner: B,
    /// Data frames still to pass before the body fails.
    frames: usize,
}

impl<B> Body for BreakingBody<B>
where
    B: Body<Data = Bytes, Error = tonic::Status> + Unpin,
{
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        // Failing only once the next frame is ready lets the frames before it leave first: h2
        // drops what it still holds of a stream it resets.
        if self.frames == 0 {
            return Poll::Ready(Some(Err(tonic::Status::internal("broken on purpose"))));
        }
        if matches!(&frame, Some(Ok(frame)) if frame.is_data()) {
            self.frames -= 1;
        }
        Poll::Ready(frame)
    }
}

/// An echo server on loopback, traced into `collector`, whose response bodies break after
/// `frames` data frames when `frames` is given.
async fn start(collector: &Arc<InMemoryCollector>, frames: Option<usize>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let address = listener.local_addr().expect("bound address");
    let service = EchoServer::new(EchoService {
        forward_layer: GrpcClientLayer::new(),
    });
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let trace = GrpcTraceLayer::new(collector.clone());
    let server = match frames {
        Some(frames) => tokio::spawn(
            tonic::transport::Server::builder()
                .layer(
                    tower::ServiceBuilder::new()
                        .layer(trace)
                        .layer(BreakAfter { frames }),
                )
                .add_service(service)
                .serve_with_incoming(incoming),
        ),
        None => tokio::spawn(
            tonic::transport::Server::builder()
                .layer(trace)
                .add_service(service)
                .serve_with_incoming(incoming),
        ),
    };
    drop(server);
    address
}

/// Calls a server stream of five messages that the server breaks off after two, and returns
/// the status tonic gives the caller, the client span, and the client metrics' text.
async fn broken_stream(frames: Option<usize>, panic: bool) -> (tonic::Status, Span, String) {
    let collector = collector();
    let mut registry = Registry::default();
    let metrics = GrpcClientMetrics::new(&mut registry);
    let address = start(&collector, frames).await;
    let mut client = connect(
        &address.to_string(),
        GrpcClientLayer::new()
            .root_traces(AlwaysOn, collector.clone())
            .legacy_attributes(true)
            .metrics(metrics),
    )
    .await;
    let mut stream = client
        .server_stream(EchoRequest {
            message: "m".into(),
            count: if panic { 2 } else { 5 },
            delay_ms: 20,
            panic,
            ..Default::default()
        })
        .await
        .expect("the call starts")
        .into_inner();
    let mut received = 0;
    let status = loop {
        match tokio::time::timeout(PATIENCE, stream.message()).await {
            Ok(Ok(Some(_))) => received += 1,
            Ok(Ok(None)) => panic!("the stream ended cleanly after {received} messages"),
            Ok(Err(status)) => break status,
            Err(_) => panic!("the stream neither broke nor ended"),
        }
    };
    assert_eq!(received, 2, "two messages before the reset: {status:?}");
    let spans = wait_for(&collector, 1, client_spans).await;
    let mut text = String::new();
    encode(&mut text, &registry).expect("encodes");
    (status, spans[0].clone(), text)
}

fn assert_recorded_as_tonic_reports(status: &tonic::Status, span: &Span, metrics: &str) {
    let reported = Code::from_i32(status.code() as i32);
    assert_eq!(
        text(span, RPC_RESPONSE_STATUS_CODE),
        Some(reported.name()),
        "tonic reported {status:?}; the span: {span:#?}"
    );
    assert_eq!(
        int(span, LEGACY_RPC_GRPC_STATUS_CODE),
        Some(i64::from(reported.as_i32()))
    );
    assert_eq!(text(span, ERROR_TYPE), Some(reported.name()));
    assert!(span.status.is_error());
    assert_eq!(int(span, RESPONSE_MESSAGES), Some(2));
    let series = format!(
        r#"rpc_client_call_duration_seconds_count{{rpc_method="{SERVER_STREAM}",rpc_response_status_code="{}"}} 1"#,
        reported.name()
    );
    assert!(metrics.contains(&series), "{series} in\n{metrics}");
}

/// The server's task panics mid-stream: hyper drops the stream, which h2 resets with CANCEL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_reset_with_cancel_is_recorded_as_tonic_reports_it() {
    let (status, span, metrics) = broken_stream(None, true).await;
    // The reset tonic's client reads, with the reason it maps.
    assert_eq!(status.code(), tonic::Code::Cancelled, "{status:?}");
    assert_recorded_as_tonic_reports(&status, &span, &metrics);
}

/// The server's response body fails mid-stream: hyper resets the stream with INTERNAL_ERROR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_reset_with_internal_error_is_recorded_as_tonic_reports_it() {
    let (status, span, metrics) = broken_stream(Some(2), false).await;
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
    assert_recorded_as_tonic_reports(&status, &span, &metrics);
}
