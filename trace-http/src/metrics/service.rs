use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::{HeaderMap, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_service::Service;
use trace_core::SpanContext;
use trace_core::clock::monotonic;
use trace_core::current::with_current;

use super::family::{ClientLabels, ErrorType, KeptText, ServerLabels, TraceExemplar};
use super::gauge::InFlightGauge;
use super::layer::{ClientMetrics, DurationEnd, ServerMetrics};
use crate::RequestStart;
use crate::body::ResponseBody;
use crate::body::private::{BodyEnd, Observe};
use crate::route::RequestRoute;
use crate::semconv;

/// The service [`MetricsLayer`](super::MetricsLayer) wraps around a server.
#[derive(Debug, Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Arc<ServerMetrics>,
}

impl<S> MetricsService<S> {
    pub(crate) fn new(inner: S, metrics: Arc<ServerMetrics>) -> Self {
        Self { inner, metrics }
    }
}

/// The service [`ClientMetricsLayer`](super::ClientMetricsLayer) wraps around a client.
#[derive(Debug, Clone)]
pub struct ClientMetricsService<S> {
    inner: S,
    metrics: Arc<ClientMetrics>,
}

impl<S> ClientMetricsService<S> {
    pub(crate) fn new(inner: S, metrics: Arc<ClientMetrics>) -> Self {
        Self { inner, metrics }
    }
}

/// The start of a request's duration: the one an outer layer recorded, or now.
fn request_start(extensions: &http::Extensions) -> Instant {
    extensions
        .get::<RequestStart>()
        .map_or_else(monotonic, |start| start.instant)
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for MetricsService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: http_body::Body,
{
    type Response = Response<ResponseBody<ResBody, MetricsObserver>>;
    type Error = S::Error;
    type Future = MetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let start = request_start(request.extensions());
        let exemplar = request
            .extensions()
            .get::<SpanContext>()
            .and_then(TraceExemplar::of);
        let (method, _) = semconv::method_name(request.method());
        let route = RequestRoute::of(&request);
        let observer = MetricsObserver::server(
            &self.metrics,
            method,
            route.label(),
            content_length(request.headers()),
            start,
            exemplar,
        );
        MetricsFuture {
            inner: self.inner.call(request),
            observer: Some(observer),
            failures_from: 500,
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ClientMetricsService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: http_body::Body,
{
    type Response = Response<ResponseBody<ResBody, MetricsObserver>>;
    type Error = S::Error;
    type Future = MetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let (method, _) = semconv::method_name(request.method());
        // The address the client span records: bare (`::1`, as servers label themselves), from
        // the `Host` header for an origin-form request.
        let server_address = crate::client::server_target(&request)
            .map(|(address, _)| self.metrics.addresses.get(address));
        let exemplar = match request.extensions().get::<SpanContext>() {
            Some(context) => TraceExemplar::of(context),
            None => with_current(|context| context.and_then(TraceExemplar::of)),
        };
        let observer = MetricsObserver {
            start: monotonic(),
            exemplar,
            status: None,
            error: None,
            duration_recorded: false,
            target: Target::Client {
                metrics: self.metrics.clone(),
                labels: ClientLabels {
                    method,
                    server_address,
                    status: None,
                    error: None,
                },
            },
        };
        MetricsFuture {
            inner: self.inner.call(request),
            observer: Some(observer),
            failures_from: 400,
        }
    }
}

/// No announced request body size. No body can be this long; a peer announcing exactly this
/// length is taken as announcing none.
const NO_SIZE: u64 = u64::MAX;

/// The request body size a `Content-Length` header announces.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    parse_content_length(headers.get(http::header::CONTENT_LENGTH)?)
}

/// A `Content-Length` value as a number, if it is one: decimal digits only (RFC 9110's
/// `1*DIGIT`, so no sign or white space), read straight from the bytes.
pub(crate) fn parse_content_length(value: &http::HeaderValue) -> Option<u64> {
    let digits = value.as_bytes();
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0_u64, |length, &digit| {
        if !digit.is_ascii_digit() {
            return None;
        }
        length.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
}

#[derive(Debug)]
enum Target {
    Server {
        metrics: Arc<ServerMetrics>,
        labels: ServerLabels,
        /// The announced request body size; [`NO_SIZE`] when none was (a sentinel rather than
        /// an `Option`, which would double the field).
        request_size: u64,
        /// Counted in `http_server_active_requests` (uncounted when the observer is dropped,
        /// through the same `metrics`: no gauge handle cloned per request).
        in_flight: bool,
    },
    Client {
        metrics: Arc<ClientMetrics>,
        labels: ClientLabels,
    },
}

/// Records a request's metrics when its response ends. The observer of the metrics layers'
/// [`ResponseBody`].
#[derive(Debug)]
pub struct MetricsObserver {
    start: Instant,
    exemplar: Option<TraceExemplar>,
    status: Option<StatusCode>,
    error: Option<ErrorType>,
    duration_recorded: bool,
    target: Target,
}

impl MetricsObserver {
    /// The observer of a server request for `method` (normalised) on `route`, announcing a body
    /// of `request_size` bytes, starting at `start` (the trace layer builds one too when it
    /// records the metrics itself, from what it already read of the request).
    #[inline]
    pub(crate) fn server(
        metrics: &Arc<ServerMetrics>,
        method: KeptText,
        route: Option<KeptText>,
        request_size: Option<u64>,
        start: Instant,
        exemplar: Option<TraceExemplar>,
    ) -> Self {
        let in_flight = metrics.active(method).map(InFlightGauge::inc).is_some();
        MetricsObserver {
            start,
            exemplar,
            status: None,
            error: None,
            duration_recorded: false,
            target: Target::Server {
                metrics: metrics.clone(),
                labels: ServerLabels {
                    method,
                    route,
                    status: None,
                    error: None,
                },
                request_size: request_size.unwrap_or(NO_SIZE),
                in_flight,
            },
        }
    }

    /// The response head is ready with `status`: an error from `failures_from` on, and the
    /// duration recorded now when it is configured to end at the head.
    pub(crate) fn on_response(&mut self, status: StatusCode, failures_from: u16) {
        self.status = Some(status);
        if status.as_u16() >= failures_from {
            self.error = Some(ErrorType::Status);
        }
        if self.duration_ends_at_headers() {
            self.record(true, None, monotonic());
        }
    }

    /// The inner service panicked while polled (its future is dropped later, by whoever caught
    /// the panic): the duration recorded then says so.
    pub(crate) fn on_panic(&mut self) {
        self.error = Some(ErrorType::Panic);
    }

    /// The inner service failed: no response, nothing more to wait for.
    pub(crate) fn on_error(mut self) {
        self.error = Some(ErrorType::Other);
        self.record(true, Some(None), monotonic());
    }

    /// The body ended at `now` (a reading the caller shares with the span).
    pub(crate) fn on_end_at(mut self, end: &BodyEnd<'_>, bytes: u64, now: Instant) {
        if self.error.is_none() {
            match end {
                BodyEnd::Error(_) => self.error = Some(ErrorType::ResponseBody),
                // Dropped while unwinding from the body's own panic (see the span observer).
                BodyEnd::Dropped if std::thread::panicking() => self.error = Some(ErrorType::Panic),
                BodyEnd::Complete | BodyEnd::Dropped => {}
            }
        }
        self.record(true, Some(Some(bytes)), now);
    }

    /// Records the duration (once) and, with `sizes`, the body sizes, in one series lookup.
    fn record(&mut self, duration: bool, sizes: Option<Option<u64>>, now: Instant) {
        let duration = duration && !self.duration_recorded;
        self.duration_recorded |= duration;
        let seconds = now.saturating_duration_since(self.start).as_secs_f64();
        let (status, error, exemplar) = (self.status, self.error, self.exemplar);
        match &mut self.target {
            Target::Server {
                metrics,
                labels,
                request_size,
                ..
            } => {
                labels.status = status;
                labels.error = error;
                let request_size = if sizes.is_some() {
                    Some(std::mem::replace(request_size, NO_SIZE)).filter(|size| *size != NO_SIZE)
                } else {
                    None
                };
                // Overflow is counted once a request: with the lookup that records its duration.
                metrics.series.with_counted(labels, duration, |series| {
                    if duration {
                        series.duration.observe(seconds, exemplar, now);
                    }
                    if let Some(size) = request_size {
                        series.request_size.observe(size as f64);
                    }
                    if let Some(Some(size)) = sizes {
                        series.response_size.observe(size as f64);
                    }
                });
            }
            Target::Client { metrics, labels } => {
                if duration {
                    labels.status = status;
                    labels.error = error;
                    metrics.series.with(labels, |histogram| {
                        histogram.observe(seconds, exemplar, now)
                    });
                }
            }
        }
    }

    fn duration_ends_at_headers(&self) -> bool {
        matches!(&self.target, Target::Server { metrics, .. } if metrics.duration_end == DurationEnd::Headers)
    }
}

impl Drop for MetricsObserver {
    fn drop(&mut self) {
        // Dropped before any end was observed: the request was cancelled before its response
        // was ready (or its handler panicked). Its time still counts, or the slowest requests
        // (those a client or a timeout gave up on) would vanish from the histogram.
        if !self.duration_recorded {
            self.error.get_or_insert(ErrorType::Aborted);
            self.record(true, None, monotonic());
        }
        if let Target::Server {
            metrics,
            labels,
            in_flight: true,
            ..
        } = &self.target
            && let Some(gauge) = metrics.active(labels.method)
        {
            gauge.dec();
        }
    }
}

impl Observe for MetricsObserver {
    fn on_first_byte(&mut self) {}

    fn on_trailers(&mut self, _trailers: &HeaderMap) {}

    fn on_end(self, end: BodyEnd<'_>, bytes: u64) {
        self.on_end_at(&end, bytes, monotonic());
    }
}

/// Notes on the observer that the inner future panicked, when dropped while unwinding from its
/// poll: the observer itself is dropped later, by whoever caught the panic, when nothing says
/// any more that there was one.
struct MarkPanic<'a>(&'a mut Option<MetricsObserver>);

impl Drop for MarkPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(observer) = self.0.as_mut()
        {
            observer.on_panic();
        }
    }
}

pin_project! {
    /// The response future of [`MetricsService`] and [`ClientMetricsService`].
    pub struct MetricsFuture<F> {
        #[pin]
        inner: F,
        observer: Option<MetricsObserver>,
        failures_from: u16,
    }
}

impl<F, B, E> Future for MetricsFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
{
    type Output = Result<Response<ResponseBody<B, MetricsObserver>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = {
            let _marks_a_panic = MarkPanic(this.observer);
            this.inner.poll(cx)
        };
        // Taken apart where it lies: the response head is moved once, into the output (each
        // move is a copy of the whole head).
        let (head, body) = match ready!(polled) {
            Ok(response) => response.into_parts(),
            Err(error) => {
                if let Some(observer) = this.observer.take() {
                    observer.on_error();
                }
                return Poll::Ready(Err(error));
            }
        };
        // Updated where it lies and moved once, into the body (a move is a copy of the whole
        // observer).
        if let Some(observer) = this.observer.as_mut() {
            if observer.exemplar.is_none() {
                // The trace layer, when inside this one, hands the sampled context back on the
                // response.
                observer.exemplar = head
                    .extensions
                    .get::<SpanContext>()
                    .and_then(TraceExemplar::of);
            }
            observer.on_response(head.status, *this.failures_from);
        }
        // `None` only when polled after completion (the caller's contract breach): the result is
        // passed on unobserved.
        let observer = this.observer.take();
        let body = ResponseBody::of_response(body, observer, &head.headers);
        Poll::Ready(Ok(Response::from_parts(head, body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_lengths_are_plain_decimal_numbers() {
        let parse =
            |text: &'static str| parse_content_length(&http::HeaderValue::from_static(text));
        assert_eq!(parse("0"), Some(0));
        assert_eq!(parse("42"), Some(42));
        assert_eq!(parse("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "+42",
            "-1",
            " 42",
            "4 2",
            "0x10",
            "18446744073709551616",
            "4.2",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
