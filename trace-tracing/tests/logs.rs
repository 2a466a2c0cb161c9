//! `WithTraceIds` around the `fmt` layer's text and JSON formats: log lines printed inside a
//! trace carry the ids of the innermost bridged span (else of the current context); lines
//! printed outside any trace carry none.

use std::sync::Arc;

use serde_json::Value as Json;
use trace_core::current::enter;
use trace_core::{InMemoryCollector, Span, SpanContext};
use trace_tracing::{TracewireLayer, WithTraceIds};
use tracing_subscriber::fmt::format;
use tracing_subscriber::prelude::*;

mod support;

use support::{LogBuffer, collector, sampled, span_named, text_ids, unsampled};

/// Runs `f` with `Registry + TracewireLayer + fmt` (text lines with the ids) writing into the
/// returned buffer.
fn with_text_logs(f: impl FnOnce()) -> LogBuffer {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::registry()
        .with(TracewireLayer::new())
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(logs.clone())
                .event_format(WithTraceIds::new(format())),
        );
    tracing::subscriber::with_default(subscriber, f);
    logs
}

/// Like [`with_text_logs`], with JSON lines.
fn with_json_logs(f: impl FnOnce()) -> LogBuffer {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::registry()
        .with(TracewireLayer::new())
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_ansi(false)
                .with_writer(logs.clone())
                .event_format(WithTraceIds::json(format().json())),
        );
    tracing::subscriber::with_default(subscriber, f);
    logs
}

/// Prints the same scenario's lines under whichever subscriber is current:
/// - `outside`: no context, no span;
/// - `in request`: the request's context current, no span open;
/// - `in span` / `in child`: inside bridged spans `load user` and its child `query`;
/// - `in unbridged`: inside a span made with `parent: None`, no context current.
fn scenario(request: &SpanContext) {
    tracing::info!(step = 0_i64, "outside");
    {
        let _current = enter(request.clone());
        tracing::info!(step = 1_i64, "in request");
        let span = tracing::info_span!("load user", user.id = 42_i64);
        span.in_scope(|| {
            tracing::info!(step = 2_i64, "in span");
            tracing::info_span!("query").in_scope(|| {
                tracing::warn!(step = 3_i64, "in child");
            });
        });
    }
    let outer = {
        let _current = enter(request.clone());
        tracing::info_span!("outer")
    };
    outer.in_scope(|| {
        tracing::info_span!(parent: None, "detached")
            .in_scope(|| tracing::info!(step = 4_i64, "in unbridged"));
    });
}

/// The recorded spans the scenario made.
fn scenario_spans(collector: &Arc<InMemoryCollector>) -> (Span, Span) {
    let spans = collector.spans();
    assert_eq!(spans.len(), 3, "load user, query, outer: {spans:#?}");
    (
        span_named(&spans, "load user").clone(),
        span_named(&spans, "query").clone(),
    )
}

fn hex_ids(trace_id: trace_core::TraceId, span_id: trace_core::SpanId) -> (String, String) {
    (trace_id.to_string(), span_id.to_string())
}

#[test]
fn text_lines_start_with_the_ids_of_the_innermost_bridged_span() {
    let collector = collector();
    let request = sampled(&collector);
    let logs = with_text_logs(|| scenario(&request));
    let (load_user, query) = scenario_spans(&collector);
    assert_eq!(logs.lines().len(), 5, "{}", logs.contents());

    let outside = logs.line_with("outside");
    assert_eq!(text_ids(&outside), None, "{outside:?}");
    assert!(!outside.contains("trace_id"), "{outside:?}");
    assert!(!outside.contains("span_id"), "{outside:?}");

    let in_request = logs.line_with("in request");
    assert_eq!(
        text_ids(&in_request),
        Some(hex_ids(request.trace_id(), request.span_id())),
        "the request's own ids when no bridged span is open: {in_request:?}"
    );

    let in_span = logs.line_with("in span");
    assert_eq!(
        text_ids(&in_span),
        Some(hex_ids(load_user.trace_id, load_user.span_id)),
        "{in_span:?}"
    );
    assert_eq!(load_user.trace_id, request.trace_id());

    let in_child = logs.line_with("in child");
    assert_eq!(
        text_ids(&in_child),
        Some(hex_ids(query.trace_id, query.span_id)),
        "{in_child:?}"
    );

    let unbridged = logs.line_with("in unbridged");
    assert_eq!(text_ids(&unbridged), None, "{unbridged:?}");
}

#[test]
fn text_lines_keep_the_wrapped_format_after_the_ids() {
    let collector = collector();
    let request = sampled(&collector);
    let logs = with_text_logs(|| scenario(&request));
    let plain = LogBuffer::default();
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(plain.clone()),
    );
    tracing::subscriber::with_default(subscriber, || scenario(&request));

    let in_child = logs.line_with("in child");
    let prefix_len = "trace_id= span_id= ".len() + 32 + 16;
    let rest = &in_child[prefix_len..];
    let plain_line = plain.line_with("in child");
    // Same line after the ids, apart from the timestamp the default format starts with.
    let after_timestamp = |line: &str| {
        line.split_once(' ')
            .map(|(_, rest)| rest.trim_start().to_owned())
    };
    assert_eq!(after_timestamp(rest), after_timestamp(&plain_line));
    assert!(
        rest.contains("WARN") && rest.contains("load user") && rest.contains("query"),
        "level and span context of the wrapped format: {rest:?}"
    );
    assert!(
        rest.contains("user.id=42") && rest.contains("step=3"),
        "{rest:?}"
    );
}

#[test]
fn text_lines_in_an_unsampled_trace_have_no_bridged_span_ids() {
    let collector = collector();
    let request = unsampled(&collector);
    let logs = with_text_logs(|| {
        let _current = enter(request.clone());
        tracing::info_span!("unbridged").in_scope(|| tracing::info!("inside"));
    });
    assert!(collector.is_empty());
    let line = logs.line_with("inside");
    // Not bridged, so no span of its own: at most the request's ids, which still let the line
    // be found with the rest of the request's logs.
    if let Some(ids) = text_ids(&line) {
        assert_eq!(ids, hex_ids(request.trace_id(), request.span_id()));
    }
}

/// Parses every line of `logs` as a JSON object.
fn json_lines(logs: &LogBuffer) -> Vec<Json> {
    logs.lines()
        .iter()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("not JSON ({error}): {line:?}"))
        })
        .collect()
}

/// The line whose `fields.message` is `message`.
fn json_line<'a>(lines: &'a [Json], message: &str) -> &'a Json {
    let found: Vec<&Json> = lines
        .iter()
        .filter(|line| line["fields"]["message"] == message)
        .collect();
    assert_eq!(found.len(), 1, "one line {message:?} in {lines:#?}");
    found[0]
}

fn json_ids(line: &Json) -> (Option<&str>, Option<&str>) {
    (line["trace_id"].as_str(), line["span_id"].as_str())
}

#[test]
fn json_lines_have_the_ids_as_keys() {
    let collector = collector();
    let request = sampled(&collector);
    let logs = with_json_logs(|| scenario(&request));
    let (load_user, query) = scenario_spans(&collector);
    let lines = json_lines(&logs);
    assert_eq!(lines.len(), 5, "{}", logs.contents());
    for line in &lines {
        assert!(line.is_object(), "{line}");
        assert!(line["timestamp"].is_string(), "{line}");
        assert!(line["level"].is_string(), "{line}");
    }

    let outside = json_line(&lines, "outside");
    assert_eq!(json_ids(outside), (None, None), "{outside}");
    assert!(outside.get("trace_id").is_none() && outside.get("span_id").is_none());
    assert_eq!(outside["fields"]["step"], 0);

    let (trace_id, span_id) = hex_ids(request.trace_id(), request.span_id());
    let in_request = json_line(&lines, "in request");
    assert_eq!(
        json_ids(in_request),
        (Some(trace_id.as_str()), Some(span_id.as_str()))
    );
    assert_eq!(in_request["fields"]["step"], 1);

    let (trace_id, span_id) = hex_ids(load_user.trace_id, load_user.span_id);
    let in_span = json_line(&lines, "in span");
    assert_eq!(
        json_ids(in_span),
        (Some(trace_id.as_str()), Some(span_id.as_str()))
    );
    assert_eq!(in_span["fields"]["step"], 2);
    assert_eq!(in_span["span"]["name"], "load user");
    assert_eq!(in_span["span"]["user.id"], 42);
    assert_eq!(in_span["level"], "INFO");

    let (trace_id, span_id) = hex_ids(query.trace_id, query.span_id);
    let in_child = json_line(&lines, "in child");
    assert_eq!(
        json_ids(in_child),
        (Some(trace_id.as_str()), Some(span_id.as_str()))
    );
    assert_eq!(in_child["level"], "WARN");
    assert_eq!(in_child["spans"].as_array().map(Vec::len), Some(2));

    let unbridged = json_line(&lines, "in unbridged");
    assert_eq!(json_ids(unbridged), (None, None), "{unbridged}");
}

#[test]
fn json_lines_put_the_ids_first() {
    let collector = collector();
    let request = sampled(&collector);
    let logs = with_json_logs(|| {
        let _current = enter(request.clone());
        tracing::info!("first keys");
    });
    let line = logs.line_with("first keys");
    let expected = format!(
        "{{\"trace_id\":\"{}\",\"span_id\":\"{}\",",
        request.trace_id(),
        request.span_id()
    );
    assert!(line.starts_with(&expected), "{line:?}");
}
