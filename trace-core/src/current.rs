//! The current context: the [`SpanContext`] of the request (or span) being worked on by this
//! thread right now, reachable without passing it through every function.
//!
//! A context is made current while a future is polled ([`in_context`]) or for the length of a
//! guard ([`enter`]); [`current_context`] reads it. The server layers make each request's
//! context current around its handler, the client layers and the `tracing` bridge read it.
//!
//! # Spawned tasks
//!
//! The current context belongs to the future it was attached to. A task started with
//! `tokio::spawn` is polled on its own, outside that future, so it does not see it. Carry it
//! over explicitly:
//!
//! ```
//! use trace_core::current::{current_context, in_context};
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

use crate::SpanContext;

thread_local! {
    static CURRENT: Cell<Option<SpanContext>> = const { Cell::new(None) };
    /// Whether the current context is sampled and has a collector, kept beside it so that the
    /// hot "is anything being recorded?" check reads one flag instead of moving the context.
    static CURRENT_IS_RECORDED: Cell<bool> = const { Cell::new(false) };
}

/// Whether the context current on this thread is recorded (sampled, with a collector). Costs a
/// thread-local read; code that only records when sampled can return early on `false`.
pub fn current_is_recorded() -> bool {
    CURRENT_IS_RECORDED.try_with(Cell::get).unwrap_or(false)
}

/// The context current on this thread, if any.
pub fn current_context() -> Option<SpanContext> {
    with_current(|context| context.cloned())
}

/// Runs `f` with the context current on this thread, without cloning it (for checks on hot
/// paths, such as "is the current trace sampled?"). While `f` runs the context is lent to it:
/// `f` itself must not look for the current context. It is current again once `f` returns, also
/// when `f` panics.
pub fn with_current<R>(f: impl FnOnce(Option<&SpanContext>) -> R) -> R {
    let lent = Lent(CURRENT.try_with(Cell::take).ok().flatten());
    f(lent.0.as_ref())
}

/// The context [`with_current`] took out of the slot, put back when dropped: a panic in the
/// callback that is caught further up the same request must not leave the request without its
/// context.
struct Lent(Option<SpanContext>);

impl Drop for Lent {
    fn drop(&mut self) {
        let context = self.0.take();
        // Fails only while the thread is being torn down, when there is nothing left to trace.
        let _ = CURRENT.try_with(|slot| slot.set(context));
    }
}

/// Makes `context` current until the returned guard is dropped; then the previous one is
/// current again.
pub fn enter(context: SpanContext) -> CurrentGuard {
    let mut slot = Some(context);
    swap_current(&mut slot);
    CurrentGuard { previous: slot }
}

/// Restores the previously current context when dropped. Returned by [`enter`].
#[derive(Debug)]
#[must_use = "the context is current only while the guard lives"]
pub struct CurrentGuard {
    previous: Option<SpanContext>,
}

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        swap_current(&mut self.previous);
    }
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
    /// Makes `context` current while `inner` is polled; with `None`, `inner` is polled as it is
    /// (whatever is current stays current).
    pub fn new(context: Option<SpanContext>, inner: F) -> Self {
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

/// Makes the context held in `slot` current until the returned guard is dropped, lending it rather
/// than cloning it: `slot` holds the previously current context meanwhile, and gets its own back
/// when the guard drops (also on panic). For wrappers polled many times, such as a response body
/// whose frames a handler produces, where [`enter`] would need a clone for every poll. An empty
/// slot makes no context current meanwhile.
///
/// ```
/// use trace_core::current::{current_context, lend};
/// use trace_core::{SpanContext, TraceFlags};
///
/// let context = SpanContext::new_root(TraceFlags::SAMPLED);
/// let mut slot = Some(context.clone());
/// {
///     let _current = lend(&mut slot);
///     assert_eq!(current_context().map(|c| c.span_id()), Some(context.span_id()));
/// }
/// assert_eq!(slot.map(|c| c.span_id()), Some(context.span_id()));
/// assert!(current_context().is_none());
/// ```
pub fn lend(slot: &mut Option<SpanContext>) -> Lending<'_> {
    Lending {
        _entered: Entered::enter(slot),
    }
}

/// The guard [`lend`] returns: gives the context back to its slot when dropped.
#[must_use = "the context is current only while the guard lives"]
pub struct Lending<'a> {
    // Held for its drop, which gives the context back.
    _entered: Entered<'a>,
}

impl std::fmt::Debug for Lending<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lending").finish_non_exhaustive()
    }
}

/// Swaps a context into the thread's slot, and back out when dropped (also on panic), so that
/// nested contexts unwind in order and nothing leaks to the next task on the thread.
struct Entered<'a> {
    slot: &'a mut Option<SpanContext>,
}

impl<'a> Entered<'a> {
    fn enter(slot: &'a mut Option<SpanContext>) -> Self {
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
    let recorded = slot.as_ref().is_some_and(SpanContext::is_recorded);
    // Fails only while the thread is being torn down, when there is nothing left to trace.
    // One swap in place: taking the slot out, replacing and writing back would copy the context
    // three times and check the emptied slot for a drop.
    let _ = CURRENT.try_with(|current| current.swap(Cell::from_mut(slot)));
    let _ = CURRENT_IS_RECORDED.try_with(|flag| flag.set(recorded));
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;
    use crate::TraceFlags;

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
    fn guards_restore_the_previous_context() {
        let outer = SpanContext::new_root(TraceFlags::SAMPLED)
            .with_collector(std::sync::Arc::new(crate::NoopCollector));
        let inner = SpanContext::new_root(TraceFlags::EMPTY);
        let outer_guard = enter(outer.clone());
        {
            let _inner_guard = enter(inner.clone());
            assert_eq!(
                with_current(|c| c.map(SpanContext::span_id)),
                Some(inner.span_id())
            );
            assert!(!with_current(|c| c.is_some_and(SpanContext::is_sampled)));
            assert!(!current_is_recorded());
        }
        assert_eq!(
            current_context().map(|c| c.span_id()),
            Some(outer.span_id())
        );
        drop(outer_guard);
        assert!(current_context().is_none());
    }

    #[test]
    fn a_panic_caught_inside_the_request_leaves_its_context_current() {
        let context = SpanContext::new_root(TraceFlags::SAMPLED);
        let id = context.span_id();
        let mut polls = 0;
        let request = in_context(
            context,
            std::future::poll_fn(move |_| {
                polls += 1;
                if polls == 1 {
                    // A catch-panic layer inside the request future, around code that panicked
                    // while it looked at the current context.
                    let caught = std::panic::catch_unwind(|| {
                        with_current::<()>(|current| {
                            assert_eq!(current.map(SpanContext::span_id), Some(id));
                            panic!("bug in the callback")
                        })
                    });
                    assert!(caught.is_err());
                    return Poll::Pending;
                }
                Poll::Ready(current_context().map(|c| c.span_id()))
            }),
        );
        let mut request = std::pin::pin!(request);
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(request.as_mut().poll(&mut cx), Poll::Pending);
        assert!(current_context().is_none());
        assert_eq!(request.as_mut().poll(&mut cx), Poll::Ready(Some(id)));
        assert!(current_context().is_none());
    }

    #[test]
    fn a_panic_in_with_current_under_a_guard_leaves_the_guards_context() {
        let outer = SpanContext::new_root(TraceFlags::SAMPLED);
        let guard = enter(outer.clone());
        let caught = std::panic::catch_unwind(|| with_current::<()>(|_| panic!("bug")));
        assert!(caught.is_err());
        assert_eq!(
            current_context().map(|c| c.span_id()),
            Some(outer.span_id())
        );
        drop(guard);
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
