//! The bounded span queue between the request path and the export task.
//!
//! A ring buffer (`crossbeam_queue::ArrayQueue`) of `max_queue_size` slots cycles through all of
//! them whatever it holds: at the default 2,048 slots of a couple of hundred bytes each, every
//! push writes a slot last touched thousands of requests ago, a cache miss per span. This queue
//! is made of small blocks that are allocated as it grows and freed as the export task empties
//! them, so the memory a push writes was freed recently and is still in cache; its bound is a
//! count kept beside it.

use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_queue::SegQueue;
use trace_core::Span;

/// A lock-free multi-producer queue of spans holding at most `capacity`.
pub(crate) struct SpanQueue {
    spans: SegQueue<Span>,
    /// Places taken: spans in `spans`, plus pushes that have reserved a place and are about to
    /// put their span in. Reserved before the push, so producers racing for the last place
    /// cannot both get it.
    taken: AtomicUsize,
    capacity: usize,
}

impl SpanQueue {
    /// An empty queue for at most `capacity` spans.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            spans: SegQueue::new(),
            taken: AtomicUsize::new(0),
            capacity,
        }
    }

    /// Adds `span`, or hands it back when the queue is full.
    #[inline]
    #[expect(
        clippy::result_large_err,
        reason = "the refused span comes back by value, for the caller to count and drop; boxing it would allocate on the refusal path"
    )]
    pub(crate) fn push(&self, span: Span) -> Result<(), Span> {
        // A full queue answers with a load alone, so a burst of drops does not hammer the count.
        if self.taken.load(Ordering::Relaxed) >= self.capacity {
            return Err(span);
        }
        if self.taken.fetch_add(1, Ordering::Relaxed) >= self.capacity {
            // Lost the race for the last place: give the reservation back.
            self.taken.fetch_sub(1, Ordering::Relaxed);
            return Err(span);
        }
        self.spans.push(span);
        Ok(())
    }

    /// Takes the oldest span.
    #[inline]
    pub(crate) fn pop(&self) -> Option<Span> {
        let span = self.spans.pop()?;
        self.taken.fetch_sub(1, Ordering::Relaxed);
        Some(span)
    }

    /// Spans queued (or about to be). Producers that lost the race for the last place count
    /// for an instant beyond `capacity`; this never reports more than it.
    pub(crate) fn len(&self) -> usize {
        self.taken.load(Ordering::Relaxed).min(self.capacity)
    }

    /// Whether no span is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use trace_core::{SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};

    use super::*;

    fn span(n: u64) -> Span {
        Span {
            name: "GET".into(),
            kind: SpanKind::Server,
            trace_id: TraceId::from_u128(1).expect("non-zero"),
            span_id: SpanId::from_u64(n + 1).expect("non-zero"),
            parent_span_id: None,
            flags: TraceFlags::SAMPLED,
            trace_state: TraceState::default(),
            debug_id: None,
            start_time: SystemTime::UNIX_EPOCH,
            duration: Duration::ZERO,
            status: Status::Unset,
            attributes: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
        }
    }

    fn id(span: &Span) -> u64 {
        span.span_id.to_u64() - 1
    }

    #[test]
    fn holds_up_to_its_capacity_in_order() {
        let queue = SpanQueue::new(3);
        assert!(queue.is_empty());
        for n in 0..3 {
            assert!(queue.push(span(n)).is_ok(), "span {n}");
        }
        let refused = queue.push(span(3)).expect_err("full");
        assert_eq!(id(&refused), 3, "the refused span is handed back");
        assert_eq!(queue.len(), 3);
        assert_eq!(queue.pop().as_ref().map(id), Some(0));
        assert!(queue.push(span(4)).is_ok(), "a place is free again");
        let order: Vec<u64> = std::iter::from_fn(|| queue.pop()).map(|s| id(&s)).collect();
        assert_eq!(order, [1, 2, 4]);
        assert!(queue.is_empty());
        assert!(queue.pop().is_none());
    }

    #[test]
    fn spans_many_blocks() {
        let queue = SpanQueue::new(1_000);
        for n in 0..1_000 {
            assert!(queue.push(span(n)).is_ok(), "span {n}");
        }
        assert!(queue.push(span(1_000)).is_err());
        let popped: Vec<u64> = std::iter::from_fn(|| queue.pop()).map(|s| id(&s)).collect();
        assert_eq!(popped, (0..1_000).collect::<Vec<_>>());
    }

    #[test]
    fn racing_producers_never_overfill_it_and_every_span_is_accounted_for() {
        const PRODUCERS: u64 = 4;
        const EACH: u64 = 2_000;
        let queue = Arc::new(SpanQueue::new(1_000));
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|producer| {
                let queue = queue.clone();
                std::thread::spawn(move || {
                    let mut refused = 0u64;
                    for n in 0..EACH {
                        if queue.push(span(producer * EACH + n)).is_err() {
                            refused += 1;
                        }
                        assert!(queue.len() <= 1_000);
                    }
                    refused
                })
            })
            .collect();
        // A consumer taking spans meanwhile, so places free up while producers race for them.
        let mut taken = 0u64;
        let mut refused = 0u64;
        let mut pending = producers;
        while !pending.is_empty() {
            while queue.pop().is_some() {
                taken += 1;
            }
            let (finished, running): (Vec<_>, Vec<_>) =
                pending.into_iter().partition(|p| p.is_finished());
            for producer in finished {
                refused += producer.join().expect("producer");
            }
            pending = running;
        }
        taken += std::iter::from_fn(|| queue.pop()).count() as u64;
        assert_eq!(taken + refused, PRODUCERS * EACH);
        assert!(queue.is_empty());
    }
}
