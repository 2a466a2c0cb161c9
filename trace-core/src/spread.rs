//! A count that many threads move at once without fighting over one cache line, and a collector
//! handed out the same way.
//!
//! Public for tracewire's own crates (the HTTP layers' in-flight gauge and trace layer use it);
//! not part of trace-core's supported API.
//!
//! One shared `AtomicU64` bumped on every request makes each core take the line from the last
//! core that bumped it: measured on two cores, a propagator extract went from 45 to 78 ns per
//! call when two threads ran it at once, nearly all of it that counter. Spreading the count
//! over a few lines, each thread keeping to its own, leaves the line where it is; reading the
//! total (rare: a scrape, a test) sums them.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use crate::{Collector, Span};

/// Lines the count is spread over. Threads beyond this many share lines, round robin: still a
/// fraction of the contention of one shared line.
const LINES: usize = 8;

/// How many parts a per-thread structure built on [`part_of_this_thread`] needs.
pub const PARTS: usize = LINES;

/// This thread's part, below [`PARTS`]: given out round robin at a thread's first call, and the
/// same for the thread's life. The spread counts and collectors use it, and so can other state
/// kept in [`PARTS`] parts (such as the span exporters' per-thread buffers).
#[inline]
pub fn part_of_this_thread() -> usize {
    line_of_this_thread()
}

/// One part of the count, alone on its cache line (128 bytes: the adjacent-line prefetcher of
/// some processors pulls lines in pairs).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Line(AtomicI64);

/// A count moved from many threads and read rarely: a counter, or a gauge that one thread may
/// raise and another lower (each part may go negative; their sum is the count).
#[derive(Debug, Default)]
pub struct SpreadCount {
    lines: [Line; LINES],
}

impl SpreadCount {
    /// Adds `delta` (negative to subtract), on this thread's part.
    #[inline]
    pub fn add(&self, delta: i64) {
        self.lines[line_of_this_thread()]
            .0
            .fetch_add(delta, Ordering::Relaxed);
    }

    /// Adds one.
    #[inline]
    pub fn increment(&self) {
        self.add(1);
    }

    /// The count: the sum of the parts, read one after another. While threads move it, the
    /// parts are read at slightly different moments, so a count raised on one thread and
    /// lowered on another can briefly read one below (or above) any value it really had.
    pub fn get(&self) -> i64 {
        self.lines
            .iter()
            .map(|line| line.0.load(Ordering::Relaxed))
            .fold(0, i64::wrapping_add)
    }

    /// [`get`](Self::get) for a count that only grows.
    pub fn total(&self) -> u64 {
        u64::try_from(self.get()).unwrap_or(0)
    }
}

/// A collector handed to spans through one of a few replicas, each with a reference count of
/// its own, so that threads starting spans at once do not all bump the same count.
///
/// Every sampled span's context holds the collector, and is cloned a few times per request
/// (into the request's extensions, the recorder, the current-task context): with one
/// `Arc<dyn Collector>` shared by every worker thread, each clone and drop takes its count's
/// cache line from the core that moved it last. Each replica forwards to the shared collector.
#[derive(Debug, Clone)]
pub struct SpreadCollector {
    shared: Arc<dyn Collector>,
    replicas: [Arc<dyn Collector>; LINES],
}

/// One replica: its own allocation, alone on its cache line (so is its reference count).
#[derive(Debug)]
#[repr(align(128))]
struct Replica(Arc<dyn Collector>);

impl Collector for Replica {
    #[inline]
    fn collect(&self, span: Span) {
        self.0.collect(span);
    }
}

impl SpreadCollector {
    /// Replicas of `collector`.
    pub fn new(collector: Arc<dyn Collector>) -> Self {
        let replicas =
            std::array::from_fn(|_| Arc::new(Replica(collector.clone())) as Arc<dyn Collector>);
        Self {
            shared: collector,
            replicas,
        }
    }

    /// The replica for spans this thread starts.
    #[inline]
    pub fn for_this_thread(&self) -> &Arc<dyn Collector> {
        &self.replicas[line_of_this_thread()]
    }

    /// The collector the replicas forward to.
    pub fn shared(&self) -> &Arc<dyn Collector> {
        &self.shared
    }
}

/// The line this thread counts on: given out round robin at the thread's first count.
#[inline]
fn line_of_this_thread() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static LINE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    LINE.with(|line| {
        let mut index = line.get();
        if index == usize::MAX {
            index = NEXT.fetch_add(1, Ordering::Relaxed) % LINES;
            line.set(index);
        }
        index
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn counts_every_increment_from_every_thread() {
        let counter = Arc::new(SpreadCount::default());
        let threads: Vec<_> = (0..LINES as u64 + 3)
            .map(|_| {
                let counter = counter.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        counter.increment();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("counting thread");
        }
        assert_eq!(counter.total(), (LINES as u64 + 3) * 10_000);
    }

    #[test]
    fn a_count_raised_on_one_thread_and_lowered_on_another_sums_to_zero() {
        let gauge = Arc::new(SpreadCount::default());
        for _ in 0..100 {
            gauge.add(1);
        }
        let lowering = gauge.clone();
        std::thread::spawn(move || {
            for _ in 0..100 {
                lowering.add(-1);
            }
        })
        .join()
        .expect("lowering thread");
        assert_eq!(gauge.get(), 0);
        gauge.add(-3);
        assert_eq!(gauge.get(), -3);
        assert_eq!(gauge.total(), 0, "a count that went below zero is no total");
    }

    #[test]
    fn every_replica_reaches_the_shared_collector() {
        let collector = Arc::new(crate::InMemoryCollector::new(100));
        let spread = SpreadCollector::new(collector.clone());
        let span = |n: u64| {
            let context = crate::SpanContext::new(
                crate::TraceId::random(),
                crate::SpanId::from_u64(n).expect("non-zero"),
                crate::TraceFlags::SAMPLED,
            );
            crate::SpanRecorder::start(
                context.with_collector(spread.for_this_thread().clone()),
                "work",
                crate::SpanKind::Internal,
            )
        };
        span(1).end();
        let spread_elsewhere = spread.clone();
        std::thread::spawn(move || {
            let context = crate::SpanContext::new(
                crate::TraceId::random(),
                crate::SpanId::from_u64(2).expect("non-zero"),
                crate::TraceFlags::SAMPLED,
            );
            crate::SpanRecorder::start(
                context.with_collector(spread_elsewhere.for_this_thread().clone()),
                "work",
                crate::SpanKind::Internal,
            )
            .end();
        })
        .join()
        .expect("other thread");
        for n in 3..=LINES as u64 + 3 {
            span(n).end();
        }
        assert_eq!(collector.len(), LINES + 3);
        assert!(Arc::ptr_eq(
            spread.shared(),
            &(collector as Arc<dyn Collector>)
        ));
        for replica in &spread.replicas {
            assert_eq!(
                (Arc::as_ptr(replica) as *const u8 as usize) % 128,
                0,
                "each replica on a line of its own"
            );
        }
    }

    #[test]
    fn each_part_has_a_line_of_its_own() {
        assert_eq!(std::mem::align_of::<Line>(), 128);
        assert_eq!(std::mem::size_of::<SpreadCount>(), LINES * 128);
    }
}
