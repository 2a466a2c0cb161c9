//! `minimal` and `minimal-unsampled`: a deliberately minimal hand-written middleware doing the
//! whole job the tracewire modes do, as a reference floor for their cost.
//!
//! It does exactly one thing of each kind, the cheapest way that is still correct for this
//! benchmark's traffic:
//! - a strict W3C `traceparent` parse (no other format, no `tracestate`, no debug header);
//! - a server span per sampled request that ends when the response body ends, with the HTTP
//!   semantic-convention attributes, handed to the export thread through a lock-free queue;
//! - one request-duration histogram in atomics (one series: the benchmark has one route, one
//!   method and one status), each bucket holding the latest sampled request's trace as its
//!   exemplar;
//! - OTLP/HTTP protobuf export from a thread of its own, encoded straight from the spans into
//!   the request buffer and posted over one kept-alive connection.
//!
//! What it leaves out, and tracewire does: the context in the request extensions and as the
//! task's current context, Jaeger and B3 headers, sampling decisions other than the caller's,
//! the in-flight gauge, body-size histograms, label sets per method, route and status with a
//! cardinality cap, `/metrics`, and any accounting of lost spans beyond one counter.

use std::future::Future;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::MatchedPath;
use bytes::Buf as _;
use crossbeam_queue::ArrayQueue;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};
use tower_service::Service;

/// The request-duration buckets, in seconds (the OpenTelemetry HTTP semantic conventions').
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Spans waiting for the export thread; past this many, spans are dropped and counted.
const QUEUE_CAPACITY: usize = 65_536;

/// Spans per export request.
const EXPORT_BATCH: usize = 512;

/// How long the export thread sleeps when it finds fewer than a batch.
const EXPORT_INTERVAL: Duration = Duration::from_millis(100);

/// The layer; [`ExportHandle::shutdown`] on the handle [`layer`] returns with it stops its
/// export thread.
#[derive(Clone)]
pub(crate) struct MinimalLayer {
    shared: Arc<Shared>,
}

/// Stops an export thread after one last export: the thread ends once it sees `stop` and has
/// sent what is queued.
pub(crate) struct ExportHandle {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ExportHandle {
    /// The handle of `thread`, which watches `stop`.
    pub(crate) fn new(stop: Arc<AtomicBool>, thread: Option<std::thread::JoinHandle<()>>) -> Self {
        Self { stop, thread }
    }

    /// Exports what is queued and stops the thread (waking it if it is parked).
    pub(crate) fn shutdown(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// A layer exporting to the OTLP/HTTP collector at `endpoint` (such as
/// `http://127.0.0.1:4318`), with the handle that stops its export thread.
pub(crate) fn layer(endpoint: &str, service_name: &'static str) -> (MinimalLayer, ExportHandle) {
    let shared = Arc::new(Shared {
        histogram: Histogram::default(),
        queue: ArrayQueue::new(QUEUE_CAPACITY),
        dropped: AtomicU64::new(0),
        stop: Arc::new(AtomicBool::new(false)),
    });
    let exporter = Exporter {
        shared: shared.clone(),
        service_name,
        collector: CollectorConnection::new(endpoint),
    };
    let thread = std::thread::Builder::new()
        .name("minimal-export".into())
        .spawn(move || exporter.run())
        .ok();
    (
        MinimalLayer {
            shared: shared.clone(),
        },
        ExportHandle::new(shared.stop.clone(), thread),
    )
}

struct Shared {
    histogram: Histogram,
    queue: ArrayQueue<FinishedSpan>,
    dropped: AtomicU64,
    stop: Arc<AtomicBool>,
}

/// A classic histogram in atomics, with each bucket's latest exemplar.
#[derive(Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len() + 1],
    /// Microseconds, so that the sum is one atomic add.
    sum_micros: AtomicU64,
    /// Per bucket: trace id (high, low) and span id of the latest sampled observation.
    exemplars: [[AtomicU64; 3]; BUCKETS.len() + 1],
}

impl Histogram {
    fn observe(&self, elapsed: Duration, exemplar: Option<(u128, u64)>) {
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS.partition_point(|&bound| bound < seconds);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if let Some((trace_id, span_id)) = exemplar {
            let slot = &self.exemplars[bucket];
            slot[0].store((trace_id >> 64) as u64, Ordering::Relaxed);
            slot[1].store(trace_id as u64, Ordering::Relaxed);
            slot[2].store(span_id, Ordering::Relaxed);
        }
    }
}

impl<S> tower_layer::Layer<S> for MinimalLayer {
    type Service = MinimalService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MinimalService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`MinimalLayer`] wraps around another.
#[derive(Clone)]
pub(crate) struct MinimalService<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// A sampled request's span, from its start to its end.
struct SpanInProgress {
    trace_id: u128,
    span_id: u64,
    parent_span_id: u64,
    start_unix_nanos: u64,
    method: &'static str,
    route: Option<MatchedPath>,
    path: String,
    server_address: Option<String>,
    user_agent: Option<String>,
    protocol_version: &'static str,
    status: u16,
}

struct FinishedSpan {
    span: Box<SpanInProgress>,
    end_unix_nanos: u64,
    response_size: u64,
    aborted: bool,
}

/// A W3C `traceparent` (version 00) read strictly: trace id, parent span id, sampled.
fn parse_traceparent(value: &[u8]) -> Option<(u128, u64, bool)> {
    if value.len() != 55 || &value[..3] != b"00-" || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let trace_id = lower_hex(&value[3..35])?;
    let span_id = u64::try_from(lower_hex(&value[36..52])?).ok()?;
    let flags = lower_hex(&value[53..55])?;
    (trace_id != 0 && span_id != 0).then_some((trace_id, span_id, flags & 1 == 1))
}

fn lower_hex(digits: &[u8]) -> Option<u128> {
    let mut value = 0u128;
    for &digit in digits {
        let nibble = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            _ => return None,
        };
        value = (value << 4) | u128::from(nibble);
    }
    Some(value)
}

fn method_name(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::PATCH => "PATCH",
        http::Method::OPTIONS => "OPTIONS",
        _ => "_OTHER",
    }
}

fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
    })
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for MinimalService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<MinimalBody<ResBody>>;
    type Error = S::Error;
    type Future = MinimalFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let start = Instant::now();
        let parent = request
            .headers()
            .get("traceparent")
            .and_then(|value| parse_traceparent(value.as_bytes()));
        // The caller's decision when there is one; a new root is sampled.
        let span = match parent {
            Some((_, _, false)) => None,
            _ => {
                let (trace_id, parent_span_id) = parent.map_or_else(
                    || (fastrand::u128(1..), 0),
                    |(trace_id, span_id, _)| (trace_id, span_id),
                );
                let method = method_name(request.method());
                let route = request.extensions().get::<MatchedPath>().cloned();
                let header = |name: http::header::HeaderName| {
                    request
                        .headers()
                        .get(name)
                        .and_then(|value| value.to_str().ok())
                        .map(str::to_owned)
                };
                Some(Box::new(SpanInProgress {
                    trace_id,
                    span_id: fastrand::u64(1..),
                    parent_span_id,
                    start_unix_nanos: unix_nanos(SystemTime::now()),
                    method,
                    route,
                    path: request.uri().path().to_owned(),
                    server_address: header(http::header::HOST),
                    user_agent: header(http::header::USER_AGENT),
                    protocol_version: match request.version() {
                        http::Version::HTTP_2 => "2",
                        http::Version::HTTP_10 => "1.0",
                        _ => "1.1",
                    },
                    status: 0,
                }))
            }
        };
        MinimalFuture {
            inner: self.inner.call(request),
            request: Some(RequestState {
                shared: self.shared.clone(),
                start,
                span,
            }),
        }
    }
}

/// What a request carries from its start to its body's end.
struct RequestState {
    shared: Arc<Shared>,
    start: Instant,
    span: Option<Box<SpanInProgress>>,
}

impl RequestState {
    fn end(self, response_size: u64, aborted: bool) {
        let elapsed = self.start.elapsed();
        let exemplar = self.span.as_ref().map(|span| (span.trace_id, span.span_id));
        self.shared.histogram.observe(elapsed, exemplar);
        if let Some(span) = self.span {
            let end_unix_nanos = span
                .start_unix_nanos
                .saturating_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
            let finished = FinishedSpan {
                span,
                end_unix_nanos,
                response_size,
                aborted,
            };
            if self.shared.queue.push(finished).is_err() {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

pin_project! {
    /// The response future of [`MinimalService`].
    pub(crate) struct MinimalFuture<F> {
        #[pin]
        inner: F,
        request: Option<RequestState>,
    }
}

impl<F, B, E> Future for MinimalFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<MinimalBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let mut request = this.request.take();
        Poll::Ready(match result {
            Ok(response) => {
                if let Some(span) = request.as_mut().and_then(|r| r.span.as_mut()) {
                    span.status = response.status().as_u16();
                }
                Ok(response.map(|inner| MinimalBody {
                    inner,
                    request,
                    bytes: 0,
                }))
            }
            Err(error) => {
                if let Some(request) = request {
                    request.end(0, true);
                }
                Err(error)
            }
        })
    }
}

pin_project! {
    /// A response body that ends its request when it ends (or is dropped early).
    pub(crate) struct MinimalBody<B> {
        #[pin]
        inner: B,
        request: Option<RequestState>,
        bytes: u64,
    }

    impl<B> PinnedDrop for MinimalBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(request) = this.request.take() {
                request.end(*this.bytes, true);
            }
        }
    }
}

impl<B: Body> Body for MinimalBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
        {
            *this.bytes += data.remaining() as u64;
        }
        let ended = match &frame {
            None | Some(Err(_)) => true,
            Some(Ok(_)) => this.inner.is_end_stream(),
        };
        if ended && let Some(request) = this.request.take() {
            request.end(*this.bytes, matches!(frame, Some(Err(_))));
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

/// The export thread: drains the queue in batches and posts them to the collector.
struct Exporter {
    shared: Arc<Shared>,
    service_name: &'static str,
    collector: CollectorConnection,
}

/// A kept-alive HTTP/1.1 connection to an OTLP/HTTP collector, posting export requests.
pub(crate) struct CollectorConnection {
    address: String,
    connection: Option<BufReader<TcpStream>>,
}

impl Exporter {
    fn run(mut self) {
        loop {
            let stopping = self.shared.stop.load(Ordering::Relaxed);
            let mut batch = Vec::with_capacity(EXPORT_BATCH);
            while batch.len() < EXPORT_BATCH {
                match self.shared.queue.pop() {
                    Some(span) => batch.push(span),
                    None => break,
                }
            }
            let full = batch.len() == EXPORT_BATCH;
            let count = batch.len() as u64;
            if count > 0 {
                let body = self.encode(batch);
                if self.collector.post(&body).is_err() {
                    // Lost, as a collector outage loses a batch; counted with the dropped.
                    self.shared.dropped.fetch_add(count, Ordering::Relaxed);
                }
            }
            if stopping && self.shared.queue.is_empty() {
                return;
            }
            if !full {
                std::thread::sleep(EXPORT_INTERVAL);
            }
        }
    }

    /// The OTLP `ExportTraceServiceRequest` for `batch`, encoded straight from the spans.
    fn encode(&self, batch: Vec<FinishedSpan>) -> Vec<u8> {
        let mut spans = Vec::with_capacity(batch.len() * 384);
        let mut span_buffer = Vec::with_capacity(512);
        for finished in &batch {
            span_buffer.clear();
            encode_span(finished, &mut span_buffer);
            put_bytes(&mut spans, 2, &span_buffer);
        }
        let mut resource = Vec::new();
        put_string_attribute(&mut resource, 1, "service.name", self.service_name);
        let mut resource_spans = Vec::with_capacity(spans.len() + resource.len() + 16);
        put_bytes(&mut resource_spans, 1, &resource);
        put_bytes(&mut resource_spans, 2, &spans);
        let mut request = Vec::with_capacity(resource_spans.len() + 8);
        put_bytes(&mut request, 1, &resource_spans);
        request
    }
}

impl CollectorConnection {
    /// A connection (made at the first post) to the collector at `endpoint`, such as
    /// `http://127.0.0.1:4318`.
    pub(crate) fn new(endpoint: &str) -> Self {
        let address = endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        Self {
            address,
            connection: None,
        }
    }

    /// Posts one export request and reads the collector's answer, retrying once on a fresh
    /// connection (the kept one may have been closed by the collector).
    pub(crate) fn post(&mut self, body: &[u8]) -> std::io::Result<()> {
        let first = self.try_post(body);
        if first.is_ok() {
            return first;
        }
        self.connection = None;
        let second = self.try_post(body);
        if second.is_err() {
            self.connection = None;
        }
        second
    }

    fn try_post(&mut self, body: &[u8]) -> std::io::Result<()> {
        if self.connection.is_none() {
            let stream = TcpStream::connect(&self.address)?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            stream.set_write_timeout(Some(Duration::from_secs(5)))?;
            stream.set_nodelay(true)?;
            self.connection = Some(BufReader::new(stream));
        }
        let Some(connection) = self.connection.as_mut() else {
            return Err(std::io::ErrorKind::NotConnected.into());
        };
        let head = format!(
            "POST /v1/traces HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-protobuf\r\n\
             Content-Length: {}\r\n\r\n",
            self.address,
            body.len()
        );
        let stream = connection.get_mut();
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        // The answer's head, then as many body bytes as it announces.
        let mut content_length = 0usize;
        let mut status_ok = false;
        let mut line = String::new();
        loop {
            line.clear();
            if connection.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            if trimmed.starts_with("HTTP/1.1 ") {
                status_ok = trimmed.as_bytes().get(9) == Some(&b'2');
            } else if let Some((name, value)) = trimmed.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                content_length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut answer = vec![0u8; content_length];
        connection.read_exact(&mut answer)?;
        if status_ok {
            Ok(())
        } else {
            Err(std::io::Error::other("the collector refused the export"))
        }
    }
}

/// A length-delimited field.
fn put_bytes(buffer: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    encode_key(field, WireType::LengthDelimited, buffer);
    encode_varint(bytes.len() as u64, buffer);
    buffer.extend_from_slice(bytes);
}

fn put_fixed64(buffer: &mut Vec<u8>, field: u32, value: u64) {
    encode_key(field, WireType::SixtyFourBit, buffer);
    buffer.extend_from_slice(&value.to_le_bytes());
}

/// A `KeyValue` whose `AnyValue` is the already encoded `value_field` (its tag included).
fn put_attribute(buffer: &mut Vec<u8>, field: u32, key: &str, any_value: &[u8]) {
    let length = 1
        + encoded_len_varint(key.len() as u64)
        + key.len()
        + 1
        + encoded_len_varint(any_value.len() as u64)
        + any_value.len();
    encode_key(field, WireType::LengthDelimited, buffer);
    encode_varint(length as u64, buffer);
    put_bytes(buffer, 1, key.as_bytes());
    put_bytes(buffer, 2, any_value);
}

fn put_string_attribute(buffer: &mut Vec<u8>, field: u32, key: &str, value: &str) {
    let mut any_value = [0u8; 16];
    let mut head = &mut any_value[..];
    // AnyValue.string_value (1): its tag and length, then the text itself.
    encode_key(1, WireType::LengthDelimited, &mut head);
    encode_varint(value.len() as u64, &mut head);
    let head_len = 16 - head.len();
    let any_len = head_len + value.len();
    let length = 1
        + encoded_len_varint(key.len() as u64)
        + key.len()
        + 1
        + encoded_len_varint(any_len as u64)
        + any_len;
    encode_key(field, WireType::LengthDelimited, buffer);
    encode_varint(length as u64, buffer);
    put_bytes(buffer, 1, key.as_bytes());
    encode_key(2, WireType::LengthDelimited, buffer);
    encode_varint(any_len as u64, buffer);
    buffer.extend_from_slice(&any_value[..head_len]);
    buffer.extend_from_slice(value.as_bytes());
}

fn put_int_attribute(buffer: &mut Vec<u8>, field: u32, key: &str, value: i64) {
    let mut any_value = [0u8; 11];
    let mut rest = &mut any_value[..];
    // AnyValue.int_value (3).
    encode_key(3, WireType::Varint, &mut rest);
    encode_varint(value as u64, &mut rest);
    let len = 11 - rest.len();
    put_attribute(buffer, field, key, &any_value[..len]);
}

/// One OTLP `Span`.
fn encode_span(finished: &FinishedSpan, buffer: &mut Vec<u8>) {
    let span = &finished.span;
    put_bytes(buffer, 1, &span.trace_id.to_be_bytes());
    put_bytes(buffer, 2, &span.span_id.to_be_bytes());
    if span.parent_span_id != 0 {
        put_bytes(buffer, 4, &span.parent_span_id.to_be_bytes());
    }
    match &span.route {
        Some(route) => {
            let route = route.as_str();
            encode_key(5, WireType::LengthDelimited, buffer);
            encode_varint((span.method.len() + 1 + route.len()) as u64, buffer);
            buffer.extend_from_slice(span.method.as_bytes());
            buffer.push(b' ');
            buffer.extend_from_slice(route.as_bytes());
        }
        None => put_bytes(buffer, 5, span.method.as_bytes()),
    }
    // SPAN_KIND_SERVER.
    encode_key(6, WireType::Varint, buffer);
    encode_varint(2, buffer);
    put_fixed64(buffer, 7, span.start_unix_nanos);
    put_fixed64(buffer, 8, finished.end_unix_nanos);
    put_string_attribute(buffer, 9, "http.request.method", span.method);
    put_string_attribute(buffer, 9, "url.path", &span.path);
    put_string_attribute(buffer, 9, "url.scheme", "http");
    put_string_attribute(buffer, 9, "network.protocol.version", span.protocol_version);
    put_int_attribute(
        buffer,
        9,
        "http.response.status_code",
        i64::from(span.status),
    );
    put_int_attribute(
        buffer,
        9,
        "http.response.body.size",
        i64::try_from(finished.response_size).unwrap_or(i64::MAX),
    );
    if let Some(route) = &span.route {
        put_string_attribute(buffer, 9, "http.route", route.as_str());
    }
    if let Some(address) = &span.server_address {
        put_string_attribute(buffer, 9, "server.address", address);
    }
    if let Some(agent) = &span.user_agent {
        put_string_attribute(buffer, 9, "user_agent.original", agent);
    }
    if finished.aborted {
        // AnyValue.bool_value (2) = true.
        put_attribute(buffer, 9, "http.response.aborted", &[0x10, 0x01]);
    }
    // Flags (16, fixed32): sampled, and "the parent is remote" known (0x100) with the
    // remote bit (0x200) set when there is a parent.
    let remote = if span.parent_span_id != 0 { 0x200 } else { 0 };
    encode_key(16, WireType::ThirtyTwoBit, buffer);
    buffer.extend_from_slice(&(0x101_u32 | remote).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_read_strictly() {
        let valid = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        assert_eq!(
            parse_traceparent(valid),
            Some((0x0af7651916cd43dd8448eb211c80319c, 0xb7ad6b7169203331, true))
        );
        let unsampled = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
        assert_eq!(parse_traceparent(unsampled).map(|p| p.2), Some(false));
        assert_eq!(
            parse_traceparent(b"00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"),
            None
        );
        assert_eq!(
            parse_traceparent(b"00-00000000000000000000000000000000-b7ad6b7169203331-01"),
            None
        );
        assert_eq!(parse_traceparent(b"00-0af7"), None);
    }

    #[test]
    fn observations_land_in_their_bucket_with_the_exemplar() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_millis(7), Some((5, 6)));
        histogram.observe(Duration::from_secs(20), None);
        assert_eq!(histogram.counts[1].load(Ordering::Relaxed), 1);
        assert_eq!(histogram.counts[BUCKETS.len()].load(Ordering::Relaxed), 1);
        assert_eq!(histogram.exemplars[1][1].load(Ordering::Relaxed), 5);
        assert_eq!(histogram.exemplars[1][2].load(Ordering::Relaxed), 6);
        assert_eq!(histogram.sum_micros.load(Ordering::Relaxed), 20_007_000);
    }

    /// The encoder's output, read back with opentelemetry-proto's generated types.
    #[test]
    fn export_requests_decode_as_otlp() {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use opentelemetry_proto::tonic::common::v1::any_value::Value;
        use prost::Message as _;

        let shared = Arc::new(Shared {
            histogram: Histogram::default(),
            queue: ArrayQueue::new(4),
            dropped: AtomicU64::new(0),
            stop: Arc::new(AtomicBool::new(false)),
        });
        let exporter = Exporter {
            shared,
            service_name: "svc",
            collector: CollectorConnection::new("http://127.0.0.1:1"),
        };
        let span = |aborted| FinishedSpan {
            span: Box::new(SpanInProgress {
                trace_id: 0x0af7651916cd43dd8448eb211c80319c,
                span_id: 7,
                parent_span_id: 9,
                start_unix_nanos: 1_000,
                method: "GET",
                route: None,
                path: "/users/1".into(),
                server_address: Some("127.0.0.1:8080".into()),
                user_agent: Some("a".repeat(200)),
                protocol_version: "1.1",
                status: 200,
            }),
            end_unix_nanos: 3_000,
            response_size: 300,
            aborted,
        };
        let bytes = exporter.encode(vec![span(false), span(true)]);
        let request = ExportTraceServiceRequest::decode(bytes.as_slice()).expect("valid OTLP");
        let resource_spans = &request.resource_spans[0];
        let resource = resource_spans.resource.as_ref().expect("resource");
        assert_eq!(resource.attributes[0].key, "service.name");
        let spans = &resource_spans.scope_spans[0].spans;
        assert_eq!(spans.len(), 2);
        let first = &spans[0];
        assert_eq!(
            first.trace_id,
            0x0af7651916cd43dd8448eb211c80319c_u128.to_be_bytes()
        );
        assert_eq!(first.span_id, 7_u64.to_be_bytes());
        assert_eq!(first.parent_span_id, 9_u64.to_be_bytes());
        assert_eq!(first.name, "GET");
        assert_eq!(first.kind, 2);
        assert_eq!(
            (first.start_time_unix_nano, first.end_time_unix_nano),
            (1_000, 3_000)
        );
        assert_eq!(first.flags, 0x301);
        let value = |span: &opentelemetry_proto::tonic::trace::v1::Span, key: &str| {
            span.attributes
                .iter()
                .find(|attribute| attribute.key == key)
                .and_then(|attribute| attribute.value.clone())
                .and_then(|value| value.value)
        };
        assert_eq!(
            value(first, "user_agent.original"),
            Some(Value::StringValue("a".repeat(200)))
        );
        assert_eq!(
            value(first, "http.response.body.size"),
            Some(Value::IntValue(300))
        );
        assert_eq!(value(first, "http.response.aborted"), None);
        assert_eq!(
            value(&spans[1], "http.response.aborted"),
            Some(Value::BoolValue(true))
        );
    }
}
