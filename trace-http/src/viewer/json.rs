//! The JSON the viewer's API answers with.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::ser::{SerializeSeq, Serializer};
use trace_core::{
    Array, CollectorStats, KeyValue, Span, SpanId, Status, StoredTrace, TraceSummary, Value,
};

use super::query::{ListQuery, is_failed, root_status_code};
use crate::semconv::{HTTP_REQUEST_METHOD, HTTP_ROUTE};

/// Most spans one trace answer carries.
pub(crate) const MAX_TRACE_SPANS: usize = 10_000;

/// The attribute naming a span's service.
const SERVICE_NAME: &str = "service.name";

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// Milliseconds since the Unix epoch, with a fraction: exact enough for display in a browser.
fn unix_millis(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64() * 1e3)
}

fn string_attribute<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    match span.attribute(key) {
        Some(Value::String(value)) => Some(value.as_str()),
        _ => None,
    }
}

/// A typed attribute value as JSON: strings, booleans, numbers (non-finite floats as `null`) and
/// arrays of those.
struct ValueJson<'a>(&'a Value);

impl Serialize for ValueJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        fn seq<S: Serializer, T: Serialize>(serializer: S, items: &[T]) -> Result<S::Ok, S::Error> {
            let mut seq = serializer.serialize_seq(Some(items.len()))?;
            for item in items {
                seq.serialize_element(item)?;
            }
            seq.end()
        }
        match self.0 {
            Value::String(s) => serializer.serialize_str(s.as_str()),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::I64(i) => serializer.serialize_i64(*i),
            Value::F64(x) => serializer.serialize_f64(*x),
            Value::Array(Array::Bool(v)) => seq(serializer, v),
            Value::Array(Array::I64(v)) => seq(serializer, v),
            Value::Array(Array::F64(v)) => seq(serializer, v),
            Value::Array(Array::String(v)) => {
                let texts: Vec<&str> = v.iter().map(|s| s.as_str()).collect();
                seq(serializer, &texts)
            }
        }
    }
}

#[derive(Serialize)]
struct AttributeJson<'a> {
    key: &'a str,
    value: ValueJson<'a>,
}

fn attributes(attributes: &[KeyValue]) -> Vec<AttributeJson<'_>> {
    attributes
        .iter()
        .map(|kv| AttributeJson {
            key: &kv.key,
            value: ValueJson(&kv.value),
        })
        .collect()
}

/// One trace in a list.
#[derive(Serialize)]
pub(crate) struct SummaryJson<'a> {
    trace_id: String,
    root_name: &'a str,
    root_service: Option<&'a str>,
    method: Option<&'a str>,
    route: Option<&'a str>,
    status_code: Option<i64>,
    services: Vec<&'a str>,
    routes: Vec<&'a str>,
    start_unix_ms: f64,
    duration_us: u64,
    span_count: usize,
    error_count: usize,
    error: bool,
    debug: bool,
    debug_id: Option<&'a str>,
}

impl<'a> SummaryJson<'a> {
    pub(crate) fn new(summary: &'a TraceSummary) -> Self {
        let root = summary.root();
        Self {
            trace_id: summary.trace_id().to_string(),
            root_name: &root.name,
            root_service: string_attribute(root, SERVICE_NAME),
            method: string_attribute(root, HTTP_REQUEST_METHOD),
            route: string_attribute(root, HTTP_ROUTE),
            status_code: root_status_code(summary),
            services: summary.services().iter().map(|s| s.as_str()).collect(),
            routes: summary.routes().iter().map(|s| s.as_str()).collect(),
            start_unix_ms: unix_millis(summary.start_time()),
            duration_us: micros(summary.duration()),
            span_count: summary.span_count(),
            error_count: summary.error_count(),
            error: is_failed(summary),
            debug: summary.is_debug(),
            debug_id: summary.debug_id(),
        }
    }
}

/// The store's sizes and eviction counts.
#[derive(Serialize)]
pub(crate) struct StoreJson {
    spans: usize,
    traces: usize,
    bytes: usize,
    evicted_spans: u64,
    evicted_traces: u64,
    trimmed_spans: u64,
}

impl From<CollectorStats> for StoreJson {
    fn from(stats: CollectorStats) -> Self {
        Self {
            spans: stats.spans,
            traces: stats.traces,
            bytes: stats.bytes,
            evicted_spans: stats.evicted_spans,
            evicted_traces: stats.evicted_traces,
            trimmed_spans: stats.trimmed_spans,
        }
    }
}

/// `GET api/traces`.
#[derive(Serialize)]
pub(crate) struct ListJson<'a> {
    order: &'static str,
    limit: usize,
    /// Traces that passed the filters, before the limit.
    matched: usize,
    traces: Vec<SummaryJson<'a>>,
    store: StoreJson,
}

impl<'a> ListJson<'a> {
    /// Filters, orders and cuts `summaries` (most recent first, as the store gives them).
    pub(crate) fn new(
        query: &ListQuery,
        summaries: &'a [TraceSummary],
        stats: CollectorStats,
    ) -> Self {
        let mut matching: Vec<&TraceSummary> =
            summaries.iter().filter(|s| query.matches(s)).collect();
        if query.order == super::query::Order::Slowest {
            // Stable: equal durations keep the most recent first.
            matching.sort_by_key(|s| std::cmp::Reverse(s.duration()));
        }
        let matched = matching.len();
        Self {
            order: query.order.as_str(),
            limit: query.limit,
            matched,
            traces: matching
                .into_iter()
                .take(query.limit)
                .map(SummaryJson::new)
                .collect(),
            store: stats.into(),
        }
    }
}

#[derive(Serialize)]
struct StatusJson<'a> {
    code: &'static str,
    message: Option<&'a str>,
}

#[derive(Serialize)]
struct EventJson<'a> {
    name: &'a str,
    offset_us: u64,
    attributes: Vec<AttributeJson<'a>>,
}

#[derive(Serialize)]
struct LinkJson {
    trace_id: String,
    span_id: String,
}

#[derive(Serialize)]
struct SpanJson<'a> {
    span_id: String,
    parent_span_id: Option<String>,
    /// Nesting in the waterfall: 0 for the root and for spans whose parent is not stored.
    depth: usize,
    name: &'a str,
    kind: &'static str,
    /// The span's `service.name`, else its nearest ancestor's.
    service: Option<&'a str>,
    start_unix_ms: f64,
    /// From the trace's start.
    offset_us: u64,
    duration_us: u64,
    status: StatusJson<'a>,
    sampled: bool,
    debug: bool,
    debug_id: Option<&'a str>,
    attributes: Vec<AttributeJson<'a>>,
    events: Vec<EventJson<'a>>,
    links: Vec<LinkJson>,
}

/// `GET api/traces/{trace_id}`.
#[derive(Serialize)]
pub(crate) struct TraceJson<'a> {
    trace_id: String,
    summary: SummaryJson<'a>,
    /// Spans in waterfall order: each parent before its children, siblings by start time.
    spans: Vec<SpanJson<'a>>,
    /// Whether spans were left out (the trace held more than the answer carries).
    truncated: bool,
}

impl<'a> TraceJson<'a> {
    pub(crate) fn new(trace: &'a StoredTrace) -> Self {
        let start = trace.summary.start_time();
        let offset = |time: SystemTime| micros(time.duration_since(start).unwrap_or_default());
        let spans = waterfall(&trace.spans)
            .into_iter()
            .take(MAX_TRACE_SPANS)
            .map(|row| {
                let span: &Span = &trace.spans[row.index];
                SpanJson {
                    span_id: span.span_id.to_string(),
                    parent_span_id: span.parent_span_id.map(|p| p.to_string()),
                    depth: row.depth,
                    name: &span.name,
                    kind: span.kind.as_str(),
                    service: row
                        .service
                        .and_then(|i| string_attribute(&trace.spans[i], SERVICE_NAME)),
                    start_unix_ms: unix_millis(span.start_time),
                    offset_us: offset(span.start_time),
                    duration_us: micros(span.duration),
                    status: match &span.status {
                        Status::Unset => StatusJson {
                            code: "unset",
                            message: None,
                        },
                        Status::Ok => StatusJson {
                            code: "ok",
                            message: None,
                        },
                        Status::Error { message } => StatusJson {
                            code: "error",
                            message: Some(message),
                        },
                    },
                    sampled: span.flags.is_sampled(),
                    debug: span.flags.is_debug(),
                    debug_id: span.debug_id.as_deref(),
                    attributes: attributes(&span.attributes),
                    events: span
                        .events
                        .iter()
                        .map(|event| EventJson {
                            name: &event.name,
                            offset_us: offset(event.time),
                            attributes: attributes(&event.attributes),
                        })
                        .collect(),
                    links: span
                        .links
                        .iter()
                        .map(|link| LinkJson {
                            trace_id: link.trace_id.to_string(),
                            span_id: link.span_id.to_string(),
                        })
                        .collect(),
                }
            })
            .collect();
        Self {
            trace_id: trace.summary.trace_id().to_string(),
            summary: SummaryJson::new(&trace.summary),
            spans,
            truncated: trace.spans.len() > MAX_TRACE_SPANS,
        }
    }
}

/// One waterfall row: which span, how deep, and which span's `service.name` it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Row {
    index: usize,
    depth: usize,
    service: Option<usize>,
}

/// Orders spans as a tree: each parent before its children, siblings (and roots) by start time.
/// A span whose parent is not stored is a root. Parent links come from the network, so a cycle
/// or a repeated span id must not loop or lose a span: every span is placed exactly once.
fn waterfall(spans: &[Arc<Span>]) -> Vec<Row> {
    let mut by_id: HashMap<SpanId, usize> = HashMap::with_capacity(spans.len());
    for (index, span) in spans.iter().enumerate() {
        by_id.entry(span.span_id).or_insert(index);
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for (index, span) in spans.iter().enumerate() {
        match span.parent_span_id.and_then(|p| by_id.get(&p)) {
            Some(&parent) if parent != index => children[parent].push(index),
            _ => roots.push(index),
        }
    }
    let by_start = |a: &usize, b: &usize| {
        spans[*a]
            .start_time
            .cmp(&spans[*b].start_time)
            .then(a.cmp(b))
    };
    roots.sort_by(by_start);
    for list in &mut children {
        list.sort_by(by_start);
    }
    let own_service = |index: usize| string_attribute(&spans[index], SERVICE_NAME).map(|_| index);

    let mut placed = vec![false; spans.len()];
    let mut rows = Vec::with_capacity(spans.len());
    let mut stack: Vec<Row> = Vec::new();
    // Roots first; then whatever a cycle kept unreachable, each as a root of its own.
    let starts = roots.into_iter().chain(0..spans.len());
    for start in starts {
        if placed[start] {
            continue;
        }
        stack.push(Row {
            index: start,
            depth: 0,
            service: own_service(start),
        });
        while let Some(row) = stack.pop() {
            if placed[row.index] {
                continue;
            }
            placed[row.index] = true;
            rows.push(row);
            // Reversed, so that the earliest child is popped first.
            for &child in children[row.index].iter().rev() {
                if !placed[child] {
                    stack.push(Row {
                        index: child,
                        depth: row.depth + 1,
                        service: own_service(child).or(row.service),
                    });
                }
            }
        }
    }
    rows
}

#[derive(Serialize)]
struct ServiceJson<'a> {
    name: &'a str,
    traces: usize,
}

/// `GET api/services`.
#[derive(Serialize)]
pub(crate) struct ServicesJson<'a> {
    services: Vec<ServiceJson<'a>>,
}

impl<'a> ServicesJson<'a> {
    pub(crate) fn new(summaries: &'a [TraceSummary]) -> Self {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for summary in summaries {
            for service in summary.services() {
                *counts.entry(service.as_str()).or_default() += 1;
            }
        }
        let mut services: Vec<ServiceJson<'_>> = counts
            .into_iter()
            .map(|(name, traces)| ServiceJson { name, traces })
            .collect();
        services.sort_by(|a, b| a.name.cmp(b.name));
        Self { services }
    }
}

/// An error answer's body.
#[derive(Serialize)]
pub(crate) struct ErrorJson<'a> {
    pub(crate) error: &'a str,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use trace_core::{InMemoryCollector, SpanContext, TraceFlags};

    use super::*;

    fn span(name: &'static str, id: u64, parent: Option<u64>, start_ms: u64) -> Arc<Span> {
        let store = Arc::new(InMemoryCollector::new(1));
        let context = SpanContext::new_root(TraceFlags::SAMPLED).with_collector(store.clone());
        drop(context.child(name));
        let mut span = store.spans().pop().expect("one span recorded");
        span.span_id = SpanId::from_u64(id).expect("non-zero");
        span.parent_span_id = parent.and_then(SpanId::from_u64);
        span.start_time = UNIX_EPOCH + Duration::from_millis(start_ms);
        Arc::new(span)
    }

    fn names_and_depths(spans: &[Arc<Span>]) -> Vec<(&str, usize)> {
        waterfall(spans)
            .iter()
            .map(|row| (&*spans[row.index].name, row.depth))
            .collect()
    }

    #[test]
    fn parents_come_before_children_and_siblings_by_start() {
        let spans = [
            span("late child", 3, Some(1), 30),
            span("grandchild", 4, Some(2), 25),
            span("early child", 2, Some(1), 20),
            span("root", 1, None, 10),
            span("orphan", 5, Some(99), 5),
        ];
        assert_eq!(
            names_and_depths(&spans),
            [
                ("orphan", 0),
                ("root", 0),
                ("early child", 1),
                ("grandchild", 2),
                ("late child", 1),
            ]
        );
    }

    #[test]
    fn cycles_and_repeated_ids_place_every_span_once() {
        let spans = [
            span("a", 1, Some(2), 1),
            span("b", 2, Some(1), 2),
            span("self", 3, Some(3), 3),
            span("again", 1, None, 4),
        ];
        let rows = names_and_depths(&spans);
        assert_eq!(rows.len(), 4);
        let mut names: Vec<&str> = rows.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        assert_eq!(names, ["a", "again", "b", "self"]);
    }
}
