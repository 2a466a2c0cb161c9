//! `TracewireLayer` on its own (no server): parentage, fields, events, the `otel.*` and `error`
//! conventions, links, per-layer filters, late records, timing, unsampled contexts, and
//! `TracingSpanExt`. Every test installs its subscriber with `with_default` on its own thread.

use std::sync::Arc;
use std::time::Duration;

use trace_core::current::{current_context, enter};
use trace_core::{InMemoryCollector, SpanContext, SpanKind, Status, TraceFlags, Value};
use trace_tracing::{TracewireLayer, TracingSpanExt};
use tracing::Level;
use tracing::field::Empty;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

mod support;

use support::{
    attr_bool, attr_f64, attr_i64, attr_str, collector, normalized, only_span, pairs, sampled,
    span_named, text, unsampled,
};

/// Runs `f` with `Registry + TracewireLayer` as this thread's subscriber.
fn with_bridge<R>(f: impl FnOnce() -> R) -> R {
    let subscriber = tracing_subscriber::registry().with(TracewireLayer::new());
    tracing::subscriber::with_default(subscriber, f)
}

/// Runs `f` with the bridge filtered to the `bridged_target` target (INFO and above), beside a
/// `fmt` layer (into a sink) that sees every span, so unbridged spans still exist in the
/// registry.
fn with_filtered_bridge<R>(f: impl FnOnce() -> R) -> R {
    let subscriber = tracing_subscriber::registry()
        .with(
            TracewireLayer::new()
                .with_filter(Targets::new().with_target("bridged_target", Level::INFO)),
        )
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink));
    tracing::subscriber::with_default(subscriber, f)
}

#[test]
fn a_span_becomes_a_child_of_the_current_context_with_typed_fields_and_events() {
    let collector = collector();
    let request = sampled(&collector);
    with_bridge(|| {
        let _current = enter(request.clone());
        let span = tracing::info_span!(
            "load user",
            user.id = 42_i64,
            admin = true,
            name = "alice",
            ratio = 0.5_f64,
            count = 7_u64,
            debugged = ?vec![1, 2],
            shown = %"display me",
        );
        let _entered = span.enter();
        tracing::info!(cache = "miss", hits = 3_i64, fresh = false, "cache miss");
        tracing::warn!(score = 1.5_f64, "slow");
    });
    let span = only_span(&collector);
    assert_eq!(span.name, "load user");
    assert_eq!(span.kind, SpanKind::Internal);
    assert_eq!(span.trace_id, request.trace_id());
    assert_eq!(span.parent_span_id, Some(request.span_id()));
    assert_ne!(span.span_id, request.span_id());
    assert_eq!(span.status, Status::Unset);
    assert_eq!(attr_i64(&span, "user.id"), Some(42));
    assert_eq!(attr_bool(&span, "admin"), Some(true));
    assert_eq!(attr_str(&span, "name"), Some("alice"));
    assert_eq!(attr_f64(&span, "ratio"), Some(0.5));
    assert_eq!(attr_i64(&span, "count"), Some(7));
    assert_eq!(attr_str(&span, "debugged"), Some("[1, 2]"));
    assert_eq!(attr_str(&span, "shown"), Some("display me"));

    assert_eq!(span.events.len(), 2, "{:#?}", span.events);
    let miss = &span.events[0];
    assert_eq!(miss.name, "cache miss");
    assert_eq!(
        pairs(&miss.attributes),
        [
            ("cache".to_owned(), text("miss")),
            ("hits".to_owned(), Value::I64(3)),
            ("fresh".to_owned(), Value::Bool(false)),
        ]
    );
    assert!(miss.time >= span.start_time && miss.time <= span.end_time());
    assert_eq!(span.events[1].name, "slow");
    assert_eq!(
        pairs(&span.events[1].attributes),
        [("score".to_owned(), Value::F64(1.5))]
    );
}

#[test]
fn nested_spans_chain_their_parents() {
    let collector = collector();
    let request = sampled(&collector);
    with_bridge(|| {
        let _current = enter(request.clone());
        let outer = tracing::info_span!("outer");
        let _outer = outer.enter();
        let middle = tracing::info_span!("middle");
        let _middle = middle.enter();
        let inner = tracing::info_span!("inner");
        let _inner = inner.enter();
        tracing::info!("deep inside");
    });
    let spans = collector.spans_of_trace(request.trace_id());
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let (outer, middle, inner) = (
        span_named(&spans, "outer"),
        span_named(&spans, "middle"),
        span_named(&spans, "inner"),
    );
    assert_eq!(outer.parent_span_id, Some(request.span_id()));
    assert_eq!(middle.parent_span_id, Some(outer.span_id));
    assert_eq!(inner.parent_span_id, Some(middle.span_id));
    assert_eq!(inner.events.len(), 1);
    assert!(outer.events.is_empty() && middle.events.is_empty());
}

#[test]
fn children_of_a_bridged_span_stay_in_its_trace_after_the_context_is_gone() {
    let collector = collector();
    let request = sampled(&collector);
    with_bridge(|| {
        let outer = {
            let _current = enter(request.clone());
            tracing::info_span!("outer")
        };
        assert!(current_context().is_none());
        let _outer = outer.enter();
        drop(tracing::info_span!("child"));
    });
    let spans = collector.spans();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let (outer, child) = (span_named(&spans, "outer"), span_named(&spans, "child"));
    assert_eq!(child.trace_id, request.trace_id());
    assert_eq!(child.parent_span_id, Some(outer.span_id));
}

#[test]
fn otel_kind_sets_the_span_kind() {
    let collector = collector();
    with_bridge(|| {
        let _current = enter(sampled(&collector));
        drop(tracing::info_span!("client", otel.kind = "client"));
        drop(tracing::info_span!("server", otel.kind = "server"));
        drop(tracing::info_span!("producer", otel.kind = "PRODUCER"));
        drop(tracing::info_span!("consumer", otel.kind = "consumer"));
        drop(tracing::info_span!("internal", otel.kind = "internal"));
        drop(tracing::info_span!("nonsense", otel.kind = "sideways"));
        drop(tracing::info_span!("span.kind", span.kind = "client"));
        drop(tracing::info_span!("debug value", otel.kind = ?SpanKindName("client")));
    });
    let spans = collector.spans();
    assert_eq!(spans.len(), 8, "{spans:#?}");
    for (name, kind) in [
        ("client", SpanKind::Client),
        ("server", SpanKind::Server),
        ("producer", SpanKind::Producer),
        ("consumer", SpanKind::Consumer),
        ("internal", SpanKind::Internal),
        ("nonsense", SpanKind::Internal),
        ("span.kind", SpanKind::Client),
        ("debug value", SpanKind::Client),
    ] {
        let span = span_named(&spans, name);
        assert_eq!(span.kind, kind, "span {name}");
        assert!(
            span.attribute("otel.kind").is_none() || name == "nonsense",
            "the convention field is not an attribute: {span:#?}"
        );
    }
}

/// A value whose `Debug` output is its text, unquoted (like an enum variant's name).
struct SpanKindName(&'static str);

impl std::fmt::Debug for SpanKindName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

#[test]
fn otel_name_renames_the_span_at_creation_or_later() {
    let collector = collector();
    with_bridge(|| {
        let _current = enter(sampled(&collector));
        drop(tracing::info_span!(
            "static name",
            otel.name = "GET /users/{id}"
        ));
        let late = tracing::info_span!("late name", otel.name = Empty);
        late.record("otel.name", "SELECT users");
        drop(late);
    });
    let spans = collector.spans();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let renamed = span_named(&spans, "GET /users/{id}");
    assert!(renamed.attribute("otel.name").is_none());
    span_named(&spans, "SELECT users");
}

#[test]
fn an_error_field_sets_an_error_status_with_its_value() {
    let collector = collector();
    let io_error = std::io::Error::other("disk on fire");
    with_bridge(|| {
        let _current = enter(sampled(&collector));
        drop(tracing::info_span!("str", error = "boom"));
        drop(tracing::info_span!("display", error = %io_error));
        drop(tracing::info_span!(
            "dyn error",
            error = &io_error as &(dyn std::error::Error + 'static)
        ));
        drop(tracing::info_span!("bool", error = true));
        let late = tracing::info_span!("late", error = Empty);
        late.record("error", "timed out");
        drop(late);
        drop(tracing::info_span!("no error", error = false));
    });
    let spans = collector.spans();
    assert_eq!(spans.len(), 6, "{spans:#?}");
    assert_eq!(span_named(&spans, "str").status, Status::error("boom"));
    assert_eq!(
        span_named(&spans, "display").status,
        Status::error("disk on fire")
    );
    assert_eq!(
        span_named(&spans, "dyn error").status,
        Status::error("disk on fire")
    );
    assert!(span_named(&spans, "bool").status.is_error());
    assert_eq!(
        span_named(&spans, "late").status,
        Status::error("timed out")
    );
    assert!(!span_named(&spans, "no error").status.is_error());
}

#[test]
fn an_error_event_sets_an_error_status() {
    let collector = collector();
    with_bridge(|| {
        let _current = enter(sampled(&collector));
        let failing = tracing::info_span!("failing");
        failing.in_scope(|| {
            tracing::warn!("retrying");
            tracing::error!(attempt = 3_i64, "connection refused");
        });
        drop(failing);
        let warned = tracing::info_span!("warned");
        warned.in_scope(|| tracing::warn!("only a warning"));
    });
    let spans = collector.spans();
    let failing = span_named(&spans, "failing");
    assert_eq!(failing.status, Status::error("connection refused"));
    let names: Vec<&str> = failing.events.iter().map(|e| e.name.as_ref()).collect();
    assert_eq!(names, ["retrying", "connection refused"]);
    assert_eq!(
        pairs(&failing.events[1].attributes),
        [("attempt".to_owned(), Value::I64(3))]
    );
    assert_eq!(span_named(&spans, "warned").status, Status::Unset);
}

#[test]
fn otel_status_code_sets_the_status() {
    let collector = collector();
    with_bridge(|| {
        let _current = enter(sampled(&collector));
        drop(tracing::info_span!(
            "error code",
            otel.status_code = "ERROR"
        ));
        drop(tracing::info_span!(
            "with message",
            otel.status_code = "ERROR",
            otel.status_message = "quota exceeded"
        ));
        drop(tracing::info_span!(
            "error first",
            error = "boom",
            otel.status_code = "ERROR"
        ));
        drop(tracing::info_span!("ok", otel.status_code = "OK"));
        let late = tracing::info_span!("late", otel.status_code = Empty);
        late.record("otel.status_code", "ERROR");
        drop(late);
    });
    let spans = collector.spans();
    assert_eq!(spans.len(), 5, "{spans:#?}");
    let error_code = span_named(&spans, "error code");
    assert!(error_code.status.is_error(), "{error_code:#?}");
    assert!(error_code.attribute("otel.status_code").is_none());
    assert_eq!(
        span_named(&spans, "with message").status,
        Status::error("quota exceeded")
    );
    assert_eq!(
        span_named(&spans, "error first").status,
        Status::error("boom"),
        "a bare status code keeps the message an error field gave"
    );
    assert_eq!(span_named(&spans, "ok").status, Status::Ok);
    assert!(span_named(&spans, "late").status.is_error());
}

#[test]
fn an_explicit_parent_takes_precedence_over_the_contextual_parent() {
    let collector = collector();
    let request = sampled(&collector);
    with_bridge(|| {
        let _current = enter(request.clone());
        let entered = tracing::info_span!("entered");
        let chosen = tracing::info_span!("chosen");
        let _entered = entered.enter();
        drop(tracing::info_span!(parent: &chosen, "explicit"));
        drop(tracing::info_span!("contextual"));
        tracing::info!(parent: &chosen, "sent to chosen");
    });
    let spans = collector.spans();
    assert_eq!(spans.len(), 4, "{spans:#?}");
    let (entered, chosen) = (span_named(&spans, "entered"), span_named(&spans, "chosen"));
    assert_eq!(chosen.parent_span_id, Some(request.span_id()));
    assert_eq!(
        span_named(&spans, "explicit").parent_span_id,
        Some(chosen.span_id)
    );
    assert_eq!(
        span_named(&spans, "contextual").parent_span_id,
        Some(entered.span_id)
    );
    assert_eq!(chosen.events.len(), 1);
    assert_eq!(chosen.events[0].name, "sent to chosen");
    assert!(entered.events.is_empty());
}

#[test]
fn parent_none_without_a_current_context_is_not_bridged() {
    let collector = collector();
    let request = sampled(&collector);
    with_bridge(|| {
        let outer = {
            let _current = enter(request.clone());
            tracing::info_span!("outer")
        };
        let _outer = outer.enter();
        let root = tracing::info_span!(parent: None, "new root");
        assert!(root.tracewire_context().is_none());
        root.in_scope(|| {
            let child = tracing::info_span!("child of new root");
            assert!(child.tracewire_context().is_none());
            tracing::info!("not recorded");
        });
    });
    let spans = collector.spans();
    assert_eq!(spans.len(), 1, "only `outer` is bridged: {spans:#?}");
    assert_eq!(spans[0].name, "outer");
    assert!(spans[0].events.is_empty());
}

#[test]
fn parent_none_falls_back_to_the_current_context() {
    let collector = collector();
    let request = sampled(&collector);
    with_bridge(|| {
        let _current = enter(request.clone());
        let outer = tracing::info_span!("outer");
        let _outer = outer.enter();
        drop(tracing::info_span!(parent: None, "detached"));
    });
    let spans = collector.spans();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let detached = span_named(&spans, "detached");
    assert_eq!(detached.trace_id, request.trace_id());
    assert_eq!(detached.parent_span_id, Some(request.span_id()));
}

#[test]
fn follows_from_adds_a_link() {
    let collector = collector();
    let first_request = sampled(&collector);
    let second_request = sampled(&collector);
    with_bridge(|| {
        let cause = {
            let _current = enter(first_request.clone());
            tracing::info_span!("cause")
        };
        let _current = enter(second_request.clone());
        let effect = tracing::info_span!("effect");
        effect.follows_from(&cause);
        let unbridged = tracing::info_span!(parent: None, "unbridged");
        drop(unbridged);
        drop(effect);
        drop(cause);
    });
    let spans = collector.spans();
    let cause = span_named(&spans, "cause");
    let effect = span_named(&spans, "effect");
    assert_eq!(cause.trace_id, first_request.trace_id());
    assert_eq!(effect.trace_id, second_request.trace_id());
    assert_eq!(effect.links.len(), 1, "{effect:#?}");
    assert_eq!(effect.links[0].trace_id, cause.trace_id);
    assert_eq!(effect.links[0].span_id, cause.span_id);
    assert!(cause.links.is_empty());
}

#[test]
fn following_an_unbridged_span_adds_no_link() {
    let collector = collector();
    with_bridge(|| {
        let unbridged = tracing::info_span!("outside any request");
        let _current = enter(sampled(&collector));
        let effect = tracing::info_span!("effect");
        effect.follows_from(&unbridged);
        effect.follows_from(tracing::Id::from_u64(987_654));
    });
    let effect = only_span(&collector);
    assert!(effect.links.is_empty(), "{effect:#?}");
}

#[test]
fn a_per_layer_filter_decides_which_spans_are_bridged() {
    let collector = collector();
    let request = sampled(&collector);
    with_filtered_bridge(|| {
        let _current = enter(request.clone());
        let noisy = tracing::info_span!(target: "noisy_library", "library span");
        let _noisy = noisy.enter();
        let bridged = tracing::info_span!(target: "bridged_target", "bridged");
        let _bridged = bridged.enter();
        drop(tracing::debug_span!(target: "bridged_target", "too verbose"));
        let unbridged_child = tracing::info_span!(target: "noisy_library", "noisy child");
        unbridged_child.in_scope(|| {
            // The innermost bridged span is `bridged`: the unbridged span has no context of its
            // own, and the event is not recorded on `bridged` (it is inside another span).
            assert_eq!(
                tracing::Span::current()
                    .tracewire_context()
                    .map(|c| c.span_id()),
                bridged.tracewire_context().map(|c| c.span_id())
            );
            let grandchild = tracing::info_span!(target: "bridged_target", "bridged grandchild");
            drop(grandchild);
        });
        tracing::info!(target: "bridged_target", "seen by the bridge");
    });
    let spans = collector.spans();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(
        names,
        ["bridged grandchild", "bridged"],
        "only INFO spans of bridged_target: {spans:#?}"
    );
    let (bridged, grandchild) = (&spans[1], &spans[0]);
    assert_eq!(
        bridged.parent_span_id,
        Some(request.span_id()),
        "the filtered-out span is skipped as a parent"
    );
    assert_eq!(
        grandchild.parent_span_id,
        Some(bridged.span_id),
        "the nearest bridged ancestor is the parent"
    );
    assert_eq!(bridged.events.len(), 1, "{bridged:#?}");
    assert_eq!(bridged.events[0].name, "seen by the bridge");
}

#[test]
fn a_filtered_out_explicit_parent_is_skipped_for_its_nearest_bridged_ancestor() {
    let collector = collector();
    let request = sampled(&collector);
    with_filtered_bridge(|| {
        let _current = enter(request.clone());
        let bridged = tracing::info_span!(target: "bridged_target", "bridged");
        let noisy = tracing::info_span!(target: "noisy_library", parent: &bridged, "noisy");
        drop(tracing::info_span!(target: "bridged_target", parent: &noisy, "explicit child"));
    });
    let spans = collector.spans();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let bridged = span_named(&spans, "bridged");
    assert_eq!(
        span_named(&spans, "explicit child").parent_span_id,
        Some(bridged.span_id),
        "the explicit parent is filtered out: its nearest bridged ancestor is the parent, not \
         the current context"
    );
}

#[test]
fn a_filtered_out_contextual_parent_entered_alone_is_skipped_for_its_bridged_ancestor() {
    // As in a task spawned with `.instrument(noisy_span)`: the filtered-out span is the only one
    // entered on the thread, its bridged parent is not on this thread's stack, and no tracewire
    // context is current.
    let collector = collector();
    let request = sampled(&collector);
    with_filtered_bridge(|| {
        let (bridged, noisy) = {
            let _current = enter(request.clone());
            let bridged = tracing::info_span!(target: "bridged_target", "bridged");
            let noisy = tracing::info_span!(target: "noisy_library", parent: &bridged, "noisy");
            (bridged, noisy)
        };
        noisy.in_scope(|| {
            drop(tracing::info_span!(target: "bridged_target", "contextual child"));
        });
        drop(bridged);
    });
    let spans = collector.spans();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let bridged = span_named(&spans, "bridged");
    assert_eq!(
        span_named(&spans, "contextual child").parent_span_id,
        Some(bridged.span_id)
    );
}

#[test]
fn fields_recorded_later_become_attributes() {
    let collector = collector();
    with_bridge(|| {
        let _current = enter(sampled(&collector));
        let span = tracing::info_span!("late", late = Empty, flag = Empty, text = Empty);
        span.record("late", 5);
        span.in_scope(|| {
            tracing::Span::current().record("flag", true);
        });
        span.record("text", "filled in");
        span.record("undeclared", 1);
    });
    let span = only_span(&collector);
    assert_eq!(attr_i64(&span, "late"), Some(5));
    assert_eq!(attr_bool(&span, "flag"), Some(true));
    assert_eq!(attr_str(&span, "text"), Some("filled in"));
    assert!(span.attribute("undeclared").is_none());
    assert_eq!(span.attributes.len(), 3, "empty fields are not recorded");
}

#[test]
fn a_span_lasts_from_creation_to_close() {
    const NAP: Duration = Duration::from_millis(20);
    let collector = collector();
    with_bridge(|| {
        let _current = enter(sampled(&collector));
        let span = tracing::info_span!("timed");
        std::thread::sleep(NAP);
        span.in_scope(|| {});
        std::thread::sleep(NAP);
        let clone = span.clone();
        drop(span);
        assert!(
            collector.is_empty(),
            "a span ends when its last handle closes"
        );
        std::thread::sleep(NAP);
        drop(clone);
    });
    let span = only_span(&collector);
    assert!(
        span.duration >= NAP * 3,
        "creation to close, not time entered: {:?}",
        span.duration
    );
    assert!(
        span.duration < Duration::from_secs(5),
        "{:?}",
        span.duration
    );
}

#[test]
fn nothing_is_bridged_in_an_unsampled_context() {
    let collector = collector();
    let request = unsampled(&collector);
    with_bridge(|| {
        let _current = enter(request.clone());
        let span = tracing::info_span!("unsampled", id = 1_i64, late = Empty);
        span.in_scope(|| {
            let child = tracing::info_span!("child", otel.kind = "client", error = "boom");
            child.in_scope(|| tracing::error!("failed"));
            span.record("late", 2);
        });
        span.follows_from(&tracing::info_span!("other"));
        drop(span);
    });
    assert!(collector.is_empty(), "{:#?}", collector.spans());
}

#[test]
fn nothing_is_bridged_without_a_collector_or_a_context() {
    let collector = collector();
    with_bridge(|| {
        {
            let _current = enter(SpanContext::new_root(TraceFlags::SAMPLED));
            let span = tracing::info_span!("no collector");
            assert_eq!(
                span.tracewire_context().map(|c| c.span_id()),
                current_context().map(|c| c.span_id()),
                "not bridged: the current context"
            );
        }
        let span = tracing::info_span!("no context");
        span.in_scope(|| tracing::info!("nothing"));
    });
    assert!(collector.is_empty());
}

#[test]
fn tracewire_context_of_a_bridged_span_is_its_recorded_context() {
    let collector = collector();
    let request = sampled(&collector);
    let (outer_context, inner_context) = with_bridge(|| {
        let _current = enter(request.clone());
        let outer = tracing::info_span!("outer");
        let inner = outer.in_scope(|| tracing::info_span!("inner"));
        let contexts = (outer.tracewire_context(), inner.tracewire_context());
        // The current span's context is what outgoing calls would propagate.
        inner.in_scope(|| {
            assert_eq!(
                tracing::Span::current()
                    .tracewire_context()
                    .map(|c| c.span_id()),
                contexts.1.as_ref().map(SpanContext::span_id)
            );
        });
        contexts
    });
    let (outer_context, inner_context) = (
        outer_context.expect("outer is bridged"),
        inner_context.expect("inner is bridged"),
    );
    let spans = collector.spans();
    let (outer, inner) = (span_named(&spans, "outer"), span_named(&spans, "inner"));
    assert_eq!(outer_context.trace_id(), outer.trace_id);
    assert_eq!(outer_context.span_id(), outer.span_id);
    assert_eq!(outer_context.parent_span_id(), Some(request.span_id()));
    assert_eq!(inner_context.trace_id(), inner.trace_id);
    assert_eq!(inner_context.span_id(), inner.span_id);
    assert_eq!(inner_context.parent_span_id(), Some(outer.span_id));
    assert!(inner_context.is_sampled());
}

#[test]
fn tracewire_context_of_an_unbridged_span_in_an_unsampled_context_is_that_context() {
    let collector = collector();
    let request = unsampled(&collector);
    let seen = with_bridge(|| {
        let _current = enter(request.clone());
        let span = tracing::info_span!("unbridged");
        span.in_scope(|| tracing::info_span!("child").tracewire_context())
    });
    let seen = seen.expect("the current (unsampled) context");
    assert_eq!(seen.trace_id(), request.trace_id());
    assert_eq!(seen.span_id(), request.span_id());
    assert!(!seen.is_sampled());
    assert!(collector.is_empty());
}

#[test]
fn tracewire_context_without_a_context_is_none() {
    with_bridge(|| {
        assert!(tracing::info_span!("alone").tracewire_context().is_none());
        assert!(tracing::Span::none().tracewire_context().is_none());
    });
}

#[test]
fn set_tracewire_parent_moves_a_bridged_span_into_another_trace() {
    let collector = collector();
    let request = sampled(&collector);
    let message = sampled(&collector).with_parent_span_id(trace_core::SpanId::from_u64(9));
    with_bridge(|| {
        let _current = enter(request.clone());
        let job = tracing::info_span!(
            "job",
            job.id = 7_i64,
            queue = "emails",
            otel.kind = "consumer",
            otel.name = "process email",
            late = Empty
        );
        job.record("late", true);
        job.set_tracewire_parent(message.clone());
        let moved = job.tracewire_context().expect("still bridged");
        assert_eq!(moved.trace_id(), message.trace_id());
        assert_eq!(moved.parent_span_id(), Some(message.span_id()));
        job.in_scope(|| {
            tracing::info!("after the move");
            drop(tracing::info_span!("step"));
        });
    });
    assert!(
        collector.spans_of_trace(request.trace_id()).is_empty(),
        "nothing left in the first trace: {:#?}",
        collector.spans()
    );
    let spans = collector.spans_of_trace(message.trace_id());
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let job = span_named(&spans, "process email");
    assert_eq!(job.parent_span_id, Some(message.span_id()));
    assert_eq!(job.kind, SpanKind::Consumer);
    assert_eq!(attr_i64(job, "job.id"), Some(7));
    assert_eq!(attr_str(job, "queue"), Some("emails"));
    assert_eq!(attr_bool(job, "late"), Some(true));
    assert_eq!(job.events.len(), 1);
    assert_eq!(span_named(&spans, "step").parent_span_id, Some(job.span_id));
}

#[test]
fn set_tracewire_parent_keeps_an_error_status() {
    let collector = collector();
    let message = sampled(&collector);
    with_bridge(|| {
        let _current = enter(sampled(&collector));
        let job = tracing::info_span!("job", error = "bad payload");
        job.set_tracewire_parent(message.clone());
    });
    let job = only_span(&collector);
    assert_eq!(job.trace_id, message.trace_id());
    assert_eq!(job.status, Status::error("bad payload"));
}

#[test]
fn set_tracewire_parent_on_a_span_created_outside_any_request() {
    let collector = collector();
    let message = sampled(&collector);
    with_bridge(|| {
        // The documented use: a job span started from a queue message, with no request around.
        // Outside any sampled context the span was not recorded at creation, so (as documented)
        // only what is recorded after the call is kept.
        let job = tracing::info_span!(
            "background job",
            job.id = 7_i64,
            job.queue = tracing::field::Empty
        );
        job.set_tracewire_parent(message.clone());
        job.record("job.queue", "emails");
        job.in_scope(|| tracing::info!("working"));
    });
    let job = only_span(&collector);
    assert_eq!(job.name, "background job");
    assert_eq!(job.trace_id, message.trace_id());
    assert_eq!(job.parent_span_id, Some(message.span_id()));
    assert_eq!(job.events.len(), 1);
    assert_eq!(
        job.attribute("job.queue")
            .map(ToString::to_string)
            .as_deref(),
        Some("emails")
    );
    assert_eq!(attr_i64(&job, "job.id"), None, "recorded before the call");
}

#[test]
fn set_tracewire_parent_to_an_unsampled_context_records_nothing() {
    let collector = collector();
    let request = sampled(&collector);
    let message = unsampled(&collector);
    with_bridge(|| {
        let _current = enter(request.clone());
        let job = tracing::info_span!("job");
        job.set_tracewire_parent(message.clone());
        assert_eq!(
            job.tracewire_context().map(|c| c.span_id()),
            Some(request.span_id()),
            "no longer bridged: the current context"
        );
        job.in_scope(|| drop(tracing::info_span!("child")));
    });
    let spans = collector.spans();
    // `child` falls back to the current (request) context, as any span with no bridged parent.
    assert!(
        spans.iter().all(|s| s.name != "job"),
        "the job is recorded nowhere: {spans:#?}"
    );
}

#[test]
fn events_have_their_fields_as_typed_attributes() {
    let collector = collector();
    with_bridge(|| {
        let _current = enter(sampled(&collector));
        tracing::info_span!("events").in_scope(|| {
            tracing::info!(
                i = -3_i64,
                u = 4_u64,
                f = 0.25_f64,
                b = true,
                s = "text",
                d = ?Some(1),
                "typed"
            );
            tracing::info!(only = 1_i64);
        });
    });
    let span = only_span(&collector);
    assert_eq!(span.events.len(), 2);
    let typed = &span.events[0];
    assert_eq!(typed.name, "typed");
    let value = |key: &str| {
        typed
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| normalized(&kv.value))
    };
    assert_eq!(value("i"), Some(Value::I64(-3)));
    assert_eq!(value("u"), Some(Value::I64(4)));
    assert_eq!(value("f"), Some(Value::F64(0.25)));
    assert_eq!(value("b"), Some(Value::Bool(true)));
    assert_eq!(value("s"), Some(text("text")));
    assert_eq!(value("d"), Some(text("Some(1)")));
    assert_eq!(value("message"), None, "the message is the event's name");
    // An event without a message is named after its callsite.
    assert!(
        span.events[1].name.starts_with("event "),
        "{:?}",
        span.events[1].name
    );
}

#[test]
fn spans_of_separate_contexts_go_to_their_own_collectors() {
    let first: Arc<InMemoryCollector> = collector();
    let second: Arc<InMemoryCollector> = collector();
    with_bridge(|| {
        {
            let _current = enter(sampled(&first));
            drop(tracing::info_span!("first"));
        }
        let _current = enter(sampled(&second));
        drop(tracing::info_span!("second"));
    });
    assert_eq!(only_span(&first).name, "first");
    assert_eq!(only_span(&second).name, "second");
}
