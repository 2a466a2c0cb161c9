//! Counting gRPC messages in a stream of data frames, and the request-body wrapper that counts
//! the messages a server reads.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// Finds message boundaries in gRPC's length-prefixed framing (a flag byte and a 4-byte
/// big-endian length before each message), whatever the data frames' sizes. Message bodies are
/// skipped, not read.
#[derive(Debug, Default, Clone)]
pub(crate) struct MessageCounter {
    messages: u64,
    /// Bytes of the current message's 5-byte prefix seen so far.
    prefix_seen: u8,
    length: u32,
    /// Bytes of the current message's body still to come.
    remaining: u64,
}

impl MessageCounter {
    pub(crate) fn messages(&self) -> u64 {
        self.messages
    }

    pub(crate) fn feed(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            if self.remaining > 0 {
                let skipped = self.remaining.min(chunk.len() as u64);
                self.remaining -= skipped;
                chunk = &chunk[skipped as usize..];
                continue;
            }
            let byte = chunk[0];
            chunk = &chunk[1..];
            if self.prefix_seen > 0 {
                self.length = (self.length << 8) | u32::from(byte);
            }
            self.prefix_seen += 1;
            if self.prefix_seen == 5 {
                self.messages += 1;
                self.remaining = u64::from(self.length);
                self.prefix_seen = 0;
                self.length = 0;
            }
        }
    }

    /// Feeds every chunk of `data` without consuming it.
    pub(crate) fn feed_buf(&mut self, data: &dyn Buf) {
        let mut slices = [std::io::IoSlice::new(&[]); 16];
        let filled = data.chunks_vectored(&mut slices);
        for slice in &slices[..filled] {
            self.feed(slice);
        }
    }
}

pin_project! {
    /// A request body that counts the gRPC messages read from it, for the server span and the
    /// `rpc_server_requests_per_rpc` histogram. Frames pass through unchanged.
    pub struct RequestBody<B> {
        #[pin]
        inner: B,
        counter: Option<(MessageCounter, Arc<AtomicU64>)>,
    }
}

impl<B> RequestBody<B> {
    pub(crate) fn new(inner: B, count: Option<Arc<AtomicU64>>) -> Self {
        Self {
            inner,
            counter: count.map(|count| (MessageCounter::default(), count)),
        }
    }

    /// The wrapped body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B: std::fmt::Debug> std::fmt::Debug for RequestBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBody")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for RequestBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let (Some(Ok(frame)), Some((counter, count))) = (&frame, this.counter.as_mut())
            && let Some(data) = frame.data_ref()
        {
            counter.feed_buf(data);
            count.store(counter.messages(), Ordering::Relaxed);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: usize) -> Vec<u8> {
        let mut bytes = vec![0u8];
        bytes.extend_from_slice(&(len as u32).to_be_bytes());
        bytes.extend(std::iter::repeat_n(7u8, len));
        bytes
    }

    #[test]
    fn messages_are_counted_across_any_frame_split() {
        let stream: Vec<u8> = [0, 3, 300, 1, 70_000]
            .into_iter()
            .flat_map(message)
            .collect();
        for frame_size in [1, 2, 5, 7, 64, 1000, stream.len()] {
            let mut counter = MessageCounter::default();
            for frame in stream.chunks(frame_size) {
                counter.feed(frame);
            }
            assert_eq!(counter.messages(), 5, "frames of {frame_size}");
        }
    }

    #[test]
    fn a_partial_prefix_is_not_a_message() {
        let mut counter = MessageCounter::default();
        counter.feed(&[0, 0, 0]);
        assert_eq!(counter.messages(), 0);
        counter.feed(&[0, 0]);
        assert_eq!(counter.messages(), 1);
    }
}
