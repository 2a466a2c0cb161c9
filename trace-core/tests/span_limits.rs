//! `SpanRecorder`'s per-span limits (attributes, events, links: the first ones kept, the rest
//! dropped and counted) and `replace_attribute`, which keeps one value per key.

use std::sync::Arc;

use trace_core::{
    InMemoryCollector, KeyValue, Link, Span, SpanContext, SpanId, SpanKind, SpanRecorder,
    TraceFlags, TraceId, TraceState, Value,
};

fn recorder(collector: &Arc<InMemoryCollector>) -> SpanRecorder {
    let context = SpanContext::new_root(TraceFlags::SAMPLED).with_collector(collector.clone());
    SpanRecorder::start(context, "worker loop", SpanKind::Internal)
}

fn only_span(collector: &InMemoryCollector) -> Span {
    let mut spans = collector.spans();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    spans.remove(0)
}

fn link(span_id: SpanId) -> Link {
    Link {
        trace_id: TraceId::random(),
        span_id,
        trace_state: TraceState::EMPTY,
        attributes: Vec::new(),
    }
}

#[test]
fn the_limits_are_opentelemetrys_defaults() {
    assert_eq!(SpanRecorder::MAX_ATTRIBUTES, 128);
    assert_eq!(SpanRecorder::MAX_EVENTS, 128);
    assert_eq!(SpanRecorder::MAX_LINKS, 128);
}

#[test]
fn attributes_beyond_the_limit_are_dropped_and_counted() {
    let collector = Arc::new(InMemoryCollector::new(10));
    let mut span = recorder(&collector);
    for index in 0..130_i64 {
        span.set_attribute(format!("key.{index}"), index);
    }
    let mut made = 0;
    span.set_attribute_with("lazy", || {
        made += 1;
        true
    });
    assert_eq!(made, 0, "a value that would be dropped is not made");
    span.replace_attribute("new.key", 1_i64);
    // A key already held is replaced in place, full or not.
    span.replace_attribute("key.5", -5_i64);
    assert_eq!(span.dropped_attributes_count(), 4);
    assert_eq!(span.dropped_events_count(), 0);
    assert_eq!(span.dropped_links_count(), 0);
    span.end();

    let span = only_span(&collector);
    assert_eq!(span.attributes.len(), 128);
    let expected: Vec<KeyValue> = (0..128_i64)
        .map(|index| {
            let value = if index == 5 { -5 } else { index };
            KeyValue::new(format!("key.{index}"), value)
        })
        .collect();
    assert_eq!(span.attributes, expected);
}

#[test]
fn events_and_links_beyond_the_limit_are_dropped_and_counted() {
    let collector = Arc::new(InMemoryCollector::new(10));
    let mut span = recorder(&collector);
    for index in 0..200_i64 {
        span.add_event("tick", vec![KeyValue::new("index", index)]);
    }
    let linked: Vec<SpanId> = (0..131).map(|_| SpanId::random()).collect();
    for &span_id in &linked {
        span.add_link(link(span_id));
    }
    assert_eq!(span.dropped_events_count(), 72);
    assert_eq!(span.dropped_links_count(), 3);
    assert_eq!(span.dropped_attributes_count(), 0);
    span.end();

    let span = only_span(&collector);
    assert_eq!(span.events.len(), 128);
    for (index, event) in span.events.iter().enumerate() {
        assert_eq!(event.name, "tick");
        assert_eq!(event.attributes, [KeyValue::new("index", index as i64)]);
    }
    let kept: Vec<SpanId> = span.links.iter().map(|l| l.span_id).collect();
    assert_eq!(kept, linked[..128]);
    assert_eq!(
        span.dropped,
        trace_core::DroppedCounts {
            attributes: 0,
            events: 72,
            links: 3,
        },
        "the finished span carries the counts for exporters"
    );
}

#[test]
fn replace_attribute_keeps_one_value_per_key_in_first_set_order() {
    let collector = Arc::new(InMemoryCollector::new(10));
    let mut span = recorder(&collector);
    span.set_attribute("http.request.method", "GET");
    for attempt in 0..4_i64 {
        span.replace_attribute("attempt", attempt);
    }
    span.replace_attribute("http.request.method", "POST");
    span.replace_attribute("outcome", "ok");
    span.end();

    let span = only_span(&collector);
    assert_eq!(
        span.attributes,
        [
            KeyValue::new("http.request.method", "POST"),
            KeyValue::new("attempt", 3_i64),
            KeyValue::new("outcome", "ok"),
        ]
    );
    assert_eq!(span.attribute("attempt"), Some(&Value::I64(3)));
}

#[test]
fn set_attribute_appends_without_looking_for_the_key() {
    let collector = Arc::new(InMemoryCollector::new(10));
    let mut span = recorder(&collector);
    span.set_attribute("k", 1_i64);
    span.set_attribute("k", 2_i64);
    span.end();
    assert_eq!(
        only_span(&collector).attributes,
        [KeyValue::new("k", 1_i64), KeyValue::new("k", 2_i64)]
    );
}

#[test]
fn an_unsampled_recorder_counts_nothing() {
    let collector = Arc::new(InMemoryCollector::new(10));
    let context = SpanContext::new_root(TraceFlags::EMPTY).with_collector(collector.clone());
    let mut span = SpanRecorder::start(context, "ignored", SpanKind::Internal);
    for index in 0..200_i64 {
        span.add_event("tick", Vec::new());
        span.replace_attribute("index", index);
        span.add_link(link(SpanId::random()));
    }
    assert_eq!(span.dropped_attributes_count(), 0);
    assert_eq!(span.dropped_events_count(), 0);
    assert_eq!(span.dropped_links_count(), 0);
    span.end();
    assert!(collector.spans().is_empty());
}
