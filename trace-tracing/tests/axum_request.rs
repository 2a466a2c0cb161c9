//! A real axum server behind `TraceLayer`, called with a real hyper client over loopback, with
//! `#[instrument]` functions nested three deep across `.await` points and in a spawned task:
//! the bridged spans join the request's trace with the right parents, fields, events, kinds and
//! durations, log lines carry their ids, and unsampled requests bridge nothing.
//!
//! The server runs on a multi-threaded runtime, so the subscriber must be the global default:
//! this binary holds a single test that sets it once and runs every scenario in turn.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::routing;
use http::StatusCode;
use trace_core::sampler::AlwaysOff;
use trace_core::{InMemoryCollector, Span, SpanKind, Status, Value};
use trace_http::context::RequestContext;
use trace_http::{TraceIdHeader, TraceLayer};
use trace_tracing::{TracewireLayer, TracingSpanExt, WithTraceIds};
use tracing::Instrument;
use tracing_subscriber::fmt::format;
use tracing_subscriber::prelude::*;

mod support;

use support::{
    LogBuffer, assert_no_spans, attr_bool, attr_f64, attr_i64, attr_str, collector, get, pairs,
    serve, span_named, text, text_ids, wait_for_spans,
};

/// What each of the nested functions sleeps.
const NAP: Duration = Duration::from_millis(20);

/// Tolerance when comparing wall-clock times of different spans.
const SLACK: Duration = Duration::from_millis(1);

/// Outermost: typed fields from its arguments, an event, two nested calls, a spawned task.
#[tracing::instrument]
async fn load_user(id: i64, admin: bool, name: &str, ratio: f64) -> String {
    tracing::info!(cache = "miss", attempt = 1_i64, "cache miss");
    let row = query_db(id).await;
    // A task spawned with the current span carried over; `audit` makes its own span in there.
    let audited = tokio::spawn(audit(id).in_current_span())
        .await
        .expect("audit task");
    // A task spawned with a span of its own.
    let notified = tokio::spawn(notify(id).instrument(tracing::info_span!(
        "notify task",
        channel = "email",
        otel.kind = "producer"
    )))
    .await
    .expect("notify task");
    format!("{row} {audited} {notified}")
}

/// Middle: a client-kind span, sleeps before calling the innermost.
#[tracing::instrument(fields(db.system = "postgresql", otel.kind = "client", rows = tracing::field::Empty))]
async fn query_db(id: i64) -> String {
    tokio::time::sleep(NAP).await;
    let row = decode_row(id).await;
    tracing::Span::current().record("rows", 1_i64);
    row
}

/// Innermost: sleeps, then logs an event with fields.
#[tracing::instrument]
async fn decode_row(id: i64) -> String {
    tokio::time::sleep(NAP).await;
    tracing::info!(bytes = 128_i64, valid = true, "row decoded");
    format!("user-{id}")
}

/// Runs in a spawned task: sleeps, then fails with an error event.
#[tracing::instrument]
async fn audit(id: i64) -> &'static str {
    tokio::time::sleep(NAP).await;
    tracing::error!(user = id, "audit log unavailable");
    "audited"
}

/// Runs in a spawned task instrumented with `notify task`.
async fn notify(id: i64) -> &'static str {
    tokio::time::sleep(NAP).await;
    tracing::info!(user = id, "notification queued");
    "notified"
}

/// The handler: a log line outside any `tracing` span, then the instrumented call tree.
async fn user_handler(Path(id): Path<i64>) -> String {
    tracing::info!("handler started");
    load_user(id, true, "alice", 0.75).await
}

/// Answers with what `tracewire_context()` sees in an unbridged span, and what the request's
/// context is: `{seen trace} {seen span} {seen sampled} {request trace} {request span}`.
async fn context_handler(RequestContext(request): RequestContext) -> String {
    let span = tracing::info_span!("look around");
    let seen = span.tracewire_context();
    let seen = seen.map_or_else(
        || "- - -".to_owned(),
        |c| format!("{} {} {}", c.trace_id(), c.span_id(), c.is_sampled()),
    );
    let _ = load_user(1, false, "bob", 0.5).await;
    format!("{seen} {} {}", request.trace_id(), request.span_id())
}

fn app(collector: &Arc<InMemoryCollector>, sampled: bool) -> Router {
    let layer = TraceLayer::new(collector.clone()).trace_id_header(TraceIdHeader::TraceResponse);
    let layer = if sampled {
        layer
    } else {
        layer.sampler(AlwaysOff)
    };
    Router::new()
        .route("/users/{id}", routing::get(user_handler))
        .route("/context", routing::get(context_handler))
        .layer(layer)
}

#[test]
fn axum_requests() {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::registry()
        .with(TracewireLayer::new())
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(logs.clone())
                .event_format(WithTraceIds::new(format())),
        );
    tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        tracing::info!("before any request");
        let before = logs.line_with("before any request");
        assert_eq!(text_ids(&before), None, "{before:?}");

        sampled_request(&logs).await;
        unsampled_requests().await;
    });
}

/// The handler's call tree becomes part of the request's trace.
async fn sampled_request(logs: &LogBuffer) {
    let collector = collector();
    let addr = serve(app(&collector, true)).await;
    let reply = get(addr, "/users/42").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "user-42 audited notified");

    let spans = wait_for_spans(&collector, 6).await;
    assert_eq!(spans.len(), 6, "{spans:#?}");
    let server = span_named(&spans, "GET /users/{id}");
    let load_user = span_named(&spans, "load_user");
    let query_db = span_named(&spans, "query_db");
    let decode_row = span_named(&spans, "decode_row");
    let audit = span_named(&spans, "audit");
    let notify_task = span_named(&spans, "notify task");

    // One trace, the one the response names.
    assert_eq!(server.kind, SpanKind::Server);
    for span in &spans {
        assert_eq!(span.trace_id, server.trace_id, "{span:#?}");
    }
    let traceresponse = reply
        .headers
        .get("traceresponse")
        .and_then(|v| v.to_str().ok())
        .expect("a traceresponse header");
    assert!(
        traceresponse.contains(&server.trace_id.to_string()),
        "{traceresponse}"
    );

    // Parents.
    let parent = |span: &Span| span.parent_span_id;
    assert_eq!(
        parent(load_user),
        Some(server.span_id),
        "outermost bridged span"
    );
    assert_eq!(parent(query_db), Some(load_user.span_id));
    assert_eq!(parent(decode_row), Some(query_db.span_id));
    assert_eq!(
        parent(audit),
        Some(load_user.span_id),
        "spawned with in_current_span"
    );
    assert_eq!(
        parent(notify_task),
        Some(load_user.span_id),
        "spawned with instrument"
    );
    let ids: Vec<_> = spans.iter().map(|s| s.span_id).collect();
    for (i, id) in ids.iter().enumerate() {
        assert!(
            !ids[i + 1..].contains(id),
            "span ids are unique: {spans:#?}"
        );
    }

    // Fields as typed attributes.
    assert_eq!(attr_i64(load_user, "id"), Some(42));
    assert_eq!(attr_bool(load_user, "admin"), Some(true));
    assert_eq!(attr_str(load_user, "name"), Some("alice"));
    assert_eq!(attr_f64(load_user, "ratio"), Some(0.75));
    assert_eq!(attr_str(query_db, "db.system"), Some("postgresql"));
    assert_eq!(attr_i64(query_db, "id"), Some(42));
    assert_eq!(
        attr_i64(query_db, "rows"),
        Some(1),
        "recorded after creation"
    );
    assert_eq!(attr_i64(decode_row, "id"), Some(42));
    assert_eq!(attr_str(notify_task, "channel"), Some("email"));

    // Conventions.
    assert_eq!(query_db.kind, SpanKind::Client);
    assert_eq!(notify_task.kind, SpanKind::Producer);
    assert_eq!(load_user.kind, SpanKind::Internal);
    assert_eq!(audit.status, Status::error("audit log unavailable"));
    assert_eq!(load_user.status, Status::Unset);

    // Events.
    assert_eq!(load_user.events.len(), 1, "{load_user:#?}");
    assert_eq!(load_user.events[0].name, "cache miss");
    assert_eq!(
        pairs(&load_user.events[0].attributes),
        [
            ("cache".to_owned(), text("miss")),
            ("attempt".to_owned(), Value::I64(1)),
        ]
    );
    assert_eq!(decode_row.events.len(), 1, "{decode_row:#?}");
    assert_eq!(decode_row.events[0].name, "row decoded");
    assert_eq!(
        pairs(&decode_row.events[0].attributes),
        [
            ("bytes".to_owned(), Value::I64(128)),
            ("valid".to_owned(), Value::Bool(true)),
        ]
    );
    assert_eq!(notify_task.events.len(), 1, "{notify_task:#?}");
    assert_eq!(notify_task.events[0].name, "notification queued");
    assert!(query_db.events.is_empty(), "{query_db:#?}");
    assert!(
        server.events.iter().all(|e| e.name != "handler started"),
        "events outside bridged spans are log lines only: {server:#?}"
    );

    // Durations cover the awaits.
    assert!(decode_row.duration >= NAP, "{:?}", decode_row.duration);
    assert!(query_db.duration >= NAP * 2, "{:?}", query_db.duration);
    assert!(audit.duration >= NAP, "{:?}", audit.duration);
    assert!(notify_task.duration >= NAP, "{:?}", notify_task.duration);
    assert!(load_user.duration >= NAP * 4, "{:?}", load_user.duration);
    assert!(server.duration >= load_user.duration, "{spans:#?}");
    // Each child lies within its parent (give or take a clock reading: start times are wall
    // clock, durations monotonic).
    for (child, parent) in [
        (load_user, server),
        (query_db, load_user),
        (decode_row, query_db),
        (audit, load_user),
        (notify_task, load_user),
    ] {
        assert!(
            child.start_time + SLACK >= parent.start_time
                && child.end_time() <= parent.end_time() + SLACK,
            "{} within {}: {spans:#?}",
            child.name,
            parent.name
        );
    }

    // Log lines carry the ids of the innermost bridged span, else of the request.
    let hex = |span: &Span| Some((span.trace_id.to_string(), span.span_id.to_string()));
    let line = logs.line_with("handler started");
    assert_eq!(text_ids(&line), hex(server), "{line:?}");
    let line = logs.line_with("cache miss");
    assert_eq!(text_ids(&line), hex(load_user), "{line:?}");
    let line = logs.line_with("row decoded");
    assert_eq!(text_ids(&line), hex(decode_row), "{line:?}");
    let line = logs.line_with("audit log unavailable");
    assert_eq!(text_ids(&line), hex(audit), "in a spawned task: {line:?}");
    let line = logs.line_with("notification queued");
    assert_eq!(text_ids(&line), hex(notify_task), "{line:?}");
}

/// Unsampled requests (the sampler says no) bridge nothing, and an unbridged span sees the
/// request's unsampled context.
async fn unsampled_requests() {
    let collector = collector();
    let addr = serve(app(&collector, false)).await;

    let reply = get(addr, "/users/7").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "user-7 audited notified");
    assert!(reply.headers.get("traceresponse").is_none());

    let reply = get(addr, "/context").await;
    assert_eq!(reply.status, StatusCode::OK);
    let fields: Vec<&str> = reply.body.split(' ').collect();
    assert_eq!(fields.len(), 5, "{:?}", reply.body);
    assert_ne!(
        fields[0], "-",
        "the unbridged span sees the request's context"
    );
    assert_eq!(fields[0], fields[3], "same trace: {:?}", reply.body);
    assert_eq!(
        fields[1], fields[4],
        "the request's own span: {:?}",
        reply.body
    );
    assert_eq!(fields[2], "false", "unsampled: {:?}", reply.body);

    assert_no_spans(&collector).await;
}
