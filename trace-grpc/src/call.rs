//! One call's life, shared by the server and client layers: the status read from the response
//! head or trailers, messages counted, and at the end the span's RPC attributes and the metrics.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use pin_project_lite::pin_project;
use trace_core::{SpanRecorder, Status};
use trace_http::body::ResponseBody;
use trace_http::body::private::{BodyEnd, Observe};
use trace_http::context::WithContext;
use trace_http::metrics::TraceExemplar;

use crate::messages::MessageCounter;
use crate::metrics::{CallRecord, RpcMetrics};
use crate::semconv;
use crate::status::{self, Code};

/// Which end of the call a layer sits at: the codes that count as failures differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Server,
    Client,
}

/// How a call ended, when its status was not read from the response.
enum End<'a> {
    /// The response stream ended.
    Complete,
    /// The response stream failed.
    BodyError(&'a dyn std::fmt::Display),
    /// The response (stream or future) was dropped before its end.
    Dropped,
    /// The inner service returned an error instead of a response.
    Failed(&'a dyn std::fmt::Display),
    /// The inner service panicked.
    Panicked,
}

/// Follows one call from its response head to the end of its response stream, then ends its
/// span and records its metrics. The observer of the gRPC layers' response bodies.
#[derive(Debug)]
pub struct CallObserver {
    pub(crate) span: SpanRecorder,
    pub(crate) side: Side,
    pub(crate) legacy: bool,
    /// The fully qualified method, `None` when the path is not a gRPC method.
    pub(crate) method: Option<Arc<str>>,
    pub(crate) metrics: Option<Arc<RpcMetrics>>,
    pub(crate) started: Instant,
    pub(crate) exemplar: Option<TraceExemplar>,
    /// From the request's `grpc-timeout`: a call dropped after it exceeded its deadline.
    pub(crate) deadline: Option<Instant>,
    /// Request messages, counted by the request body (servers only).
    pub(crate) requests: Option<Arc<AtomicU64>>,
    pub(crate) code: Option<Code>,
    pub(crate) message: Option<String>,
    pub(crate) responses: MessageCounter,
}

impl CallObserver {
    /// Reads the status from a response head: `grpc-status` in the headers of a trailers-only
    /// response, else the HTTP status when it is not 200 (a proxy answered).
    fn on_head(&mut self, status: StatusCode, headers: &HeaderMap) {
        if let Some(code) = Code::from_headers(headers) {
            self.code = Some(code);
            if self.span.is_recording() {
                self.message = status::message(headers);
            }
        } else if status != StatusCode::OK {
            self.code = Some(Code::from_http(status));
            if self.span.is_recording() {
                self.message = Some(format!("HTTP status {status}"));
            }
        }
    }

    fn finish(mut self, end: End<'_>) {
        // Read only when something uses it (the span reads its own end time).
        let now =
            (self.deadline.is_some() || self.metrics.is_some()).then(trace_core::clock::monotonic);
        let past_deadline = self
            .deadline
            .zip(now)
            .is_some_and(|(deadline, now)| now >= deadline);
        let aborted = matches!(end, End::Dropped);
        let code = match (self.code, end) {
            // A call cancelled once its deadline had passed was cancelled for the deadline: the
            // server's timeout answers CANCELLED, and it can reach the caller before the
            // caller's own timer fails the call.
            (Some(Code::CANCELLED), _) if past_deadline => Code::DEADLINE_EXCEEDED,
            (Some(code), _) => code,
            (None, End::Complete) => {
                self.set_message(|| "the response ended without a grpc-status".into());
                Code::UNKNOWN
            }
            (None, End::BodyError(error)) => {
                self.set_message(|| format!("the response stream failed: {error}").into());
                if past_deadline {
                    Code::DEADLINE_EXCEEDED
                } else {
                    Code::UNKNOWN
                }
            }
            (None, End::Dropped) if past_deadline => Code::DEADLINE_EXCEEDED,
            (None, End::Dropped) => Code::CANCELLED,
            (None, End::Failed(error)) => {
                self.set_message(|| error.to_string().into());
                match self.side {
                    // tonic's channel enforces the deadline too, failing the call at it.
                    _ if past_deadline => Code::DEADLINE_EXCEEDED,
                    Side::Server => Code::UNKNOWN,
                    // A transport failure: what tonic reports to the caller.
                    Side::Client => Code::UNAVAILABLE,
                }
            }
            (None, End::Panicked) => {
                self.set_message(|| "the handler panicked".into());
                Code::UNKNOWN
            }
        };
        let unimplemented = self.side == Side::Server && code == Code::UNIMPLEMENTED;
        // An unimplemented method's name comes from the caller: unbounded, so `_OTHER`.
        let method = self.method.take().filter(|_| !unimplemented);
        let requests = self
            .requests
            .as_ref()
            .map(|count| count.load(Ordering::Relaxed));
        let responses = self.responses.messages();
        if self.span.is_recording() {
            let span = &mut self.span;
            match &method {
                Some(method) => span.set_attribute(semconv::RPC_METHOD, method.clone()),
                None => {
                    span.set_attribute(semconv::RPC_METHOD, semconv::OTHER_METHOD);
                    if let Some(original) = span
                        .span()
                        .map(|s| s.name.clone())
                        .filter(|name| name != "grpc")
                    {
                        span.set_attribute(semconv::RPC_METHOD_ORIGINAL, original);
                    }
                }
            }
            span.set_attribute(semconv::RPC_RESPONSE_STATUS_CODE, code.name());
            if self.legacy {
                span.set_attribute(
                    semconv::LEGACY_RPC_GRPC_STATUS_CODE,
                    i64::from(code.as_i32()),
                );
            }
            if let Some(requests) = requests {
                span.set_attribute(semconv::REQUEST_MESSAGES, requests);
            }
            span.set_attribute(semconv::RESPONSE_MESSAGES, responses);
            if aborted {
                span.set_attribute(semconv::RESPONSE_ABORTED, true);
            }
            let failed = match self.side {
                Side::Server => code.is_server_error(),
                Side::Client => code.is_client_error(),
            };
            if failed {
                span.set_attribute(semconv::ERROR_TYPE, code.name());
                let message: Cow<'static, str> = match self.message.take() {
                    Some(message) => message.into(),
                    None => code.name().into(),
                };
                span.set_status(Status::error(message));
            }
        }
        if let (Some(metrics), Some(now)) = (&self.metrics, now) {
            metrics.record(CallRecord {
                method,
                code,
                seconds: now.duration_since(self.started).as_secs_f64(),
                exemplar: self.exemplar,
                requests,
                responses,
            });
        }
        // The span ends as `self` drops, now.
    }

    fn set_message(&mut self, message: impl FnOnce() -> Cow<'static, str>) {
        if self.span.is_recording() && self.message.is_none() {
            self.message = Some(message().into_owned());
        }
    }
}

impl Observe for CallObserver {
    fn on_first_byte(&mut self) {}

    fn on_data(&mut self, data: &dyn bytes::Buf) {
        self.responses.feed_buf(data);
    }

    fn on_trailers(&mut self, trailers: &HeaderMap) {
        if let Some(code) = Code::from_headers(trailers) {
            self.code = Some(code);
            if self.span.is_recording() {
                self.message = status::message(trailers);
            }
        }
    }

    fn on_end(self, end: BodyEnd<'_>, _bytes: u64) {
        let end = match end {
            BodyEnd::Complete => End::Complete,
            BodyEnd::Error(error) => End::BodyError(error),
            BodyEnd::Dropped => End::Dropped,
        };
        self.finish(end);
    }
}

pin_project! {
    /// The response future of the gRPC server and client services.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: WithContext<F>,
        call: Option<CallObserver>,
        trace_id_header: Option<(HeaderName, HeaderValue)>,
        // Set while the inner future is polled: still set when this future is dropped means the
        // inner one panicked.
        polling: bool,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // Still holding the call: the caller went away (or a timeout layer gave up) before
            // the response head was ready.
            if let Some(call) = this.call.take() {
                call.finish(if *this.polling { End::Panicked } else { End::Dropped });
            }
        }
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(
        inner: WithContext<F>,
        call: Option<CallObserver>,
        trace_id_header: Option<(HeaderName, HeaderValue)>,
    ) -> Self {
        Self {
            inner,
            call,
            trace_id_header,
            polling: false,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
    E: std::fmt::Display,
{
    type Output = Result<Response<ResponseBody<B, CallObserver>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        *this.polling = true;
        let poll = this.inner.poll(cx);
        *this.polling = false;
        let Poll::Ready(result) = poll else {
            return Poll::Pending;
        };
        let Some(mut call) = this.call.take() else {
            return Poll::Ready(result.map(|r| r.map(|body| ResponseBody::new(body, None))));
        };
        match result {
            Ok(mut response) => {
                call.on_head(response.status(), response.headers());
                if let Some((name, value)) = this.trace_id_header.take() {
                    response.headers_mut().append(name, value);
                }
                Poll::Ready(Ok(response.map(|body| ResponseBody::new(body, Some(call)))))
            }
            Err(error) => {
                call.finish(End::Failed(&error));
                Poll::Ready(Err(error))
            }
        }
    }
}
