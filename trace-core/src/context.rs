//! The context a span runs in: ids, flags, trace state, baggage and where its spans go.

use std::borrow::Cow;
use std::fmt;
use std::ops::BitOr;
use std::sync::Arc;

use crate::{Baggage, Collector, SpanId, SpanKind, SpanRecorder, TraceId, TraceState};

/// Sampling and debug flags, in tracewire's own bit layout.
///
/// These bits are *not* any wire format's flags byte: each propagator maps its own bits to and
/// from these, so one format's private bits (Jaeger's debug bit `0x02`, say) never turn into
/// another's (W3C's random bit, also `0x02`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TraceFlags(u8);

impl TraceFlags {
    /// No flag set.
    pub const EMPTY: Self = Self(0);
    /// Spans of this trace are recorded and exported.
    pub const SAMPLED: Self = Self(1);
    /// The trace id's rightmost 56 bits are random (W3C Trace Context Level 2).
    pub const RANDOM: Self = Self(1 << 1);
    /// A debug trace: forced by a debug header or flag, to be kept by every sampler downstream.
    pub const DEBUG: Self = Self(1 << 2);
    /// Jaeger's firehose mode; carried only between Jaeger headers.
    pub const FIREHOSE: Self = Self(1 << 3);

    /// Whether every flag in `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// These flags with `flag` set or cleared.
    #[must_use]
    pub const fn with(self, flag: Self, on: bool) -> Self {
        if on {
            Self(self.0 | flag.0)
        } else {
            Self(self.0 & !flag.0)
        }
    }

    /// Whether the trace is sampled.
    pub const fn is_sampled(self) -> bool {
        self.contains(Self::SAMPLED)
    }

    /// Whether the trace id is known to be random.
    pub const fn is_random(self) -> bool {
        self.contains(Self::RANDOM)
    }

    /// Whether this is a debug trace.
    pub const fn is_debug(self) -> bool {
        self.contains(Self::DEBUG)
    }

    /// Whether Jaeger's firehose bit is set.
    pub const fn is_firehose(self) -> bool {
        self.contains(Self::FIREHOSE)
    }
}

impl BitOr for TraceFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl fmt::Debug for TraceFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Self::SAMPLED, "SAMPLED"),
            (Self::RANDOM, "RANDOM"),
            (Self::DEBUG, "DEBUG"),
            (Self::FIREHOSE, "FIREHOSE"),
        ];
        let mut set = f.debug_set();
        for (flag, name) in names {
            if self.contains(flag) {
                set.entry(&format_args!("{name}"));
            }
        }
        set.finish()
    }
}

/// Where a span sits in a trace, what travels with it, and where its spans go.
///
/// A request's context is made once (by the server layer, from the incoming headers and the
/// sampler) and then shared: handlers make child spans from it and clients inject it into
/// outgoing headers. Cloning is cheap — a few reference counts, no allocation.
///
/// ```
/// use std::sync::Arc;
/// use trace_core::{InMemoryCollector, SpanContext, TraceFlags};
///
/// let collector = Arc::new(InMemoryCollector::new(100));
/// let context = SpanContext::new_root(TraceFlags::SAMPLED).with_collector(collector.clone());
/// {
///     let mut query = context.child("db query");
///     query.set_attribute("db.system", "postgresql");
/// } // the child span ends here and goes to the collector
/// let spans = collector.spans_of_trace(context.trace_id());
/// assert_eq!(spans[0].parent_span_id, Some(context.span_id()));
/// ```
#[derive(Clone)]
pub struct SpanContext {
    trace_id: TraceId,
    span_id: SpanId,
    parent_span_id: Option<SpanId>,
    flags: TraceFlags,
    /// Trace state, baggage and debug id, which most requests do not carry: behind one pointer,
    /// so that the context fits in 64 bytes (it was 112 with the three inline). A request's
    /// context is moved and copied several times on its way through a server (into the request
    /// extensions, into the response future, in and out of the current-context slot on every
    /// poll), and each copy is of the whole context.
    extras: Option<Arc<Extras>>,
    collector: Option<Arc<dyn Collector>>,
}

/// The parts of a [`SpanContext`] that most contexts leave empty.
#[derive(Clone, Default)]
struct Extras {
    trace_state: TraceState,
    baggage: Baggage,
    debug_id: Option<Arc<str>>,
}

impl Extras {
    /// The parts, shared; `None` when all three are empty (no allocation).
    fn shared(
        trace_state: TraceState,
        baggage: Baggage,
        debug_id: Option<Arc<str>>,
    ) -> Option<Arc<Self>> {
        (!trace_state.is_empty() || !baggage.is_empty() || debug_id.is_some()).then(|| {
            Arc::new(Self {
                trace_state,
                baggage,
                debug_id,
            })
        })
    }
}

/// What an empty [`Extras`] holds, for the accessors to lend.
static NO_TRACE_STATE: TraceState = TraceState::EMPTY;
static NO_BAGGAGE: Baggage = Baggage::EMPTY;

impl SpanContext {
    /// A context with these ids and flags, no parent, and no collector.
    pub const fn new(trace_id: TraceId, span_id: SpanId, flags: TraceFlags) -> Self {
        Self {
            trace_id,
            span_id,
            parent_span_id: None,
            flags,
            extras: None,
            collector: None,
        }
    }

    /// A context from all its parts but the collector.
    pub(crate) fn from_parts(
        trace_id: TraceId,
        span_id: SpanId,
        parent_span_id: Option<SpanId>,
        flags: TraceFlags,
        trace_state: TraceState,
        baggage: Baggage,
        debug_id: Option<Arc<str>>,
    ) -> Self {
        Self {
            trace_id,
            span_id,
            parent_span_id,
            flags,
            extras: Extras::shared(trace_state, baggage, debug_id),
            collector: None,
        }
    }

    /// The context of a new trace's root span: random ids, and the [`TraceFlags::RANDOM`] flag
    /// added to `flags`.
    pub fn new_root(flags: TraceFlags) -> Self {
        Self::new(
            TraceId::random(),
            SpanId::random(),
            flags | TraceFlags::RANDOM,
        )
    }

    /// The context of a new span that is a child of this one: same trace, flags, trace state,
    /// baggage and collector, a new span id, and this span as parent. The debug id stays with
    /// the span that received it.
    pub fn new_child(&self) -> Self {
        Self {
            trace_id: self.trace_id,
            span_id: SpanId::random(),
            parent_span_id: Some(self.span_id),
            flags: self.flags,
            extras: match &self.extras {
                Some(extras) if extras.debug_id.is_some() => {
                    Extras::shared(extras.trace_state.clone(), extras.baggage.clone(), None)
                }
                shared => shared.clone(),
            },
            collector: self.collector.clone(),
        }
    }

    /// Starts an internal child span; it is recorded if this context is sampled and has a
    /// collector, and ends when the returned recorder is dropped.
    pub fn child(&self, name: impl Into<Cow<'static, str>>) -> SpanRecorder {
        self.child_of_kind(name, SpanKind::Internal)
    }

    /// Starts a child span of the given kind (a client span for an outgoing call, say).
    pub fn child_of_kind(
        &self,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
    ) -> SpanRecorder {
        if !self.is_recorded() {
            return SpanRecorder::disabled();
        }
        SpanRecorder::start(self.new_child(), name, kind)
    }

    /// The trace id.
    pub const fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// This span's id.
    pub const fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// The parent span's id, local or remote.
    pub const fn parent_span_id(&self) -> Option<SpanId> {
        self.parent_span_id
    }

    /// The flags.
    pub const fn flags(&self) -> TraceFlags {
        self.flags
    }

    /// Whether spans of this trace are recorded.
    pub const fn is_sampled(&self) -> bool {
        self.flags.is_sampled()
    }

    /// Whether this is a debug trace.
    pub const fn is_debug(&self) -> bool {
        self.flags.is_debug()
    }

    /// Whether a span in this context would be recorded: sampled, and a collector to send it to.
    pub fn is_recorded(&self) -> bool {
        self.is_sampled() && self.collector.is_some()
    }

    /// The W3C trace state.
    pub fn trace_state(&self) -> &TraceState {
        self.extras
            .as_ref()
            .map_or(&NO_TRACE_STATE, |extras| &extras.trace_state)
    }

    /// The baggage.
    pub fn baggage(&self) -> &Baggage {
        self.extras
            .as_ref()
            .map_or(&NO_BAGGAGE, |extras| &extras.baggage)
    }

    /// The `jaeger-debug-id` correlation id the request carried, if any.
    pub fn debug_id(&self) -> Option<&str> {
        self.extras.as_ref()?.debug_id.as_deref()
    }

    /// Where spans of this context go.
    pub fn collector(&self) -> Option<&Arc<dyn Collector>> {
        self.collector.as_ref()
    }

    /// With this parent span id.
    #[must_use]
    pub fn with_parent_span_id(mut self, parent: Option<SpanId>) -> Self {
        self.parent_span_id = parent;
        self
    }

    /// With these flags.
    #[must_use]
    pub fn with_flags(mut self, flags: TraceFlags) -> Self {
        self.flags = flags;
        self
    }

    /// With this trace state.
    #[must_use]
    pub fn with_trace_state(self, trace_state: TraceState) -> Self {
        self.with_extras(|extras| extras.trace_state = trace_state)
    }

    /// With this baggage.
    #[must_use]
    pub fn with_baggage(self, baggage: Baggage) -> Self {
        self.with_extras(|extras| extras.baggage = baggage)
    }

    /// With this debug correlation id.
    #[must_use]
    pub fn with_debug_id(self, debug_id: Option<Arc<str>>) -> Self {
        self.with_extras(|extras| extras.debug_id = debug_id)
    }

    /// With the extras changed by `change` (copied first if shared with another context).
    fn with_extras(mut self, change: impl FnOnce(&mut Extras)) -> Self {
        let mut extras = self
            .extras
            .take()
            .map(Arc::unwrap_or_clone)
            .unwrap_or_default();
        change(&mut extras);
        self.extras = Extras::shared(extras.trace_state, extras.baggage, extras.debug_id);
        self
    }

    /// Sending spans to this collector.
    #[must_use]
    pub fn with_collector(mut self, collector: Arc<dyn Collector>) -> Self {
        self.collector = Some(collector);
        self
    }
}

impl fmt::Debug for SpanContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpanContext")
            .field("trace_id", &self.trace_id)
            .field("span_id", &self.span_id)
            .field("parent_span_id", &self.parent_span_id)
            .field("flags", &self.flags)
            .field("trace_state", self.trace_state())
            .field("baggage", self.baggage())
            .field("debug_id", &self.debug_id())
            .field("collector", &self.collector.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_independent_bits() {
        let flags = TraceFlags::SAMPLED | TraceFlags::DEBUG;
        assert!(flags.is_sampled() && flags.is_debug());
        assert!(!flags.is_random() && !flags.is_firehose());
        assert!(!flags.with(TraceFlags::SAMPLED, false).is_sampled());
        assert_eq!(format!("{flags:?}"), "{SAMPLED, DEBUG}");
    }

    #[test]
    fn child_contexts_stay_in_the_trace() {
        let root = SpanContext::new_root(TraceFlags::SAMPLED)
            .with_debug_id(Some("abc".into()))
            .with_baggage(Baggage::EMPTY.with_entry("k", "v").expect("fits"));
        assert!(root.flags().is_random());
        let child = root.new_child();
        assert_eq!(child.trace_id(), root.trace_id());
        assert_eq!(child.parent_span_id(), Some(root.span_id()));
        assert_ne!(child.span_id(), root.span_id());
        assert_eq!(child.baggage().get("k"), Some("v"));
        assert_eq!(child.debug_id(), None);
        // No collector: nothing is recorded, even though sampled.
        assert!(!root.child("x").is_recording());
    }

    #[test]
    fn a_context_fits_in_a_cache_line() {
        assert_eq!(std::mem::size_of::<SpanContext>(), 64);
    }

    #[test]
    fn extras_are_kept_apart_and_shared_by_children() {
        let bare = SpanContext::new_root(TraceFlags::SAMPLED);
        assert!(bare.extras.is_none(), "nothing to keep, nothing allocated");
        let state = TraceState::parse_values([&b"vendor=1"[..]]).expect("valid");
        let parent = bare
            .with_trace_state(state.clone())
            .with_baggage(Baggage::EMPTY.with_entry("k", "v").expect("fits"));
        assert_eq!(parent.trace_state(), &state);
        let child = parent.new_child();
        assert!(
            Arc::ptr_eq(
                child.extras.as_ref().expect("extras"),
                parent.extras.as_ref().expect("extras")
            ),
            "a child without a debug id shares its parent's extras"
        );
        let debug = parent.clone().with_debug_id(Some("dbg".into()));
        assert_eq!(debug.debug_id(), Some("dbg"));
        assert_eq!(parent.debug_id(), None, "the other holder is not changed");
        let debug_child = debug.new_child();
        assert_eq!(debug_child.debug_id(), None);
        assert_eq!(debug_child.trace_state(), &state);
        assert_eq!(debug_child.baggage().get("k"), Some("v"));
        let emptied = debug
            .with_trace_state(TraceState::EMPTY)
            .with_baggage(Baggage::EMPTY)
            .with_debug_id(None);
        assert!(emptied.extras.is_none(), "emptied extras are dropped");
        assert!(emptied.trace_state().is_empty() && emptied.baggage().is_empty());
    }
}
