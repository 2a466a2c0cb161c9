use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderName, HeaderValue, Response, StatusCode};
use pin_project_lite::pin_project;
use trace_core::{SpanRecorder, Status};

use super::{MetricsSlot, NoMetrics, RequestMetrics, SpanObserver};
use crate::body::ResponseBody;
use crate::context::WithContext;
use crate::semconv;

pin_project! {
    /// The response future of [`TraceService`](super::TraceService) and
    /// [`ClientTraceService`](crate::client::ClientTraceService).
    pub struct ResponseFuture<F, M: MetricsSlot = NoMetrics> {
        #[pin]
        inner: WithContext<F>,
        span: Option<SpanRecorder>,
        metrics: Option<M::Observer>,
        trace_id_header: Option<Box<(HeaderName, HeaderValue)>>,
        failures_from: u16,
        head_request: bool,
    }

    impl<F, M: MetricsSlot> PinnedDrop for ResponseFuture<F, M> {
        fn drop(this: Pin<&mut Self>) {
            // Still holding the span: the request was cancelled before its response was ready
            // (the client went away, or a timeout layer gave up).
            if let Some(mut span) = this.project().span.take() {
                span.set_attribute(semconv::RESPONSE_ABORTED, true);
            }
        }
    }
}

impl<F, M: MetricsSlot> ResponseFuture<F, M> {
    /// A server's future: 5xx responses are failures.
    pub(crate) fn server(
        inner: WithContext<F>,
        span: SpanRecorder,
        metrics: Option<M::Observer>,
        trace_id_header: Option<Box<(HeaderName, HeaderValue)>>,
        head_request: bool,
    ) -> Self {
        Self {
            inner,
            span: Some(span),
            metrics,
            trace_id_header,
            failures_from: 500,
            head_request,
        }
    }
}

impl<F> ResponseFuture<F> {
    /// A client's future: 4xx and 5xx responses are failures.
    pub(crate) fn client(inner: F, span: SpanRecorder, head_request: bool) -> Self {
        Self {
            inner: WithContext::new(None, inner),
            span: Some(span),
            metrics: None,
            trace_id_header: None,
            failures_from: 400,
            head_request,
        }
    }
}

impl<F, M, B, E> Future for ResponseFuture<F, M>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
    E: std::fmt::Display,
    M: MetricsSlot,
{
    type Output = Result<Response<ResponseBody<B, SpanObserver<M>>>, E>;

    // Inlined where it can be: see `TraceService::call`.
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let panic_guard = PanicGuard(Some((&mut *this.span, &mut *this.metrics)));
        // Matched where it lies: the response is moved once, into the output (each move of a
        // response is a copy of its whole head).
        let (mut head, body) = match this.inner.poll(cx) {
            Poll::Pending => {
                panic_guard.disarm();
                return Poll::Pending;
            }
            Poll::Ready(Ok(response)) => {
                panic_guard.disarm();
                response.into_parts()
            }
            Poll::Ready(Err(error)) => {
                panic_guard.disarm();
                if let Some(metrics) = this.metrics.take() {
                    metrics.on_error();
                }
                let mut span = this.span.take().unwrap_or_default();
                span.set_attribute(semconv::ERROR_TYPE, "_OTHER");
                span.set_status(Status::error(error.to_string()));
                return Poll::Ready(Err(error));
            }
        };
        let mut span = this.span.take().unwrap_or_default();
        let status = head.status;
        if span.is_recording() {
            span.set_attribute(semconv::HTTP_RESPONSE_STATUS_CODE, status.as_u16());
            if status.as_u16() >= *this.failures_from {
                span.set_attribute(semconv::ERROR_TYPE, status.as_str().to_owned());
                span.set_status(Status::error(status.to_string()));
            }
        }
        if let Some((name, value)) = this.trace_id_header.take().map(|header| *header) {
            head.headers.append(name, value);
        }
        // A metrics layer outside this one reads the sampled context here for its exemplar (the
        // request it saw did not have the context yet). Not needed when this layer records the
        // metrics itself.
        if this.metrics.is_none()
            && let Some(context) = span.context()
        {
            head.extensions.insert(context.clone());
        }
        // hyper discards, unread, the body of a response that cannot have one (to HEAD, 1xx,
        // 204, 304): such a response is complete with its head.
        let bodyless = *this.head_request
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        if let Some(metrics) = this.metrics.as_mut() {
            metrics.on_response(status, *this.failures_from);
        }
        if bodyless {
            if span.is_recording() {
                span.set_attribute(semconv::HTTP_RESPONSE_BODY_SIZE, 0_i64);
            }
            // Complete with its head: the span ends now.
            drop(std::mem::take(&mut span));
        }
        // The metrics observer is moved once, straight into the body's observer.
        let observer = (span.is_recording() || this.metrics.is_some()).then(|| SpanObserver {
            span,
            metrics: this.metrics.take(),
        });
        let body = ResponseBody::of_response(body, observer, &head.headers);
        Poll::Ready(Ok(Response::from_parts(head, body)))
    }
}

/// Ends the span as failed if the inner future panics while being polled (whoever catches the
/// panic then drops a future that no longer holds a span, so it is not also marked aborted), and
/// notes the panic on the metrics observer, which records when the future is dropped.
struct PanicGuard<'a, O: RequestMetrics>(Option<(&'a mut Option<SpanRecorder>, &'a mut Option<O>)>);

impl<O: RequestMetrics> PanicGuard<'_, O> {
    /// The inner future returned: nothing to end here.
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl<O: RequestMetrics> Drop for PanicGuard<'_, O> {
    fn drop(&mut self) {
        let Some((span, metrics)) = self.0.take() else {
            return;
        };
        if !std::thread::panicking() {
            return;
        }
        if let Some(mut span) = span.take() {
            span.set_attribute(semconv::ERROR_TYPE, "panic");
            span.set_status(Status::error("the handler panicked"));
        }
        if let Some(metrics) = metrics.as_mut() {
            metrics.on_panic();
        }
    }
}
