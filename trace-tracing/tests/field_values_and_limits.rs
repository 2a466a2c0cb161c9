//! Field values as attributes — recorded again, too large for an `i64` — and the per-span limits
//! on a long-lived span.

use trace_core::current::enter;
use trace_core::{SpanRecorder, Status, Value};
use trace_tracing::TracewireLayer;
use tracing::field::Empty;
use tracing_subscriber::prelude::*;

mod support;

use support::{collector, only_span, pairs, sampled, text};

/// Runs `f` with `Registry + TracewireLayer` as this thread's subscriber.
fn with_bridge<R>(f: impl FnOnce() -> R) -> R {
    let subscriber = tracing_subscriber::registry().with(TracewireLayer::new());
    tracing::subscriber::with_default(subscriber, f)
}

#[test]
fn a_field_recorded_again_replaces_its_attribute() {
    let collector = collector();
    with_bridge(|| {
        let _current = enter(sampled(&collector));
        let span = tracing::info_span!("fetch", attempt = 0_i64, url = "/a", outcome = Empty);
        for attempt in 1..=3_i64 {
            span.record("attempt", attempt);
        }
        span.record("outcome", "retry");
        span.record("outcome", "ok");
        span.record("url", "/b");
    });
    let span = only_span(&collector);
    // Each key once, where it was first set, with the last value.
    assert_eq!(
        pairs(&span.attributes),
        [
            ("attempt".to_owned(), Value::I64(3)),
            ("url".to_owned(), text("/b")),
            ("outcome".to_owned(), text("ok")),
        ]
    );
}

#[test]
fn integers_that_do_not_fit_an_i64_are_recorded_as_decimal_strings() {
    let collector = collector();
    with_bridge(|| {
        let _current = enter(sampled(&collector));
        let span = tracing::info_span!(
            "lookup",
            key_hash = u64::MAX - 1,
            largest_fitting = i64::MAX as u64,
            small = 7_u64,
            wide_fits = -5_i128,
            wide_low = i128::MIN,
            wide_high = u128::MAX,
            later = Empty,
        );
        span.record("later", u64::MAX);
        span.in_scope(|| tracing::info!(hash = 1_u64 << 63, count = 2_u64, "probe"));
    });
    let span = only_span(&collector);
    assert_eq!(
        pairs(&span.attributes),
        [
            ("key_hash".to_owned(), text("18446744073709551614")),
            ("largest_fitting".to_owned(), Value::I64(i64::MAX)),
            ("small".to_owned(), Value::I64(7)),
            ("wide_fits".to_owned(), Value::I64(-5)),
            (
                "wide_low".to_owned(),
                text("-170141183460469231731687303715884105728")
            ),
            (
                "wide_high".to_owned(),
                text("340282366920938463463374607431768211455")
            ),
            ("later".to_owned(), text("18446744073709551615")),
        ]
    );
    assert_eq!(span.events.len(), 1);
    assert_eq!(
        pairs(&span.events[0].attributes),
        [
            ("hash".to_owned(), text("9223372036854775808")),
            ("count".to_owned(), Value::I64(2)),
        ]
    );
}

#[test]
fn a_long_lived_span_keeps_its_first_events_and_one_attribute_per_field() {
    const ITEMS: u64 = 1_000;
    let collector = collector();
    with_bridge(|| {
        let _current = enter(sampled(&collector));
        let span = tracing::info_span!("worker loop", processed = 0_u64);
        let _entered = span.enter();
        for item in 0..ITEMS {
            tracing::debug!(item, "processed");
            span.record("processed", item + 1);
        }
    });
    let span = only_span(&collector);
    assert_eq!(SpanRecorder::MAX_EVENTS, 128);
    assert_eq!(span.events.len(), SpanRecorder::MAX_EVENTS);
    for (index, event) in span.events.iter().enumerate() {
        assert_eq!(event.name, "processed");
        assert_eq!(
            pairs(&event.attributes),
            [("item".to_owned(), Value::I64(index as i64))]
        );
    }
    assert_eq!(
        pairs(&span.attributes),
        [("processed".to_owned(), Value::I64(ITEMS as i64))]
    );
    assert_eq!(span.status, Status::Unset);
}

#[test]
fn an_error_event_beyond_the_event_limit_still_sets_the_status() {
    let collector = collector();
    with_bridge(|| {
        let _current = enter(sampled(&collector));
        let span = tracing::info_span!("worker loop");
        let _entered = span.enter();
        for item in 0..200_u64 {
            tracing::info!(item, "processed");
        }
        tracing::error!(item = 200_u64, "gave up");
    });
    let span = only_span(&collector);
    assert_eq!(span.events.len(), SpanRecorder::MAX_EVENTS);
    assert_eq!(span.events[127].name, "processed");
    assert_eq!(
        pairs(&span.events[127].attributes),
        [("item".to_owned(), Value::I64(127))]
    );
    assert_eq!(span.status, Status::error("gave up"));
}

#[test]
fn follows_from_links_are_limited_too() {
    let collector = collector();
    with_bridge(|| {
        let _current = enter(sampled(&collector));
        let batch = tracing::info_span!("batch");
        let senders: Vec<tracing::Span> = (0..SpanRecorder::MAX_LINKS + 10)
            .map(|_| tracing::info_span!("message"))
            .collect();
        for sender in &senders {
            batch.follows_from(sender);
        }
        drop(senders);
        drop(batch);
    });
    let spans = collector.spans();
    let batch = spans
        .iter()
        .find(|s| s.name == "batch")
        .expect("the batch span");
    let messages: Vec<_> = spans.iter().filter(|s| s.name == "message").collect();
    assert_eq!(messages.len(), SpanRecorder::MAX_LINKS + 10);
    assert_eq!(batch.links.len(), SpanRecorder::MAX_LINKS);
    // The first ones are kept.
    for (link, message) in batch.links.iter().zip(&messages) {
        assert_eq!(link.span_id, message.span_id);
    }
}
