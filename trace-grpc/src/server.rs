//! The server layer.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;
use trace_core::propagation::CompositePropagator;
use trace_core::sampler::{DebugForced, Sampler};
use trace_core::{Collector, SpanContext, SpanKind, SpanRecorder};
use trace_http::body::ResponseBody;
use trace_http::metrics::{DEFAULT_MAX_SERIES, Interner, TraceExemplar};
use trace_http::{RequestStart, TraceIdHeader, TraceLayer};

use crate::call::{CallBody, CallObserver, ResponseFuture, Side};
use crate::messages::{MessageCounter, RequestBody};
use crate::metrics::{GrpcServerMetrics, RpcMetrics};
use crate::{method, semconv};

#[derive(Debug, Clone)]
struct ServerConfig {
    trace: TraceLayer,
    legacy: bool,
    metrics: Option<Arc<RpcMetrics>>,
    /// Method names shared by every span of a method, when no metrics (which have their own)
    /// are recorded: no allocation per call.
    methods: Arc<Interner>,
}

/// Traces and measures every call through a tonic server (or any tower gRPC service).
///
/// Each call gets a server span named `{package.Service}/{Method}`, continuing the caller's trace
/// from its metadata (W3C, Jaeger, B3, or any [`Propagator`](trace_core::propagation::Propagator)
/// such as [`GrpcTraceBinPropagator`](crate::GrpcTraceBinPropagator)), honouring
/// `jaeger-debug-id`. A call to a method the server does not implement (`UNIMPLEMENTED`), or
/// to a path that is not a gRPC method, gets a span named `grpc` with `rpc.method` `_OTHER` (and
/// the called method, if the path names one, in `rpc.method_original`), as the OpenTelemetry
/// conventions ask: callers choose those names. The layer keeps a bounded store of method names (2,000; past it,
/// `_overflow`), and a name enters it only once the call's status shows the method exists, so
/// made-up names cannot crowd out real methods.
///
/// The span ends when the response stream ends — after the last message and the trailers —, or
/// when it is dropped (the client cancelled: `CANCELLED`, or `DEADLINE_EXCEEDED` past the
/// `grpc-timeout` deadline; dropped by a panic in the handler or its response stream:
/// `UNKNOWN`, an error). Its status code comes from the trailers, or from the headers of a
/// trailers-only response; it is an error for the codes the OpenTelemetry conventions name for
/// servers, with the `grpc-message` as its message.
///
/// The call's [`SpanContext`] is in the request extensions (read it from the tonic `Request`'s
/// `extensions()` to make child spans) and is the [current context](trace_http::context) while
/// the handler's future is polled and while its response stream is (where a server-streaming or
/// bidirectional handler produces its messages), so a [`GrpcClientLayer`](crate::GrpcClientLayer)
/// continues the trace on outgoing calls made in either. Tasks the handler spawns do not see it
/// unless it is carried over (see [`trace_http::context`]).
///
/// Sampling, propagation, debug headers and the `service.name` are a
/// [`TraceLayer`]'s; the shortcuts here set them, or start from one with
/// [`from_trace_layer`](Self::from_trace_layer).
///
/// ```
/// use std::sync::Arc;
/// use prometheus_client::registry::Registry;
/// use trace_core::InMemoryCollector;
/// use trace_core::sampler::TraceIdRatio;
/// use trace_grpc::{GrpcServerMetrics, GrpcTraceLayer};
///
/// let collector = Arc::new(InMemoryCollector::new(10_000));
/// let mut registry = Registry::default();
/// let layer = GrpcTraceLayer::new(collector)
///     .service_name("checkout")
///     .sampler(TraceIdRatio::new(0.1))
///     .metrics(GrpcServerMetrics::new(&mut registry));
/// // tonic::transport::Server::builder().layer(layer).add_service(...).serve(address)
/// # drop(layer);
/// ```
#[derive(Debug, Clone)]
pub struct GrpcTraceLayer {
    config: Arc<ServerConfig>,
}

impl GrpcTraceLayer {
    /// Traces into `collector`, with the defaults of [`TraceLayer::new`] except that the trace
    /// id is returned (in `traceresponse`) only to debug-forced calls.
    pub fn new(collector: Arc<dyn Collector>) -> Self {
        Self::from_trace_layer(TraceLayer::new(collector).trace_id_header(TraceIdHeader::None))
    }

    /// Traces as `layer` is configured: its propagation, sampler, debug headers and cap,
    /// `service.name`, collector and trace-id response header.
    pub fn from_trace_layer(layer: TraceLayer) -> Self {
        Self {
            config: Arc::new(ServerConfig {
                trace: layer,
                legacy: false,
                metrics: None,
                methods: Arc::new(Interner::new(DEFAULT_MAX_SERIES)),
            }),
        }
    }

    fn with(self, change: impl FnOnce(&mut ServerConfig)) -> Self {
        let mut config = Arc::unwrap_or_clone(self.config);
        change(&mut config);
        Self {
            config: Arc::new(config),
        }
    }

    fn with_trace(self, change: impl FnOnce(TraceLayer) -> TraceLayer) -> Self {
        self.with(|c| c.trace = change(c.trace.clone()))
    }

    /// Records `service.name` on every server span.
    pub fn service_name(self, name: impl Into<Arc<str>>) -> Self {
        self.with_trace(|t| t.service_name(name))
    }

    /// The formats read from the call's metadata, in order of preference.
    pub fn propagation(self, propagation: CompositePropagator) -> Self {
        self.with_trace(|t| t.propagation(propagation))
    }

    /// Decides which new traces are recorded (see [`TraceLayer::sampler`]).
    pub fn sampler(self, sampler: impl Sampler) -> Self {
        self.with_trace(|t| t.sampler(sampler))
    }

    /// At most this many debug traces a second are forced by debug headers.
    pub fn debug_cap(self, per_second: f64) -> Self {
        self.with_trace(|t| t.debug_cap(per_second))
    }

    /// Metadata keys whose presence asks for a debug trace (default `jaeger-debug-id`).
    pub fn debug_headers<I>(self, names: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.with_trace(|t| t.debug_headers(names))
    }

    /// Which response header returns the trace id to the caller.
    pub fn trace_id_header(self, header: TraceIdHeader) -> Self {
        self.with_trace(|t| t.trace_id_header(header))
    }

    /// Also records the older attribute names that existing dashboards query: `rpc.system`,
    /// `rpc.service` and the integer `rpc.grpc.status_code` (`rpc.method` stays the fully
    /// qualified method of the current conventions).
    pub fn legacy_attributes(self, emit: bool) -> Self {
        self.with(|c| c.legacy = emit)
    }

    /// Records the server metrics too (see [`GrpcServerMetrics`]).
    pub fn metrics(self, metrics: GrpcServerMetrics) -> Self {
        self.with(|c| c.metrics = Some(metrics.metrics))
    }

    /// The trace layer whose settings this layer uses.
    pub fn trace_layer(&self) -> &TraceLayer {
        &self.config.trace
    }

    /// The debug-forcing sampler in use, for its counters.
    pub fn debug_sampler(&self) -> &DebugForced {
        self.config.trace.debug_sampler()
    }
}

impl<S> Layer<S> for GrpcTraceLayer {
    type Service = GrpcTraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcTraceService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service [`GrpcTraceLayer`] wraps around a gRPC server.
#[derive(Clone)]
pub struct GrpcTraceService<S> {
    inner: S,
    config: Arc<ServerConfig>,
}

impl<S> GrpcTraceService<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for GrpcTraceService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcTraceService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcTraceService<S>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>>,
    S::Error: std::fmt::Display + 'static,
    ResBody: http_body::Body,
{
    type Response = Response<ResponseBody<CallBody<ResBody>, CallObserver>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let config = &*self.config;
        let method = method::parse(request.uri().path());
        let name = method.map_or("grpc", |(full, _)| full);
        let context = config.trace.server_context(request.headers(), name);
        let recording = context.is_recorded();
        let mut call = None;
        let mut trace_id_header = None;
        let mut request_count = None;
        if recording || config.metrics.is_some() {
            let start = request
                .extensions()
                .get::<RequestStart>()
                .copied()
                .unwrap_or_else(RequestStart::now);
            let mut span = SpanRecorder::disabled();
            if recording {
                span = SpanRecorder::start_at(
                    context.clone(),
                    name.to_owned(),
                    SpanKind::Server,
                    start.time,
                    start.instant,
                );
                record_request(&mut span, &request, config, method);
                trace_id_header = config.trace.response_trace_header(&context);
            }
            let count = Arc::new(AtomicU64::new(0));
            request_count = Some(count.clone());
            call = Some(CallObserver {
                span,
                side: Side::Server,
                legacy: config.legacy,
                path: method.and_then(|_| request.uri().path_and_query().cloned()),
                names: config.metrics.is_none().then(|| config.methods.clone()),
                metrics: config.metrics.clone(),
                started: start.instant,
                exemplar: TraceExemplar::of(&context),
                deadline: deadline(request.headers(), start.instant),
                requests: Some(count),
                code: None,
                message: None,
                responses: MessageCounter::default(),
            });
        }
        request.extensions_mut().insert(context.clone());
        let request = request.map(|body| RequestBody::new(body, request_count));
        let future = self.inner.call(request);
        ResponseFuture::new(Some(context), future, call, trace_id_header)
    }
}

/// From when a call with this `grpc-timeout` counts as past its deadline. The timer that
/// enforces the deadline (tonic's, outside this layer) started a little before this layer's
/// clock and fires on a millisecond tick, so a call ended within a small slack before the
/// deadline is taken as ended by it.
pub(crate) fn deadline(
    headers: &http::HeaderMap,
    start: std::time::Instant,
) -> Option<std::time::Instant> {
    let timeout = method::timeout(headers.get(&crate::status::GRPC_TIMEOUT)?.as_bytes())?;
    let slack = (timeout / 2).min(std::time::Duration::from_millis(10));
    start.checked_add(timeout - slack)
}

fn record_request<B>(
    span: &mut SpanRecorder,
    request: &Request<B>,
    config: &ServerConfig,
    method: Option<(&str, usize)>,
) {
    span.set_attribute(semconv::RPC_SYSTEM_NAME, "grpc");
    let authority = request.uri().authority().cloned().or_else(|| {
        request
            .headers()
            .get(http::header::HOST)
            .and_then(|host| host.to_str().ok())
            .and_then(|host| host.parse::<http::uri::Authority>().ok())
    });
    if let Some(authority) = authority {
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        span.set_attribute(
            semconv::SERVER_ADDRESS,
            trace_core::StringValue::copied(host),
        );
        if let Some(port) = authority.port_u16() {
            span.set_attribute(semconv::SERVER_PORT, i64::from(port));
        }
    }
    if request.version() == http::Version::HTTP_2 {
        span.set_attribute(semconv::NETWORK_PROTOCOL_VERSION, "2");
    }
    if let Some(service) = config.trace.configured_service_name() {
        span.set_attribute("service.name", service.clone());
    }
    if let Some(debug_id) = span.context().and_then(SpanContext::debug_id) {
        span.set_attribute(
            trace_http::semconv::JAEGER_DEBUG_ID,
            trace_core::StringValue::copied(debug_id),
        );
    }
    if config.legacy {
        span.set_attribute(semconv::LEGACY_RPC_SYSTEM, "grpc");
        if let Some((full, slash)) = method {
            span.set_attribute(semconv::LEGACY_RPC_SERVICE, full[..slash].to_owned());
        }
    }
}
