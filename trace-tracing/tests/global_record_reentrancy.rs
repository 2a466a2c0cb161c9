//! A field recorded on a span (`span.record`) whose value logs while being formatted, with the
//! subscriber installed globally (`.init()`), inside that bridged span.
//!
//! Only a global subscriber lets the nested event through: a scoped one (`with_default`) turns
//! events emitted while it is already dispatching into no-ops. One global subscriber per
//! process, so this test has its own binary. The subscriber has no `fmt` layer: tracing-
//! subscriber's own `fmt` layer formats recorded values while holding the span's extensions,
//! and so deadlocks on this pattern by itself.

use std::fmt;
use std::sync::mpsc;
use std::time::Duration;

use trace_core::current::enter;
use trace_tracing::TracewireLayer;
use tracing::field::{Empty, debug};
use tracing_subscriber::prelude::*;

mod support;

use support::{collector, only_span, pairs, sampled, text};

/// A value whose `Debug` logs, as a lazily computed value or a traced cache lookup may.
struct Chatty(u32);

impl fmt::Debug for Chatty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        tracing::info!("formatting chatty");
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
fn a_recorded_field_that_logs_in_the_same_span_does_not_deadlock() {
    tracing_subscriber::registry()
        .with(TracewireLayer::new())
        .init();

    let collector = collector();
    let request = sampled(&collector);
    let finished = finishes(move || {
        let _current = enter(request);
        let span = tracing::info_span!("handler", value = Empty);
        let _entered = span.enter();
        span.record("value", debug(Chatty(1)));
        span.record("value", debug(Chatty(2)));
    });
    assert!(finished, "the thread is stuck in TracewireLayer::on_record");

    let span = only_span(&collector);
    assert_eq!(
        pairs(&span.attributes),
        [("value".to_owned(), text("Chatty(2)"))]
    );
    let names: Vec<&str> = span.events.iter().map(|e| e.name.as_ref()).collect();
    assert_eq!(names, ["formatting chatty", "formatting chatty"]);
}
