//! The response-body wrapper that tells a layer when the response has really ended.
//!
//! A request is not over when the handler returns its response head: the body may still stream
//! (SSE, chunked downloads) or fail, and the client may go away before it ends. [`ResponseBody`]
//! wraps the body and reports to an observer — the trace layer's span, the metrics layer's
//! timer — when the last frame is sent, when the body fails, or when it is dropped early. Both
//! layers use this one wrapper with their own observer.

use std::fmt::Display;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// The observer protocol. Public only so that `trace-grpc` (which classifies responses by
/// their gRPC status) can observe bodies with this wrapper too; not a stable API.
#[doc(hidden)]
pub mod private {
    use std::fmt::Display;

    use http::HeaderMap;

    #[allow(missing_debug_implementations)]
    /// How a body's life ended.
    pub enum BodyEnd<'a> {
        /// The last frame was sent.
        Complete,
        /// The body produced an error.
        Error(&'a dyn Display),
        /// The body was dropped before its end (the client went away, or the server shut the
        /// connection).
        Dropped,
    }

    /// The methods of [`BodyObserver`](super::BodyObserver), kept out of the documented API so
    /// that only this crate's layers (and `trace-grpc`'s) observe bodies.
    pub trait Observe: Send + 'static {
        /// The first non-empty data frame is being sent and the body goes on after it. (A body
        /// sent whole in its first frame ends at once: its first byte is its end, and nothing
        /// is worth recording twice.)
        fn on_first_byte(&mut self);
        /// A data frame is being sent (before `on_first_byte` for the first non-empty one). For
        /// observers that read the payload, such as gRPC message counts; ignored by default.
        fn on_data(&mut self, _data: &dyn bytes::Buf) {}
        /// A trailers frame is being sent.
        fn on_trailers(&mut self, trailers: &HeaderMap);
        /// The body's life is over; `bytes` of data were sent.
        fn on_end(self, end: BodyEnd<'_>, bytes: u64);
    }
}

use private::{BodyEnd, Observe};

/// Something a [`ResponseBody`] reports its end to. Implemented by this crate's layers (and
/// `trace-grpc`'s) only.
pub trait BodyObserver: Observe {}

impl<T: Observe> BodyObserver for T {}

pin_project! {
    /// A response body that reports to its layer when it ends: after the last frame, on an
    /// error, or when dropped early. Frames pass through unchanged.
    pub struct ResponseBody<B, O>
    where
        O: BodyObserver,
    {
        #[pin]
        inner: B,
        observer: Option<O>,
        bytes: u64,
        // The length the response's `Content-Length` announced, for a body that does not know
        // its own size; `NO_LENGTH` otherwise.
        announced: u64,
    }

    impl<B, O> PinnedDrop for ResponseBody<B, O>
    where
        O: BodyObserver,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(observer) = this.observer.take() {
                // hyper stops reading a body once it has sent the length `Content-Length`
                // announced, and drops it without waiting for its end: that body is complete.
                let end = if *this.announced == *this.bytes {
                    BodyEnd::Complete
                } else {
                    BodyEnd::Dropped
                };
                observer.on_end(end, *this.bytes);
            }
        }
    }
}

impl<B, O: BodyObserver> ResponseBody<B, O> {
    /// Wraps `inner`; with no observer the wrapper only forwards frames. Public for `trace-grpc`;
    /// not a stable API.
    #[doc(hidden)]
    pub fn new(inner: B, observer: Option<O>) -> Self
    where
        B: Body,
    {
        Self::announced(inner, observer, NO_LENGTH)
    }

    /// Wraps the body of a response with these `headers`: a body that does not know its own size
    /// and is dropped once it has sent the `Content-Length` they announce ended complete.
    pub(crate) fn of_response(inner: B, observer: Option<O>, headers: &HeaderMap) -> Self
    where
        B: Body,
    {
        // Only asked when it can matter: a body that knows its size ends by itself when sent.
        let announced = if observer.is_some() && inner.size_hint().exact().is_none() {
            crate::metrics::content_length(headers).unwrap_or(NO_LENGTH)
        } else {
            NO_LENGTH
        };
        Self::announced(inner, observer, announced)
    }

    fn announced(inner: B, observer: Option<O>, announced: u64) -> Self
    where
        B: Body,
    {
        // An empty body may never be polled (hyper sees `is_end_stream` and drops it): its
        // response is complete as soon as the head is.
        let observer = match observer {
            Some(observer) if inner.is_end_stream() => {
                observer.on_end(BodyEnd::Complete, 0);
                None
            }
            observer => observer,
        };
        Self {
            inner,
            observer,
            bytes: 0,
            announced,
        }
    }

    /// The wrapped body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B, O> Body for ResponseBody<B, O>
where
    B: Body,
    B::Error: Display,
    O: BodyObserver,
{
    type Data = B::Data;
    type Error = B::Error;

    // Inlined where it can be: out of line, each frame is returned through memory.
    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let result = ready!(this.inner.as_mut().poll_frame(cx));
        let Some(observer) = this.observer.as_mut() else {
            return Poll::Ready(result);
        };
        match &result {
            Some(Ok(frame)) => {
                let mut first_bytes = false;
                if let Some(data) = frame.data_ref() {
                    let len = bytes::Buf::remaining(data) as u64;
                    first_bytes = *this.bytes == 0 && len > 0;
                    *this.bytes += len;
                    observer.on_data(data);
                } else if let Some(trailers) = frame.trailers_ref() {
                    observer.on_trailers(trailers);
                }
                if this.inner.is_end_stream() {
                    finish(this.observer, BodyEnd::Complete, *this.bytes);
                } else if first_bytes {
                    observer.on_first_byte();
                }
            }
            Some(Err(error)) => finish(this.observer, BodyEnd::Error(error), *this.bytes),
            None => finish(this.observer, BodyEnd::Complete, *this.bytes),
        }
        Poll::Ready(result)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// No `Content-Length` to go by: no body sends this many bytes.
const NO_LENGTH: u64 = u64::MAX;

fn finish<O: BodyObserver>(observer: &mut Option<O>, end: BodyEnd<'_>, bytes: u64) {
    if let Some(observer) = observer.take() {
        observer.on_end(end, bytes);
    }
}
