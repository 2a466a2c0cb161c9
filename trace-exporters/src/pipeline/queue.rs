//! Where collected spans wait for the export task: as spans, or already encoded.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crossbeam_queue::ArrayQueue;
use trace_core::Span;
use trace_core::spread::{PARTS, part_of_this_thread};

use crate::export::{EncodedChunk, EncodedSpans, SpanEncodeFn};

/// Spans a thread encodes into its chunk before handing the chunk to the export task (fewer
/// when the batch size is smaller). Large enough that the hand-off (a lock and a buffer swap) is
/// a small part of a span's cost, small enough that a chunk stays in the core's cache.
const CHUNK_SPANS: usize = 32;

/// A chunk this large is handed over whatever its span count, so a run of huge spans does not
/// build one huge buffer.
const CHUNK_HANDOFF_BYTES: usize = 64 * 1024;

/// The capacity a new chunk buffer starts with: about 32 typical spans.
const CHUNK_CAPACITY: usize = 16 * 1024;

/// Emptied buffers kept for reuse beyond this many are freed, as are buffers that grew past
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

    /// Queues `span`. `Ok` holds the number of spans ready for the export task when that number
    /// just grew (zero when the span only joined its thread's chunk); `Err` the number of spans
    /// dropped because the queue was full.
    #[inline]
    pub(crate) fn push(&self, span: Span) -> Result<usize, u64> {
        match self {
            Self::Spans(queue) => match queue.push(span) {
                Ok(()) => Ok(queue.len()),
                Err(span) => {
                    drop(span);
                    Err(1)
                }
            },
            Self::Encoded(queue) => queue.push(span),
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

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Spans ready for the export task without taking any thread's chunk.
    pub(crate) fn ready_len(&self) -> usize {
        match self {
            Self::Spans(queue) => queue.len(),
            Self::Encoded(queue) => queue.ready().spans,
        }
    }

    /// Moves waiting spans into `batch` until it holds at least `wanted` spans (never more than
    /// `max_batch_size`) or nothing waits. With `take_partial`, the threads' partly filled chunks
    /// are taken too (a timer tick, a flush, a shutdown), not only the chunks handed over.
    pub(crate) fn fill(
        &self,
        batch: &mut Batch,
        wanted: usize,
        max_batch_size: usize,
        take_partial: bool,
    ) {
        match (self, batch) {
            (Self::Spans(queue), Batch::Spans(spans)) => {
                // Straight from the queue's slots into the batch (whose capacity is kept between
                // batches): a pop-then-push loop moved each span twice more on its way.
                let wanted = wanted.min(max_batch_size).saturating_sub(spans.len());
                spans.extend(std::iter::from_fn(|| queue.pop()).take(wanted));
            }
            (Self::Encoded(queue), Batch::Encoded(encoded)) => {
                queue.fill(encoded, wanted, max_batch_size, take_partial);
            }
            // The worker's batch comes from `empty_batch` of this same queue.
            (Self::Spans(_), Batch::Encoded(_)) | (Self::Encoded(_), Batch::Spans(_)) => {}
        }
    }

    /// Empties `batch` after its export, keeping its buffers for reuse.
    pub(crate) fn recycle(&self, batch: &mut Batch) {
        match (self, batch) {
            (Self::Encoded(queue), Batch::Encoded(encoded)) => {
                let mut spare = queue.spare();
                for mut buffer in encoded.drain_buffers() {
                    if spare.len() < MAX_SPARE_BUFFERS
                        && buffer.capacity() <= 2 * CHUNK_HANDOFF_BYTES
                    {
                        buffer.clear();
                        spare.push(buffer);
                    }
                }
            }
            (_, Batch::Spans(spans)) => spans.clear(),
            (Self::Spans(_), Batch::Encoded(encoded)) => {
                encoded.drain_buffers().for_each(drop);
            }
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
/// Each thread encodes into the chunk of its [part](trace_core::spread) (a mutex that only the
/// threads sharing the part, and the export task now and then, ever take) and hands the chunk to
/// the export task's list when it holds [`CHUNK_SPANS`] spans. The span is freed where it was
/// made, while its memory is still in that core's cache, rather than on the export task's
/// thread; the export task only copies bytes.
///
/// The queue limit applies to the chunks handed over: a chunk that would take the ready spans
/// past `max_queue_size` is dropped whole and counted. The chunks still being filled hold at most
/// `PARTS` × [`CHUNK_SPANS`] spans more.
pub(crate) struct EncodedQueue {
    encode: SpanEncodeFn,
    parts: [Part; PARTS],
    ready: Mutex<Ready>,
    spare: Mutex<Vec<Vec<u8>>>,
    max_queue_size: usize,
    chunk_spans: usize,
}

/// One part's chunk, alone on its cache line pair.
#[repr(align(128))]
struct Part(Mutex<EncodedChunk>);

/// The chunks handed to the export task, oldest first.
#[derive(Default)]
pub(crate) struct Ready {
    chunks: VecDeque<EncodedChunk>,
    pub(crate) spans: usize,
}

impl EncodedQueue {
    fn new(encode: SpanEncodeFn, max_queue_size: usize, chunk_spans: usize) -> Self {
        Self {
            encode,
            parts: std::array::from_fn(|_| Part(Mutex::new(EncodedChunk::default()))),
            ready: Mutex::new(Ready::default()),
            spare: Mutex::new(Vec::new()),
            max_queue_size,
            chunk_spans,
        }
    }

    #[inline]
    fn push(&self, span: Span) -> Result<usize, u64> {
        let full = {
            let mut chunk = lock(&self.parts[part_of_this_thread()].0);
            if chunk.bytes.capacity() == 0 {
                chunk.bytes = self.spare_buffer();
            }
            {
                let written = chunk.bytes.len();
                let mut unless_finished = Truncate {
                    bytes: &mut chunk.bytes,
                    to: written,
                };
                (self.encode)(&span, unless_finished.bytes);
                unless_finished.to = usize::MAX;
            }
            chunk.spans += 1;
            if chunk.spans >= self.chunk_spans || chunk.bytes.len() >= CHUNK_HANDOFF_BYTES {
                let fresh = EncodedChunk {
                    bytes: self.spare_buffer(),
                    spans: 0,
                };
                Some(std::mem::replace(&mut *chunk, fresh))
            } else {
                None
            }
        };
        // Freed here, on the thread that made it, after the part's lock is released.
        drop(span);
        match full {
            None => Ok(0),
            Some(chunk) => self.hand_over(chunk),
        }
    }

    /// Adds a full chunk to the ready list, or drops it when that would pass the queue limit.
    fn hand_over(&self, chunk: EncodedChunk) -> Result<usize, u64> {
        let mut ready = self.ready();
        if ready.spans + chunk.spans > self.max_queue_size {
            drop(ready);
            let dropped = chunk.spans as u64;
            self.give_back(chunk.bytes);
            return Err(dropped);
        }
        ready.spans += chunk.spans;
        ready.chunks.push_back(chunk);
        Ok(ready.spans)
    }

    fn len(&self) -> usize {
        let partial: usize = self.parts.iter().map(|part| lock(&part.0).spans).sum();
        self.ready().spans + partial
    }

    fn fill(
        &self,
        batch: &mut EncodedSpans,
        wanted: usize,
        max_batch_size: usize,
        take_partial: bool,
    ) {
        let fits = |batch: &EncodedSpans, spans: usize| {
            batch.is_empty() || batch.spans() + spans <= max_batch_size
        };
        {
            let mut ready = self.ready();
            while batch.spans() < wanted {
                match ready.chunks.front() {
                    Some(chunk) if fits(batch, chunk.spans) => {}
                    _ => break,
                }
                let Some(chunk) = ready.chunks.pop_front() else {
                    break;
                };
                ready.spans -= chunk.spans;
                batch.push_chunk(chunk);
            }
        }
        if !take_partial {
            return;
        }
        for part in &self.parts {
            if batch.spans() >= wanted {
                return;
            }
            let mut chunk = lock(&part.0);
            if chunk.spans == 0 || !fits(batch, chunk.spans) {
                continue;
            }
            // The part gets an empty buffer; it takes a spare one at its next span.
            let taken = std::mem::take(&mut *chunk);
            drop(chunk);
            batch.push_chunk(taken);
        }
    }

    fn drain(&self) -> u64 {
        let mut lost = 0;
        {
            let mut ready = self.ready();
            lost += ready.spans as u64;
            ready.spans = 0;
            ready.chunks.clear();
        }
        for part in &self.parts {
            let mut chunk = lock(&part.0);
            lost += chunk.spans as u64;
            chunk.spans = 0;
            chunk.bytes.clear();
        }
        lost
    }

    pub(crate) fn ready(&self) -> MutexGuard<'_, Ready> {
        lock(&self.ready)
    }

    fn spare(&self) -> MutexGuard<'_, Vec<Vec<u8>>> {
        lock(&self.spare)
    }

    /// An empty buffer: a spare one, or a new one.
    fn spare_buffer(&self) -> Vec<u8> {
        self.spare()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(CHUNK_CAPACITY))
    }

    fn give_back(&self, mut buffer: Vec<u8>) {
        let mut spare = self.spare();
        if spare.len() < MAX_SPARE_BUFFERS && buffer.capacity() <= 2 * CHUNK_HANDOFF_BYTES {
            buffer.clear();
            spare.push(buffer);
        }
    }
}

/// Cuts a chunk back to its last whole span when an encoder panics part way through one (the
/// encoders this crate ships do not; an exporter's own might), so that a chunk only ever holds
/// whole spans.
struct Truncate<'a> {
    bytes: &'a mut Vec<u8>,
    to: usize,
}

impl Drop for Truncate<'_> {
    fn drop(&mut self) {
        self.bytes.truncate(self.to);
    }
}

/// Locks `mutex`, also after a panic elsewhere left it poisoned: every value kept under these
/// locks (a chunk, a list of chunks, spare buffers) is whole at any point a panic could leave it
/// (see [`Truncate`]).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
