use std::fmt;

use trace_core::current::with_current;
use trace_core::{SpanId, TraceId};
use tracing_core::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::layer::Bridged;

/// Puts `trace_id` and `span_id` into every log line printed inside a traced request, wrapping
/// the `fmt` layer's event format.
///
/// Text lines start with `trace_id=… span_id=… `; JSON lines (use [`WithTraceIds::json`]) get
/// `"trace_id"` and `"span_id"` as their first keys — the field names log pipelines (Loki,
/// Elasticsearch, the OpenTelemetry log data model) look for. The ids are those of the innermost
/// bridged span around the event, else of the current tracewire context (the request's, sampled
/// or not: an unsampled request's ids still name its caller's trace); lines printed outside any
/// request carry none.
///
/// ```
/// use tracing_subscriber::fmt::format;
/// use tracing_subscriber::prelude::*;
/// use trace_tracing::{TracewireLayer, WithTraceIds};
///
/// let text_logs = tracing_subscriber::registry()
///     .with(TracewireLayer::new())
///     .with(tracing_subscriber::fmt::layer().event_format(WithTraceIds::new(format())));
/// let json_logs = tracing_subscriber::registry().with(TracewireLayer::new()).with(
///     tracing_subscriber::fmt::layer()
///         .json()
///         .event_format(WithTraceIds::json(format().json())),
/// );
/// # drop((text_logs, json_logs));
/// ```
#[derive(Debug, Clone)]
pub struct WithTraceIds<F> {
    inner: F,
    json: bool,
}

impl<F> WithTraceIds<F> {
    /// Prefixes each text line printed by `inner` with the ids.
    pub fn new(inner: F) -> Self {
        Self { inner, json: false }
    }

    /// Adds the ids as the first keys of each JSON object printed by `inner`.
    pub fn json(inner: F) -> Self {
        Self { inner, json: true }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let bridged = ctx.event_scope().and_then(|scope| {
            scope.into_iter().find_map(|span| {
                let context = span
                    .extensions()
                    .get::<Bridged>()?
                    .recorder
                    .context()
                    .cloned()?;
                Some((context.trace_id(), context.span_id()))
            })
        });
        let ids: Option<(TraceId, SpanId)> =
            bridged.or_else(|| with_current(|c| c.map(|c| (c.trace_id(), c.span_id()))));
        let Some((trace_id, span_id)) = ids else {
            return self.inner.format_event(ctx, writer, event);
        };
        let (trace_id, span_id) = (trace_id.to_hex(), span_id.to_hex());
        if !self.json {
            write!(writer, "trace_id={trace_id} span_id={span_id} ")?;
            return self.inner.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => {
                let separator = if rest.trim_start().starts_with('}') {
                    ""
                } else {
                    ","
                };
                write!(
                    writer,
                    "{{\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"{separator}{rest}"
                )
            }
            None => writer.write_str(&line),
        }
    }
}
