//! One call's life, shared by the server and client layers: the status read from the response
//! head or trailers, messages counted, and at the end the span's RPC attributes and the metrics.

use std::any::Any;
use std::borrow::Cow;
use std::error::Error;
use std::fmt::{self, Display};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use trace_core::{SpanContext, SpanRecorder, Status, StringValue};
use trace_http::body::ResponseBody;
use trace_http::body::private::{BodyEnd, Observe};
use trace_http::context::WithContext;
use trace_http::metrics::{Interner, TraceExemplar};

use crate::messages::MessageCounter;
use crate::metrics::{CallRecord, RpcMetrics};
use crate::status::{self, Code};
use crate::{method, semconv};

/// The error type of the client layer's service: tower's boxed error, whose source chain the
/// layer reads to record the status tonic reports for a failed call.
pub(crate) type BoxError = Box<dyn Error + Send + Sync>;

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
    BodyError(&'a dyn Display),
    /// The response (stream or future) was dropped before its end: by the caller going away,
    /// or, when `panicking`, by the unwinding of a panic (hyper drops a body whose producer
    /// panicked as the panic leaves its task).
    Dropped { panicking: bool },
    /// The inner service returned an error instead of a response; `source` is the error when it
    /// can be read as a [`std::error::Error`] (the client layer's boxed errors).
    Failed(&'a dyn Display, Option<&'a (dyn Error + 'static)>),
    /// The inner service's future panicked.
    Panicked,
}

/// Follows one call from its response head to the end of its response stream, then ends its
/// span and records its metrics. The observer of the gRPC layers' response bodies.
#[derive(Debug)]
pub struct CallObserver {
    pub(crate) span: SpanRecorder,
    pub(crate) side: Side,
    pub(crate) legacy: bool,
    /// The request's path when it names a gRPC method, kept as the request carried it (a shared
    /// handle on its bytes) and read as the method only at the end: a server stores a method's
    /// name in the bounded store only once the call's status shows the method exists, so names
    /// callers make up never take its places.
    pub(crate) path: Option<PathAndQuery>,
    /// Where method names are stored when no metrics (which keep their own) are recorded.
    pub(crate) names: Option<Arc<Interner>>,
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
        let aborted = matches!(end, End::Dropped { .. });
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
                // A tonic client's stream fails with the status tonic then reports to the
                // caller (for a stream the server reset, the code of its HTTP/2 reason).
                let reported = match self.side {
                    Side::Client => status::of_tonic_status(error),
                    Side::Server => None,
                };
                match reported {
                    // Past the deadline, as for a status read from the trailers.
                    Some(Code::CANCELLED) | None if past_deadline => Code::DEADLINE_EXCEEDED,
                    Some(code) => code,
                    None => Code::UNKNOWN,
                }
            }
            // A panic is the failure of the code that panicked, not a cancel by the caller; the
            // stream ends without a status, and UNKNOWN is what gRPC makes of that.
            (None, End::Dropped { panicking: true }) => {
                self.set_message(|| "a panic dropped the response before its end".into());
                Code::UNKNOWN
            }
            (None, End::Dropped { .. }) if past_deadline => Code::DEADLINE_EXCEEDED,
            (None, End::Dropped { .. }) => Code::CANCELLED,
            (None, End::Failed(error, source)) => match self.side {
                // tonic's channel enforces the deadline too, failing the call at it.
                _ if past_deadline => {
                    self.set_message(|| error.to_string().into());
                    Code::DEADLINE_EXCEEDED
                }
                Side::Server => {
                    self.set_message(|| error.to_string().into());
                    Code::UNKNOWN
                }
                Side::Client => {
                    let (code, cause) = match source {
                        Some(source) => tonic_status(source),
                        None => (Code::UNKNOWN, None),
                    };
                    match cause {
                        Some(cause) => self.set_message(|| cause.to_string().into()),
                        None => self.set_message(|| error.to_string().into()),
                    }
                    code
                }
            },
            (None, End::Panicked) => {
                self.set_message(|| "the handler panicked".into());
                Code::UNKNOWN
            }
        };
        let unimplemented = self.side == Side::Server && code == Code::UNIMPLEMENTED;
        let path = self.path.take();
        let called = path
            .as_ref()
            .and_then(|path| method::parse(path.path()))
            .map(|(full, _)| full);
        // An unimplemented method's name comes from the caller, unbounded: it is recorded as
        // `_OTHER` and never stored (stored, made-up names would fill the bounded store and
        // leave real methods first called afterwards named `_overflow`).
        let method =
            called
                .filter(|_| !unimplemented)
                .map(|full| match (&self.metrics, &self.names) {
                    (Some(metrics), _) => metrics.method(full),
                    (None, Some(names)) => names.get(full),
                    // Not reached: the layers give a call one store or the other.
                    (None, None) => Arc::from(full),
                });
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
                    if let Some(original) = called {
                        span.set_attribute(
                            semconv::RPC_METHOD_ORIGINAL,
                            StringValue::copied(original),
                        );
                        // The conventions name a span whose `rpc.method` is `_OTHER` after the
                        // RPC system alone: a name from the caller is unbounded.
                        span.update_name("grpc");
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
            BodyEnd::Dropped => End::Dropped {
                panicking: std::thread::panicking(),
            },
        };
        self.finish(end);
    }
}

/// The status tonic's client gives a call that failed with `error` instead of a response, found
/// as tonic finds it (`Status::from_error`): the first error in the source chain it knows —
/// `TimeoutExpired` (a deadline its channel enforces, such as `Endpoint::timeout`) is
/// `CANCELLED`, a `ConnectError` is `UNAVAILABLE` —, else `UNKNOWN`. Returns the code and the
/// error found, whose text tonic reports (for `UNKNOWN`, it reports `error`'s own).
///
/// trace-grpc does not depend on tonic (so that it works with any version of it), so it cannot
/// downcast to tonic's types: it knows them by the type name their derived `Debug` starts with.
fn tonic_status<'e>(error: &'e (dyn Error + 'static)) -> (Code, Option<&'e (dyn Error + 'static)>) {
    let mut next = Some(error);
    while let Some(cause) = next {
        if debug_names(cause, "TimeoutExpired") {
            return (Code::CANCELLED, Some(cause));
        }
        if debug_names(cause, "ConnectError") {
            return (Code::UNAVAILABLE, Some(cause));
        }
        next = cause.source();
    }
    (Code::UNKNOWN, None)
}

/// Whether `error`'s `Debug` output starts with `{name}(`, as a derived `Debug` of a tuple
/// struct named `name` does. Stops formatting once that is decided: no allocation, however long
/// the output.
fn debug_names(error: &dyn Error, name: &str) -> bool {
    struct Prefix<'a> {
        rest: &'a [u8],
    }
    impl fmt::Write for Prefix<'_> {
        fn write_str(&mut self, text: &str) -> fmt::Result {
            let text = text.as_bytes();
            let n = text.len().min(self.rest.len());
            if text[..n] != self.rest[..n] {
                return Err(fmt::Error);
            }
            self.rest = &self.rest[n..];
            // Matched whole, or mismatched: either way nothing more is needed.
            if self.rest.is_empty() {
                Err(fmt::Error)
            } else {
                Ok(())
            }
        }
    }
    let mut expected = [0u8; 32];
    let Some(prefix) = expected.get_mut(..name.len() + 1) else {
        return false;
    };
    prefix[..name.len()].copy_from_slice(name.as_bytes());
    prefix[name.len()] = b'(';
    let mut writer = Prefix { rest: prefix };
    let _ = fmt::write(&mut writer, format_args!("{error:?}"));
    writer.rest.is_empty()
}

pin_project! {
    /// The response body of a call through the gRPC layers: the inner body, polled with the
    /// call's [`SpanContext`] current (on the server), as the handler's future was. A
    /// server-streaming or bidirectional handler produces its messages while the body is polled,
    /// so calls it makes to produce them continue the caller's trace too.
    pub struct CallBody<B> {
        #[pin]
        inner: B,
        context: Option<SpanContext>,
    }
}

impl<B> CallBody<B> {
    /// The wrapped body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B: fmt::Debug> fmt::Debug for CallBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallBody")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for CallBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        // Lent, not cloned: the body is polled once per frame.
        let _current = this
            .context
            .is_some()
            .then(|| trace_core::current::lend(this.context));
        this.inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project! {
    /// The response future of the gRPC server and client services.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: WithContext<F>,
        // Current while the response body is polled, as `inner` makes it current while the
        // future is (a copy: `WithContext` does not give its own back).
        body_context: Option<SpanContext>,
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
                call.finish(if *this.polling {
                    End::Panicked
                } else {
                    End::Dropped {
                        panicking: std::thread::panicking(),
                    }
                });
            }
        }
    }
}

impl<F> ResponseFuture<F> {
    /// A call polled in `context` (`None`: in whatever context is current), its future and then
    /// its response body.
    pub(crate) fn new(
        context: Option<SpanContext>,
        inner: F,
        call: Option<CallObserver>,
        trace_id_header: Option<(HeaderName, HeaderValue)>,
    ) -> Self {
        Self {
            body_context: context.clone(),
            inner: WithContext::new(context, inner),
            call,
            trace_id_header,
            polling: false,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
    E: Display + 'static,
{
    type Output = Result<Response<ResponseBody<CallBody<B>, CallObserver>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        *this.polling = true;
        let poll = this.inner.poll(cx);
        *this.polling = false;
        let Poll::Ready(result) = poll else {
            return Poll::Pending;
        };
        let context = this.body_context.take();
        let body = |inner: B| CallBody { inner, context };
        let Some(mut call) = this.call.take() else {
            return Poll::Ready(result.map(|r| r.map(|b| ResponseBody::new(body(b), None))));
        };
        match result {
            Ok(mut response) => {
                call.on_head(response.status(), response.headers());
                if let Some((name, value)) = this.trace_id_header.take() {
                    response.headers_mut().append(name, value);
                }
                Poll::Ready(Ok(response.map(|b| ResponseBody::new(body(b), Some(call)))))
            }
            Err(error) => {
                // The client layer's errors are boxed, so that their source chain can be read.
                let source = (&error as &dyn Any)
                    .downcast_ref::<BoxError>()
                    .map(|boxed| &**boxed as &(dyn Error + 'static));
                call.finish(End::Failed(&error, source));
                Poll::Ready(Err(error))
            }
        }
    }
}
