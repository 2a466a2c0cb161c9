//! Where finished spans go.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::{Span, TraceId};

/// Receives finished spans.
///
/// `collect` is called on the request path (when a response body ends), so it must not block:
/// implementations hand the span on (to a bounded queue, a ring) and return.
pub trait Collector: Send + Sync + fmt::Debug + 'static {
    /// Takes one finished span.
    fn collect(&self, span: Span);
}

/// Discards every span.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopCollector;

impl Collector for NoopCollector {
    #[inline]
    fn collect(&self, _span: Span) {}
}

/// Keeps the most recent spans in memory, bounded by count and by bytes, and answers queries by
/// trace id. For tests and the embedded trace viewer.
///
/// When a new span would pass either bound, the oldest spans are evicted (and counted).
///
/// ```
/// use std::sync::Arc;
/// use trace_core::{InMemoryCollector, SpanContext, TraceFlags};
///
/// let collector = Arc::new(InMemoryCollector::new(2));
/// let context = SpanContext::new_root(TraceFlags::SAMPLED).with_collector(collector.clone());
/// for name in ["a", "b", "c"] {
///     drop(context.child(name));
/// }
/// let names: Vec<_> = collector.spans().into_iter().map(|s| s.name).collect();
/// assert_eq!(names, ["b", "c"]);
/// assert_eq!(collector.evicted(), 1);
/// ```
pub struct InMemoryCollector {
    max_spans: usize,
    max_bytes: usize,
    store: Mutex<Store>,
    evicted: AtomicU64,
}

#[derive(Default)]
struct Store {
    spans: VecDeque<(Span, usize)>,
    bytes: usize,
}

impl InMemoryCollector {
    /// Default byte bound: 64 MiB of span data.
    pub const DEFAULT_MAX_BYTES: usize = 64 << 20;

    /// Keeps at most `max_spans` spans (and at most [`Self::DEFAULT_MAX_BYTES`] of them).
    pub fn new(max_spans: usize) -> Self {
        Self::with_limits(max_spans, Self::DEFAULT_MAX_BYTES)
    }

    /// Keeps at most `max_spans` spans holding at most about `max_bytes` in all.
    pub fn with_limits(max_spans: usize, max_bytes: usize) -> Self {
        Self {
            max_spans,
            max_bytes,
            store: Mutex::new(Store::default()),
            evicted: AtomicU64::new(0),
        }
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave the ring inconsistent: every update is a
        // push or pop plus a byte count, so the data is still usable.
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every stored span, oldest first.
    pub fn spans(&self) -> Vec<Span> {
        self.store().spans.iter().map(|(s, _)| s.clone()).collect()
    }

    /// The stored spans of one trace, in the order they ended.
    pub fn spans_of_trace(&self, trace_id: TraceId) -> Vec<Span> {
        self.store()
            .spans
            .iter()
            .filter(|(s, _)| s.trace_id == trace_id)
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// The ids of stored traces, the one with the most recently ended span first.
    pub fn trace_ids(&self) -> Vec<TraceId> {
        let store = self.store();
        let mut ids: Vec<TraceId> = Vec::new();
        for (span, _) in store.spans.iter().rev() {
            if !ids.contains(&span.trace_id) {
                ids.push(span.trace_id);
            }
        }
        ids
    }

    /// Number of stored spans.
    pub fn len(&self) -> usize {
        self.store().spans.len()
    }

    /// Whether no span is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate bytes held by stored spans.
    pub fn bytes(&self) -> usize {
        self.store().bytes
    }

    /// Spans evicted (or refused for being larger than the whole bound) since creation.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Removes every stored span.
    pub fn clear(&self) {
        let mut store = self.store();
        store.spans.clear();
        store.bytes = 0;
    }
}

impl Collector for InMemoryCollector {
    fn collect(&self, span: Span) {
        let size = std::mem::size_of::<Span>() + span.approx_heap_size();
        if size > self.max_bytes || self.max_spans == 0 {
            self.evicted.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut evicted = 0;
        let mut store = self.store();
        while store.spans.len() >= self.max_spans || store.bytes + size > self.max_bytes {
            match store.spans.pop_front() {
                Some((_, old)) => {
                    store.bytes -= old;
                    evicted += 1;
                }
                None => break,
            }
        }
        store.bytes += size;
        store.spans.push_back((span, size));
        drop(store);
        if evicted > 0 {
            self.evicted.fetch_add(evicted, Ordering::Relaxed);
        }
    }
}

impl fmt::Debug for InMemoryCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryCollector")
            .field("max_spans", &self.max_spans)
            .field("max_bytes", &self.max_bytes)
            .field("len", &self.len())
            .field("evicted", &self.evicted())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{SpanContext, TraceFlags};

    #[test]
    fn queries_by_trace() {
        let collector = Arc::new(InMemoryCollector::new(10));
        let a = SpanContext::new_root(TraceFlags::SAMPLED).with_collector(collector.clone());
        let b = SpanContext::new_root(TraceFlags::SAMPLED).with_collector(collector.clone());
        drop(a.child("a1"));
        drop(b.child("b1"));
        drop(a.child("a2"));
        assert_eq!(collector.spans_of_trace(a.trace_id()).len(), 2);
        assert_eq!(collector.spans_of_trace(b.trace_id()).len(), 1);
        assert_eq!(collector.trace_ids(), vec![a.trace_id(), b.trace_id()]);
        collector.clear();
        assert!(collector.is_empty());
        assert_eq!(collector.bytes(), 0);
    }

    #[test]
    fn bounded_by_bytes() {
        let collector = Arc::new(InMemoryCollector::with_limits(1000, 2048));
        let context = SpanContext::new_root(TraceFlags::SAMPLED).with_collector(collector.clone());
        for _ in 0..100 {
            let mut span = context.child("s");
            span.set_attribute("big", "x".repeat(300));
        }
        assert!(collector.bytes() <= 2048);
        assert!(collector.len() < 10);
        assert_eq!(collector.evicted() as usize + collector.len(), 100);
        let mut huge = context.child("huge");
        huge.set_attribute("big", "x".repeat(4096));
        drop(huge);
        assert_eq!(collector.evicted() as usize + collector.len(), 101);
    }
}
