use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use std::sync::atomic::{AtomicUsize, Ordering};

use trace_core::current::{current_is_recorded, with_current};
use trace_core::{KeyValue, Link, SpanContext, SpanKind, SpanRecorder, Status};
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
        attrs.record(&mut FieldRecorder(&mut recorder));
        span.extensions_mut().insert(Bridged { recorder });
        BRIDGED_ALIVE.fetch_add(1, Ordering::Relaxed);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(bridged) = span.extensions_mut().get_mut::<Bridged>()
        {
            values.record(&mut FieldRecorder(&mut bridged.recorder));
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
        let mut extensions = span.extensions_mut();
        let Some(bridged) = extensions.get_mut::<Bridged>() else {
            return;
        };
        let mut fields = EventFields::default();
        event.record(&mut fields);
        let name = fields
            .message
            .map_or(Cow::Borrowed(event.metadata().name()), Cow::Owned);
        if *event.metadata().level() == Level::ERROR {
            bridged.recorder.set_status(Status::error(name.clone()));
        }
        bridged.recorder.add_event(name, fields.attributes);
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

/// Records `tracing` fields onto a span, honouring the `otel.*` and `error` conventions.
pub(crate) struct FieldRecorder<'a>(pub(crate) &'a mut SpanRecorder);

impl FieldRecorder<'_> {
    fn special(&mut self, field: &Field, value: &str) -> bool {
        match field.name() {
            "otel.kind" | "span.kind" => {
                if let Some(kind) = parse_kind(value) {
                    self.0.set_kind(kind);
                }
            }
            "otel.name" => self.0.update_name(value.to_owned()),
            "otel.status_code" if value.eq_ignore_ascii_case("error") => {
                if !self.0.span().is_some_and(|s| s.status.is_error()) {
                    self.0.set_status(Status::error(""));
                }
            }
            "otel.status_code" if value.eq_ignore_ascii_case("ok") => {
                self.0.set_status(Status::Ok);
            }
            "otel.status_message" => self.0.set_status(Status::error(value.to_owned())),
            "error" => self.0.set_status(Status::error(value.to_owned())),
            _ => return false,
        }
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

impl Visit for FieldRecorder<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.special(field, value) {
            self.0.set_attribute(field.name(), value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if !self.special(field, &text) {
            self.0.set_attribute(field.name(), text);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let text = value.to_string();
        if !self.special(field, &text) {
            self.0.set_attribute(field.name(), text);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.set_attribute(field.name(), value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.set_attribute(field.name(), value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.set_attribute(field.name(), value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "error" && value {
            self.0.set_status(Status::error(""));
        } else {
            self.0.set_attribute(field.name(), value);
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
        self.attributes.push(KeyValue::new(field.name(), value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.attributes.push(KeyValue::new(field.name(), value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.attributes.push(KeyValue::new(field.name(), value));
    }
}
