//! Reaching the current request's [`SpanContext`] without passing it through every function.
//!
//! The server layer puts the context in the request extensions (read it there, or with the
//! [`RequestContext`] extractor under the `axum` feature) and also makes it *current* while the
//! handler's future is being polled: [`current_context`] returns it from anywhere in that call
//! tree, and the client layer uses it as the parent of outgoing calls.
//!
//! # Spawned tasks
//!
//! The current context belongs to the future the layer wraps. A task started with
//! `tokio::spawn` is polled on its own, outside that future, so it does not see it. Carry it over
//! explicitly:
//!
//! ```
//! use trace_http::context::{current_context, in_context};
//!
//! async fn handler() {
//!     if let Some(context) = current_context() {
//!         let work = async { /* current_context() is Some(..) in here too */ };
//!         // tokio::spawn(in_context(context, work));
//!         # drop(in_context(context, work));
//!     }
//! }
//! ```

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use trace_core::SpanContext;

thread_local! {
    static CURRENT: Cell<Option<SpanContext>> = const { Cell::new(None) };
}

/// The context of the request whose handler is running on this thread, if any.
pub fn current_context() -> Option<SpanContext> {
    CURRENT
        .try_with(|current| {
            let context = current.take();
            let copy = context.clone();
            current.set(context);
            copy
        })
        .ok()
        .flatten()
}

/// Makes `context` current while `future` is polled.
pub fn in_context<F: Future>(context: SpanContext, future: F) -> WithContext<F> {
    WithContext::new(Some(context), future)
}

pin_project! {
    /// A future that makes a [`SpanContext`] current while it is polled.
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct WithContext<F> {
        #[pin]
        inner: F,
        context: Option<SpanContext>,
    }
}

impl<F> WithContext<F> {
    /// With no context, the future is polled as it is (whatever is current stays current).
    pub(crate) fn new(context: Option<SpanContext>, inner: F) -> Self {
        Self { inner, context }
    }
}

impl<F: Future> Future for WithContext<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if this.context.is_none() {
            return this.inner.poll(cx);
        }
        let _current = Entered::enter(this.context);
        this.inner.poll(cx)
    }
}

/// Swaps a context into the thread's slot, and back out when dropped (also on panic), so that
/// nested contexts unwind in order and nothing leaks to the next task on the thread.
pub(crate) struct Entered<'a> {
    slot: &'a mut Option<SpanContext>,
}

impl<'a> Entered<'a> {
    pub(crate) fn enter(slot: &'a mut Option<SpanContext>) -> Self {
        swap_current(slot);
        Self { slot }
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        swap_current(self.slot);
    }
}

fn swap_current(slot: &mut Option<SpanContext>) {
    // Fails only while the thread is being torn down, when there is nothing left to trace.
    let _ = CURRENT.try_with(|current| *slot = current.replace(slot.take()));
}

#[cfg(feature = "axum")]
mod extractor {
    use axum::extract::{FromRequestParts, OptionalFromRequestParts};
    use axum::response::{IntoResponse, Response};
    use http::StatusCode;
    use http::request::Parts;
    use trace_core::SpanContext;

    /// Extracts the request's [`SpanContext`] in an axum handler.
    ///
    /// ```
    /// use trace_http::context::RequestContext;
    ///
    /// async fn get_user(RequestContext(context): RequestContext) -> &'static str {
    ///     let mut query = context.child("load user");
    ///     query.set_attribute("db.system", "postgresql");
    ///     "alice"
    /// }
    /// ```
    ///
    /// Use `Option<RequestContext>` where the handler may run without the trace layer.
    #[derive(Debug, Clone)]
    pub struct RequestContext(pub SpanContext);

    /// The rejection when a handler asks for [`RequestContext`] on a route without the trace
    /// layer: a configuration mistake, answered with a 500 that says so.
    #[derive(Debug, Clone, Copy, thiserror::Error)]
    #[error("no span context in the request: is TraceLayer installed on this route?")]
    pub struct MissingRequestContext;

    impl IntoResponse for MissingRequestContext {
        fn into_response(self) -> Response {
            (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
        }
    }

    impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
        type Rejection = MissingRequestContext;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Self, Self::Rejection> {
            parts
                .extensions
                .get::<SpanContext>()
                .cloned()
                .map(Self)
                .ok_or(MissingRequestContext)
        }
    }

    impl<S: Send + Sync> OptionalFromRequestParts<S> for RequestContext {
        type Rejection = std::convert::Infallible;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Option<Self>, Self::Rejection> {
            Ok(parts.extensions.get::<SpanContext>().cloned().map(Self))
        }
    }
}

#[cfg(feature = "axum")]
pub use extractor::{MissingRequestContext, RequestContext};

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use trace_core::TraceFlags;

    use super::*;

    fn poll_once<F: Future>(future: F) -> Poll<F::Output> {
        let mut future = std::pin::pin!(future);
        future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn the_context_is_current_only_while_polled_and_nests() {
        let outer = SpanContext::new_root(TraceFlags::SAMPLED);
        let inner = SpanContext::new_root(TraceFlags::SAMPLED);
        let (outer_id, inner_id) = (outer.span_id(), inner.span_id());
        let seen = poll_once(in_context(outer, async move {
            let before = current_context().map(|c| c.span_id());
            let nested = in_context(inner, async { current_context().map(|c| c.span_id()) }).await;
            let after = current_context().map(|c| c.span_id());
            (before, nested, after)
        }));
        assert_eq!(
            seen,
            Poll::Ready((Some(outer_id), Some(inner_id), Some(outer_id)))
        );
        assert!(current_context().is_none());
    }

    #[test]
    fn a_panicking_future_leaves_no_context_behind() {
        let context = SpanContext::new_root(TraceFlags::SAMPLED);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            poll_once(in_context(context, async { panic!("handler bug") }))
        }));
        assert!(result.is_err());
        assert!(current_context().is_none());
    }
}
