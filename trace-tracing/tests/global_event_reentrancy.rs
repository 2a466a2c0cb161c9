//! An event whose field logs while being formatted, with the subscriber installed globally
//! (`.init()`, as the README shows), inside a bridged span.
//!
//! Only a global subscriber lets the nested event through: a scoped one (`with_default`) turns
//! events emitted while it is already dispatching into no-ops. One global subscriber per
//! process, so this test has its own binary.

use std::fmt;
use std::sync::mpsc;
use std::time::Duration;

use trace_core::current::enter;
use trace_core::{Status, Value};
use trace_tracing::{TracewireLayer, WithTraceIds};
use tracing_subscriber::prelude::*;

mod support;

use support::{collector, only_span, pairs, sampled, text};

/// A value whose `Debug` logs, as a lazily computed value or a traced cache lookup may.
struct Chatty(u32);

impl fmt::Debug for Chatty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        tracing::info!(depth = 1_i64, "formatting chatty");
        write!(f, "Chatty({})", self.0)
    }
}

/// Runs `f` on its own thread; false if it has not finished within a few seconds (a deadlocked
/// thread is left behind, and the process exits without it when the test ends).
fn finishes(f: impl FnOnce() + Send + 'static) -> bool {
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = done.send(());
    });
    finished.recv_timeout(Duration::from_secs(5)).is_ok()
}

#[test]
fn an_event_whose_field_logs_in_the_same_span_does_not_deadlock() {
    tracing_subscriber::registry()
        .with(TracewireLayer::new())
        .with(
            tracing_subscriber::fmt::layer()
                .event_format(WithTraceIds::new(tracing_subscriber::fmt::format()))
                .with_writer(std::io::sink),
        )
        .init();

    let collector = collector();
    let request = sampled(&collector);
    let finished = finishes(move || {
        let _current = enter(request);
        let span = tracing::info_span!("handler");
        let _entered = span.enter();
        tracing::info!(value = ?Chatty(1), "event");
        tracing::error!(value = ?Chatty(2), "failed");
    });
    assert!(finished, "the thread is stuck in TracewireLayer::on_event");

    let span = only_span(&collector);
    assert_eq!(span.name, "handler");
    let events: Vec<(&str, Vec<(String, Value)>)> = span
        .events
        .iter()
        .map(|e| (e.name.as_ref(), pairs(&e.attributes)))
        .collect();
    // Each value is formatted twice, each time logging a nested event: first by the bridge,
    // before it records the outer event, then by the `fmt` layer after it.
    let nested = (
        "formatting chatty",
        vec![("depth".to_owned(), Value::I64(1))],
    );
    assert_eq!(
        events,
        [
            nested.clone(),
            ("event", vec![("value".to_owned(), text("Chatty(1)"))]),
            nested.clone(),
            nested.clone(),
            ("failed", vec![("value".to_owned(), text("Chatty(2)"))]),
            nested,
        ]
    );
    assert_eq!(span.status, Status::error("failed"));
}
