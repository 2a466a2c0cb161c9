use std::borrow::Cow;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;
use trace_core::{SpanKind, SpanRecorder};

use super::layer::ClientConfig;
use super::server_target;
use crate::body::ResponseBody;
use crate::route::method_for_name;
use crate::semconv;
use crate::trace::{ResponseFuture, SpanObserver};

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
    let target = server_target(request);
    let explicit_port = target.and_then(|(_, port)| port);
    let port = explicit_port.or(match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    });
    if let Some((address, _)) = target {
        span.set_attribute(
            semconv::SERVER_ADDRESS,
            trace_core::StringValue::copied(address),
        );
    }
    if let Some(port) = port {
        span.set_attribute(semconv::SERVER_PORT, i64::from(port));
    }
    if let Some(version) = semconv::protocol_version(request.version()) {
        span.set_attribute(semconv::NETWORK_PROTOCOL_VERSION, version);
    }
    // Built from parts, so credentials in the authority (`user:pass@`) never reach the span.
    // Without a host (an origin-form request that has no `Host` either) there is no full URL.
    let Some((address, _)) = target else {
        return;
    };
    // Only an IPv6 address has a colon here; a URL needs it back in brackets.
    let ipv6 = address.contains(':');
    let mut full = String::with_capacity(
        scheme.len()
            + "://[]:65535?".len()
            + address.len()
            + uri.path().len()
            + uri.query().map_or(0, str::len),
    );
    full.push_str(scheme);
    full.push_str("://");
    if ipv6 {
        full.push('[');
    }
    full.push_str(address);
    if ipv6 {
        full.push(']');
    }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http::header::HOST;
    use trace_core::{InMemoryCollector, Span, SpanContext, TraceFlags, Value};

    use super::*;
    use crate::ClientTraceLayer;

    /// The client span `record_request` makes of `request`, with or without the query.
    fn recorded(request: &Request<()>, record_query: bool) -> Span {
        let service =
            tower_layer::Layer::layer(&ClientTraceLayer::new().record_query(record_query), ());
        let collector = Arc::new(InMemoryCollector::new(10));
        let context = SpanContext::new_root(TraceFlags::SAMPLED).with_collector(collector.clone());
        let mut span = SpanRecorder::start(context, "GET", SpanKind::Client);
        record_request(&mut span, request, &service.config);
        drop(span);
        let mut spans = collector.spans();
        assert_eq!(spans.len(), 1, "{spans:#?}");
        spans.remove(0)
    }

    fn text<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
        match span.attribute(key)? {
            Value::String(s) => Some(s.as_str()),
            other => panic!("{key} is not a string: {other:?}"),
        }
    }

    fn int(span: &Span, key: &str) -> Option<i64> {
        match span.attribute(key)? {
            Value::I64(i) => Some(*i),
            other => panic!("{key} is not an integer: {other:?}"),
        }
    }

    fn request(uri: &str, host: Option<&str>) -> Request<()> {
        let mut builder = Request::get(uri);
        if let Some(host) = host {
            builder = builder.header(HOST, host);
        }
        builder.body(()).expect("valid test request")
    }

    #[test]
    fn an_ipv6_target_is_bare_in_server_address_and_bracketed_in_url_full() {
        let span = recorded(&request("http://[::1]:9000/x", None), false);
        assert_eq!(text(&span, "server.address"), Some("::1"));
        assert_eq!(int(&span, "server.port"), Some(9000));
        assert_eq!(text(&span, "url.full"), Some("http://[::1]:9000/x"));

        let span = recorded(&request("https://[2001:db8::7]/x", None), false);
        assert_eq!(text(&span, "server.address"), Some("2001:db8::7"));
        assert_eq!(int(&span, "server.port"), Some(443));
        assert_eq!(text(&span, "url.full"), Some("https://[2001:db8::7]/x"));
    }

    #[test]
    fn an_origin_form_target_comes_from_the_host_header() {
        let span = recorded(&request("/items?x=1", Some("[::1]:9000")), true);
        assert_eq!(text(&span, "server.address"), Some("::1"));
        assert_eq!(int(&span, "server.port"), Some(9000));
        assert_eq!(text(&span, "url.full"), Some("http://[::1]:9000/items?x=1"));

        let span = recorded(&request("/items", Some("api.internal")), false);
        assert_eq!(text(&span, "server.address"), Some("api.internal"));
        assert_eq!(int(&span, "server.port"), Some(80), "the scheme's default");
        assert_eq!(text(&span, "url.full"), Some("http://api.internal/items"));
    }

    #[test]
    fn a_request_naming_no_host_records_no_url_full() {
        let span = recorded(&request("/items", None), false);
        assert_eq!(text(&span, "server.address"), None);
        assert_eq!(text(&span, "url.full"), None, "no host, no full URL");
    }

    #[test]
    fn credentials_never_reach_url_full() {
        let span = recorded(
            &request("http://user:secret@example.com:8080/a?t=k", None),
            false,
        );
        assert_eq!(text(&span, "server.address"), Some("example.com"));
        assert_eq!(text(&span, "url.full"), Some("http://example.com:8080/a"));

        let span = recorded(&request("/a", Some("user:secret@example.com:8080")), false);
        assert_eq!(text(&span, "server.address"), Some("example.com"));
        assert_eq!(int(&span, "server.port"), Some(8080));
        assert_eq!(text(&span, "url.full"), Some("http://example.com:8080/a"));
    }
}
