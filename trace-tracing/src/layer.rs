use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use std::sync::atomic::{AtomicUsize, Ordering};

use trace_core::current::{current_is_recorded, with_current};
use trace_core::{KeyValue, Link, SpanContext, SpanKind, SpanRecorder, Status, Value};
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};

/// The tracewire span a `tracing` span became; kept in the span's registry extensions.
pub(crate) struct Bridged {
    pub(crate) recorder: SpanRecorder,
}

/// A `tracing_subscriber::Layer` that turns `tracing` spans into tracewire spans.
///
/// A `tracing` span created while a sampled tracewire context is current — the request's
/// (made current by the server layers), or a bridged parent span's — becomes a child span of that
/// trace: named after the `tracing` span (or its `otel.name` field), its fields recorded as typed
/// attributes, the `tracing` events inside it recorded as span events (message and fields), kind
/// from an `otel.kind` field (`server`, `client`, `producer`, `consumer`, `internal`), error status
/// from an `error` field, an `otel.status_code = "ERROR"` field or an ERROR-level event. It lasts
/// from creation to close, so a span held across `.await` points is measured whole.
///
/// A field recorded again (`span.record("attempt", n)` in a retry loop) replaces its attribute's
/// value, so each key appears once. Integers that do not fit an `i64` (a `u64` hash above
/// `i64::MAX`, an `i128`) are recorded as decimal strings rather than changed. A span keeps at
/// most [`SpanRecorder::MAX_ATTRIBUTES`] attributes, [`SpanRecorder::MAX_EVENTS`] events and
/// [`SpanRecorder::MAX_LINKS`] links (128 each): a long-lived span, such as a worker loop's, keeps
/// its first 128 events and drops later ones without formatting their fields (an ERROR event
/// still sets the error status).
///
/// Parentage follows `tracing` (an explicit `parent:` or the contextual parent), and falls back to
/// the current tracewire context. When that context is not sampled the layer records nothing and
/// allocates nothing. Which spans are bridged is decided with tracing-subscriber's per-layer
/// filters:
///
/// ```
/// use tracing_subscriber::filter::Targets;
/// use tracing_subscriber::prelude::*;
/// use trace_tracing::TracewireLayer;
///
/// let subscriber = tracing_subscriber::registry().with(
///     TracewireLayer::new().with_filter(Targets::new().with_target("my_app", tracing_core::Level::DEBUG)),
/// );
/// # drop(subscriber);
/// ```
pub struct TracewireLayer<S> {
    _subscriber: PhantomData<fn(S)>,
}

/// Bridged spans not yet closed, in the whole process: while there are none, closing a span
/// needs no lookup (which is most of the bridge's cost on unsampled requests).
pub(crate) static BRIDGED_ALIVE: AtomicUsize = AtomicUsize::new(0);

impl<S> TracewireLayer<S> {
    /// The bridge.
    pub fn new() -> Self {
        Self {
            _subscriber: PhantomData,
        }
    }
}

impl<S> Default for TracewireLayer<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> fmt::Debug for TracewireLayer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TracewireLayer")
    }
}

/// The context a new span's tracewire span continues: the nearest bridged `tracing` ancestor's,
/// else the current tracewire context; `None` unless sampled and headed for a collector.
pub(crate) fn parent_context<S>(parent: Option<SpanRef<'_, S>>) -> Option<SpanContext>
where
    S: for<'a> LookupSpan<'a>,
{
    if let Some(parent) = parent
        && let Some(bridged) = parent.extensions().get::<Bridged>()
    {
        return bridged.recorder.context().cloned();
    }
    if !current_is_recorded() {
        return None;
    }
    with_current(|current| current.cloned())
}

impl<S> tracing_subscriber::Layer<S> for TracewireLayer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        // The registry resolved the parent (explicit or contextual), and `parent()` skips the
        // ancestors this layer's filter left out, so a bridged grandparent is still found.
        let Some(parent) = parent_context(span.parent()) else {
            return;
        };
        let mut recorder = parent.child(Cow::Borrowed(attrs.metadata().name()));
        // The recorder is not in the extensions yet, so the fields' `Debug` code may log without
        // meeting a lock of ours.
        attrs.record(&mut FieldRecorder(&mut recorder));
        span.extensions_mut().insert(Bridged { recorder });
        BRIDGED_ALIVE.fetch_add(1, Ordering::Relaxed);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        if span.extensions().get::<Bridged>().is_none() {
            return;
        }
        // Reading the values runs the user's `Debug`/`Display` code, which may log in this very
        // span: that event asks for the span's extensions, so no lock may be held meanwhile.
        let mut updates = FieldRecorder(Vec::new());
        values.record(&mut updates);
        if let Some(bridged) = span.extensions_mut().get_mut::<Bridged>() {
            for update in updates.0 {
                update.apply(&mut bridged.recorder);
            }
        }
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, S>) {
        let Some(follows) = ctx
            .span(follows)
            .and_then(|s| s.extensions().get::<Bridged>()?.recorder.context().cloned())
        else {
            return;
        };
        if let Some(span) = ctx.span(id)
            && let Some(bridged) = span.extensions_mut().get_mut::<Bridged>()
        {
            bridged.recorder.add_link(Link {
                trace_id: follows.trace_id(),
                span_id: follows.span_id(),
                trace_state: follows.trace_state().clone(),
                attributes: Vec::new(),
            });
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        let is_error = *event.metadata().level() == Level::ERROR;
        let events_full = match span.extensions().get::<Bridged>() {
            None => return,
            Some(bridged) => bridged
                .recorder
                .span()
                .is_some_and(|s| s.events.len() >= SpanRecorder::MAX_EVENTS),
        };
        // An event beyond the span's limit is only counted, so a busy long-lived span does not
        // pay to format fields it would drop; an ERROR still needs its message for the status.
        let (name, attributes) = if events_full && !is_error {
            (Cow::Borrowed(event.metadata().name()), Vec::new())
        } else {
            // Read before the lock is taken: formatting runs the user's `Debug`/`Display` code,
            // which may emit an event in this same span and so ask for the same lock.
            let mut fields = EventFields::default();
            event.record(&mut fields);
            let name = fields
                .message
                .map_or(Cow::Borrowed(event.metadata().name()), Cow::Owned);
            (name, fields.attributes)
        };
        let mut extensions = span.extensions_mut();
        let Some(bridged) = extensions.get_mut::<Bridged>() else {
            return;
        };
        if is_error {
            bridged.recorder.set_status(Status::error(name.clone()));
        }
        bridged.recorder.add_event(name, attributes);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if BRIDGED_ALIVE.load(Ordering::Relaxed) == 0 {
            return;
        }
        if let Some(span) = ctx.span(&id)
            && let Some(bridged) = span.extensions_mut().remove::<Bridged>()
        {
            BRIDGED_ALIVE.fetch_sub(1, Ordering::Relaxed);
            // Dropping the recorder ends the span and hands it to the collector.
            drop(bridged);
        }
    }
}

/// What one `tracing` field asks of its span.
pub(crate) enum Update {
    /// An attribute, replacing an earlier value under the same key.
    Attribute(&'static str, Value),
    Kind(SpanKind),
    Name(String),
    Status(Status),
    /// `otel.status_code = "ERROR"`: an error status that keeps a message set before it.
    Error,
}

impl Update {
    fn apply(self, recorder: &mut SpanRecorder) {
        match self {
            Self::Attribute(key, value) => recorder.replace_attribute(key, value),
            Self::Kind(kind) => recorder.set_kind(kind),
            Self::Name(name) => recorder.update_name(name),
            Self::Status(status) => recorder.set_status(status),
            Self::Error => {
                if !recorder.span().is_some_and(|s| s.status.is_error()) {
                    recorder.set_status(Status::error(""));
                }
            }
        }
    }
}

/// Where a [`FieldRecorder`] puts what the fields ask for: straight onto a recorder nobody else
/// can reach yet, or into a list applied once the span's lock is taken.
pub(crate) trait Updates {
    fn update(&mut self, update: Update);
}

impl Updates for &mut SpanRecorder {
    fn update(&mut self, update: Update) {
        update.apply(self);
    }
}

impl Updates for Vec<Update> {
    fn update(&mut self, update: Update) {
        self.push(update);
    }
}

/// Reads `tracing` fields for a span, honouring the `otel.*` and `error` conventions.
pub(crate) struct FieldRecorder<U>(pub(crate) U);

impl<U: Updates> FieldRecorder<U> {
    fn attribute(&mut self, field: &Field, value: impl Into<Value>) {
        self.0.update(Update::Attribute(field.name(), value.into()));
    }

    fn special(&mut self, field: &Field, value: &str) -> bool {
        let update = match field.name() {
            "otel.kind" | "span.kind" => match parse_kind(value) {
                Some(kind) => Update::Kind(kind),
                None => return true,
            },
            "otel.name" => Update::Name(value.to_owned()),
            "otel.status_code" if value.eq_ignore_ascii_case("error") => Update::Error,
            "otel.status_code" if value.eq_ignore_ascii_case("ok") => Update::Status(Status::Ok),
            "otel.status_message" | "error" => Update::Status(Status::error(value.to_owned())),
            _ => return false,
        };
        self.0.update(update);
        true
    }
}

fn parse_kind(value: &str) -> Option<SpanKind> {
    Some(match value.to_ascii_lowercase().as_str() {
        "server" => SpanKind::Server,
        "client" => SpanKind::Client,
        "producer" => SpanKind::Producer,
        "consumer" => SpanKind::Consumer,
        "internal" => SpanKind::Internal,
        _ => return None,
    })
}

/// An integer as an attribute value: an `i64` when it fits, else its decimal digits, since the
/// wire formats carry signed 64-bit integers and a clamped or wrapped number would be wrong.
fn integer<T>(value: T) -> Value
where
    T: Copy + TryInto<i64> + ToString,
{
    match value.try_into() {
        Ok(fits) => Value::I64(fits),
        Err(_) => Value::from(value.to_string()),
    }
}

impl<U: Updates> Visit for FieldRecorder<U> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.special(field, value) {
            self.attribute(field, value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if !self.special(field, &text) {
            self.attribute(field, text);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let text = value.to_string();
        if !self.special(field, &text) {
            self.attribute(field, text);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.attribute(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.attribute(field, integer(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.attribute(field, integer(value));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.attribute(field, integer(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.attribute(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "error" && value {
            self.0.update(Update::Status(Status::error("")));
        } else {
            self.attribute(field, value);
        }
    }
}

/// An event's message and other fields.
#[derive(Default)]
struct EventFields {
    message: Option<String>,
    attributes: Vec<KeyValue>,
}

impl Visit for EventFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = Some(value.to_owned()),
            name => self.attributes.push(KeyValue::new(name, value.to_owned())),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        match field.name() {
            "message" => self.message = Some(text),
            name => self.attributes.push(KeyValue::new(name, text)),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.attributes.push(KeyValue::new(field.name(), value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.attributes
            .push(KeyValue::new(field.name(), integer(value)));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.attributes
            .push(KeyValue::new(field.name(), integer(value)));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.attributes
            .push(KeyValue::new(field.name(), integer(value)));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.attributes.push(KeyValue::new(field.name(), value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.attributes.push(KeyValue::new(field.name(), value));
    }
}
