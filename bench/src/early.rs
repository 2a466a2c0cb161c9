//! `tracewire-early-encode`: a measurement of one way tracewire's export could work, not the way
//! the library works today.
//!
//! Today a finished span waits in [`trace_exporters::BatchExporter`]'s queue until the export
//! task takes a batch of 512 and encodes it; by then the span's slot in the queue and its
//! attribute storage are long out of the CPU's caches. This collector instead encodes each span
//! into OTLP protobuf on the thread that ends it, while the span is still in cache, and frees the
//! span there. Each thread appends its encoded spans to a chunk of its own (no lock, no
//! allocation per span) and hands a chunk of [`CHUNK_SPANS`] to the export thread, which wraps
//! the chunks of a batch in one resource and scope and posts the request.
//!
//! It takes shortcuts the library could not: the span is encoded as a whole one-span request by
//! the public [`OtlpEncoder`] and its span field cut out of it; a thread's chunk is handed over
//! only when full, so the last spans of a thread that goes quiet (at most `CHUNK_SPANS - 1`) are
//! never sent; one collector per process (the per-thread state is not keyed by collector); lost
//! spans are counted only in the process. The mode exists to measure what such a change to the
//! exporters would save before making it.

use std::cell::RefCell;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use prost::encoding::{WireType, decode_varint, encode_key, encode_varint};
use trace_core::{Collector, Span};
use trace_exporters::Resource;
use trace_exporters::otlp::OtlpEncoder;

use crate::minimal::{CollectorConnection, ExportHandle};

/// Spans per chunk a thread hands over.
const CHUNK_SPANS: usize = 32;

/// Chunks waiting for the export thread: room for as many spans as `BatchExporter`'s default
/// queue.
const QUEUE_CHUNKS: usize = 2048 / CHUNK_SPANS;

/// Spans per export request (as `BatchExporter`'s default batch).
const EXPORT_BATCH: usize = 512;

/// How long the export thread waits for a full batch before it sends what it has.
const EXPORT_INTERVAL: Duration = Duration::from_millis(100);

/// Room for one encoded server span, so that a chunk does not reallocate.
const SPAN_BYTES: usize = 512;

/// The collector; the [`ExportHandle`] [`collector`] returns with it stops its export thread.
#[derive(Debug, Clone)]
pub(crate) struct EarlyEncoding {
    shared: Arc<Shared>,
}

/// A chunk of encoded span fields (each `spans` field of an OTLP `ScopeSpans`) and how many.
struct Chunk {
    bytes: Vec<u8>,
    spans: usize,
}

struct Shared {
    resource: Resource,
    queue: ArrayQueue<Chunk>,
    dropped: AtomicU64,
    stop: Arc<AtomicBool>,
    /// The export thread, woken when a batch is full (set once it runs).
    exporter: OnceLock<Thread>,
    /// Whether a wake-up is on its way, so that only one chunk per batch sends it.
    wake_pending: AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("queued_chunks", &self.queue.len())
            .finish_non_exhaustive()
    }
}

/// What a thread keeps between the spans it ends.
struct ThreadState {
    encoder: OtlpEncoder,
    /// One span's whole request, from which its span field is cut.
    scratch: Vec<u8>,
    chunk: Chunk,
}

thread_local! {
    static THREAD_STATE: RefCell<Option<ThreadState>> = const { RefCell::new(None) };
}

/// A collector exporting to the OTLP/HTTP collector at `endpoint` (such as
/// `http://127.0.0.1:4318`) as `service_name`, with the handle that stops its export thread.
pub(crate) fn collector(
    endpoint: &str,
    service_name: &'static str,
) -> (EarlyEncoding, ExportHandle) {
    let shared = Arc::new(Shared::new(Resource::new(service_name)));
    let mut connection = CollectorConnection::new(endpoint);
    let exporting = shared.clone();
    let thread = std::thread::Builder::new()
        .name("early-export".into())
        .spawn(move || export(&exporting, &mut connection))
        .ok();
    if let Some(thread) = &thread {
        let _ = shared.exporter.set(thread.thread().clone());
    }
    let stop = shared.stop.clone();
    (EarlyEncoding { shared }, ExportHandle::new(stop, thread))
}

impl Shared {
    fn new(resource: Resource) -> Self {
        Self {
            resource,
            queue: ArrayQueue::new(QUEUE_CHUNKS),
            dropped: AtomicU64::new(0),
            stop: Arc::new(AtomicBool::new(false)),
            exporter: OnceLock::new(),
            wake_pending: AtomicBool::new(false),
        }
    }

    /// Hands a full chunk to the export thread, waking it when a batch is waiting.
    fn hand_over(&self, chunk: Chunk) {
        if let Err(chunk) = self.queue.push(chunk) {
            self.dropped
                .fetch_add(chunk.spans as u64, Ordering::Relaxed);
        } else if self.queue.len() * CHUNK_SPANS >= EXPORT_BATCH
            && !self.wake_pending.load(Ordering::Relaxed)
            && !self.wake_pending.swap(true, Ordering::AcqRel)
            && let Some(exporter) = self.exporter.get()
        {
            exporter.unpark();
        }
    }
}

impl Collector for EarlyEncoding {
    fn collect(&self, span: Span) {
        let shared = &*self.shared;
        let full = THREAD_STATE.with(|state| {
            let mut state = state.borrow_mut();
            let state = state.get_or_insert_with(|| ThreadState {
                encoder: OtlpEncoder::new(&shared.resource),
                scratch: Vec::with_capacity(2 * SPAN_BYTES),
                chunk: Chunk {
                    bytes: Vec::with_capacity(CHUNK_SPANS * SPAN_BYTES),
                    spans: 0,
                },
            });
            state.scratch.clear();
            state
                .encoder
                .encode_protobuf(std::slice::from_ref(&span), &mut state.scratch);
            drop(span);
            match span_field(&state.scratch) {
                Some(field) => {
                    state.chunk.bytes.extend_from_slice(field);
                    state.chunk.spans += 1;
                }
                None => {
                    shared.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            (state.chunk.spans >= CHUNK_SPANS).then(|| {
                std::mem::replace(
                    &mut state.chunk,
                    Chunk {
                        bytes: Vec::with_capacity(CHUNK_SPANS * SPAN_BYTES),
                        spans: 0,
                    },
                )
            })
        });
        if let Some(chunk) = full {
            shared.hand_over(chunk);
        }
    }
}

/// The length-delimited field `field` of the message in `message`: its whole bytes (key and
/// length included) and its payload's range. The messages this reads (an OTLP request, its
/// `ResourceSpans` and `ScopeSpans`) hold only length-delimited fields.
fn length_delimited(message: &[u8], field: u32) -> Option<(Range<usize>, Range<usize>)> {
    let mut rest = message;
    while !rest.is_empty() {
        let start = message.len() - rest.len();
        let key = decode_varint(&mut rest).ok()?;
        if key & 0b111 != WireType::LengthDelimited as u64 {
            return None;
        }
        let len = usize::try_from(decode_varint(&mut rest).ok()?).ok()?;
        let payload_start = message.len() - rest.len();
        let payload_end = payload_start.checked_add(len)?;
        rest = message.get(payload_end..)?;
        if key >> 3 == u64::from(field) {
            return Some((start..payload_end, payload_start..payload_end));
        }
    }
    None
}

/// The `resource_spans`, `scope_spans` and `spans` payloads of a one-span request, nested.
fn scope_spans(request: &[u8]) -> Option<&[u8]> {
    let (_, resource_spans) = length_delimited(request, 1)?;
    let resource_spans = request.get(resource_spans)?;
    let (_, scope_spans) = length_delimited(resource_spans, 2)?;
    resource_spans.get(scope_spans)
}

/// The span field (key, length and span) of a one-span request.
fn span_field(request: &[u8]) -> Option<&[u8]> {
    let scope_spans = scope_spans(request)?;
    let (field, _) = length_delimited(scope_spans, 2)?;
    scope_spans.get(field)
}

/// The resource field of a `ResourceSpans` and the scope field of a `ScopeSpans`, as the
/// encoder writes them, cut from a request for a placeholder span.
fn resource_and_scope(resource: &Resource) -> Option<(Vec<u8>, Vec<u8>)> {
    let kept = Arc::new(trace_core::InMemoryCollector::new(1));
    trace_core::SpanRecorder::start(
        trace_core::SpanContext::new_root(trace_core::TraceFlags::SAMPLED)
            .with_collector(kept.clone()),
        "placeholder",
        trace_core::SpanKind::Internal,
    )
    .end();
    let mut request = Vec::new();
    OtlpEncoder::new(resource).encode_protobuf(&kept.spans(), &mut request);
    let (_, resource_spans) = length_delimited(&request, 1)?;
    let resource_spans = request.get(resource_spans)?;
    let (resource_field, _) = length_delimited(resource_spans, 1)?;
    let scope_spans = scope_spans(&request)?;
    let (scope_field, _) = length_delimited(scope_spans, 1)?;
    Some((
        resource_spans.get(resource_field)?.to_vec(),
        scope_spans.get(scope_field)?.to_vec(),
    ))
}

/// An OTLP request holding `spans` (span fields, one after another) under `resource` and
/// `scope` (whole fields), written into `body`.
fn wrap(resource: &[u8], scope: &[u8], spans: &[u8], body: &mut Vec<u8>) {
    let length = |len: usize| prost::encoding::encoded_len_varint(len as u64);
    let scope_spans_len = scope.len() + spans.len();
    let resource_spans_len = resource.len() + 1 + length(scope_spans_len) + scope_spans_len;
    body.clear();
    encode_key(1, WireType::LengthDelimited, body);
    encode_varint(resource_spans_len as u64, body);
    body.extend_from_slice(resource);
    encode_key(2, WireType::LengthDelimited, body);
    encode_varint(scope_spans_len as u64, body);
    body.extend_from_slice(scope);
    body.extend_from_slice(spans);
}

/// The export thread: joins chunks into requests of about [`EXPORT_BATCH`] spans and posts them.
fn export(shared: &Shared, connection: &mut CollectorConnection) {
    let Some((resource, scope)) = resource_and_scope(&shared.resource) else {
        eprintln!("tracewire-early-encode: could not prepare the request wrapper");
        return;
    };
    let mut spans = Vec::with_capacity(EXPORT_BATCH * SPAN_BYTES);
    let mut body = Vec::with_capacity(EXPORT_BATCH * SPAN_BYTES + 1024);
    loop {
        let stopping = shared.stop.load(Ordering::Relaxed);
        spans.clear();
        let mut count = 0;
        while count < EXPORT_BATCH {
            let Some(chunk) = shared.queue.pop() else {
                break;
            };
            spans.extend_from_slice(&chunk.bytes);
            count += chunk.spans;
        }
        if count > 0 {
            wrap(&resource, &scope, &spans, &mut body);
            if connection.post(&body).is_err() {
                shared.dropped.fetch_add(count as u64, Ordering::Relaxed);
            }
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
    use trace_core::{SpanContext, SpanKind, SpanRecorder, TraceFlags};

    use super::*;

    /// A full chunk of spans, encoded one by one on this thread and wrapped by the export side,
    /// decodes as one request: one resource, one scope, every span in order.
    #[test]
    fn a_chunk_wraps_into_one_request() {
        let collector = EarlyEncoding {
            shared: Arc::new(Shared::new(Resource::new("svc"))),
        };
        for index in 0..CHUNK_SPANS {
            let context = SpanContext::new_root(TraceFlags::SAMPLED)
                .with_collector(Arc::new(collector.clone()));
            let mut recorder =
                SpanRecorder::start(context, format!("GET /{index}"), SpanKind::Server);
            recorder.set_attribute("http.response.status_code", 200);
            recorder.end();
        }
        let chunk = collector.shared.queue.pop().expect("a full chunk");
        assert_eq!(chunk.spans, CHUNK_SPANS);
        let (resource, scope) = resource_and_scope(&collector.shared.resource).expect("wrapper");
        let mut body = Vec::new();
        wrap(&resource, &scope, &chunk.bytes, &mut body);
        let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("valid protobuf");
        assert_eq!(request.resource_spans.len(), 1);
        let resource_spans = &request.resource_spans[0];
        let service = resource_spans
            .resource
            .as_ref()
            .and_then(|resource| {
                resource
                    .attributes
                    .iter()
                    .find(|attribute| attribute.key == "service.name")
            })
            .and_then(|attribute| attribute.value.clone());
        assert!(format!("{service:?}").contains("svc"), "{service:?}");
        assert_eq!(resource_spans.scope_spans.len(), 1);
        let names: Vec<&str> = resource_spans.scope_spans[0]
            .spans
            .iter()
            .map(|span| span.name.as_str())
            .collect();
        let expected: Vec<String> = (0..CHUNK_SPANS)
            .map(|index| format!("GET /{index}"))
            .collect();
        assert_eq!(names, expected);
    }
}
