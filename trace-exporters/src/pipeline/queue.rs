//! Where collected spans wait for the export task: as spans, or already encoded.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use crossbeam_utils::atomic::AtomicCell;
use trace_core::Span;
use trace_core::spread::PARTS;

use crate::export::{EncodedChunk, EncodedSpans, SpanEncodeFn};

/// Spans a thread encodes into its chunk before handing the chunk to the export task (fewer
/// when the batch size is smaller). Large enough that the hand-off (the chunk swapped for a
/// spare one, pushed on the ready list) is a small part of a span's cost, small enough that a
/// chunk stays in the core's cache.
const CHUNK_SPANS: usize = 32;

/// A chunk this large is handed over whatever its span count, so a run of huge spans does not
/// build one huge buffer.
const CHUNK_HANDOFF_BYTES: usize = 64 * 1024;

/// The capacity a new chunk buffer starts with: about 32 typical spans.
const CHUNK_CAPACITY: usize = 16 * 1024;

/// Emptied chunks kept for reuse beyond this many are freed, as are chunks that grew past
/// [`CHUNK_HANDOFF_BYTES`] twice over.
const MAX_SPARE_BUFFERS: usize = 2 * PARTS + 16;

/// The spans waiting for the export task.
// One per exporter, inside its shared state: the parts' padding costs a kilobyte once, and
// boxing them would add a pointer to follow on every span.
#[allow(clippy::large_enum_variant)]
pub(crate) enum SpanQueue {
    /// Spans as they were collected, for exporters that encode whole batches.
    Spans(ArrayQueue<Span>),
    /// Spans encoded on the threads that ended them (see [`EncodedQueue`]).
    Encoded(EncodedQueue),
}

/// A batch being exported: spans, or encoded spans, whichever the queue holds.
#[derive(Debug)]
pub(crate) enum Batch {
    Spans(Vec<Span>),
    Encoded(EncodedSpans),
}

impl Batch {
    /// How many spans the batch holds.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Spans(spans) => spans.len(),
            Self::Encoded(encoded) => encoded.spans(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl SpanQueue {
    /// A queue for `max_queue_size` spans, encoding them with `encode` if given.
    pub(crate) fn new(
        max_queue_size: usize,
        max_batch_size: usize,
        encode: Option<SpanEncodeFn>,
    ) -> Self {
        match encode {
            None => Self::Spans(ArrayQueue::new(max_queue_size)),
            Some(encode) => Self::Encoded(EncodedQueue::new(
                encode,
                max_queue_size,
                CHUNK_SPANS.min(max_batch_size).max(1),
            )),
        }
    }

    /// An empty batch of the kind this queue fills, with room for `max_batch_size` spans.
    pub(crate) fn empty_batch(&self, max_batch_size: usize) -> Batch {
        match self {
            Self::Spans(_) => Batch::Spans(Vec::with_capacity(max_batch_size)),
            Self::Encoded(_) => Batch::Encoded(EncodedSpans::new()),
        }
    }

    /// Queues `span`, collected on a thread of `part` (see [`trace_core::spread`]). `Ok` holds
    /// the number of spans ready for the export task when that number just grew (zero when the
    /// span only joined its part's chunk); `Err` the number of spans dropped because the queue
    /// was full.
    #[inline]
    pub(crate) fn push(&self, part: usize, span: Span) -> Result<usize, u64> {
        match self {
            Self::Spans(queue) => match queue.push(span) {
                Ok(()) => Ok(queue.len()),
                Err(span) => {
                    drop(span);
                    Err(1)
                }
            },
            Self::Encoded(queue) => queue.push(part, span),
        }
    }

    /// Every span waiting: those ready for the export task and, when encoded, those still in the
    /// threads' chunks.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Spans(queue) => queue.len(),
            Self::Encoded(queue) => queue.len(),
        }
    }

    /// Spans ready for the export task: all of them in a span queue; the chunks handed over
    /// (or [gathered](Self::gather_partial)) in an encoded one. An exact count.
    pub(crate) fn ready_len(&self) -> usize {
        match self {
            Self::Spans(queue) => queue.len(),
            Self::Encoded(queue) => queue.ready_len(),
        }
    }

    /// The ready spans worth waking the export task for: `max_batch_size`, or for encoded spans
    /// the most whole chunks that fit both a batch and the queue limit (with chunks of 32, a
    /// limit of 100 holds at most 96 ready spans, and a batch of at most 50 spans holds one
    /// chunk), and fewer once the next whole chunk would not fit the queue. Ready chunks are not
    /// all whole (a thread hands over a partly filled chunk it displaced, a timer tick gathers
    /// partly filled ones), so whole chunks alone may never add up to a full batch: waking
    /// before the queue refuses a chunk keeps the task from sleeping while chunks are dropped.
    pub(crate) fn full_batch(&self, max_batch_size: usize, max_queue_size: usize) -> usize {
        match self {
            Self::Spans(_) => max_batch_size,
            Self::Encoded(queue) => {
                let chunk = queue.chunk_spans;
                let whole_chunks = (max_batch_size.min(max_queue_size) / chunk * chunk).max(chunk);
                let before_refusal = max_queue_size.saturating_sub(chunk).saturating_add(1);
                whole_chunks.min(before_refusal)
            }
        }
    }

    /// Makes the threads' partly filled chunks of encoded spans ready (a timer tick, a flush, a
    /// shutdown), so that [`ready_len`](Self::ready_len) counts every span waiting.
    pub(crate) fn gather_partial(&self) {
        if let Self::Encoded(queue) = self {
            queue.gather_partial();
        }
    }

    /// Moves ready spans into `batch` until it holds at least `wanted` spans (never more than
    /// `max_batch_size`) or none is ready.
    pub(crate) fn fill(&self, batch: &mut Batch, wanted: usize, max_batch_size: usize) {
        match (self, batch) {
            (Self::Spans(queue), Batch::Spans(spans)) => {
                // Straight from the queue's slots into the batch (whose capacity is kept between
                // batches): a pop-then-push loop moved each span twice more on its way.
                let wanted = wanted.min(max_batch_size).saturating_sub(spans.len());
                spans.extend(std::iter::from_fn(|| queue.pop()).take(wanted));
            }
            (Self::Encoded(queue), Batch::Encoded(encoded)) => {
                queue.fill(encoded, wanted, max_batch_size);
            }
            // The worker's batch comes from `empty_batch` of this same queue.
            (Self::Spans(_), Batch::Encoded(_)) | (Self::Encoded(_), Batch::Spans(_)) => {}
        }
    }

    /// Empties `batch` after its export, keeping its buffers for reuse.
    pub(crate) fn recycle(&self, batch: &mut Batch) {
        match (self, batch) {
            (Self::Encoded(queue), Batch::Encoded(encoded)) => {
                for chunk in encoded.drain_chunks() {
                    queue.recycle(chunk);
                }
            }
            (_, Batch::Spans(spans)) => spans.clear(),
            (Self::Spans(_), Batch::Encoded(encoded)) => encoded.drain_chunks().for_each(drop),
        }
    }

    /// Empties the queue; how many spans it held.
    pub(crate) fn drain(&self) -> u64 {
        match self {
            Self::Spans(queue) => std::iter::from_fn(|| queue.pop()).count() as u64,
            Self::Encoded(queue) => queue.drain(),
        }
    }
}

/// Spans encoded on the threads that end them.
///
/// Each thread encodes into the chunk of its [part](trace_core::spread): it takes the chunk out
/// of the part's slot (one atomic swap), appends the span, and puts the chunk back (another), or,
/// when the chunk holds [`CHUNK_SPANS`] spans, hands it to the export task's ready list. No lock
/// is taken: a thread that finds the slot empty (a thread sharing the part holds the chunk, or
/// the export task took it) starts a chunk of its own, and a thread that finds the slot filled
/// again when putting its chunk back hands the other chunk over, partly filled. The span is
/// freed where it was made, while its memory is still in that core's cache, rather than on the
/// export task's thread; the export task only copies bytes.
///
/// The queue limit applies to the chunks handed over: a chunk that would take the ready spans
/// past `max_queue_size` is dropped whole and counted. The chunks still being filled hold at most
/// `PARTS` × ([`CHUNK_SPANS`] − 1) spans more, and each collect in progress one chunk of its own
/// at most.
pub(crate) struct EncodedQueue {
    encode: SpanEncodeFn,
    parts: [Part; PARTS],
    /// Chunks handed over, oldest first. Bounded in chunks as well as (by `ready_spans`) in
    /// spans, so that handing over never allocates; a chunk holds at least one span, so the
    /// chunk bound never refuses a chunk the span bound admits.
    ready: ArrayQueue<Box<EncodedChunk>>,
    /// Spans in `ready` and in `held_over`.
    ready_spans: AtomicUsize,
    /// Chunks gathered from the parts, a chunk taken that did not fit the export task's batch
    /// (first in the next one), and a chunk an encoder's panic left behind. Only the export task
    /// takes this lock, but for a drain and that panic.
    held_over: Mutex<VecDeque<Box<EncodedChunk>>>,
    /// Emptied chunks, for reuse.
    spare: ArrayQueue<Box<EncodedChunk>>,
    max_queue_size: usize,
    chunk_spans: usize,
}

/// One part's chunk, alone on its cache line pair.
#[repr(align(128))]
struct Part {
    slot: AtomicCell<Option<Box<EncodedChunk>>>,
    /// Spans in the slot's chunk as last put back, for [`EncodedQueue::len`]: a moment's figure
    /// for the queue-length gauge, not a count anything depends on (threads sharing a part may
    /// store theirs in either order; the export task gathers the chunks themselves).
    spans: AtomicUsize,
}

impl EncodedQueue {
    fn new(encode: SpanEncodeFn, max_queue_size: usize, chunk_spans: usize) -> Self {
        Self {
            encode,
            parts: std::array::from_fn(|_| Part {
                slot: AtomicCell::new(None),
                spans: AtomicUsize::new(0),
            }),
            // One slot per span the limit admits (chunks are mostly full, but a run of huge
            // spans or of displaced chunks makes chunks of a span or two), plus room for the
            // parts' chunks a gather adds past the limit.
            ready: ArrayQueue::new(max_queue_size.saturating_add(2 * PARTS)),
            ready_spans: AtomicUsize::new(0),
            held_over: Mutex::new(VecDeque::with_capacity(PARTS + 1)),
            spare: ArrayQueue::new(MAX_SPARE_BUFFERS),
            max_queue_size,
            chunk_spans,
        }
    }

    #[inline]
    fn push(&self, part: usize, span: Span) -> Result<usize, u64> {
        let part = &self.parts[part % PARTS];
        let chunk = part.slot.take().unwrap_or_else(|| self.spare_chunk());
        let mut encoding = Encoding {
            queue: self,
            part,
            written: chunk.bytes.len(),
            chunk: Some(chunk),
        };
        if let Some(chunk) = encoding.chunk.as_mut() {
            (self.encode)(&span, &mut chunk.bytes);
            chunk.spans += 1;
        }
        let Some(chunk) = encoding.chunk.take() else {
            return Ok(0);
        };
        // Freed here, on the thread that made it.
        drop(span);
        if chunk.spans >= self.chunk_spans || chunk.bytes.len() >= CHUNK_HANDOFF_BYTES {
            part.spans.store(0, Ordering::Relaxed);
            return self.hand_over(chunk);
        }
        part.spans.store(chunk.spans, Ordering::Relaxed);
        match self.put_back(part, chunk) {
            None => Ok(0),
            Some(displaced) => self.hand_over(displaced),
        }
    }

    /// Puts `chunk` back in `part`'s slot; the chunk it displaces, if another thread filled the
    /// slot meanwhile.
    #[inline]
    fn put_back(&self, part: &Part, chunk: Box<EncodedChunk>) -> Option<Box<EncodedChunk>> {
        part.slot.swap(Some(chunk))
    }

    /// Adds a chunk to the ready list, or drops it when that would pass the queue limit.
    fn hand_over(&self, chunk: Box<EncodedChunk>) -> Result<usize, u64> {
        let spans = chunk.spans;
        // Reserved only when it fits, so that a chunk is never refused for room another chunk
        // held for a moment and gave back.
        let mut before = self.ready_spans.load(Ordering::Acquire);
        loop {
            if before.saturating_add(spans) > self.max_queue_size {
                self.recycle(chunk);
                return Err(spans as u64);
            }
            match self.ready_spans.compare_exchange_weak(
                before,
                before + spans,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => before = now,
            }
        }
        match self.ready.push(chunk) {
            Ok(()) => Ok(before + spans),
            Err(chunk) => {
                self.ready_spans.fetch_sub(spans, Ordering::AcqRel);
                self.recycle(chunk);
                Err(spans as u64)
            }
        }
    }

    fn ready_len(&self) -> usize {
        self.ready_spans.load(Ordering::Acquire)
    }

    fn len(&self) -> usize {
        let partial: usize = self
            .parts
            .iter()
            .map(|part| part.spans.load(Ordering::Relaxed))
            .sum();
        self.ready_len() + partial
    }

    fn fill(&self, batch: &mut EncodedSpans, wanted: usize, max_batch_size: usize) {
        let fits = |batch: &EncodedSpans, spans: usize| {
            batch.is_empty() || batch.spans() + spans <= max_batch_size
        };
        let mut held_over = lock(&self.held_over);
        while batch.spans() < wanted {
            let Some(chunk) = held_over.pop_front().or_else(|| self.ready.pop()) else {
                break;
            };
            if !fits(batch, chunk.spans) {
                held_over.push_front(chunk);
                break;
            }
            self.ready_spans.fetch_sub(chunk.spans, Ordering::AcqRel);
            batch.push_chunk(chunk);
        }
    }

    /// Takes every part's chunk that holds spans and makes it ready (past the queue limit if
    /// need be: its spans were accepted already).
    fn gather_partial(&self) {
        for part in &self.parts {
            let Some(chunk) = part.slot.take() else {
                continue;
            };
            part.spans.store(0, Ordering::Relaxed);
            if chunk.spans == 0 {
                self.recycle(chunk);
            } else {
                // Behind the chunks already ready, as the newest spans; aside should the ready
                // list have no slot left.
                self.ready_spans.fetch_add(chunk.spans, Ordering::AcqRel);
                if let Err(chunk) = self.ready.push(chunk) {
                    lock(&self.held_over).push_back(chunk);
                }
            }
        }
    }

    fn drain(&self) -> u64 {
        let mut lost = 0;
        let held = std::mem::take(&mut *lock(&self.held_over));
        for chunk in held
            .into_iter()
            .chain(std::iter::from_fn(|| self.ready.pop()))
        {
            self.ready_spans.fetch_sub(chunk.spans, Ordering::AcqRel);
            lost += chunk.spans as u64;
            self.recycle(chunk);
        }
        for part in &self.parts {
            if let Some(chunk) = part.slot.take() {
                part.spans.store(0, Ordering::Relaxed);
                lost += chunk.spans as u64;
                self.recycle(chunk);
            }
        }
        lost
    }

    /// An empty chunk: a spare one, or a new one.
    fn spare_chunk(&self) -> Box<EncodedChunk> {
        self.spare.pop().unwrap_or_else(|| {
            Box::new(EncodedChunk {
                bytes: Vec::with_capacity(CHUNK_CAPACITY),
                spans: 0,
            })
        })
    }

    /// Keeps an emptied chunk for reuse (unless enough are kept, or it grew too large).
    fn recycle(&self, mut chunk: Box<EncodedChunk>) {
        if chunk.bytes.capacity() <= 2 * CHUNK_HANDOFF_BYTES {
            chunk.bytes.clear();
            chunk.spans = 0;
            // A full spare list frees the chunk.
            let _ = self.spare.push(chunk);
        }
    }
}

/// Collects in progress, counted per part (each count on a cache line of its own, moved only by
/// that part's threads), so that a shutdown can wait for the collects that began before it
/// closed the queue, and a flush for those that were running when it was called.
///
/// A collect counts itself in, then checks whether the exporter is closed (both sequentially
/// consistent, as the closing store and the waiting loads are): so once a shutdown, having
/// closed, sees a part's count at zero, every collect on that part either finished queueing or
/// will see the exporter closed and queue nothing.
pub(crate) struct Collecting([CachePadded<AtomicUsize>; PARTS]);

impl Collecting {
    pub(crate) fn new() -> Self {
        Self(std::array::from_fn(|_| {
            CachePadded::new(AtomicUsize::new(0))
        }))
    }

    /// Counts a collect on `part` in until the guard is dropped.
    #[inline]
    pub(crate) fn enter(&self, part: usize) -> CollectInProgress<'_> {
        let count = &self.0[part % PARTS];
        count.fetch_add(1, Ordering::SeqCst);
        CollectInProgress(count)
    }

    /// Notes in `seen` each part seen with no collect in progress; whether every part has been.
    pub(crate) fn seen_idle(&self, seen: &mut [bool; PARTS]) -> bool {
        for (count, seen) in self.0.iter().zip(seen.iter_mut()) {
            *seen = *seen || count.load(Ordering::SeqCst) == 0;
        }
        seen.iter().all(|seen| *seen)
    }
}

/// One collect in progress, counted out when dropped (also when unwinding from a panicking
/// span encoder).
pub(crate) struct CollectInProgress<'a>(&'a AtomicUsize);

impl Drop for CollectInProgress<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

/// A chunk being written to. Should the encoder panic part way through a span (the encoders
/// this crate ships do not; an exporter's own might), dropping this cuts the chunk back to its
/// last whole span and queues it for the export task, so a chunk only ever holds whole spans and
/// no span already in it is lost.
struct Encoding<'a> {
    queue: &'a EncodedQueue,
    part: &'a Part,
    chunk: Option<Box<EncodedChunk>>,
    written: usize,
}

impl Drop for Encoding<'_> {
    fn drop(&mut self) {
        if let Some(mut chunk) = self.chunk.take() {
            chunk.bytes.truncate(self.written);
            self.part.spans.store(0, Ordering::Relaxed);
            // Past the queue limit if need be: these spans were accepted already.
            self.queue
                .ready_spans
                .fetch_add(chunk.spans, Ordering::AcqRel);
            lock(&self.queue.held_over).push_back(chunk);
        }
    }
}

/// Locks `mutex`, also after a panic elsewhere left it poisoned: the value under it (chunks
/// held over between batches) is whole at any point a panic could leave it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parts_slot_takes_no_lock() {
        // `AtomicCell` falls back to a global lock for values no atomic instruction can hold;
        // a pointer-sized `Option<Box<_>>` is held in an `AtomicUsize`-wide word.
        assert!(AtomicCell::<Option<Box<EncodedChunk>>>::is_lock_free());
    }

    #[test]
    fn a_full_batch_is_whole_chunks_within_the_batch_and_the_limit() {
        let encoded = |queue: usize, batch: usize| {
            let encode: SpanEncodeFn = |_, _| {};
            SpanQueue::new(queue, batch, Some(encode)).full_batch(batch, queue)
        };
        assert_eq!(encoded(2048, 512), 512);
        assert_eq!(
            encoded(100, 100),
            69,
            "96 in whole chunks, but from 69 on the next whole chunk would be refused"
        );
        assert_eq!(encoded(4096, 100), 96, "whole chunks within the batch");
        assert_eq!(encoded(2048, 50), 32);
        assert_eq!(encoded(10, 5), 5, "chunks of a whole small batch");
        assert_eq!(encoded(1, 1), 1);
        assert_eq!(SpanQueue::new(100, 100, None).full_batch(100, 100), 100);
    }
}
