//! The RAII handle that records a span while it runs.

use std::borrow::Cow;
use std::time::{Instant, SystemTime};

use crate::{
    DroppedCounts, Event, Key, KeyValue, Link, Span, SpanContext, SpanKind, Status, Value,
};

/// Attribute slots reserved up front, so a typical server span (about a dozen semantic-convention
/// attributes) grows its vector at most once.
const ATTRIBUTE_CAPACITY: usize = 16;

/// Records one span and hands it to its context's collector when dropped (or [`end`]ed).
///
/// A recorder for an unsampled context holds nothing: every method returns at once, and making
/// or dropping one neither allocates nor locks.
///
/// A span keeps at most [`MAX_ATTRIBUTES`] attributes, [`MAX_EVENTS`] events and [`MAX_LINKS`]
/// links (OpenTelemetry's default limits), so that a long-lived span — a connection, a worker
/// loop — does not grow without bound until it ends. The first ones are kept; what comes beyond
/// a limit is dropped and counted on the recorder ([`dropped_attributes_count`] and its
/// siblings), and the finished [`Span`] carries them ([`Span::dropped`]).
///
/// ```
/// use std::sync::Arc;
/// use trace_core::{InMemoryCollector, SpanContext, SpanKind, SpanRecorder, Status, TraceFlags};
///
/// let collector = Arc::new(InMemoryCollector::new(10));
/// let context = SpanContext::new_root(TraceFlags::SAMPLED).with_collector(collector.clone());
/// let mut span = SpanRecorder::start(context, "GET /users/{id}", SpanKind::Server);
/// span.set_attribute("http.response.status_code", 503_i64);
/// span.add_event("retrying", vec![]);
/// span.set_status(Status::error("upstream unavailable"));
/// span.end();
/// assert!(collector.spans()[0].status.is_error());
///
/// let unsampled = SpanContext::new_root(TraceFlags::EMPTY).with_collector(collector.clone());
/// let mut ignored = SpanRecorder::start(unsampled, "GET", SpanKind::Server);
/// ignored.set_attribute("anything", true); // costs a branch
/// assert!(!ignored.is_recording());
/// ```
///
/// [`end`]: SpanRecorder::end
/// [`MAX_ATTRIBUTES`]: SpanRecorder::MAX_ATTRIBUTES
/// [`MAX_EVENTS`]: SpanRecorder::MAX_EVENTS
/// [`MAX_LINKS`]: SpanRecorder::MAX_LINKS
/// [`dropped_attributes_count`]: SpanRecorder::dropped_attributes_count
#[derive(Debug, Default)]
#[must_use = "a span ends when its recorder is dropped"]
pub struct SpanRecorder(Option<Box<Recording>>);

#[derive(Debug)]
struct Recording {
    span: Span,
    context: SpanContext,
    started: Instant,
}

impl Recording {
    #[inline]
    fn push_attribute(&mut self, attribute: KeyValue) {
        if self.span.attributes.len() < SpanRecorder::MAX_ATTRIBUTES {
            self.span.attributes.push(attribute);
        } else {
            self.span.dropped.attributes = self.span.dropped.attributes.saturating_add(1);
        }
    }
}

impl SpanRecorder {
    /// The most attributes a span keeps; later new keys are dropped and counted.
    pub const MAX_ATTRIBUTES: usize = 128;
    /// The most events a span keeps; later events are dropped and counted.
    pub const MAX_EVENTS: usize = 128;
    /// The most links a span keeps; later links are dropped and counted.
    pub const MAX_LINKS: usize = 128;

    /// A recorder that records nothing.
    pub const fn disabled() -> Self {
        Self(None)
    }

    /// Starts recording the span whose own context is `context`, now.
    ///
    /// Nothing is recorded unless the context is sampled and has a collector.
    pub fn start(context: SpanContext, name: impl Into<Cow<'static, str>>, kind: SpanKind) -> Self {
        if !context.is_recorded() {
            return Self::disabled();
        }
        let (start_time, started) = crate::clock::now();
        Self::start_recorded(context, name.into(), kind, start_time, started)
    }

    /// Like [`start`](Self::start), with clock readings the caller already took (so layers that
    /// also time the request for metrics read the clocks once).
    pub fn start_at(
        context: SpanContext,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        start_time: SystemTime,
        started: Instant,
    ) -> Self {
        if !context.is_recorded() {
            return Self::disabled();
        }
        Self::start_recorded(context, name.into(), kind, start_time, started)
    }

    fn start_recorded(
        context: SpanContext,
        name: Cow<'static, str>,
        kind: SpanKind,
        start_time: SystemTime,
        started: Instant,
    ) -> Self {
        let span = Span {
            name,
            kind,
            trace_id: context.trace_id(),
            span_id: context.span_id(),
            parent_span_id: context.parent_span_id(),
            flags: context.flags(),
            trace_state: context.trace_state().clone(),
            debug_id: context.debug_id().map(Into::into),
            start_time,
            duration: Default::default(),
            status: Status::Unset,
            attributes: Vec::with_capacity(ATTRIBUTE_CAPACITY),
            events: Vec::new(),
            links: Vec::new(),
            dropped: DroppedCounts::default(),
        };
        Self(Some(Box::new(Recording {
            span,
            context,
            started,
        })))
    }

    /// Whether this recorder records anything.
    #[inline]
    pub fn is_recording(&self) -> bool {
        self.0.is_some()
    }

    /// The recorded span's context, for children and propagation; `None` when not recording.
    pub fn context(&self) -> Option<&SpanContext> {
        self.0.as_ref().map(|r| &r.context)
    }

    /// Starts an internal child span of this one.
    pub fn child(&self, name: impl Into<Cow<'static, str>>) -> SpanRecorder {
        match &self.0 {
            Some(recording) => recording.context.child(name),
            None => Self::disabled(),
        }
    }

    /// Adds an attribute, without looking for one already set under the same key.
    ///
    /// This is for keys set once per span, as the layers' semantic-convention attributes are:
    /// skipping the search keeps the request path cheap. A key set here twice is sent twice, and
    /// OTLP wants each key once per span, so for a key that may be set again (a field recorded
    /// anew, a retry counter) use [`replace_attribute`](Self::replace_attribute).
    #[inline]
    pub fn set_attribute(&mut self, key: impl Into<Key>, value: impl Into<Value>) {
        if let Some(recording) = &mut self.0 {
            recording.push_attribute(KeyValue {
                key: key.into(),
                value: value.into(),
            });
        }
    }

    /// Like [`set_attribute`](Self::set_attribute), for values that cost something to make:
    /// `value` is called only when the attribute is kept.
    #[inline]
    pub fn set_attribute_with<V: Into<Value>>(
        &mut self,
        key: impl Into<Key>,
        value: impl FnOnce() -> V,
    ) {
        if let Some(recording) = &mut self.0 {
            if recording.span.attributes.len() < Self::MAX_ATTRIBUTES {
                recording.span.attributes.push(KeyValue {
                    key: key.into(),
                    value: value().into(),
                });
            } else {
                recording.span.dropped.attributes =
                    recording.span.dropped.attributes.saturating_add(1);
            }
        }
    }

    /// Sets an attribute, replacing the value of the first one already set under the same key
    /// (in place, so a replacement is never dropped by the attribute limit).
    ///
    /// It looks through the span's attributes, at most [`MAX_ATTRIBUTES`](Self::MAX_ATTRIBUTES)
    /// of them; [`set_attribute`](Self::set_attribute) does not look.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use trace_core::{InMemoryCollector, SpanContext, SpanKind, SpanRecorder, TraceFlags, Value};
    ///
    /// let collector = Arc::new(InMemoryCollector::new(10));
    /// let context = SpanContext::new_root(TraceFlags::SAMPLED).with_collector(collector.clone());
    /// let mut span = SpanRecorder::start(context, "fetch", SpanKind::Client);
    /// for attempt in 1..=3_i64 {
    ///     span.replace_attribute("attempt", attempt);
    /// }
    /// span.end();
    /// let span = &collector.spans()[0];
    /// assert_eq!(span.attributes.len(), 1);
    /// assert_eq!(span.attribute("attempt"), Some(&Value::I64(3)));
    /// ```
    pub fn replace_attribute(&mut self, key: impl Into<Key>, value: impl Into<Value>) {
        if let Some(recording) = &mut self.0 {
            let key = key.into();
            match recording
                .span
                .attributes
                .iter_mut()
                .find(|attribute| attribute.key == key)
            {
                Some(attribute) => attribute.value = value.into(),
                None => recording.push_attribute(KeyValue {
                    key,
                    value: value.into(),
                }),
            }
        }
    }

    /// Records an event now, unless the span already holds [`MAX_EVENTS`](Self::MAX_EVENTS)
    /// events (then it is dropped and counted).
    pub fn add_event(&mut self, name: impl Into<Cow<'static, str>>, attributes: Vec<KeyValue>) {
        if let Some(recording) = &mut self.0 {
            if recording.span.events.len() < Self::MAX_EVENTS {
                let time = recording.span.start_time + recording.started.elapsed();
                recording.span.events.push(Event {
                    name: name.into(),
                    time,
                    attributes,
                });
            } else {
                recording.span.dropped.events = recording.span.dropped.events.saturating_add(1);
            }
        }
    }

    /// Adds a link to a related span, unless the span already holds
    /// [`MAX_LINKS`](Self::MAX_LINKS) links (then it is dropped and counted).
    pub fn add_link(&mut self, link: Link) {
        if let Some(recording) = &mut self.0 {
            if recording.span.links.len() < Self::MAX_LINKS {
                recording.span.links.push(link);
            } else {
                recording.span.dropped.links = recording.span.dropped.links.saturating_add(1);
            }
        }
    }

    /// Attributes with new keys dropped so far because the span held
    /// [`MAX_ATTRIBUTES`](Self::MAX_ATTRIBUTES) of them (0 when not recording).
    pub fn dropped_attributes_count(&self) -> u32 {
        self.0.as_ref().map_or(0, |r| r.span.dropped.attributes)
    }

    /// Events dropped so far because the span held [`MAX_EVENTS`](Self::MAX_EVENTS) of them
    /// (0 when not recording).
    pub fn dropped_events_count(&self) -> u32 {
        self.0.as_ref().map_or(0, |r| r.span.dropped.events)
    }

    /// Links dropped so far because the span held [`MAX_LINKS`](Self::MAX_LINKS) of them (0 when
    /// not recording).
    pub fn dropped_links_count(&self) -> u32 {
        self.0.as_ref().map_or(0, |r| r.span.dropped.links)
    }

    /// Sets the status. The last call wins, except that `Unset` never replaces a status that
    /// was set.
    pub fn set_status(&mut self, status: Status) {
        if let Some(recording) = &mut self.0
            && status != Status::Unset
        {
            recording.span.status = status;
        }
    }

    /// Changes the span's kind (for bridges that learn it from a field after the span started).
    pub fn set_kind(&mut self, kind: SpanKind) {
        if let Some(recording) = &mut self.0 {
            recording.span.kind = kind;
        }
    }

    /// Drops the span without handing it to the collector (for a span that is replaced, such
    /// as one given a different parent after it started).
    pub fn discard(mut self) {
        self.0 = None;
    }

    /// Renames the span (a route known only after routing, say).
    pub fn update_name(&mut self, name: impl Into<Cow<'static, str>>) {
        if let Some(recording) = &mut self.0 {
            recording.span.name = name.into();
        }
    }

    /// The span as recorded so far; `None` when not recording.
    pub fn span(&self) -> Option<&Span> {
        self.0.as_ref().map(|r| &r.span)
    }

    /// Ends the span now.
    pub fn end(self) {
        drop(self);
    }

    /// Ends the span at `ended` (a clock reading the caller already took).
    pub fn end_at(mut self, ended: Instant) {
        if let Some(recording) = self.0.take() {
            recording.finish(ended);
        }
    }
}

impl Recording {
    fn finish(self, ended: Instant) {
        let Recording {
            mut span,
            context,
            started,
        } = self;
        span.duration = ended.saturating_duration_since(started);
        if let Some(collector) = context.collector() {
            collector.collect(span);
        }
    }
}

impl Drop for SpanRecorder {
    fn drop(&mut self) {
        if let Some(recording) = self.0.take() {
            recording.finish(crate::clock::monotonic());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::{InMemoryCollector, SpanId, TraceFlags, TraceId, TraceState};

    fn sampled(collector: &Arc<InMemoryCollector>) -> SpanContext {
        SpanContext::new_root(TraceFlags::SAMPLED).with_collector(collector.clone())
    }

    #[test]
    fn records_everything_and_ends_on_drop() {
        let collector = Arc::new(InMemoryCollector::new(10));
        let context = sampled(&collector)
            .with_parent_span_id(SpanId::from_u64(7))
            .with_debug_id(Some("dbg-1".into()));
        let started = Instant::now();
        {
            let mut span = SpanRecorder::start_at(
                context.clone(),
                "GET /x",
                SpanKind::Server,
                SystemTime::UNIX_EPOCH,
                started,
            );
            span.set_attribute("s", "v");
            span.set_attribute("b", true);
            span.set_attribute("i", 3_i64);
            span.set_attribute("f", 1.5);
            span.set_attribute_with("lazy", || String::from("made"));
            span.add_event("e", vec![KeyValue::new("k", 1_i64)]);
            span.add_link(Link {
                trace_id: TraceId::random(),
                span_id: SpanId::random(),
                trace_state: TraceState::EMPTY,
                attributes: vec![],
            });
            span.set_status(Status::error("boom"));
            span.set_status(Status::Unset);
            span.update_name("GET /y");
            std::thread::sleep(Duration::from_millis(2));
        }
        let spans = collector.spans();
        assert_eq!(spans.len(), 1);
        let span = &spans[0];
        assert_eq!(span.name, "GET /y");
        assert_eq!(span.kind, SpanKind::Server);
        assert_eq!(span.trace_id, context.trace_id());
        assert_eq!(span.span_id, context.span_id());
        assert_eq!(span.parent_span_id, SpanId::from_u64(7));
        assert_eq!(span.debug_id.as_deref(), Some("dbg-1"));
        assert_eq!(span.start_time, SystemTime::UNIX_EPOCH);
        assert!(span.duration >= Duration::from_millis(2));
        assert_eq!(span.attributes.len(), 5);
        assert_eq!(
            span.attribute("lazy"),
            Some(&Value::from("made".to_string()))
        );
        assert_eq!(span.events.len(), 1);
        assert!(span.events[0].time >= span.start_time);
        assert_eq!(span.links.len(), 1);
        assert_eq!(span.status, Status::error("boom"));
    }

    #[test]
    fn unsampled_recorders_do_nothing() {
        let collector = Arc::new(InMemoryCollector::new(10));
        let context = SpanContext::new_root(TraceFlags::EMPTY).with_collector(collector.clone());
        let mut span = SpanRecorder::start(context.clone(), "x", SpanKind::Internal);
        assert!(!span.is_recording());
        span.set_attribute_with("never", || -> String { unreachable!("not evaluated") });
        span.add_event("e", vec![]);
        assert!(span.context().is_none());
        assert!(!span.child("c").is_recording());
        drop(span);
        drop(context.child("c"));
        assert!(collector.spans().is_empty());
    }

    #[test]
    fn children_nest() {
        let collector = Arc::new(InMemoryCollector::new(10));
        let root = SpanRecorder::start(sampled(&collector), "root", SpanKind::Server);
        let child = root.child("child");
        let grandchild = child.child("grandchild");
        let (root_id, child_id) = (
            root.context().map(SpanContext::span_id),
            child.context().map(SpanContext::span_id),
        );
        grandchild.end_at(Instant::now());
        child.end();
        root.end();
        let spans = collector.spans();
        assert_eq!(spans.len(), 3);
        assert_eq!(spans[0].parent_span_id, child_id);
        assert_eq!(spans[1].parent_span_id, root_id);
        assert_eq!(spans[2].parent_span_id, None);
    }
}
