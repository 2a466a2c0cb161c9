use std::sync::atomic::Ordering;

use trace_core::SpanContext;
use trace_core::current::current_context;
use tracing_subscriber::Registry;
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::layer::{BRIDGED_ALIVE, Bridged};

/// Moves contexts between `tracing` spans and tracewire.
///
/// ```
/// use trace_core::{SpanContext, TraceFlags};
/// use trace_tracing::TracingSpanExt;
///
/// let span = tracing::info_span!("background job");
/// // A job started from a queue message continues the trace that enqueued it:
/// span.set_tracewire_parent(SpanContext::new_root(TraceFlags::SAMPLED));
/// // and its outgoing calls carry the job span's context:
/// let _context: Option<SpanContext> = span.tracewire_context();
/// ```
///
/// Both work when the `tracing` subscriber is built on tracing-subscriber's `Registry` with a
/// [`TracewireLayer`](crate::TracewireLayer); otherwise they see no bridged spans.
pub trait TracingSpanExt {
    /// The tracewire context of this span — its own when bridged, else its nearest bridged
    /// ancestor's, else the current tracewire context (sampled or not, so that outgoing calls
    /// still propagate an unsampled decision).
    fn tracewire_context(&self) -> Option<SpanContext>;

    /// Makes this span a child of `parent` (a context extracted from a message, say). Call it
    /// right after creating the span: its start time is reset. A span that was already bridged
    /// keeps the name, kind, status and attributes it recorded; one created outside any sampled
    /// context was not recorded at all, so only fields recorded after the call are kept. Nothing
    /// is recorded if `parent` is not sampled.
    fn set_tracewire_parent(&self, parent: SpanContext);
}

impl TracingSpanExt for tracing::Span {
    fn tracewire_context(&self) -> Option<SpanContext> {
        let mut found = None;
        with_registry_span(self, |span| {
            found = span
                .scope()
                .find_map(|s| s.extensions().get::<Bridged>()?.recorder.context().cloned());
        });
        found.or_else(current_context)
    }

    fn set_tracewire_parent(&self, parent: SpanContext) {
        with_registry_span(self, |span| {
            let mut extensions = span.extensions_mut();
            let previous = extensions.remove::<Bridged>();
            let previous_existed = previous.is_some();
            let mut recorder = parent.child(span.metadata().name());
            if let Some(previous) = previous {
                if let Some(recorded) = previous.recorder.span() {
                    recorder.update_name(recorded.name.clone());
                    recorder.set_kind(recorded.kind);
                    recorder.set_status(recorded.status.clone());
                    for attribute in &recorded.attributes {
                        recorder.set_attribute(attribute.key.clone(), attribute.value.clone());
                    }
                }
                previous.recorder.discard();
            }
            let replaced = previous_existed;
            if recorder.is_recording() {
                extensions.insert(Bridged { recorder });
                if !replaced {
                    BRIDGED_ALIVE.fetch_add(1, Ordering::Relaxed);
                }
            } else if replaced {
                BRIDGED_ALIVE.fetch_sub(1, Ordering::Relaxed);
            }
        });
    }
}

fn with_registry_span(span: &tracing::Span, f: impl FnOnce(SpanRef<'_, Registry>)) {
    let mut f = Some(f);
    span.with_subscriber(|(id, dispatch)| {
        if let Some(registry) = dispatch.downcast_ref::<Registry>()
            && let Some(span) = registry.span(id)
            && let Some(f) = f.take()
        {
            f(span);
        }
    });
}
