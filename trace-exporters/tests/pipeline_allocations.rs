//! `collect` allocates nothing beyond the span it is given, on every path: queued, queued with
//! a wake-up for the export task, refused by a full queue, refused after shutdown; so does
//! `collect` for an exporter with a span encoder, once its chunk buffers exist (encoding into a
//! chunk, handing a chunk over, dropping a chunk the queue has no room for); and the OTLP
//! protobuf encoder, once its output buffer has grown, allocates nothing per batch.
//!
//! A file of its own, because `allocation_counter` installs the global allocator.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus_client::registry::Registry;
use trace_core::{
    Collector, Event, KeyValue, Span, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use trace_exporters::pipeline::drop_reason;
use trace_exporters::{BatchExporter, ExportFuture, ExportOutcome, ExporterMetrics, SpanExporter};

#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    fn kind(&self) -> &'static str {
        "discard"
    }

    fn export<'a>(&'a mut self, _batch: &'a [Span]) -> ExportFuture<'a> {
        Box::pin(async { Ok(ExportOutcome::delivered()) })
    }
}

fn server_span(n: u64) -> Span {
    let route: Arc<str> = "/users/{id}".into();
    Span {
        name: "GET /users/{id}".into(),
        kind: SpanKind::Server,
        trace_id: TraceId::random(),
        span_id: SpanId::from_u64(n + 1).expect("non-zero"),
        parent_span_id: None,
        flags: TraceFlags::SAMPLED,
        trace_state: TraceState::default(),
        debug_id: None,
        start_time: SystemTime::now(),
        duration: Duration::from_micros(180),
        status: Status::Unset,
        attributes: vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.route", route),
            KeyValue::new("url.path", String::from("/users/42")),
            KeyValue::new("http.response.status_code", 200i64),
        ],
        events: vec![Event {
            name: "response.headers".into(),
            time: SystemTime::now(),
            attributes: Vec::new(),
        }],
        links: Vec::new(),
        dropped: Default::default(),
    }
}

#[test]
fn collect_allocates_nothing_on_any_path() {
    // The export task stays put until the runtime is driven, so each path is taken for sure.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut registry = Registry::default();
    let metrics = ExporterMetrics::register(&mut registry);
    let batch = BatchExporter::builder(Discard)
        .max_queue_size(4)
        .max_batch_size(2)
        .metrics(&metrics)
        .runtime(runtime.handle().clone())
        .build();

    // Spans 0..4 fill the queue (span 1 completes a batch and wakes the task); 4 and 5 find it
    // full.
    for n in 0..6 {
        let span = server_span(n);
        let allocations = allocation_counter::measure(|| batch.collect(span));
        assert_eq!(allocations.count_total, 0, "collect of span {n}");
    }
    assert_eq!(batch.dropped_for(drop_reason::QUEUE_FULL), 2);

    let report = runtime.block_on(batch.shutdown(Duration::from_secs(10)));
    assert_eq!(report.exported, 4);
    let span = server_span(6);
    let allocations = allocation_counter::measure(|| batch.collect(span));
    assert_eq!(allocations.count_total, 0, "collect after shutdown");
    assert_eq!(batch.dropped_for(drop_reason::CLOSED), 1);
}

#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
#[test]
fn a_warmed_up_otlp_protobuf_encoder_allocates_nothing() {
    use trace_exporters::Resource;
    use trace_exporters::otlp::OtlpEncoder;

    let mut spans: Vec<Span> = (0..64).map(server_span).collect();
    // Inline strings too, as the tower layer records them.
    for span in &mut spans {
        span.attributes.push(KeyValue::new(
            "user_agent.original",
            trace_core::StringValue::copied("curl/8.5.0"),
        ));
    }
    let mut encoder = OtlpEncoder::new(&Resource::new("svc"));
    let mut body = Vec::new();
    encoder.encode_protobuf(&spans, &mut body);
    let first = body.clone();
    for round in 0..3 {
        body.clear();
        let allocations =
            allocation_counter::measure(|| encoder.encode_protobuf(&spans, &mut body));
        assert_eq!(allocations.count_total, 0, "round {round}");
        assert_eq!(body, first, "the same batch encodes the same");
    }
}

/// Offers the OTLP protobuf span encoder, so the pipeline encodes in `collect`; discards.
#[cfg(feature = "otlp-http")]
#[derive(Debug)]
struct EncodingDiscard(Option<trace_exporters::SpanEncodeFn>);

#[cfg(feature = "otlp-http")]
impl SpanExporter for EncodingDiscard {
    fn kind(&self) -> &'static str {
        "encoding_discard"
    }

    fn export<'a>(&'a mut self, _batch: &'a [Span]) -> ExportFuture<'a> {
        Box::pin(async { Ok(ExportOutcome::delivered()) })
    }

    fn span_encoder(&self) -> Option<trace_exporters::SpanEncodeFn> {
        self.0
    }

    fn export_encoded<'a>(
        &'a mut self,
        _batch: &'a trace_exporters::EncodedSpans,
    ) -> ExportFuture<'a> {
        Box::pin(async { Ok(ExportOutcome::delivered()) })
    }
}

#[cfg(feature = "otlp-http")]
#[test]
fn collect_that_encodes_allocates_nothing_once_its_chunks_exist() {
    let encoder = trace_exporters::otlp::OtlpHttpExporter::builder()
        .build_http()
        .expect("exporter")
        .span_encoder();
    assert!(encoder.is_some(), "OTLP protobuf offers a span encoder");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Chunks of 32 spans; 100 spans are three chunks handed over (the third wakes the task)
    // and a partly filled one.
    let batch = BatchExporter::builder(EncodingDiscard(encoder))
        .max_queue_size(96)
        .max_batch_size(64)
        .runtime(runtime.handle().clone())
        .build();
    // The first round makes the chunks; a flush gives them back for reuse.
    for n in 0..100 {
        batch.collect(server_span(n));
    }
    let flushed = runtime.block_on(batch.force_flush());
    assert_eq!(flushed.exported, 100);

    for n in 0..100 {
        let span = server_span(n);
        let allocations = allocation_counter::measure(|| batch.collect(span));
        assert_eq!(allocations.count_total, 0, "collect of span {n}");
    }
    assert_eq!(batch.queue_len(), 100);
    // A fourth full chunk passes the 96-span limit: dropped whole, counted, nothing allocated.
    for n in 100..128 {
        let span = server_span(n);
        let allocations = allocation_counter::measure(|| batch.collect(span));
        assert_eq!(allocations.count_total, 0, "collect of span {n}");
    }
    assert_eq!(batch.dropped_for(drop_reason::QUEUE_FULL), 32);
    let report = runtime.block_on(batch.shutdown(Duration::from_secs(10)));
    assert_eq!((report.exported, report.lost), (96, 0), "{report:?}");
}
