//! The client layer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use trace_core::propagation::CompositePropagator;
use trace_core::sampler::Sampler;
use trace_core::{Collector, SpanContext, SpanKind, SpanRecorder};
use trace_http::ClientTraceLayer;
use trace_http::body::ResponseBody;
use trace_http::metrics::{DEFAULT_MAX_SERIES, Interner, TraceExemplar};

use crate::call::{BoxError, CallBody, CallObserver, ResponseFuture, Side};
use crate::messages::MessageCounter;
use crate::metrics::{GrpcClientMetrics, RpcMetrics};
use crate::server::deadline;
use crate::{method, semconv};

#[derive(Debug, Clone)]
struct ClientConfig {
    client: ClientTraceLayer,
    legacy: bool,
    metrics: Option<Arc<RpcMetrics>>,
    server_address: Option<Arc<str>>,
    server_port: Option<u16>,
    /// Method names shared by every span of a method, when no metrics (which have their own)
    /// are recorded.
    methods: Arc<Interner>,
}

/// Traces and measures calls made through a tonic `Channel` (or any tower gRPC client).
///
/// Each call gets a client span named `{package.Service}/{Method}`, a child of the context in
/// the tonic `Request`'s extensions or, failing that, of the [current
/// context](trace_http::context) (the server call being handled); that child's context is
/// injected into the call's metadata. The span ends with the response stream, its status code
/// read from the trailers (or the headers of a trailers-only response); every code but `OK` is
/// an error. With [`metrics`](Self::metrics) it also records `rpc_client_call_duration_seconds`.
///
/// A call that fails without a response (the channel's error) is recorded with the status tonic
/// gives the caller, found in the error's source chain as tonic finds it: `CANCELLED` for a
/// timeout the channel enforces (`Endpoint::timeout`), `UNAVAILABLE` when it could not connect,
/// `UNKNOWN` otherwise — and `DEADLINE_EXCEEDED` once the call's own `grpc-timeout` has passed.
/// So that it can read that chain, the service's error is boxed (`Box<dyn Error + Send +
/// Sync>`), as tower's own layers box theirs; tonic's clients take it as they take the channel's.
///
/// A response stream that fails mid-way (the server reset it) is recorded with the status it
/// failed with, which tonic reports to the caller too: `CANCELLED` for a reset with `CANCEL`,
/// `INTERNAL` for `INTERNAL_ERROR`, and so on as tonic maps the reasons. trace-grpc reads that
/// status from the error's text, as tonic displays it; an error that is not a tonic status (a
/// body of another client stack) is `UNKNOWN`.
///
/// Propagation and root sampling are a [`ClientTraceLayer`]'s: W3C `traceparent`, `tracestate`
/// and `baggage` by default, no trace started outside a traced request.
///
/// ```
/// use trace_core::propagation::CompositePropagator;
/// use trace_grpc::GrpcClientLayer;
///
/// let layer = GrpcClientLayer::new()
///     .propagation(CompositePropagator::from_otel_propagators("tracecontext,baggage,jaeger")?);
/// // let channel = tower::ServiceBuilder::new().layer(layer).service(channel);
/// // let client = EchoClient::new(channel);
/// # drop(layer);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct GrpcClientLayer {
    config: Arc<ClientConfig>,
}

impl Default for GrpcClientLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl GrpcClientLayer {
    /// Injects W3C `traceparent`, `tracestate` and `baggage`; starts no trace of its own.
    pub fn new() -> Self {
        Self::from_client_trace_layer(ClientTraceLayer::new())
    }

    /// Propagates and samples root traces as `layer` is configured.
    pub fn from_client_trace_layer(layer: ClientTraceLayer) -> Self {
        Self {
            config: Arc::new(ClientConfig {
                client: layer,
                legacy: false,
                metrics: None,
                server_address: None,
                server_port: None,
                methods: Arc::new(Interner::new(DEFAULT_MAX_SERIES)),
            }),
        }
    }

    fn with(self, change: impl FnOnce(&mut ClientConfig)) -> Self {
        let mut config = Arc::unwrap_or_clone(self.config);
        change(&mut config);
        Self {
            config: Arc::new(config),
        }
    }

    /// The formats injected into the call's metadata.
    pub fn propagation(self, propagation: CompositePropagator) -> Self {
        self.with(|c| c.client = c.client.clone().propagation(propagation))
    }

    /// Starts a new trace for calls made outside any traced request when `sampler` says so,
    /// recording into `collector`.
    pub fn root_traces(self, sampler: impl Sampler, collector: Arc<dyn Collector>) -> Self {
        self.with(|c| c.client = c.client.clone().root_traces(sampler, collector))
    }

    /// Also records `rpc.system`, `rpc.service` and the integer `rpc.grpc.status_code`.
    pub fn legacy_attributes(self, emit: bool) -> Self {
        self.with(|c| c.legacy = emit)
    }

    /// The server this client calls, for `server.address` and `server.port`. A tonic `Channel`
    /// adds the server's address to each request below this layer, so the layer cannot read it
    /// from the request as it does for clients whose requests carry a full URI.
    pub fn server_address(self, host: impl Into<Arc<str>>, port: Option<u16>) -> Self {
        let host = host.into();
        self.with(|c| {
            c.server_address = Some(host);
            c.server_port = port;
        })
    }

    /// Records the client metrics too (see [`GrpcClientMetrics`]).
    pub fn metrics(self, metrics: GrpcClientMetrics) -> Self {
        self.with(|c| c.metrics = Some(metrics.metrics))
    }
}

impl<S> Layer<S> for GrpcClientLayer {
    type Service = GrpcClientService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcClientService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service [`GrpcClientLayer`] wraps around a gRPC client.
#[derive(Clone)]
pub struct GrpcClientService<S> {
    inner: S,
    config: Arc<ClientConfig>,
}

impl<S> GrpcClientService<S> {
    /// The wrapped client.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for GrpcClientService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcClientService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcClientService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body,
{
    type Response = Response<ResponseBody<CallBody<ResBody>, CallObserver>>;
    type Error = BoxError;
    type Future = ResponseFuture<BoxErrorFuture<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let config = &*self.config;
        // In parts, so the path can be borrowed while the headers are written.
        let (mut parts, body) = request.into_parts();
        let method = method::parse(parts.uri.path());
        let name = method.map_or("grpc", |(full, _)| full);
        let context = config.client.outgoing_context(&parts.extensions, name);
        if let Some(context) = &context {
            config.client.inject(context, &mut parts.headers);
        }
        let recording = context.as_ref().is_some_and(SpanContext::is_recorded);
        let mut call = None;
        if recording || config.metrics.is_some() {
            let started = trace_core::clock::monotonic();
            let mut span = SpanRecorder::disabled();
            if let Some(context) = context.filter(|_| recording) {
                span = SpanRecorder::start(context, name.to_owned(), SpanKind::Client);
                record_request(&mut span, &parts.uri, config, method);
            }
            call = Some(CallObserver {
                exemplar: span.context().and_then(TraceExemplar::of),
                span,
                side: Side::Client,
                legacy: config.legacy,
                path: method.and_then(|_| parts.uri.path_and_query().cloned()),
                names: config.metrics.is_none().then(|| config.methods.clone()),
                metrics: config.metrics.clone(),
                started,
                deadline: deadline(&parts.headers, started),
                requests: None,
                code: None,
                message: None,
                responses: MessageCounter::default(),
            });
        }
        let future = self.inner.call(Request::from_parts(parts, body));
        let future = BoxErrorFuture { inner: future };
        ResponseFuture::new(None, future, call, None)
    }
}

pin_project! {
    /// The future of the client's inner service, its error boxed as tower's own layers box
    /// theirs: the layer reads the error's source chain to record the status tonic reports for
    /// the failed call.
    pub struct BoxErrorFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F> std::fmt::Debug for BoxErrorFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoxErrorFuture").finish_non_exhaustive()
    }
}

impl<F, T, E> Future for BoxErrorFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx).map_err(Into::into)
    }
}

fn record_request(
    span: &mut SpanRecorder,
    uri: &http::Uri,
    config: &ClientConfig,
    method: Option<(&str, usize)>,
) {
    span.set_attribute(semconv::RPC_SYSTEM_NAME, "grpc");
    match (&config.server_address, uri.host()) {
        (Some(host), _) => span.set_attribute(semconv::SERVER_ADDRESS, host.clone()),
        (None, Some(host)) => {
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            span.set_attribute(
                semconv::SERVER_ADDRESS,
                trace_core::StringValue::copied(host),
            );
        }
        (None, None) => {}
    }
    let port = config
        .server_port
        .or(uri.port_u16())
        .or(match uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        });
    if let Some(port) = port {
        span.set_attribute(semconv::SERVER_PORT, i64::from(port));
    }
    if config.legacy {
        span.set_attribute(semconv::LEGACY_RPC_SYSTEM, "grpc");
        if let Some((full, slash)) = method {
            span.set_attribute(semconv::LEGACY_RPC_SERVICE, full[..slash].to_owned());
        }
    }
}
