//! Helpers shared by the integration tests: collectors and contexts, an in-memory log writer,
//! span lookups and typed attribute accessors, and (for the axum tests) a loopback server, a
//! hyper client and bounded waits for spans.
//!
//! Every wait here is bounded: requests by [`REQUEST_TIMEOUT`], span polling by [`SPAN_WAIT`].

// Each test binary uses its own part of the harness.
#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use trace_core::{InMemoryCollector, KeyValue, Span, SpanContext, TraceFlags, Value};
use tracing_subscriber::fmt::MakeWriter;

/// Longest wait for one request and its whole response body.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for spans to reach the collector (the server span ends on the server task when
/// the response body ends, possibly a moment after the client has read it).
pub(crate) const SPAN_WAIT: Duration = Duration::from_secs(3);
/// Polling step while waiting for spans.
pub(crate) const SPAN_STEP: Duration = Duration::from_millis(5);
/// How long to watch for spans that should *not* appear (or for extra ones).
pub(crate) const QUIET_PERIOD: Duration = Duration::from_millis(150);

/// A collector large enough for any one test.
pub(crate) fn collector() -> Arc<InMemoryCollector> {
    Arc::new(InMemoryCollector::new(10_000))
}

/// A new sampled root context whose spans go to `collector`.
pub(crate) fn sampled(collector: &Arc<InMemoryCollector>) -> SpanContext {
    SpanContext::new_root(TraceFlags::SAMPLED).with_collector(collector.clone())
}

/// A new unsampled root context (with a collector, which must receive nothing).
pub(crate) fn unsampled(collector: &Arc<InMemoryCollector>) -> SpanContext {
    SpanContext::new_root(TraceFlags::EMPTY).with_collector(collector.clone())
}

/// The span of `spans` with this name (exactly one expected).
pub(crate) fn span_named<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    let found: Vec<&Span> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(
        found.len(),
        1,
        "one span named {name:?} expected in {spans:#?}"
    );
    found[0]
}

/// The only span the collector holds.
pub(crate) fn only_span(collector: &InMemoryCollector) -> Span {
    let spans = collector.spans();
    assert_eq!(spans.len(), 1, "exactly one span expected: {spans:#?}");
    spans.into_iter().next().expect("one span")
}

/// A string attribute.
pub(crate) fn attr_str<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    match span.attribute(key)? {
        Value::String(s) => Some(s.as_str()),
        other => panic!("attribute {key} is not a string: {other:?}"),
    }
}

/// An integer attribute.
pub(crate) fn attr_i64(span: &Span, key: &str) -> Option<i64> {
    match span.attribute(key)? {
        Value::I64(i) => Some(*i),
        other => panic!("attribute {key} is not an integer: {other:?}"),
    }
}

/// A boolean attribute.
pub(crate) fn attr_bool(span: &Span, key: &str) -> Option<bool> {
    match span.attribute(key)? {
        Value::Bool(b) => Some(*b),
        other => panic!("attribute {key} is not a boolean: {other:?}"),
    }
}

/// A float attribute.
pub(crate) fn attr_f64(span: &Span, key: &str) -> Option<f64> {
    match span.attribute(key)? {
        Value::F64(f) => Some(*f),
        other => panic!("attribute {key} is not a float: {other:?}"),
    }
}

/// `value` with any string held as an owned string. Comparisons do not need it (`StringValue`
/// compares by text, however the string is held); it keeps expected values simple to write.
pub(crate) fn normalized(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::from(s.as_str().to_owned()),
        other => other.clone(),
    }
}

/// `attributes` as `(key, value)` pairs, string values [`normalized`].
pub(crate) fn pairs(attributes: &[KeyValue]) -> Vec<(String, Value)> {
    attributes
        .iter()
        .map(|kv| (kv.key.to_string(), normalized(&kv.value)))
        .collect()
}

/// A string value, as [`normalized`] holds it.
pub(crate) fn text(s: &str) -> Value {
    Value::from(s.to_owned())
}

/// Log output kept in memory: a `MakeWriter` for `fmt::layer().with_writer(..)`.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Everything written so far.
    pub(crate) fn contents(&self) -> String {
        String::from_utf8(self.lock().clone()).expect("log output is UTF-8")
    }

    /// Everything written so far, line by line.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.contents().lines().map(str::to_owned).collect()
    }

    /// The only line containing `needle`.
    pub(crate) fn line_with(&self, needle: &str) -> String {
        let lines: Vec<String> = self
            .lines()
            .into_iter()
            .filter(|line| line.contains(needle))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "one log line containing {needle:?} expected, got {lines:#?}"
        );
        lines.into_iter().next().expect("one line")
    }
}

/// One writer handed out by [`LogBuffer`].
#[derive(Debug)]
pub(crate) struct LogWriter(LogBuffer);

impl io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogBuffer {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogWriter(self.clone())
    }
}

/// Splits a text log line into its `trace_id` and `span_id` prefix (checking the shape:
/// `trace_id=<32 hex> span_id=<16 hex> `) and the rest; `None` when the line has no prefix.
pub(crate) fn text_ids(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix("trace_id=")?;
    let (trace_id, rest) = rest.split_at(32);
    let rest = rest
        .strip_prefix(" span_id=")
        .unwrap_or_else(|| panic!("span_id after trace_id in {line:?}"));
    let (span_id, rest) = rest.split_at(16);
    assert!(rest.starts_with(' '), "a space after the ids in {line:?}");
    for id in [trace_id, span_id] {
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "lower-case hex ids in {line:?}"
        );
    }
    Some((trace_id.to_owned(), span_id.to_owned()))
}

/// Serves `app` with `axum::serve` on a fresh loopback port, until the runtime ends.
pub(crate) async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("bound address");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("axum server");
    });
    addr
}

/// A response read to its end.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

/// `GET http://{addr}{path}` with a real hyper client, read to its end within
/// [`REQUEST_TIMEOUT`].
pub(crate) async fn get(addr: SocketAddr, path: &str) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = Request::get(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::new()))
        .expect("valid test request");
    let exchange = async {
        let response = client.request(request).await.expect("response head");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("response body").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .expect("request finished in time")
}

/// Waits (bounded) until the collector holds at least `count` spans, then for a short quiet
/// period so that extra spans would show up too, and returns every stored span.
pub(crate) async fn wait_for_spans(collector: &InMemoryCollector, count: usize) -> Vec<Span> {
    let steps = SPAN_WAIT.as_millis() / SPAN_STEP.as_millis();
    for _ in 0..steps {
        if collector.len() >= count {
            tokio::time::sleep(SPAN_STEP * 4).await;
            return collector.spans();
        }
        tokio::time::sleep(SPAN_STEP).await;
    }
    panic!(
        "expected {count} spans within {SPAN_WAIT:?}, the collector holds {}: {:#?}",
        collector.len(),
        collector.spans()
    );
}

/// Watches the collector for [`QUIET_PERIOD`] and asserts that no span arrives.
pub(crate) async fn assert_no_spans(collector: &InMemoryCollector) {
    tokio::time::sleep(QUIET_PERIOD).await;
    assert!(
        collector.is_empty(),
        "no span expected, got {:#?}",
        collector.spans()
    );
}
