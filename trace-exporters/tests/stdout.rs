//! The stdout exporter's lines, read back with serde_json.

#![cfg(feature = "stdout")]

use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value as Json, json};
use trace_core::{
    Array, Collector, Event, KeyValue, Link, Span, SpanId, SpanKind, Status, TraceFlags, TraceId,
    TraceState,
};
use trace_exporters::pipeline::drop_reason;
use trace_exporters::stdout::StdoutExporter;
use trace_exporters::{BatchExporter, Resource, SpanExporter};

/// A writer whose bytes the test reads afterwards.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn lines(&self) -> Vec<Json> {
        let bytes = self.0.lock().expect("buffer lock").clone();
        let text = String::from_utf8(bytes).expect("UTF-8");
        assert!(text.ends_with('\n'), "every line ends with a newline");
        text.lines()
            .map(|line| serde_json::from_str(line).expect("each line is one JSON object"))
            .collect()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("buffer lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const START_NANOS: u64 = 1_700_000_000_123_456_789;

fn at(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

fn rich_span() -> Span {
    Span {
        name: "GET /items/{id}".into(),
        kind: SpanKind::Server,
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736"
            .parse()
            .expect("trace id"),
        span_id: "00f067aa0ba902b7".parse().expect("span id"),
        parent_span_id: Some("b7ad6b7169203331".parse().expect("span id")),
        flags: TraceFlags::SAMPLED,
        trace_state: "vendor=abc,other=x".parse().expect("trace state"),
        debug_id: Some("dbg-1".into()),
        start_time: at(START_NANOS),
        duration: Duration::from_nanos(1_500_000),
        status: Status::error("upstream failed"),
        attributes: vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.response.status_code", 503i64),
            KeyValue::new("retry", true),
            KeyValue::new("ratio", 0.25),
            KeyValue::new("not_a_number", f64::NAN),
            KeyValue::new(
                "tags",
                Array::String(vec!["a".into(), String::from("b").into()]),
            ),
            KeyValue::new("codes", Array::I64(vec![1, -2])),
            KeyValue::new("weights", Array::F64(vec![0.5, f64::INFINITY])),
            KeyValue::new("flags", Array::Bool(vec![true, false])),
        ],
        events: vec![Event {
            name: "exception".into(),
            time: at(START_NANOS + 1_000),
            attributes: vec![KeyValue::new("exception.message", "boom")],
        }],
        links: vec![Link {
            trace_id: TraceId::from_u128(0xabc).expect("non-zero"),
            span_id: SpanId::from_u64(0xdef).expect("non-zero"),
            trace_state: TraceState::default(),
            attributes: vec![KeyValue::new("link.kind", "follows")],
        }],
        dropped: Default::default(),
    }
}

#[tokio::test]
async fn each_span_is_one_json_line_with_every_field() {
    let captured = Captured::default();
    let resource = Resource::new("checkout").with_attribute("service.version", "1.4.2");
    let mut exporter = StdoutExporter::new(resource).with_writer(Box::new(captured.clone()));
    assert_eq!(exporter.kind(), "stdout");

    let mut root = rich_span();
    root.span_id = SpanId::from_u64(1).expect("non-zero");
    root.parent_span_id = None;
    root.kind = SpanKind::Client;
    root.status = Status::Ok;
    root.trace_state = TraceState::default();
    root.debug_id = None;
    root.attributes.clear();
    root.events.clear();
    root.links.clear();
    root.dropped = trace_core::DroppedCounts {
        attributes: 0,
        events: 4,
        links: 0,
    };
    let outcome = exporter
        .export(&[rich_span(), root])
        .await
        .expect("written");
    assert_eq!(outcome.dropped, 0);

    let lines = captured.lines();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["dropped_events_count"], 4);
    assert!(lines[1].get("dropped_attributes_count").is_none());
    assert!(lines[0].get("dropped_events_count").is_none());
    let span = &lines[0];
    assert_eq!(span["name"], "GET /items/{id}");
    assert_eq!(span["kind"], "server");
    assert_eq!(span["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(span["span_id"], "00f067aa0ba902b7");
    assert_eq!(span["parent_span_id"], "b7ad6b7169203331");
    assert_eq!(span["sampled"], true);
    assert_eq!(span["trace_state"], "vendor=abc,other=x");
    assert_eq!(span["debug_id"], "dbg-1");
    assert_eq!(span["start_time_unix_nano"], START_NANOS);
    assert_eq!(span["end_time_unix_nano"], START_NANOS + 1_500_000);
    assert_eq!(span["duration_nano"], 1_500_000);
    assert_eq!(
        span["status"],
        json!({"code": "error", "message": "upstream failed"})
    );
    assert_eq!(
        span["attributes"],
        json!({
            "http.request.method": "GET",
            "http.response.status_code": 503,
            "retry": true,
            "ratio": 0.25,
            "not_a_number": "NaN",
            "tags": ["a", "b"],
            "codes": [1, -2],
            "weights": [0.5, "inf"],
            "flags": [true, false],
        })
    );
    // Integers stay integers and floats stay floats.
    assert!(span["attributes"]["http.response.status_code"].is_i64());
    assert!(span["attributes"]["ratio"].is_f64());
    assert_eq!(
        span["events"],
        json!([{
            "name": "exception",
            "time_unix_nano": START_NANOS + 1_000,
            "attributes": {"exception.message": "boom"},
        }])
    );
    assert_eq!(
        span["links"],
        json!([{
            "trace_id": "00000000000000000000000000000abc",
            "span_id": "0000000000000def",
            "attributes": {"link.kind": "follows"},
        }])
    );
    assert_eq!(span["service_name"], "checkout");
    assert_eq!(span["resource"]["service.version"], "1.4.2");
    assert_eq!(span["resource"]["telemetry.sdk.name"], "tracewire");

    let root = &lines[1];
    assert_eq!(root["kind"], "client");
    assert_eq!(root["parent_span_id"], Json::Null);
    assert_eq!(root["status"], json!({"code": "ok"}));
    assert!(root.get("trace_state").is_none());
    assert!(root.get("debug_id").is_none());
    assert_eq!(root["attributes"], json!({}));
    assert_eq!(root["events"], json!([]));
    assert_eq!(root["links"], json!([]));
}

#[tokio::test]
async fn through_the_pipeline_every_span_gets_a_line() {
    let captured = Captured::default();
    let exporter =
        StdoutExporter::new(Resource::new("checkout")).with_writer(Box::new(captured.clone()));
    let batch = BatchExporter::builder(exporter).max_batch_size(4).build();
    for n in 1..=10 {
        let mut span = rich_span();
        span.span_id = SpanId::from_u64(n).expect("non-zero");
        batch.collect(span);
    }
    let report = tokio::time::timeout(
        Duration::from_secs(10),
        batch.shutdown(Duration::from_secs(10)),
    )
    .await
    .expect("within the 10 s guard");
    assert_eq!((report.exported, report.lost), (10, 0));
    let span_ids: Vec<String> = captured
        .lines()
        .iter()
        .map(|line| line["span_id"].as_str().expect("span id").to_owned())
        .collect();
    let expected: Vec<String> = (1..=10u64).map(|n| format!("{n:016x}")).collect();
    assert_eq!(span_ids, expected);
}

/// A writer that always fails, like a closed pipe.
struct Broken;

impl Write for Broken {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::BrokenPipe, "closed"))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_failing_writer_drops_the_batch_without_retrying() {
    let exporter = StdoutExporter::new(Resource::new("checkout")).with_writer(Box::new(Broken));
    let batch = BatchExporter::builder(exporter).build();
    batch.collect(rich_span());
    let report = tokio::time::timeout(Duration::from_secs(10), batch.force_flush())
        .await
        .expect("within the 10 s guard");
    assert_eq!((report.exported, report.dropped), (0, 1));
    assert_eq!(batch.dropped_for(drop_reason::REJECTED), 1);
    assert_eq!(batch.failed_batches(), 1);
}
