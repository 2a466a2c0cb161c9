//! The server-side trace layer.

mod future;
mod layer;
mod service;

use http::HeaderMap;
use trace_core::{SpanRecorder, Status};

pub use future::ResponseFuture;
pub use layer::{TraceIdHeader, TraceLayer};
pub use service::TraceService;
pub(crate) use service::{response_header, server_context, split_host_port};

use crate::body::private::{BodyEnd, Observe};
use crate::metrics::MetricsObserver;
use crate::semconv;

/// Ends a request's span when its response body ends. The observer of the trace layers'
/// [`ResponseBody`](crate::body::ResponseBody).
#[derive(Debug)]
pub struct SpanObserver {
    pub(crate) span: SpanRecorder,
    /// The request metrics, when the trace layer records them itself.
    pub(crate) metrics: Option<MetricsObserver>,
}

impl Observe for SpanObserver {
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
