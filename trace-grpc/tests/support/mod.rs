//! A real tonic server and client over loopback, with the layers under test.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_stream::{Stream, StreamExt};
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status, Streaming};
use trace_core::{InMemoryCollector, Span, SpanContext, Value};
use trace_grpc::{GrpcClientLayer, GrpcClientService, GrpcTraceLayer};
use trace_grpc_test_proto::echo_client::EchoClient;
use trace_grpc_test_proto::echo_server::{Echo, EchoServer};
use trace_grpc_test_proto::{EchoRequest, EchoResponse};

/// The longest any test waits for something that should happen at once.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub type TracedClient = EchoClient<GrpcClientService<Channel>>;

/// The test service: echoes, fails on request, streams, forwards along a chain.
#[derive(Clone)]
pub struct EchoService {
    /// The layer for the calls this server forwards.
    pub forward_layer: GrpcClientLayer,
}

fn trace_id_of<T>(request: &Request<T>) -> String {
    request
        .extensions()
        .get::<SpanContext>()
        .map(|c| c.trace_id().to_string())
        .unwrap_or_default()
}

fn status_of(code: i32) -> Status {
    Status::new(tonic::Code::from_i32(code), "failed on purpose")
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<EchoResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Echo for EchoService {
    async fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Status> {
        let trace_id = trace_id_of(&request);
        let trace_bin = request
            .metadata()
            .get_bin("grpc-trace-bin")
            .and_then(|v| v.to_bytes().ok())
            .map(|bytes| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let message = request.into_inner();
        if message.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(u64::from(message.delay_ms))).await;
        }
        if message.fail_with != 0 {
            return Err(status_of(message.fail_with));
        }
        if !message.forward_to.is_empty() {
            // The next hop, and what it forwards to after it.
            let (next, rest) = message
                .forward_to
                .split_once(',')
                .unwrap_or((&message.forward_to, ""));
            let mut client = connect(next, self.forward_layer.clone()).await;
            let forwarded = client
                .unary(EchoRequest {
                    message: message.message.clone(),
                    forward_to: rest.to_owned(),
                    ..EchoRequest::default()
                })
                .await?;
            return Ok(forwarded);
        }
        Ok(Response::new(EchoResponse {
            message: trace_bin.unwrap_or(message.message),
            trace_id,
        }))
    }

    type ServerStreamStream = ResponseStream;

    async fn server_stream(
        &self,
        request: Request<EchoRequest>,
    ) -> Result<Response<Self::ServerStreamStream>, Status> {
        let trace_id = trace_id_of(&request);
        let message = request.into_inner();
        if !message.forward_to.is_empty() {
            return Ok(Response::new(forwarding_stream(
                message,
                self.forward_layer.clone(),
            )));
        }
        let delay = Duration::from_millis(u64::from(message.delay_ms));
        let panic = message.panic;
        let responses = (0..message.count).map(move |i| {
            Ok(EchoResponse {
                message: format!("{} {i}", message.message),
                trace_id: trace_id.clone(),
            })
        });
        let failure = (message.fail_with != 0).then(|| Err(status_of(message.fail_with)));
        // `None`: where a producer with a bug panics, after its last message.
        let items = responses
            .chain(failure)
            .map(Some)
            .chain(panic.then_some(None));
        let stream = tokio_stream::iter(items).then(move |item| async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            match item {
                Some(item) => item,
                None => panic!("the stream's producer panics on purpose"),
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn client_stream(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoResponse>, Status> {
        let trace_id = trace_id_of(&request);
        let mut stream = request.into_inner();
        let mut count = 0;
        while let Some(message) = stream.next().await {
            let message = message?;
            if message.fail_with != 0 {
                return Err(status_of(message.fail_with));
            }
            count += 1;
        }
        Ok(Response::new(EchoResponse {
            message: format!("{count} messages"),
            trace_id,
        }))
    }

    type BidiStreamStream = ResponseStream;

    async fn bidi_stream(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<Self::BidiStreamStream>, Status> {
        let trace_id = trace_id_of(&request);
        let stream = request.into_inner().map(move |message| {
            message.map(|message| EchoResponse {
                message: message.message,
                trace_id: trace_id.clone(),
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// A server stream whose `count` messages are each the answer of a unary call to the next hop
/// of `message.forward_to`, made as the stream is polled (the usual shape of a stream fed by
/// another service).
fn forwarding_stream(message: EchoRequest, layer: GrpcClientLayer) -> ResponseStream {
    let (next, rest) = message.forward_to.split_once(',').map_or(
        (message.forward_to.clone(), String::new()),
        |(next, rest)| (next.to_owned(), rest.to_owned()),
    );
    let stream = tokio_stream::iter(0..message.count).then(move |i| {
        let (next, rest, layer) = (next.clone(), rest.clone(), layer.clone());
        async move {
            let mut client = connect(&next, layer).await;
            let answer = client
                .unary(EchoRequest {
                    message: format!("{i}"),
                    forward_to: rest,
                    ..EchoRequest::default()
                })
                .await?;
            Ok(answer.into_inner())
        }
    });
    Box::pin(stream)
}

/// Starts a tonic server with `layer` on a loopback port; it runs until the test's runtime ends.
pub async fn start_server(layer: GrpcTraceLayer, forward_layer: GrpcClientLayer) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let address = listener.local_addr().expect("bound address");
    let service = EchoServer::new(EchoService { forward_layer });
    tokio::spawn(
        Server::builder()
            .layer(layer)
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    address
}

/// Starts the service inside an axum router, the layer on the router.
pub async fn start_axum_server(layer: GrpcTraceLayer) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let address = listener.local_addr().expect("bound address");
    let service = EchoServer::new(EchoService {
        forward_layer: GrpcClientLayer::new(),
    });
    let router = tonic::service::Routes::new(service)
        .into_axum_router()
        .layer(layer);
    tokio::spawn(async move { axum::serve(listener, router).await });
    address
}

/// A client of `address` (`host:port`) through `layer`.
pub async fn connect(address: &str, layer: GrpcClientLayer) -> TracedClient {
    let channel = Endpoint::from_shared(format!("http://{address}"))
        .expect("valid uri")
        .connect_timeout(PATIENCE)
        .connect()
        .await
        .expect("connect to the test server");
    let (host, port) = address.rsplit_once(':').expect("host:port");
    let layer = layer.server_address(host, port.parse().ok());
    EchoClient::new(tower::ServiceBuilder::new().layer(layer).service(channel))
}

/// Waits until `collector` holds at least `count` spans matching `filter`, and returns them.
pub async fn wait_for(
    collector: &InMemoryCollector,
    count: usize,
    filter: impl Fn(&Span) -> bool,
) -> Vec<Span> {
    let give_up = tokio::time::Instant::now() + PATIENCE;
    loop {
        let spans: Vec<Span> = collector
            .spans()
            .into_iter()
            .filter(|s| filter(s))
            .collect();
        if spans.len() >= count {
            return spans;
        }
        assert!(
            tokio::time::Instant::now() < give_up,
            "expected {count} spans, have {}: {:#?}",
            spans.len(),
            collector.spans()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub fn server_spans(span: &Span) -> bool {
    span.kind == trace_core::SpanKind::Server
}

pub fn client_spans(span: &Span) -> bool {
    span.kind == trace_core::SpanKind::Client
}

/// A string attribute.
pub fn text<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    match span.attribute(key)? {
        Value::String(value) => Some(value.as_str()),
        _ => None,
    }
}

/// An integer attribute.
pub fn int(span: &Span, key: &str) -> Option<i64> {
    match span.attribute(key)? {
        Value::I64(value) => Some(*value),
        _ => None,
    }
}

pub fn collector() -> Arc<InMemoryCollector> {
    Arc::new(InMemoryCollector::new(10_000))
}

pub const UNARY: &str = "tracewire.test.v1.Echo/Unary";
pub const SERVER_STREAM: &str = "tracewire.test.v1.Echo/ServerStream";
pub const CLIENT_STREAM: &str = "tracewire.test.v1.Echo/ClientStream";
pub const BIDI_STREAM: &str = "tracewire.test.v1.Echo/BidiStream";
