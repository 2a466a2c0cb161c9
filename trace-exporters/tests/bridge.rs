//! The opentelemetry_sdk bridge, checked with the SDK's own in-memory exporter.

#![cfg(feature = "opentelemetry")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanKind as OtelKind, Status as OtelStatus, TraceFlags as OtelFlags};
use opentelemetry::{Array as OtelArray, Key, KeyValue as OtelKeyValue, Value as OtelValue};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use trace_core::{
    Array, Collector, Event, KeyValue, Link, Span, SpanId, SpanKind, Status, TraceFlags, TraceId,
    TraceState,
};
use trace_exporters::bridge::OpenTelemetryExporter;
use trace_exporters::pipeline::drop_reason;
use trace_exporters::{BatchExporter, Resource, SpanExporter};

/// The in-memory exporter, also keeping the resource it was given (which the SDK's own
/// exporter does not let a test read).
#[derive(Debug, Clone, Default)]
struct Recording {
    spans: InMemorySpanExporter,
    resource: Arc<Mutex<Option<opentelemetry_sdk::Resource>>>,
}

impl opentelemetry_sdk::trace::SpanExporter for Recording {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.spans.export(batch).await
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        *self.resource.lock().expect("resource lock") = Some(resource.clone());
        self.spans.set_resource(resource);
    }
}

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
        debug_id: None,
        start_time: at(1_700_000_000_000_000_000),
        duration: Duration::from_millis(3),
        status: Status::error("upstream failed"),
        attributes: vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.route", Arc::<str>::from("/items/{id}")),
            KeyValue::new("owned", String::from("text")),
            KeyValue::new("http.response.status_code", 503i64),
            KeyValue::new("retry", true),
            KeyValue::new("ratio", 0.25),
            KeyValue::new(
                "tags",
                Array::String(vec!["a".into(), String::from("b").into()]),
            ),
            KeyValue::new("codes", Array::I64(vec![1, -2])),
            KeyValue::new("weights", Array::F64(vec![0.5, 1.5])),
            KeyValue::new("flags", Array::Bool(vec![true, false])),
        ],
        events: vec![Event {
            name: "exception".into(),
            time: at(1_700_000_000_001_000_000),
            attributes: vec![KeyValue::new("exception.message", "boom")],
        }],
        links: vec![Link {
            trace_id: TraceId::from_u128(0xabc).expect("non-zero"),
            span_id: SpanId::from_u64(0xdef).expect("non-zero"),
            trace_state: "k=v".parse().expect("trace state"),
            attributes: vec![KeyValue::new("link.kind", "follows")],
        }],
        dropped: trace_core::DroppedCounts {
            attributes: 1,
            events: 2,
            links: 3,
        },
    }
}

fn kv(key: &'static str, value: impl Into<OtelValue>) -> OtelKeyValue {
    OtelKeyValue::new(key, value)
}

#[tokio::test]
async fn every_field_is_converted() {
    let sdk = Recording::default();
    let resource = Resource::new("checkout").with_attribute("service.version", "1.4.2");
    let mut exporter = OpenTelemetryExporter::new(sdk.clone(), &resource);
    assert_eq!(exporter.kind(), "opentelemetry");

    let mut client = rich_span();
    client.kind = SpanKind::Client;
    client.span_id = SpanId::from_u64(7).expect("non-zero");
    client.flags = TraceFlags::EMPTY;
    client.status = Status::Ok;
    let mut root = rich_span();
    root.kind = SpanKind::Internal;
    root.parent_span_id = None;
    root.status = Status::Unset;
    root.trace_state = TraceState::default();
    exporter
        .export(&[rich_span(), client, root])
        .await
        .expect("exported");

    let spans = sdk.spans.get_finished_spans().expect("spans");
    assert_eq!(spans.len(), 3);
    let span = &spans[0];
    let context = &span.span_context;
    assert_eq!(
        context.trace_id().to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(context.span_id().to_string(), "00f067aa0ba902b7");
    assert_eq!(context.trace_flags(), OtelFlags::SAMPLED);
    assert!(!context.is_remote());
    assert_eq!(context.trace_state().header(), "vendor=abc,other=x");
    assert_eq!(span.parent_span_id.to_string(), "b7ad6b7169203331");
    assert!(
        span.parent_span_is_remote,
        "a server span's parent came from elsewhere"
    );
    assert_eq!(span.span_kind, OtelKind::Server);
    assert_eq!(span.name, "GET /items/{id}");
    assert_eq!(
        (
            span.dropped_attributes_count,
            span.events.dropped_count,
            span.links.dropped_count
        ),
        (1, 2, 3),
        "what the recorder's limits dropped"
    );
    assert_eq!(span.start_time, at(1_700_000_000_000_000_000));
    assert_eq!(span.end_time, at(1_700_000_000_003_000_000));
    assert_eq!(
        span.status,
        OtelStatus::Error {
            description: "upstream failed".into()
        }
    );
    assert_eq!(
        span.attributes,
        vec![
            kv("http.request.method", "GET"),
            kv("http.route", "/items/{id}"),
            kv("owned", "text"),
            kv("http.response.status_code", 503i64),
            kv("retry", true),
            kv("ratio", 0.25),
            kv(
                "tags",
                OtelValue::Array(OtelArray::String(vec!["a".into(), "b".into()]))
            ),
            kv("codes", OtelValue::Array(OtelArray::I64(vec![1, -2]))),
            kv("weights", OtelValue::Array(OtelArray::F64(vec![0.5, 1.5]))),
            kv(
                "flags",
                OtelValue::Array(OtelArray::Bool(vec![true, false]))
            ),
        ]
    );
    assert_eq!(span.events.len(), 1);
    let event = &span.events[0];
    assert_eq!(event.name, "exception");
    assert_eq!(event.timestamp, at(1_700_000_000_001_000_000));
    assert_eq!(event.attributes, vec![kv("exception.message", "boom")]);
    assert_eq!(span.links.len(), 1);
    let link = &span.links[0];
    assert_eq!(
        link.span_context.trace_id().to_string(),
        "00000000000000000000000000000abc"
    );
    assert_eq!(link.span_context.span_id().to_string(), "0000000000000def");
    assert_eq!(link.span_context.trace_state().header(), "k=v");
    assert!(link.span_context.is_remote());
    assert_eq!(link.attributes, vec![kv("link.kind", "follows")]);
    assert_eq!(span.instrumentation_scope.name(), "tracewire");
    assert_eq!(
        span.instrumentation_scope.version(),
        Some(trace_exporters::SDK_VERSION)
    );

    let client = &spans[1];
    assert_eq!(client.span_kind, OtelKind::Client);
    assert_eq!(client.span_context.trace_flags(), OtelFlags::default());
    assert!(!client.span_context.is_sampled());
    assert!(!client.parent_span_is_remote);
    assert_eq!(client.status, OtelStatus::Ok);

    let root = &spans[2];
    assert_eq!(root.span_kind, OtelKind::Internal);
    assert_eq!(root.parent_span_id, opentelemetry::trace::SpanId::INVALID);
    assert!(!root.parent_span_is_remote);
    assert_eq!(root.status, OtelStatus::Unset);
    assert_eq!(root.span_context.trace_state().header(), "");

    let resource = sdk
        .resource
        .lock()
        .expect("resource lock")
        .clone()
        .expect("the bridge set the resource");
    assert_eq!(
        resource.get(&Key::from_static_str("service.name")),
        Some(OtelValue::from("checkout"))
    );
    assert_eq!(
        resource.get(&Key::from_static_str("service.version")),
        Some(OtelValue::from("1.4.2"))
    );
    assert_eq!(
        resource.get(&Key::from_static_str("telemetry.sdk.name")),
        Some(OtelValue::from("tracewire"))
    );
}

#[tokio::test]
async fn through_the_pipeline_with_shutdown() {
    let sdk = InMemorySpanExporter::default();
    let exporter = OpenTelemetryExporter::new(sdk.clone(), &Resource::new("checkout"));
    let batch = BatchExporter::builder(exporter).max_batch_size(2).build();
    for n in 1..=5 {
        let mut span = rich_span();
        span.span_id = SpanId::from_u64(n).expect("non-zero");
        batch.collect(span);
    }
    let flushed = tokio::time::timeout(Duration::from_secs(10), batch.force_flush())
        .await
        .expect("within the 10 s guard");
    assert_eq!(flushed.dropped, 0);
    assert_eq!(batch.exported(), 5);
    let mut ids: Vec<String> = sdk
        .get_finished_spans()
        .expect("spans")
        .iter()
        .map(|s| s.span_context.span_id().to_string())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        (1..=5u64).map(|n| format!("{n:016x}")).collect::<Vec<_>>()
    );

    let report = tokio::time::timeout(
        Duration::from_secs(10),
        batch.shutdown(Duration::from_secs(10)),
    )
    .await
    .expect("within the 10 s guard");
    assert_eq!(report.lost, 0);
    assert!(sdk.is_shutdown_called());
}

/// Fails with a scripted SDK error once, then delivers.
#[derive(Debug)]
struct FailingOnce {
    error: Mutex<Option<OTelSdkError>>,
    delivered: Mutex<usize>,
}

impl opentelemetry_sdk::trace::SpanExporter for FailingOnce {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let failure = self.error.lock().expect("lock").take();
        match failure {
            Some(error) => Err(error),
            None => {
                *self.delivered.lock().expect("lock") += batch.len();
                Ok(())
            }
        }
    }
}

#[tokio::test]
async fn sdk_errors_map_to_retryable_or_permanent() {
    for (error, retried) in [
        (
            OTelSdkError::InternalFailure("connection refused".into()),
            true,
        ),
        (OTelSdkError::Timeout(Duration::from_secs(1)), true),
        (OTelSdkError::AlreadyShutdown, false),
    ] {
        let sdk = FailingOnce {
            error: Mutex::new(Some(error)),
            delivered: Mutex::new(0),
        };
        let exporter = OpenTelemetryExporter::new(sdk, &Resource::new("checkout"));
        let batch = BatchExporter::builder(exporter)
            .backoff(Duration::from_millis(1), Duration::from_millis(1))
            .build();
        batch.collect(rich_span());
        let report = tokio::time::timeout(Duration::from_secs(10), batch.force_flush())
            .await
            .expect("within the 10 s guard");
        assert_eq!(batch.failed_batches(), 1);
        if retried {
            assert_eq!((report.exported, report.dropped), (1, 0));
        } else {
            assert_eq!(batch.dropped_for(drop_reason::REJECTED), 1);
        }
    }
}
