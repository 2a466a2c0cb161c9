use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use tower_service::Service;
use trace_core::propagation::{Extracted, TraceContextPropagator};
use trace_core::{SpanContext, SpanKind, SpanRecorder, StringValue};

use super::future::ResponseFuture;
use super::layer::{TraceConfig, TraceIdHeader};
use super::{MetricsSlot, NoMetrics, RequestMetrics};
use crate::RequestStart;
use crate::context::WithContext;
use crate::metrics::{MetricsObserver, TraceExemplar, content_length, parse_content_length};
use crate::route::RequestRoute;
use crate::semconv;

/// The service [`TraceLayer`](super::TraceLayer) wraps around another.
pub struct TraceService<S, M: MetricsSlot = NoMetrics> {
    inner: S,
    config: Arc<TraceConfig>,
    metrics: PhantomData<fn() -> M>,
}

impl<S: Clone, M: MetricsSlot> Clone for TraceService<S, M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config.clone(),
            metrics: PhantomData,
        }
    }
}

impl<S, M: MetricsSlot> TraceService<S, M> {
    pub(crate) fn new(inner: S, config: Arc<TraceConfig>) -> Self {
        Self {
            inner,
            config,
            metrics: PhantomData,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: std::fmt::Debug, M: MetricsSlot> std::fmt::Debug for TraceService<S, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, M, ReqBody, ResBody> Service<Request<ReqBody>> for TraceService<S, M>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: std::fmt::Display,
    ResBody: http_body::Body,
    M: MetricsSlot,
{
    type Response = Response<crate::body::ResponseBody<ResBody, super::SpanObserver<M>>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, M>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    // Inlined where the caller can take it, as are the future's `poll` and the body's
    // `poll_frame`: out of line, the future, the response and each frame went through memory
    // between them (some 17 ns of an unsampled request's cost in the layer bench).
    #[inline]
    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let config = &*self.config;
        // The route is looked up now when something reads it before the sampling decision (the
        // metrics' label, a sampler that decides by name); otherwise only for a sampled request.
        let route_first = config.metrics.is_some() || config.sampler_reads_name;
        let mut route = if route_first {
            RequestRoute::of(&request)
        } else {
            RequestRoute::default()
        };
        let (method, _) = semconv::method_name(request.method());
        let name = route.text.unwrap_or(method);
        // With metrics every request needs its `Content-Length`, so the scan hands the other
        // headers over and the three are found in it. Without, the scan hands nothing over: an
        // unsampled request reads none of them, and a sampled one looks them up by name.
        // (Filled in place: a tuple of the two, made by either branch, is moved whole.)
        let mut seen = ServerHeaders::default();
        let context = if config.metrics.is_some() {
            server_context_and_headers(config, request.headers(), name, &mut seen)
        } else {
            let context = server_context(config, request.headers(), name);
            if context.is_sampled() {
                seen = ServerHeaders::of(request.headers());
            }
            context
        };
        // A layer outside this one may have read the clocks already: share its readings (an
        // unsampled request without metrics reads no clock at all).
        let outer_start = if context.is_sampled() || config.metrics.is_some() {
            request.extensions().get::<RequestStart>().copied()
        } else {
            None
        };

        let mut span = SpanRecorder::disabled();
        let mut trace_id_header = None;
        let mut started = outer_start.map(|start| start.instant);
        let mut start_for_inner = None;
        if context.is_sampled() {
            if !route_first {
                route = RequestRoute::of(&request);
            }
            let start = outer_start.unwrap_or_else(RequestStart::now);
            started = Some(start.instant);
            span = SpanRecorder::start_at(
                context.clone(),
                route.span_name(method),
                SpanKind::Server,
                start.time,
                start.instant,
            );
            record_request(&mut span, &request, config, route, seen);
            trace_id_header = response_header(&config.trace_id_header, &context).map(Box::new);
            // For a layer inside this one, so that it reads no clock of its own (not needed when
            // this layer records the metrics itself).
            if outer_start.is_none() && config.metrics.is_none() {
                start_for_inner = Some(start);
            }
        }
        let metrics = config
            .metrics
            .as_ref()
            .filter(|_| <M::Observer as RequestMetrics>::RECORDS)
            .and_then(|metrics| {
                M::Observer::wrap(MetricsObserver::server(
                    metrics,
                    method,
                    route.label(),
                    seen.content_length,
                    started.unwrap_or_else(trace_core::clock::monotonic),
                    TraceExemplar::of(&context),
                ))
            });
        if let Some(start) = start_for_inner {
            request.extensions_mut().insert(start);
        }
        request.extensions_mut().insert(context.clone());
        let head_request = request.method() == http::Method::HEAD;
        let future = self.inner.call(request);
        ResponseFuture::server(
            WithContext::new(Some(context), future),
            span,
            metrics,
            trace_id_header,
            head_request,
        )
    }
}

/// The request headers a server span and its metrics read besides the trace headers.
#[derive(Debug, Clone, Copy, Default)]
struct ServerHeaders<'a> {
    host: Option<&'a HeaderValue>,
    user_agent: Option<&'a HeaderValue>,
    /// The body size `Content-Length` announces.
    content_length: Option<u64>,
}

impl<'a> ServerHeaders<'a> {
    /// Looked up by name: a hash of a standard name each, cheaper than comparing every header
    /// with them during the scan when nothing else is handed over there.
    fn of(headers: &'a HeaderMap) -> Self {
        Self {
            host: headers.get(http::header::HOST),
            user_agent: headers.get(http::header::USER_AGENT),
            content_length: content_length(headers),
        }
    }
}

/// The context of a server span for a request with these headers: the caller's context read with
/// the configured propagation (and debug headers), the sampler's decision, the collector.
pub(crate) fn server_context(config: &TraceConfig, headers: &HeaderMap, name: &str) -> SpanContext {
    let extracted = if config.unread_debug_headers.is_empty() {
        config.propagation.extract(headers)
    } else {
        extract_with_debug_headers(config, headers, |_, _| false)
    };
    sampled_context(config, extracted, name)
}

/// [`server_context`], and the other headers the layer reads, found in the propagation's one
/// pass over the map.
fn server_context_and_headers<'h>(
    config: &TraceConfig,
    headers: &'h HeaderMap,
    name: &str,
    seen: &mut ServerHeaders<'h>,
) -> SpanContext {
    let mut content_length = None;
    let extracted = extract_with_debug_headers(config, headers, |header, value| {
        let slot = if *header == http::header::HOST {
            &mut seen.host
        } else if *header == http::header::USER_AGENT {
            &mut seen.user_agent
        } else if *header == http::header::CONTENT_LENGTH {
            &mut content_length
        } else {
            return false;
        };
        slot.get_or_insert(value);
        true
    });
    seen.content_length = content_length.and_then(parse_content_length);
    sampled_context(config, extracted, name)
}

/// The propagation's extraction, handing the headers it does not read to `other` (which says
/// whether it took one) and then to the configured debug headers no format reads.
fn extract_with_debug_headers<'h>(
    config: &TraceConfig,
    headers: &'h HeaderMap,
    mut other: impl FnMut(&'h HeaderName, &'h HeaderValue) -> bool,
) -> Extracted {
    // The first value of each debug header no format reads, in the configured order; headers
    // past the first few are looked up after the scan.
    let mut debug_values: [Option<&HeaderValue>; SCANNED_DEBUG_HEADERS] = Default::default();
    let mut extracted = config.propagation.extract_with(headers, |header, value| {
        if other(header, value) {
            return;
        }
        if let Some(position) = config
            .unread_debug_headers
            .iter()
            .position(|(name, _)| name == header)
            && let Some(slot) = debug_values.get_mut(position)
        {
            slot.get_or_insert(value);
        }
    });
    if extracted.debug_id.is_none() && !config.unread_debug_headers.is_empty() {
        extracted.debug_id = config.unread_debug_headers.iter().enumerate().find_map(
            |(position, (header, scanned))| {
                let value = match debug_values.get(position) {
                    Some(found) if *scanned => *found,
                    _ => headers.get(header),
                };
                value.and_then(debug_id)
            },
        );
    }
    extracted
}

/// The context `extracted` continues, as the sampler decides.
fn sampled_context(config: &TraceConfig, extracted: Extracted, name: &str) -> SpanContext {
    let context = extracted.into_span_context(&*config.sampler, name);
    // An unsampled context records nothing, here or in its children: it needs no collector
    // (and skips two reference-count updates per request on a handle every worker shares).
    if context.is_sampled() {
        context.with_collector(config.collector.for_this_thread().clone())
    } else {
        context
    }
}

/// How many debug headers (of those no propagation format reads) the header scan collects;
/// any more are looked up by name.
const SCANNED_DEBUG_HEADERS: usize = 4;

/// A debug header's value, if it is a sane correlation id: visible ASCII, at most 256 bytes.
fn debug_id(value: &HeaderValue) -> Option<Arc<str>> {
    let value = value.to_str().ok()?.trim();
    let sane = !value.is_empty()
        && value.len() <= 256
        && value.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    sane.then(|| value.into())
}

/// An IP address as text, formatted on the stack: inline (no allocation) for every IPv4 and most
/// IPv6 addresses.
fn ip_text(ip: std::net::IpAddr) -> StringValue {
    use std::io::Write as _;
    let mut buf = [0u8; 45];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    if write!(cursor, "{ip}").is_ok() {
        let len = usize::try_from(cursor.position()).unwrap_or(0);
        if let Ok(text) = std::str::from_utf8(&buf[..len]) {
            return StringValue::copied(text);
        }
    }
    StringValue::from(ip.to_string())
}

/// Records the request's attributes.
fn record_request<B>(
    span: &mut SpanRecorder,
    request: &Request<B>,
    config: &TraceConfig,
    route: RequestRoute<'_>,
    seen: ServerHeaders<'_>,
) {
    semconv::record_method(span, request.method());
    match (route.known, route.text) {
        (Some(known), _) => span.set_attribute(semconv::HTTP_ROUTE, known.template),
        (None, Some(text)) => span.set_attribute(semconv::HTTP_ROUTE, StringValue::copied(text)),
        (None, None) => {}
    }
    let uri = request.uri();
    span.set_attribute(semconv::URL_PATH, StringValue::copied(uri.path()));
    let scheme: Cow<'static, str> = match uri.scheme_str() {
        None | Some("http") => Cow::Borrowed("http"),
        Some("https") => Cow::Borrowed("https"),
        Some(other) => Cow::Owned(other.to_owned()),
    };
    span.set_attribute(semconv::URL_SCHEME, scheme);
    // The `Host` header, else the request target's authority (HTTP/2's `:authority`, an
    // absolute-form HTTP/1 target) without any `user:password@` a peer put in it.
    let server = match seen.host.and_then(|h| h.to_str().ok()) {
        Some(host) => split_host_port(host),
        None => uri.host().filter(|host| !host.is_empty()).map(|host| {
            (
                host.trim_start_matches('[').trim_end_matches(']'),
                uri.port_u16(),
            )
        }),
    };
    if let Some((address, port)) = server {
        span.set_attribute(semconv::SERVER_ADDRESS, StringValue::copied(address));
        if let Some(port) = port {
            span.set_attribute(semconv::SERVER_PORT, i64::from(port));
        }
    }
    if let Some(version) = semconv::protocol_version(request.version()) {
        span.set_attribute(semconv::NETWORK_PROTOCOL_VERSION, version);
    }
    if let Some(agent) = seen.user_agent {
        span.set_attribute(semconv::USER_AGENT_ORIGINAL, semconv::header_text(agent));
    }
    if let Some(peer) = client_address(request) {
        span.set_attribute(semconv::CLIENT_ADDRESS, ip_text(peer.ip()));
        span.set_attribute(semconv::CLIENT_PORT, i64::from(peer.port()));
    }
    if let Some(size) = seen.content_length {
        span.set_attribute(semconv::HTTP_REQUEST_BODY_SIZE, size);
    }
    for (name, key) in &config.recorded_headers {
        // Each value as text (see `semconv::header_text`), a repeated header's joined by commas.
        let values: Vec<Cow<'_, str>> = request
            .headers()
            .get_all(name)
            .iter()
            .map(semconv::header_str)
            .collect();
        if !values.is_empty() {
            span.set_attribute(key.clone(), values.join(","));
        }
    }
    if let Some(service) = &config.service_name {
        span.set_attribute("service.name", service.clone());
    }
    if let Some(debug_id) = span.context().and_then(SpanContext::debug_id) {
        span.set_attribute(semconv::JAEGER_DEBUG_ID, StringValue::copied(debug_id));
    }
}

/// `host[:port]` or `[v6]:port` into host and port.
pub(crate) fn split_host_port(host: &str) -> Option<(&str, Option<u16>)> {
    if host.is_empty() {
        return None;
    }
    if let Some(rest) = host.strip_prefix('[') {
        let (address, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return Some((address, port));
    }
    match host.rsplit_once(':') {
        // More colons before the last: an IPv6 address without its brackets (invalid in a
        // `Host`, but sent by some clients), so the last group is part of it, not a port.
        Some((address, _)) if address.contains(':') => Some((host, None)),
        Some((address, port)) => Some((address, port.parse().ok())),
        None => Some((host, None)),
    }
}

/// The peer's socket address, from axum's `ConnectInfo` or a `SocketAddr` the server inserted.
fn client_address<B>(request: &Request<B>) -> Option<std::net::SocketAddr> {
    #[cfg(feature = "axum")]
    if let Some(info) = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
    {
        return Some(info.0);
    }
    request.extensions().get::<std::net::SocketAddr>().copied()
}

/// The header returning the trace id to the caller; debug-forced requests always get one.
pub(crate) fn response_header(
    configured: &TraceIdHeader,
    context: &SpanContext,
) -> Option<(HeaderName, HeaderValue)> {
    let traceparent = || TraceContextPropagator::traceparent(context);
    let (name, value) = match configured {
        TraceIdHeader::None if !context.is_debug() => return None,
        TraceIdHeader::None | TraceIdHeader::TraceResponse => (
            HeaderName::from_static("traceresponse"),
            HeaderValue::from_bytes(traceparent().as_bytes()),
        ),
        TraceIdHeader::ServerTiming => {
            let mut value = [0u8; SERVER_TIMING_PREFIX.len() + 55];
            let (prefix, rest) = value.split_at_mut(SERVER_TIMING_PREFIX.len());
            prefix.copy_from_slice(SERVER_TIMING_PREFIX);
            rest.copy_from_slice(traceparent().as_bytes());
            (
                http::header::HeaderName::from_static("server-timing"),
                HeaderValue::from_bytes(&value),
            )
        }
        TraceIdHeader::Custom(name) => (
            name.clone(),
            HeaderValue::from_bytes(context.trace_id().to_hex().as_bytes()),
        ),
    };
    value.ok().map(|value| (name, value))
}

/// `Server-Timing: trace;desc=00-…`, as the Trace Context Level 3 draft names the metric.
const SERVER_TIMING_PREFIX: &[u8] = b"trace;desc=";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_are_split() {
        assert_eq!(
            split_host_port("example.com:8080"),
            Some(("example.com", Some(8080)))
        );
        assert_eq!(split_host_port("example.com"), Some(("example.com", None)));
        assert_eq!(
            split_host_port("::1"),
            Some(("::1", None)),
            "unbracketed IPv6"
        );
        assert_eq!(split_host_port("[::1]:8080"), Some(("::1", Some(8080))));
        assert_eq!(split_host_port("[::1]:80"), Some(("::1", Some(80))));
        assert_eq!(split_host_port("[::1]"), Some(("::1", None)));
        assert_eq!(split_host_port(""), None);
    }

    #[test]
    fn debug_ids_must_be_sane() {
        assert_eq!(
            debug_id(&HeaderValue::from_static(" my-debug ")).as_deref(),
            Some("my-debug")
        );
        assert_eq!(debug_id(&HeaderValue::from_static("")), None);
        let long = HeaderValue::from_str(&"x".repeat(300)).expect("valid");
        assert_eq!(debug_id(&long), None);
        let binary = HeaderValue::from_bytes(b"caf\xc3\xa9").expect("valid");
        assert_eq!(debug_id(&binary), None);
    }
}
