//! The server-side trace layer.

mod future;
mod layer;
mod service;

use std::time::Instant;

use http::{HeaderMap, StatusCode};
use trace_core::{SpanRecorder, Status};

pub use future::ResponseFuture;
pub use layer::{TraceIdHeader, TraceLayer};
pub use service::TraceService;
pub(crate) use service::{response_header, server_context, split_host_port};

use crate::body::private::{BodyEnd, Observe};
use crate::metrics::MetricsObserver;
use crate::semconv;

/// Whether a [`TraceLayer`] records request metrics besides its spans: [`NoMetrics`] (the
/// default) or [`WithMetrics`] (after [`TraceLayer::metrics`]).
///
/// A type rather than a setting so that a layer without metrics carries no room for them. The
/// metrics' state is some 100 bytes per request, moved with the response into its body; a layer
/// without metrics carrying an empty slot for it measured some 20 ns dearer per unsampled
/// request. Boxing the state instead would have cost every request with metrics an allocation.
///
/// ```
/// use std::sync::Arc;
/// use prometheus_client::registry::Registry;
/// use trace_core::NoopCollector;
/// use trace_http::TraceLayer;
/// use trace_http::metrics::MetricsLayer;
/// use trace_http::trace::WithMetrics;
///
/// let mut registry = Registry::default();
/// let layer: TraceLayer<WithMetrics> =
///     TraceLayer::new(Arc::new(NoopCollector)).metrics(MetricsLayer::new(&mut registry));
/// ```
pub trait MetricsSlot: sealed::Sealed + Send + Sync + 'static {
    /// What each request carries for its metrics.
    #[doc(hidden)]
    type Observer: RequestMetrics;
}

/// A [`TraceLayer`] that records spans only.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMetrics;

/// A [`TraceLayer`] that records request metrics too ([`TraceLayer::metrics`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct WithMetrics;

impl MetricsSlot for NoMetrics {
    type Observer = NoObserver;
}

impl MetricsSlot for WithMetrics {
    type Observer = MetricsObserver;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::NoMetrics {}
    impl Sealed for super::WithMetrics {}
}

/// The metrics of a request of a layer without metrics: there are none (no value of this type
/// exists, so an `Option` of it takes no room).
#[doc(hidden)]
#[derive(Debug)]
pub enum NoObserver {}

/// What the trace layer does with a request's metrics, if it has any. Not a stable API.
#[doc(hidden)]
pub trait RequestMetrics: Send + 'static + Sized {
    /// Whether a layer with this slot records metrics at all.
    const RECORDS: bool;
    /// The slot's value for a request whose metrics `observer` records.
    fn wrap(observer: MetricsObserver) -> Option<Self>;
    /// The inner service failed.
    fn on_error(self);
    /// The response head is ready.
    fn on_response(&mut self, status: StatusCode, failures_from: u16);
    /// The inner service panicked.
    fn on_panic(&mut self);
    /// The response body ended, at `now`.
    fn on_end_at(self, end: &BodyEnd<'_>, bytes: u64, now: Instant);
}

impl RequestMetrics for MetricsObserver {
    const RECORDS: bool = true;

    #[inline]
    fn wrap(observer: MetricsObserver) -> Option<Self> {
        Some(observer)
    }

    fn on_error(self) {
        MetricsObserver::on_error(self);
    }

    fn on_response(&mut self, status: StatusCode, failures_from: u16) {
        MetricsObserver::on_response(self, status, failures_from);
    }

    fn on_panic(&mut self) {
        MetricsObserver::on_panic(self);
    }

    fn on_end_at(self, end: &BodyEnd<'_>, bytes: u64, now: Instant) {
        MetricsObserver::on_end_at(self, end, bytes, now);
    }
}

impl RequestMetrics for NoObserver {
    const RECORDS: bool = false;

    #[inline]
    fn wrap(_observer: MetricsObserver) -> Option<Self> {
        None
    }

    fn on_error(self) {
        match self {}
    }

    fn on_response(&mut self, _status: StatusCode, _failures_from: u16) {
        match *self {}
    }

    fn on_panic(&mut self) {
        match *self {}
    }

    fn on_end_at(self, _end: &BodyEnd<'_>, _bytes: u64, _now: Instant) {
        match self {}
    }
}

/// Ends a request's span when its response body ends. The observer of the trace layers'
/// [`ResponseBody`](crate::body::ResponseBody).
#[derive(Debug)]
pub struct SpanObserver<M: MetricsSlot = NoMetrics> {
    pub(crate) span: SpanRecorder,
    /// The request metrics, when the trace layer records them itself.
    pub(crate) metrics: Option<M::Observer>,
}

impl<M: MetricsSlot> Observe for SpanObserver<M> {
    fn on_first_byte(&mut self) {
        self.span.add_event(semconv::EVENT_FIRST_BYTE, Vec::new());
    }

    fn on_trailers(&mut self, _trailers: &HeaderMap) {}

    fn on_end(mut self, end: BodyEnd<'_>, bytes: u64) {
        // One clock reading ends both the span and the duration.
        let now = trace_core::clock::monotonic();
        if self.span.is_recording() {
            self.span
                .set_attribute(semconv::HTTP_RESPONSE_BODY_SIZE, bytes);
            match end {
                BodyEnd::Complete => {}
                BodyEnd::Error(error) => {
                    self.span
                        .set_attribute(semconv::ERROR_TYPE, "response_body");
                    self.span
                        .set_status(Status::error(format!("response body failed: {error}")));
                }
                // hyper drops the body while unwinding from its panicking `poll_frame`: the
                // server failed, the client did not go away.
                BodyEnd::Dropped if std::thread::panicking() => {
                    self.span.set_attribute(semconv::ERROR_TYPE, "panic");
                    self.span
                        .set_status(Status::error("the response body panicked"));
                }
                BodyEnd::Dropped => self.span.set_attribute(semconv::RESPONSE_ABORTED, true),
            }
        }
        if let Some(metrics) = self.metrics.take() {
            metrics.on_end_at(&end, bytes, now);
        }
        self.span.end_at(now);
    }
}
