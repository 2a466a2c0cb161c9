use std::borrow::Cow;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;
use trace_core::{SpanKind, SpanRecorder};

use super::layer::ClientConfig;
use crate::body::ResponseBody;
use crate::route::method_for_name;
use crate::semconv;
use crate::trace::{ResponseFuture, SpanObserver, split_host_port};

/// The service [`ClientTraceLayer`](super::ClientTraceLayer) wraps around a client.
#[derive(Clone)]
pub struct ClientTraceService<S> {
    inner: S,
    config: Arc<ClientConfig>,
}

impl<S> ClientTraceService<S> {
    pub(crate) fn new(inner: S, config: Arc<ClientConfig>) -> Self {
        Self { inner, config }
    }

    /// The wrapped client.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for ClientTraceService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTraceService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ClientTraceService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: std::fmt::Display,
    ResBody: http_body::Body,
{
    type Response = Response<ResponseBody<ResBody, SpanObserver>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let (method, _) = semconv::method_name(request.method());
        let context = self.config.outgoing_context(request.extensions(), method);
        let mut span = SpanRecorder::disabled();
        if let Some(context) = context {
            self.config
                .propagation
                .inject(&context, request.headers_mut());
            span = SpanRecorder::start(context, method_for_name(method), SpanKind::Client);
            if span.is_recording() {
                record_request(&mut span, &request, &self.config);
            }
        }
        let head_request = request.method() == http::Method::HEAD;
        ResponseFuture::client(self.inner.call(request), span, head_request)
    }
}

fn record_request<B>(span: &mut SpanRecorder, request: &Request<B>, config: &ClientConfig) {
    semconv::record_method(span, request.method());
    let uri = request.uri();
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = uri.host().or_else(|| {
        request
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(split_host_port)
            .map(|(host, _)| host)
    });
    let explicit_port = uri.port_u16();
    let port = explicit_port.or(match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    });
    if let Some(host) = host {
        span.set_attribute(
            semconv::SERVER_ADDRESS,
            trace_core::StringValue::copied(host),
        );
    }
    if let Some(port) = port {
        span.set_attribute(semconv::SERVER_PORT, i64::from(port));
    }
    if let Some(version) = semconv::protocol_version(request.version()) {
        span.set_attribute(semconv::NETWORK_PROTOCOL_VERSION, version);
    }
    // Built from parts, so credentials in the authority (`user:pass@`) never reach the span.
    let host = host.unwrap_or_default();
    let mut full = String::with_capacity(
        scheme.len() + 3 + host.len() + 6 + uri.path().len() + uri.query().map_or(0, str::len) + 1,
    );
    full.push_str(scheme);
    full.push_str("://");
    full.push_str(host);
    if let Some(port) = explicit_port {
        use std::fmt::Write as _;
        let _ = write!(full, ":{port}");
    }
    full.push_str(uri.path());
    if config.record_query
        && let Some(query) = uri.query()
    {
        full.push('?');
        full.push_str(query);
    }
    span.set_attribute(semconv::URL_FULL, Cow::<'static, str>::Owned(full));
}
