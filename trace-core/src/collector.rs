//! Where finished spans go.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use crate::{Span, StringValue, TraceId, Value};

/// Receives finished spans.
///
/// `collect` is called on the request path (when a response body ends), so it must not block:
/// implementations hand the span on (to a bounded queue, a ring) and return.
pub trait Collector: Send + Sync + fmt::Debug + 'static {
    /// Takes one finished span.
    fn collect(&self, span: Span);
}

/// Discards every span.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopCollector;

impl Collector for NoopCollector {
    #[inline]
    fn collect(&self, _span: Span) {}
}

/// Sends every span to several collectors: the in-memory store of the trace viewer beside an
/// exporter, say. Each collector but the last gets a clone.
///
/// ```
/// use std::sync::Arc;
/// use trace_core::{Collector, FanOut, InMemoryCollector, SpanContext, TraceFlags};
///
/// let viewer = Arc::new(InMemoryCollector::new(100));
/// let tests = Arc::new(InMemoryCollector::new(100));
/// let both: Arc<dyn Collector> = Arc::new(FanOut::new([
///     viewer.clone() as Arc<dyn Collector>,
///     tests.clone(),
/// ]));
/// drop(SpanContext::new_root(TraceFlags::SAMPLED).with_collector(both).child("work"));
/// assert_eq!((viewer.len(), tests.len()), (1, 1));
/// ```
#[derive(Debug, Clone, Default)]
pub struct FanOut {
    collectors: Vec<Arc<dyn Collector>>,
}

impl FanOut {
    /// Collects into each of `collectors`, in order.
    pub fn new(collectors: impl IntoIterator<Item = Arc<dyn Collector>>) -> Self {
        Self {
            collectors: collectors.into_iter().collect(),
        }
    }
}

impl Collector for FanOut {
    fn collect(&self, span: Span) {
        if let Some((last, others)) = self.collectors.split_last() {
            for collector in others {
                collector.collect(span.clone());
            }
            last.collect(span);
        }
    }
}

/// Keeps the most recent spans in memory and answers queries about them: by trace id, as trace
/// summaries, by debug id. For tests and the embedded trace viewer.
///
/// Four bounds, each configurable (see [`InMemoryCollector::builder`]):
/// - **spans** and **bytes** in all: a new span that would pass either evicts the oldest spans,
///   one at a time;
/// - **traces**: a span of a new trace, when the store already holds the maximum, evicts the whole
///   trace whose latest span is the oldest;
/// - **spans per trace**: a span of a trace that already holds the maximum evicts that trace's
///   oldest span (a trace's root usually ends last, so it stays).
///
/// Every eviction is counted ([`evicted`](Self::evicted), [`stats`](Self::stats)). Collecting a
/// span takes a mutex for a few map updates — no scan over the stored spans — and the spans it
/// evicts are freed after the lock is released.
///
/// ```
/// use std::sync::Arc;
/// use trace_core::{InMemoryCollector, SpanContext, TraceFlags};
///
/// let collector = Arc::new(InMemoryCollector::new(2));
/// let context = SpanContext::new_root(TraceFlags::SAMPLED).with_collector(collector.clone());
/// for name in ["a", "b", "c"] {
///     drop(context.child(name));
/// }
/// let names: Vec<_> = collector.spans().into_iter().map(|s| s.name).collect();
/// assert_eq!(names, ["b", "c"]);
/// assert_eq!(collector.evicted(), 1);
/// ```
pub struct InMemoryCollector {
    limits: Limits,
    store: Mutex<Store>,
    evicted: AtomicU64,
    evicted_traces: AtomicU64,
    trimmed: AtomicU64,
}

/// The bounds of an [`InMemoryCollector`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limits {
    max_spans: usize,
    max_bytes: usize,
    max_traces: usize,
    max_spans_per_trace: usize,
}

/// Configures an [`InMemoryCollector`]'s bounds; from [`InMemoryCollector::builder`].
///
/// ```
/// use trace_core::InMemoryCollector;
///
/// let store = InMemoryCollector::builder()
///     .max_traces(500)
///     .max_spans_per_trace(200)
///     .max_spans(20_000)
///     .max_bytes(32 << 20)
///     .build();
/// assert!(store.is_empty());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct InMemoryCollectorBuilder {
    limits: Limits,
}

impl InMemoryCollectorBuilder {
    /// At most this many spans in all (default [`InMemoryCollector::DEFAULT_MAX_SPANS`]).
    pub fn max_spans(mut self, max: usize) -> Self {
        self.limits.max_spans = max;
        self
    }

    /// At most about this many bytes of span data in all (default
    /// [`InMemoryCollector::DEFAULT_MAX_BYTES`]).
    pub fn max_bytes(mut self, max: usize) -> Self {
        self.limits.max_bytes = max;
        self
    }

    /// At most this many traces (default [`InMemoryCollector::DEFAULT_MAX_TRACES`]).
    pub fn max_traces(mut self, max: usize) -> Self {
        self.limits.max_traces = max;
        self
    }

    /// At most this many spans of any one trace (default
    /// [`InMemoryCollector::DEFAULT_MAX_SPANS_PER_TRACE`]).
    pub fn max_spans_per_trace(mut self, max: usize) -> Self {
        self.limits.max_spans_per_trace = max;
        self
    }

    /// The collector.
    pub fn build(self) -> InMemoryCollector {
        InMemoryCollector::from_limits(self.limits)
    }
}

/// Counts describing an [`InMemoryCollector`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CollectorStats {
    /// Stored spans.
    pub spans: usize,
    /// Stored traces.
    pub traces: usize,
    /// Approximate bytes held by the stored spans.
    pub bytes: usize,
    /// Spans evicted or refused since creation, for any reason.
    pub evicted_spans: u64,
    /// Traces evicted whole to respect the trace bound.
    pub evicted_traces: u64,
    /// Spans evicted because their trace held the most spans a trace may (also in
    /// `evicted_spans`).
    pub trimmed_spans: u64,
}

/// What the store knows of one trace, kept up to date as its spans arrive: the root, the time
/// span, counts, the services and routes it passed through, whether a debug header forced it.
#[derive(Debug, Clone)]
pub struct TraceSummary {
    trace_id: TraceId,
    root: Arc<Span>,
    start_time: SystemTime,
    end_time: SystemTime,
    span_count: usize,
    error_count: usize,
    services: Option<Arc<[StringValue]>>,
    routes: Option<Arc<[StringValue]>>,
    debug: bool,
    debug_id: Option<Arc<str>>,
}

/// Most distinct services (and routes) a summary lists; a trace through more shows the first.
const MAX_DISTINCT: usize = 16;
/// The attribute naming a span's service (OpenTelemetry's resource attribute).
const SERVICE_NAME: &str = "service.name";
/// The attribute holding a server span's route template.
const HTTP_ROUTE: &str = "http.route";

impl TraceSummary {
    fn new(span: &Arc<Span>) -> Self {
        Self {
            trace_id: span.trace_id,
            root: span.clone(),
            start_time: span.start_time,
            end_time: span.end_time(),
            span_count: 0,
            error_count: 0,
            services: None,
            routes: None,
            debug: false,
            debug_id: None,
        }
    }

    /// Takes one more span of the trace into account.
    fn absorb(&mut self, span: &Arc<Span>, facts: &SpanFacts) {
        self.span_count += 1;
        self.error_count += usize::from(span.status.is_error());
        self.start_time = self.start_time.min(span.start_time);
        self.end_time = self.end_time.max(facts.end_time);
        let root_is_parentless = self.root.parent_span_id.is_none();
        let parentless = span.parent_span_id.is_none();
        if (parentless && !root_is_parentless)
            || (parentless == root_is_parentless && span.start_time < self.root.start_time)
        {
            self.root = span.clone();
        }
        add_distinct(&mut self.services, facts.service.as_ref());
        add_distinct(&mut self.routes, facts.route.as_ref());
        self.debug |= span.flags.is_debug();
        if self.debug_id.is_none() {
            self.debug_id.clone_from(&span.debug_id);
        }
    }

    /// A summary rebuilt from the spans still stored.
    fn rebuild<'a>(mut spans: impl Iterator<Item = &'a Arc<Span>>) -> Option<Self> {
        let first = spans.next()?;
        let mut summary = Self::new(first);
        summary.absorb(first, &SpanFacts::of(first));
        for span in spans {
            summary.absorb(span, &SpanFacts::of(span));
        }
        Some(summary)
    }

    /// The trace.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// The trace's root span: the stored span without a parent, else (a trace continued from
    /// another process, or whose root has not ended yet) the one that started first.
    pub fn root(&self) -> &Arc<Span> {
        &self.root
    }

    /// When the earliest stored span started.
    pub fn start_time(&self) -> SystemTime {
        self.start_time
    }

    /// When the latest stored span ended.
    pub fn end_time(&self) -> SystemTime {
        self.end_time
    }

    /// From the earliest start to the latest end.
    pub fn duration(&self) -> Duration {
        self.end_time
            .duration_since(self.start_time)
            .unwrap_or(Duration::ZERO)
    }

    /// Stored spans.
    pub fn span_count(&self) -> usize {
        self.span_count
    }

    /// Stored spans whose status is an error.
    pub fn error_count(&self) -> usize {
        self.error_count
    }

    /// The distinct `service.name` values of the spans, in order of arrival (at most 16).
    pub fn services(&self) -> &[StringValue] {
        self.services.as_deref().unwrap_or_default()
    }

    /// The distinct `http.route` values of the spans, in order of arrival (at most 16).
    pub fn routes(&self) -> &[StringValue] {
        self.routes.as_deref().unwrap_or_default()
    }

    /// Whether a span of the trace carries the debug flag (a debug header forced it).
    pub fn is_debug(&self) -> bool {
        self.debug
    }

    /// The debug id (`jaeger-debug-id`) that forced the trace, if one did.
    pub fn debug_id(&self) -> Option<&str> {
        self.debug_id.as_deref()
    }
}

/// Adds `value` to a short list of distinct values. The list is one allocation, made anew only
/// when a value is added (rarely: once per service or route of a trace), so that summaries handed
/// out share it.
fn add_distinct(values: &mut Option<Arc<[StringValue]>>, value: Option<&StringValue>) {
    let Some(value) = value else {
        return;
    };
    match values {
        None => *values = Some(Arc::from([value.clone()])),
        Some(list) if list.len() < MAX_DISTINCT && !list.contains(value) => {
            *list = list.iter().chain([value]).cloned().collect();
        }
        Some(_) => {}
    }
}

/// What a summary needs of a span that takes a search through its attributes: found before the
/// store is locked.
struct SpanFacts {
    end_time: SystemTime,
    service: Option<StringValue>,
    route: Option<StringValue>,
}

impl SpanFacts {
    fn of(span: &Span) -> Self {
        let string = |key| match span.attribute(key) {
            Some(Value::String(value)) => Some(value.clone()),
            _ => None,
        };
        Self {
            end_time: span.end_time(),
            service: string(SERVICE_NAME),
            route: string(HTTP_ROUTE),
        }
    }
}

/// One stored trace: its summary and its spans.
#[derive(Debug, Clone)]
pub struct StoredTrace {
    /// The summary.
    pub summary: TraceSummary,
    /// The spans, in the order they ended.
    pub spans: Vec<Arc<Span>>,
}

/// Marks the end of an intrusive list.
const NIL: usize = usize::MAX;

/// The spans and traces. Both live in slabs (vectors whose freed slots are reused) threaded on
/// intrusive doubly-linked lists — spans by arrival, traces by the arrival of their latest span —
/// so every update `collect` makes (append, evict the oldest span, trim a trace, evict the least
/// recent trace) is O(1): no search, no tree, and no allocation once the slabs have grown.
///
/// Slot indices are internal: every index held in a list or in `index` names an occupied slot
/// (the property test in this file checks the lists against the counts).
struct Store {
    spans: Vec<SpanSlot>,
    free_spans: Vec<usize>,
    traces: Vec<TraceSlot>,
    free_traces: Vec<usize>,
    index: HashMap<TraceId, usize>,
    /// Every stored span, oldest first.
    arrival: Ends,
    /// Every stored trace, by the arrival of its latest span.
    recency: Ends,
    span_count: usize,
    bytes: usize,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            spans: Vec::new(),
            free_spans: Vec::new(),
            traces: Vec::new(),
            free_traces: Vec::new(),
            index: HashMap::new(),
            arrival: Ends::EMPTY,
            recency: Ends::EMPTY,
            span_count: 0,
            bytes: 0,
        }
    }
}

/// The two ends of an intrusive list.
#[derive(Clone, Copy)]
struct Ends {
    oldest: usize,
    newest: usize,
}

impl Ends {
    const EMPTY: Self = Self {
        oldest: NIL,
        newest: NIL,
    };
}

struct SpanSlot {
    span: Option<Arc<Span>>,
    size: usize,
    trace: usize,
    /// Neighbours in the arrival list.
    older: usize,
    newer: usize,
    /// The next newer span of the same trace.
    next_in_trace: usize,
}

struct TraceSlot {
    entry: Option<TraceEntry>,
    /// Neighbours in the recency list.
    older: usize,
    newer: usize,
}

struct TraceEntry {
    id: TraceId,
    /// The trace's own spans, oldest first (linked by `next_in_trace`).
    spans: Ends,
    len: usize,
    summary: TraceSummary,
    /// A span left the trace: the summary is rebuilt before it is next read.
    stale: bool,
}

/// What one `collect` evicted: the spans are dropped after the lock is released.
#[derive(Default)]
struct Evicted {
    first: Option<Arc<Span>>,
    more: Vec<Arc<Span>>,
    spans: u64,
    traces: u64,
    trimmed: u64,
}

impl Evicted {
    fn push(&mut self, span: Arc<Span>) {
        self.spans += 1;
        if self.first.is_none() {
            self.first = Some(span);
        } else {
            self.more.push(span);
        }
    }
}

impl Store {
    fn arrival_push(&mut self, slot: usize) {
        let newest = self.arrival.newest;
        self.spans[slot].older = newest;
        self.spans[slot].newer = NIL;
        match newest {
            NIL => self.arrival.oldest = slot,
            newest => self.spans[newest].newer = slot,
        }
        self.arrival.newest = slot;
    }

    fn arrival_unlink(&mut self, slot: usize) {
        let (older, newer) = (self.spans[slot].older, self.spans[slot].newer);
        match older {
            NIL => self.arrival.oldest = newer,
            older => self.spans[older].newer = newer,
        }
        match newer {
            NIL => self.arrival.newest = older,
            newer => self.spans[newer].older = older,
        }
    }

    fn recency_push(&mut self, trace: usize) {
        let newest = self.recency.newest;
        self.traces[trace].older = newest;
        self.traces[trace].newer = NIL;
        match newest {
            NIL => self.recency.oldest = trace,
            newest => self.traces[newest].newer = trace,
        }
        self.recency.newest = trace;
    }

    fn recency_unlink(&mut self, trace: usize) {
        let (older, newer) = (self.traces[trace].older, self.traces[trace].newer);
        match older {
            NIL => self.recency.oldest = newer,
            older => self.traces[older].newer = newer,
        }
        match newer {
            NIL => self.recency.newest = older,
            newer => self.traces[newer].older = older,
        }
    }

    /// Frees a span's slot (already out of its trace's list).
    fn release_span(&mut self, slot: usize, evicted: &mut Evicted) {
        self.arrival_unlink(slot);
        let freed = &mut self.spans[slot];
        self.bytes -= freed.size;
        self.span_count -= 1;
        if let Some(span) = freed.span.take() {
            evicted.push(span);
        }
        self.free_spans.push(slot);
    }

    /// Evicts a trace's oldest span; returns how many spans the trace has left.
    fn pop_trace_oldest(&mut self, trace: usize, evicted: &mut Evicted) -> usize {
        let Some(entry) = self.traces[trace].entry.as_mut() else {
            return 0;
        };
        let slot = entry.spans.oldest;
        if slot == NIL {
            return 0;
        }
        entry.spans.oldest = self.spans[slot].next_in_trace;
        if entry.spans.oldest == NIL {
            entry.spans.newest = NIL;
        }
        entry.len -= 1;
        entry.stale = true;
        let left = entry.len;
        self.release_span(slot, evicted);
        left
    }

    /// Unlinks and frees a trace's slot, returning what it held.
    fn remove_trace(&mut self, trace: usize) -> Option<TraceEntry> {
        self.recency_unlink(trace);
        let entry = self.traces[trace].entry.take();
        if let Some(entry) = &entry {
            self.index.remove(&entry.id);
        }
        self.free_traces.push(trace);
        entry
    }

    /// Evicts the oldest span overall; false when the store is empty.
    fn evict_oldest_span(&mut self, evicted: &mut Evicted) -> bool {
        let slot = self.arrival.oldest;
        if slot == NIL {
            return false;
        }
        // Spans enter both lists in arrival order and leave a trace only from its old end, so
        // the oldest span overall is the oldest of its trace.
        let trace = self.spans[slot].trace;
        let oldest_of_its_trace = self.traces[trace]
            .entry
            .as_ref()
            .is_some_and(|entry| entry.spans.oldest == slot);
        debug_assert!(oldest_of_its_trace);
        if !oldest_of_its_trace {
            // Unreachable; still, free the slot so that eviction always makes progress.
            self.release_span(slot, evicted);
        } else if self.pop_trace_oldest(trace, evicted) == 0 {
            self.remove_trace(trace);
        }
        true
    }

    /// Evicts the trace whose latest span is the oldest; false when the store holds none.
    fn evict_least_recent_trace(&mut self, evicted: &mut Evicted) -> bool {
        let trace = self.recency.oldest;
        if trace == NIL {
            return false;
        }
        if let Some(entry) = self.remove_trace(trace) {
            let mut slot = entry.spans.oldest;
            while slot != NIL {
                let next = self.spans[slot].next_in_trace;
                self.release_span(slot, evicted);
                slot = next;
            }
            evicted.traces += 1;
        }
        true
    }

    /// Stores a span; `known` is its trace's slot, when the trace is stored.
    fn insert(&mut self, known: Option<usize>, span: Arc<Span>, size: usize, facts: &SpanFacts) {
        let trace = match known {
            Some(trace) => {
                self.recency_unlink(trace);
                trace
            }
            None => {
                let entry = TraceEntry {
                    id: span.trace_id,
                    spans: Ends::EMPTY,
                    len: 0,
                    summary: TraceSummary::new(&span),
                    stale: false,
                };
                let trace = match self.free_traces.pop() {
                    Some(trace) => {
                        self.traces[trace].entry = Some(entry);
                        trace
                    }
                    None => {
                        self.traces.push(TraceSlot {
                            entry: Some(entry),
                            older: NIL,
                            newer: NIL,
                        });
                        self.traces.len() - 1
                    }
                };
                self.index.insert(span.trace_id, trace);
                trace
            }
        };
        self.recency_push(trace);
        let new_slot = SpanSlot {
            span: None,
            size,
            trace,
            older: NIL,
            newer: NIL,
            next_in_trace: NIL,
        };
        let slot = match self.free_spans.pop() {
            Some(slot) => {
                self.spans[slot] = new_slot;
                slot
            }
            None => {
                self.spans.push(new_slot);
                self.spans.len() - 1
            }
        };
        if let Some(entry) = self.traces[trace].entry.as_mut() {
            if !entry.stale {
                entry.summary.absorb(&span, facts);
            }
            match entry.spans.newest {
                NIL => entry.spans.oldest = slot,
                newest => self.spans[newest].next_in_trace = slot,
            }
            entry.spans.newest = slot;
            entry.len += 1;
        }
        self.spans[slot].span = Some(span);
        self.arrival_push(slot);
        self.span_count += 1;
        self.bytes += size;
    }

    /// A trace's spans, oldest first.
    fn trace_spans(&self, trace: usize) -> impl Iterator<Item = &Arc<Span>> {
        let mut slot = self.traces[trace]
            .entry
            .as_ref()
            .map_or(NIL, |entry| entry.spans.oldest);
        std::iter::from_fn(move || {
            if slot == NIL {
                return None;
            }
            let current = &self.spans[slot];
            slot = current.next_in_trace;
            current.span.as_ref()
        })
    }

    /// A trace's summary, rebuilt first if a span has left it.
    fn fresh_summary(&mut self, trace: usize) -> Option<&TraceSummary> {
        let stale = self.traces[trace].entry.as_ref()?.stale;
        if stale {
            let rebuilt = TraceSummary::rebuild(self.trace_spans(trace));
            let entry = self.traces[trace].entry.as_mut()?;
            if let Some(summary) = rebuilt {
                entry.summary = summary;
            }
            entry.stale = false;
        }
        self.traces[trace]
            .entry
            .as_ref()
            .map(|entry| &entry.summary)
    }

    /// Trace slots, the one with the most recent span first.
    fn most_recent_first(&self) -> impl Iterator<Item = usize> + '_ {
        let mut trace = self.recency.newest;
        std::iter::from_fn(move || {
            if trace == NIL {
                return None;
            }
            let current = trace;
            trace = self.traces[current].older;
            Some(current)
        })
    }
}

impl InMemoryCollector {
    /// Default byte bound: 64 MiB of span data.
    pub const DEFAULT_MAX_BYTES: usize = 64 << 20;
    /// Default span bound of [`builder`](Self::builder).
    pub const DEFAULT_MAX_SPANS: usize = 100_000;
    /// Default trace bound of [`builder`](Self::builder).
    pub const DEFAULT_MAX_TRACES: usize = 10_000;
    /// Default bound on one trace's spans of [`builder`](Self::builder).
    pub const DEFAULT_MAX_SPANS_PER_TRACE: usize = 2_000;

    /// Keeps at most `max_spans` spans (and at most [`Self::DEFAULT_MAX_BYTES`] of them), with no
    /// bound on traces or on spans per trace.
    pub fn new(max_spans: usize) -> Self {
        Self::with_limits(max_spans, Self::DEFAULT_MAX_BYTES)
    }

    /// Keeps at most `max_spans` spans holding at most about `max_bytes` in all, with no bound on
    /// traces or on spans per trace.
    pub fn with_limits(max_spans: usize, max_bytes: usize) -> Self {
        Self::from_limits(Limits {
            max_spans,
            max_bytes,
            max_traces: usize::MAX,
            max_spans_per_trace: usize::MAX,
        })
    }

    /// A builder for all four bounds, starting from the `DEFAULT_*` constants.
    pub fn builder() -> InMemoryCollectorBuilder {
        InMemoryCollectorBuilder {
            limits: Limits {
                max_spans: Self::DEFAULT_MAX_SPANS,
                max_bytes: Self::DEFAULT_MAX_BYTES,
                max_traces: Self::DEFAULT_MAX_TRACES,
                max_spans_per_trace: Self::DEFAULT_MAX_SPANS_PER_TRACE,
            },
        }
    }

    fn from_limits(limits: Limits) -> Self {
        Self {
            limits,
            store: Mutex::new(Store::default()),
            evicted: AtomicU64::new(0),
            evicted_traces: AtomicU64::new(0),
            trimmed: AtomicU64::new(0),
        }
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        // Nothing under the lock panics on any input (the indices are the store's own), so a
        // poisoned lock still guards consistent data.
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every stored span, oldest first.
    pub fn spans(&self) -> Vec<Span> {
        let store = self.store();
        let mut spans = Vec::with_capacity(store.span_count);
        let mut slot = store.arrival.oldest;
        while slot != NIL {
            let current = &store.spans[slot];
            if let Some(span) = &current.span {
                spans.push(Span::clone(span));
            }
            slot = current.newer;
        }
        spans
    }

    /// The stored spans of one trace, in the order they ended.
    pub fn spans_of_trace(&self, trace_id: TraceId) -> Vec<Span> {
        let store = self.store();
        match store.index.get(&trace_id) {
            Some(&trace) => store
                .trace_spans(trace)
                .map(|span| Span::clone(span))
                .collect(),
            None => Vec::new(),
        }
    }

    /// One stored trace: its summary and its spans (shared, not copied), in the order they ended.
    pub fn trace(&self, trace_id: TraceId) -> Option<StoredTrace> {
        let mut store = self.store();
        let trace = *store.index.get(&trace_id)?;
        let summary = store.fresh_summary(trace)?.clone();
        let spans = store.trace_spans(trace).cloned().collect();
        Some(StoredTrace { summary, spans })
    }

    /// The summaries of every stored trace, the one with the most recently ended span first.
    pub fn summaries(&self) -> Vec<TraceSummary> {
        let mut store = self.store();
        let order: Vec<usize> = store.most_recent_first().collect();
        order
            .into_iter()
            .filter_map(|trace| store.fresh_summary(trace).cloned())
            .collect()
    }

    /// The stored traces a debug header with this id forced, the most recent first.
    pub fn traces_with_debug_id(&self, debug_id: &str) -> Vec<TraceId> {
        let mut store = self.store();
        let order: Vec<usize> = store.most_recent_first().collect();
        order
            .into_iter()
            .filter_map(|trace| {
                let summary = store.fresh_summary(trace)?;
                (summary.debug_id() == Some(debug_id)).then_some(summary.trace_id())
            })
            .collect()
    }

    /// The ids of stored traces, the one with the most recently ended span first.
    pub fn trace_ids(&self) -> Vec<TraceId> {
        let store = self.store();
        store
            .most_recent_first()
            .filter_map(|trace| store.traces[trace].entry.as_ref().map(|e| e.id))
            .collect()
    }

    /// Number of stored spans.
    pub fn len(&self) -> usize {
        self.store().span_count
    }

    /// Whether no span is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of stored traces.
    pub fn trace_count(&self) -> usize {
        self.store().index.len()
    }

    /// Approximate bytes held by stored spans.
    pub fn bytes(&self) -> usize {
        self.store().bytes
    }

    /// Spans evicted (or refused for being larger than the whole bound) since creation, for any
    /// reason.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Traces evicted whole, to respect the trace bound, since creation.
    pub fn evicted_traces(&self) -> u64 {
        self.evicted_traces.load(Ordering::Relaxed)
    }

    /// Spans evicted because their trace held the most spans a trace may (counted in
    /// [`evicted`](Self::evicted) too).
    pub fn trimmed_spans(&self) -> u64 {
        self.trimmed.load(Ordering::Relaxed)
    }

    /// Sizes and eviction counts, at one moment.
    pub fn stats(&self) -> CollectorStats {
        let (spans, traces, bytes) = {
            let store = self.store();
            (store.span_count, store.index.len(), store.bytes)
        };
        CollectorStats {
            spans,
            traces,
            bytes,
            evicted_spans: self.evicted(),
            evicted_traces: self.evicted_traces(),
            trimmed_spans: self.trimmed_spans(),
        }
    }

    /// Removes every stored span.
    pub fn clear(&self) {
        let old = std::mem::take(&mut *self.store());
        drop(old);
    }

    /// Walks every list and checks it against the counts.
    #[cfg(test)]
    fn check_consistency(&self) {
        let store = self.store();
        let (mut count, mut bytes, mut slot, mut previous) = (0, 0, store.arrival.oldest, NIL);
        while slot != NIL {
            assert_eq!(store.spans[slot].older, previous);
            assert!(store.spans[slot].span.is_some());
            count += 1;
            bytes += store.spans[slot].size;
            previous = slot;
            slot = store.spans[slot].newer;
        }
        assert_eq!(store.arrival.newest, previous);
        assert_eq!((count, bytes), (store.span_count, store.bytes));
        let traces: Vec<usize> = store.most_recent_first().collect();
        assert_eq!(traces.len(), store.index.len());
        let mut in_traces = 0;
        for trace in traces {
            let entry = store.traces[trace]
                .entry
                .as_ref()
                .expect("listed traces are occupied");
            assert_eq!(store.index.get(&entry.id), Some(&trace));
            let spans: Vec<&Arc<Span>> = store.trace_spans(trace).collect();
            assert_eq!(spans.len(), entry.len);
            assert!(spans.iter().all(|s| s.trace_id == entry.id));
            in_traces += entry.len;
        }
        assert_eq!(in_traces, store.span_count);
    }
}

impl Collector for InMemoryCollector {
    fn collect(&self, span: Span) {
        let limits = self.limits;
        let size = std::mem::size_of::<Span>() + span.approx_heap_size();
        if size > limits.max_bytes
            || limits.max_spans == 0
            || limits.max_traces == 0
            || limits.max_spans_per_trace == 0
        {
            self.evicted.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let facts = SpanFacts::of(&span);
        let trace_id = span.trace_id;
        let span = Arc::new(span);
        let mut evicted = Evicted::default();
        {
            let mut store = self.store();
            let mut known = store.index.get(&trace_id).copied();
            match known {
                Some(trace) => {
                    let full = store.traces[trace]
                        .entry
                        .as_ref()
                        .is_some_and(|entry| entry.len >= limits.max_spans_per_trace);
                    if full {
                        store.pop_trace_oldest(trace, &mut evicted);
                        evicted.trimmed += 1;
                    }
                }
                None => {
                    while store.index.len() >= limits.max_traces
                        && store.evict_least_recent_trace(&mut evicted)
                    {}
                }
            }
            let traces_before = store.index.len();
            while (store.span_count >= limits.max_spans || store.bytes + size > limits.max_bytes)
                && store.evict_oldest_span(&mut evicted)
            {}
            if known.is_some() && store.index.len() != traces_before {
                // Evicting spans emptied a trace, perhaps this one: its slot may be gone.
                known = store.index.get(&trace_id).copied();
            }
            store.insert(known, span, size, &facts);
        }
        if evicted.spans > 0 {
            self.evicted.fetch_add(evicted.spans, Ordering::Relaxed);
        }
        if evicted.traces > 0 {
            self.evicted_traces
                .fetch_add(evicted.traces, Ordering::Relaxed);
        }
        if evicted.trimmed > 0 {
            self.trimmed.fetch_add(evicted.trimmed, Ordering::Relaxed);
        }
        // `evicted` is dropped here, outside the lock: the evicted spans are freed there.
    }
}

impl fmt::Debug for InMemoryCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryCollector")
            .field("limits", &self.limits)
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{SpanContext, SpanKind, SpanRecorder, Status, TraceFlags};

    #[test]
    fn queries_by_trace() {
        let collector = Arc::new(InMemoryCollector::new(10));
        let a = SpanContext::new_root(TraceFlags::SAMPLED).with_collector(collector.clone());
        let b = SpanContext::new_root(TraceFlags::SAMPLED).with_collector(collector.clone());
        drop(a.child("a1"));
        drop(b.child("b1"));
        drop(a.child("a2"));
        assert_eq!(collector.spans_of_trace(a.trace_id()).len(), 2);
        assert_eq!(collector.spans_of_trace(b.trace_id()).len(), 1);
        assert_eq!(collector.trace_ids(), vec![a.trace_id(), b.trace_id()]);
        collector.clear();
        assert!(collector.is_empty());
        assert_eq!(collector.bytes(), 0);
    }

    #[test]
    fn bounded_by_bytes() {
        let collector = Arc::new(InMemoryCollector::with_limits(1000, 2048));
        let context = SpanContext::new_root(TraceFlags::SAMPLED).with_collector(collector.clone());
        for _ in 0..100 {
            let mut span = context.child("s");
            span.set_attribute("big", "x".repeat(300));
        }
        assert!(collector.bytes() <= 2048);
        assert!(collector.len() < 10);
        assert_eq!(collector.evicted() as usize + collector.len(), 100);
        let mut huge = context.child("huge");
        huge.set_attribute("big", "x".repeat(4096));
        drop(huge);
        assert_eq!(collector.evicted() as usize + collector.len(), 101);
    }

    fn root(collector: &Arc<InMemoryCollector>) -> SpanContext {
        SpanContext::new_root(TraceFlags::SAMPLED).with_collector(collector.clone())
    }

    #[test]
    fn the_trace_bound_evicts_the_least_recent_trace_whole() {
        let collector = Arc::new(InMemoryCollector::builder().max_traces(2).build());
        let (a, b, c) = (root(&collector), root(&collector), root(&collector));
        drop(a.child("a1"));
        drop(a.child("a2"));
        drop(b.child("b1"));
        drop(a.child("a3")); // a is now more recent than b
        drop(c.child("c1"));
        assert_eq!(collector.trace_ids(), vec![c.trace_id(), a.trace_id()]);
        assert_eq!(collector.evicted_traces(), 1);
        assert_eq!(collector.evicted(), 1);
        assert_eq!(collector.trace_count(), 2);
        assert_eq!(collector.len(), 4);
        assert!(collector.trace(b.trace_id()).is_none());
    }

    #[test]
    fn the_per_trace_bound_trims_the_oldest_spans_and_keeps_the_root() {
        let collector = Arc::new(InMemoryCollector::builder().max_spans_per_trace(3).build());
        let context = root(&collector);
        let mut server = SpanRecorder::start(context.clone(), "server", SpanKind::Server);
        server.set_attribute("service.name", "api");
        for i in 0..5 {
            drop(context.child(format!("child {i}")));
        }
        server.end();
        let trace = collector.trace(context.trace_id()).expect("stored");
        let names: Vec<&str> = trace.spans.iter().map(|s| s.name.as_ref()).collect();
        assert_eq!(names, ["child 3", "child 4", "server"]);
        assert_eq!(collector.trimmed_spans(), 3);
        assert_eq!(collector.evicted(), 3);
        assert_eq!(collector.evicted_traces(), 0);
        // The summary is rebuilt from what is left.
        assert_eq!(trace.summary.span_count(), 3);
        assert_eq!(trace.summary.root().name, "server");
        assert_eq!(trace.summary.services(), [StringValue::from("api")]);
    }

    #[test]
    fn summaries_describe_each_trace() {
        let collector = Arc::new(InMemoryCollector::new(100));
        let plain = root(&collector);
        let debug = SpanContext::new_root(TraceFlags::SAMPLED.with(TraceFlags::DEBUG, true))
            .with_debug_id(Some("ticket-7".into()))
            .with_collector(collector.clone());
        {
            let mut server = SpanRecorder::start(debug.clone(), "GET /x", SpanKind::Server);
            server.set_attribute("service.name", "front");
            server.set_attribute("http.route", "/x");
            let mut call = debug.child("call");
            call.set_attribute("service.name", "back");
            call.set_status(Status::error("boom"));
        }
        drop(plain.child("plain"));
        let summaries = collector.summaries();
        assert_eq!(summaries.len(), 2);
        assert_eq!(summaries[0].trace_id(), plain.trace_id());
        let forced = &summaries[1];
        assert_eq!(forced.trace_id(), debug.trace_id());
        assert_eq!(forced.root().name, "GET /x");
        assert_eq!(forced.span_count(), 2);
        assert_eq!(forced.error_count(), 1);
        // In order of arrival: the call ended first.
        assert_eq!(
            forced.services(),
            [StringValue::from("back"), StringValue::from("front")]
        );
        assert_eq!(forced.routes(), [StringValue::from("/x")]);
        assert!(forced.is_debug());
        assert_eq!(forced.debug_id(), Some("ticket-7"));
        assert!(forced.duration() >= forced.root().duration);
        assert!(!summaries[0].is_debug());
        assert_eq!(
            collector.traces_with_debug_id("ticket-7"),
            vec![debug.trace_id()]
        );
        assert!(collector.traces_with_debug_id("other").is_empty());
    }

    #[test]
    fn fan_out_hands_every_collector_the_span() {
        let first = Arc::new(InMemoryCollector::new(10));
        let second = Arc::new(InMemoryCollector::new(10));
        let fan_out = FanOut::new([first.clone() as Arc<dyn Collector>, second.clone()]);
        let context = SpanContext::new_root(TraceFlags::SAMPLED).with_collector(Arc::new(fan_out));
        drop(context.child("x"));
        assert_eq!(first.spans(), second.spans());
        assert_eq!(first.len(), 1);
    }

    #[test]
    fn concurrent_collects_and_queries_stay_consistent() {
        let collector = Arc::new(
            InMemoryCollector::builder()
                .max_spans(300)
                .max_traces(40)
                .max_spans_per_trace(5)
                .build(),
        );
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let collector = collector.clone();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let context = root(&collector);
                        for _ in 0..7 {
                            drop(context.child("work"));
                        }
                    }
                })
            })
            .collect();
        let reader = {
            let collector = collector.clone();
            std::thread::spawn(move || {
                for _ in 0..200 {
                    for summary in collector.summaries().iter().take(5) {
                        if let Some(trace) = collector.trace(summary.trace_id()) {
                            assert!(trace.spans.len() <= 5);
                        }
                    }
                }
            })
        };
        for writer in writers {
            writer.join().expect("writer");
        }
        reader.join().expect("reader");
        collector.check_consistency();
        let stats = collector.stats();
        assert_eq!(stats.spans as u64 + stats.evicted_spans, 4 * 200 * 7);
        assert!(stats.traces <= 40 && stats.spans <= 300);
    }

    proptest::proptest! {
        /// Whatever the order of spans and the bounds, the store stays within them, its indexes
        /// agree, and every span is either stored or counted as evicted.
        #[test]
        fn bounds_hold_and_everything_is_counted(
            traces in proptest::collection::vec(0usize..6, 1..200),
            max_spans in 1usize..30,
            max_traces in 1usize..5,
            max_per_trace in 1usize..8,
            max_bytes in 500usize..20_000,
        ) {
            let collector = Arc::new(
                InMemoryCollector::builder()
                    .max_spans(max_spans)
                    .max_traces(max_traces)
                    .max_spans_per_trace(max_per_trace)
                    .max_bytes(max_bytes)
                    .build(),
            );
            let contexts: Vec<SpanContext> = (0..6).map(|_| root(&collector)).collect();
            for (i, which) in traces.iter().enumerate() {
                drop(contexts[*which].child(format!("span {i}")));
            }
            collector.check_consistency();
            let stats = collector.stats();
            proptest::prop_assert!(stats.spans <= max_spans);
            proptest::prop_assert!(stats.traces <= max_traces);
            proptest::prop_assert!(stats.bytes <= max_bytes);
            proptest::prop_assert_eq!(stats.spans as u64 + stats.evicted_spans, traces.len() as u64);
            let spans = collector.spans();
            proptest::prop_assert_eq!(spans.len(), stats.spans);
            let mut seen = 0;
            for summary in collector.summaries() {
                let trace = collector.trace(summary.trace_id()).expect("listed traces are stored");
                proptest::prop_assert!(trace.spans.len() <= max_per_trace);
                proptest::prop_assert_eq!(summary.span_count(), trace.spans.len());
                seen += trace.spans.len();
            }
            proptest::prop_assert_eq!(seen, stats.spans);
            // Oldest first: the span numbers in the names only grow.
            let numbers: Vec<usize> = spans
                .iter()
                .filter_map(|s| s.name.strip_prefix("span ")?.parse().ok())
                .collect();
            proptest::prop_assert!(numbers.windows(2).all(|w| w[0] < w[1]));
            let sizes: usize = spans
                .iter()
                .map(|s| std::mem::size_of::<Span>() + s.approx_heap_size())
                .sum();
            proptest::prop_assert_eq!(sizes, stats.bytes);
        }
    }
}
