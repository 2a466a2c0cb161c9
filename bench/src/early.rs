//! `tracewire-early-encode`: a measurement of one way tracewire's export could work, not the way
//! the library works today.
//!
//! Today a finished span waits in [`trace_exporters::BatchExporter`]'s queue until the export
//! task takes a batch of 512 and encodes it; by then the span's slot in the queue and its
//! attribute storage are long out of the CPU's caches. This collector instead encodes each span
//! into OTLP protobuf on the thread that ends it, while the span is still in cache, frees the
//! span there, and queues only the bytes. An export thread joins them into requests and posts
//! them to the collector.
//!
//! It takes shortcuts the library could not: each span is encoded as a whole
//! `ExportTraceServiceRequest` of its own (resource and scope included), which the export thread
//! concatenates (protobuf merges repeated fields, so the result is one valid request, a little
//! larger than it need be); the encoder sits behind a mutex (the server runs one worker); lost
//! spans are counted only in the process. The mode exists to measure what such a change to the
//! exporters would save before making it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::Thread;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use trace_core::{Collector, Span};
use trace_exporters::Resource;
use trace_exporters::otlp::OtlpEncoder;

use crate::minimal::{CollectorConnection, ExportHandle};

/// Encoded spans waiting for the export thread (as many as `BatchExporter`'s default queue).
const QUEUE_CAPACITY: usize = 2048;

/// Spans per export request (as `BatchExporter`'s default batch).
const EXPORT_BATCH: usize = 512;

/// How long the export thread waits for a full batch before it sends what it has.
const EXPORT_INTERVAL: Duration = Duration::from_millis(100);

/// Room for one encoded server span with its resource, so that encoding does not reallocate.
const SPAN_BYTES: usize = 768;

/// The collector; [`ExportHandle::shutdown`] stops its export thread after a last export.
#[derive(Debug, Clone)]
pub(crate) struct EarlyEncoding {
    shared: Arc<Shared>,
}

struct Shared {
    encoder: Mutex<OtlpEncoder>,
    queue: ArrayQueue<Vec<u8>>,
    dropped: AtomicU64,
    stop: Arc<AtomicBool>,
    /// The export thread, woken when a batch is full (set once it runs).
    exporter: OnceLock<Thread>,
    /// Whether a wake-up is on its way, so that only one span per batch sends it.
    wake_pending: AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

/// A collector exporting to the OTLP/HTTP collector at `endpoint` (such as
/// `http://127.0.0.1:4318`) as `service_name`, with the handle that stops its export thread.
pub(crate) fn collector(
    endpoint: &str,
    service_name: &'static str,
) -> (EarlyEncoding, ExportHandle) {
    let shared = Arc::new(Shared {
        encoder: Mutex::new(OtlpEncoder::new(&Resource::new(service_name))),
        queue: ArrayQueue::new(QUEUE_CAPACITY),
        dropped: AtomicU64::new(0),
        stop: Arc::new(AtomicBool::new(false)),
        exporter: OnceLock::new(),
        wake_pending: AtomicBool::new(false),
    });
    let mut connection = CollectorConnection::new(endpoint);
    let exporting = shared.clone();
    let thread = std::thread::Builder::new()
        .name("early-export".into())
        .spawn(move || export(&exporting, &mut connection))
        .ok();
    if let Some(thread) = &thread {
        let _ = shared.exporter.set(thread.thread().clone());
    }
    (
        EarlyEncoding {
            shared: shared.clone(),
        },
        ExportHandle::new(shared.stop.clone(), thread),
    )
}

impl Collector for EarlyEncoding {
    fn collect(&self, span: Span) {
        let mut bytes = Vec::with_capacity(SPAN_BYTES);
        self.shared
            .encoder
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .encode_protobuf(std::slice::from_ref(&span), &mut bytes);
        drop(span);
        let shared = &*self.shared;
        if shared.queue.push(bytes).is_err() {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
        } else if shared.queue.len() >= EXPORT_BATCH
            && !shared.wake_pending.load(Ordering::Relaxed)
            && !shared.wake_pending.swap(true, Ordering::AcqRel)
            && let Some(exporter) = shared.exporter.get()
        {
            exporter.unpark();
        }
    }
}

/// The export thread: joins queued spans into requests of up to [`EXPORT_BATCH`] and posts them.
fn export(shared: &Shared, connection: &mut CollectorConnection) {
    let mut body = Vec::with_capacity(EXPORT_BATCH * SPAN_BYTES);
    loop {
        let stopping = shared.stop.load(Ordering::Relaxed);
        body.clear();
        let mut count = 0;
        while count < EXPORT_BATCH {
            let Some(span) = shared.queue.pop() else {
                break;
            };
            body.extend_from_slice(&span);
            count += 1;
        }
        if count > 0 && connection.post(&body).is_err() {
            shared.dropped.fetch_add(count as u64, Ordering::Relaxed);
        }
        if stopping && shared.queue.is_empty() {
            let dropped = shared.dropped.load(Ordering::Relaxed);
            if dropped > 0 {
                eprintln!("tracewire-early-encode: {dropped} spans lost");
            }
            return;
        }
        if count < EXPORT_BATCH {
            shared.wake_pending.store(false, Ordering::Release);
            std::thread::park_timeout(EXPORT_INTERVAL);
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message as _;
    use trace_core::{SpanContext, SpanId, SpanKind, SpanRecorder, TraceFlags, TraceId};

    use super::*;

    /// Spans encoded one by one and joined decode as one request holding each of them.
    #[test]
    fn joined_spans_decode_as_one_request() {
        let shared = Shared {
            encoder: Mutex::new(OtlpEncoder::new(&Resource::new("svc"))),
            queue: ArrayQueue::new(4),
            dropped: AtomicU64::new(0),
            stop: Arc::new(AtomicBool::new(false)),
            exporter: OnceLock::new(),
            wake_pending: AtomicBool::new(false),
        };
        let collector = EarlyEncoding {
            shared: Arc::new(shared),
        };
        for name in ["GET /a", "GET /b"] {
            let context =
                SpanContext::new(TraceId::random(), SpanId::random(), TraceFlags::SAMPLED)
                    .with_collector(Arc::new(collector.clone()));
            let mut recorder = SpanRecorder::start(context, name, SpanKind::Server);
            recorder.set_attribute("http.response.status_code", 200);
            recorder.end();
        }
        let mut body = Vec::new();
        while let Some(span) = collector.shared.queue.pop() {
            body.extend_from_slice(&span);
        }
        let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("valid protobuf");
        let names: Vec<String> = request
            .resource_spans
            .iter()
            .flat_map(|resource| &resource.scope_spans)
            .flat_map(|scope| &scope.spans)
            .map(|span| span.name.clone())
            .collect();
        assert_eq!(names, ["GET /a", "GET /b"]);
    }
}
