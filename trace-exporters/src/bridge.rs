//! Drives any `opentelemetry_sdk` span exporter with tracewire spans, for destinations we have
//! no exporter of our own for.
//!
//! Each span becomes an [`SpanData`]: ids, parent, kind, name, times, status, attributes
//! (arrays included), events, links and their trace state, the sampled flag, and the
//! instrumentation scope `tracewire`. The exporter's resource is set from our [`Resource`].
//!
//! ```
//! use opentelemetry_sdk::trace::InMemorySpanExporter;
//! use trace_exporters::bridge::OpenTelemetryExporter;
//! use trace_exporters::{BatchExporter, Resource};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let sdk_exporter = InMemorySpanExporter::default();
//! let exporter = OpenTelemetryExporter::new(sdk_exporter.clone(), &Resource::new("checkout"));
//! let batch = BatchExporter::builder(exporter).build();
//! # let _ = batch.shutdown(std::time::Duration::from_secs(5)).await;
//! # }
//! ```

use std::fmt;
use std::str::FromStr;

use opentelemetry::trace as otel;
use opentelemetry::{InstrumentationScope, KeyValue as OtelKeyValue};
use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use trace_core::{Array, KeyValue, Span, SpanKind, Status, StringValue, TraceState, Value};

use crate::export::{ExportError, ExportFuture, ExportOutcome, SpanExporter};
use crate::resource::{Resource, SDK_NAME, SDK_VERSION};

/// A [`SpanExporter`] that converts each batch to [`SpanData`] and hands it to an
/// `opentelemetry_sdk` exporter. Kind `"opentelemetry"`.
///
/// Errors map onto ours as follows: `Timeout` and `InternalFailure` are retryable (the SDK's
/// exporters report network failures as internal failures), `AlreadyShutdown` is permanent.
/// The SDK exporter's `shutdown` is synchronous and is called on the export task.
pub struct OpenTelemetryExporter<E> {
    inner: E,
    scope: InstrumentationScope,
}

impl<E> OpenTelemetryExporter<E>
where
    E: opentelemetry_sdk::trace::SpanExporter + 'static,
{
    /// Wraps `inner`, setting its resource from `resource`.
    pub fn new(mut inner: E, resource: &Resource) -> Self {
        inner.set_resource(&sdk_resource(resource));
        Self {
            inner,
            scope: InstrumentationScope::builder(SDK_NAME)
                .with_version(SDK_VERSION)
                .build(),
        }
    }

    /// The wrapped exporter.
    pub fn inner(&self) -> &E {
        &self.inner
    }

    /// Unwraps the exporter.
    pub fn into_inner(self) -> E {
        self.inner
    }
}

impl<E> SpanExporter for OpenTelemetryExporter<E>
where
    E: opentelemetry_sdk::trace::SpanExporter + 'static,
{
    fn kind(&self) -> &'static str {
        "opentelemetry"
    }

    fn export<'a>(&'a mut self, batch: &'a [Span]) -> ExportFuture<'a> {
        let data: Vec<SpanData> = batch
            .iter()
            .map(|span| span_data(span, &self.scope))
            .collect();
        Box::pin(async move {
            self.inner
                .export(data)
                .await
                .map(|()| ExportOutcome::delivered())
                .map_err(export_error)
        })
    }

    fn shutdown(&mut self) -> ExportFuture<'_> {
        let result = self
            .inner
            .shutdown()
            .map(|()| ExportOutcome::delivered())
            .map_err(export_error);
        Box::pin(async move { result })
    }
}

impl<E: fmt::Debug> fmt::Debug for OpenTelemetryExporter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenTelemetryExporter")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

fn export_error(error: OTelSdkError) -> ExportError {
    match error {
        OTelSdkError::AlreadyShutdown => ExportError::permanent("the exporter was shut down"),
        OTelSdkError::Timeout(after) => {
            ExportError::retryable(format_args!("export timed out after {after:?}"))
        }
        OTelSdkError::InternalFailure(message) => ExportError::retryable(message),
    }
}

/// Our resource as the SDK's: `service.name` plus every other attribute.
pub fn sdk_resource(resource: &Resource) -> opentelemetry_sdk::Resource {
    opentelemetry_sdk::Resource::builder_empty()
        .with_service_name(resource.service_name().to_owned())
        .with_attributes(resource.attributes().iter().map(key_value))
        .build()
}

/// One span as the SDK's [`SpanData`], with the instrumentation scope `scope`.
///
/// Spans of kind server or consumer have a parent received from another process, so their
/// parent is marked remote; the others' is local. Links are marked remote, with no flags (a
/// link does not carry the linked span's flags). The `jaeger-debug-id` has no place in
/// `SpanData` and is left out.
pub fn span_data(span: &Span, scope: &InstrumentationScope) -> SpanData {
    let flags = otel::TraceFlags::new(span.flags.is_sampled().into());
    let span_context = otel::SpanContext::new(
        otel::TraceId::from_bytes(span.trace_id.to_bytes()),
        otel::SpanId::from_bytes(span.span_id.to_bytes()),
        flags,
        false,
        trace_state(&span.trace_state),
    );
    let mut events = SpanEvents::default();
    events.events = span
        .events
        .iter()
        .map(|event| {
            otel::Event::new(
                event.name.clone(),
                event.time,
                event.attributes.iter().map(key_value).collect(),
                0,
            )
        })
        .collect();
    events.dropped_count = span.dropped.events;
    let mut links = SpanLinks::default();
    links.links = span
        .links
        .iter()
        .map(|link| {
            otel::Link::new(
                otel::SpanContext::new(
                    otel::TraceId::from_bytes(link.trace_id.to_bytes()),
                    otel::SpanId::from_bytes(link.span_id.to_bytes()),
                    otel::TraceFlags::default(),
                    true,
                    trace_state(&link.trace_state),
                ),
                link.attributes.iter().map(key_value).collect(),
                0,
            )
        })
        .collect();
    links.dropped_count = span.dropped.links;
    SpanData {
        span_context,
        parent_span_id: span.parent_span_id.map_or(otel::SpanId::INVALID, |id| {
            otel::SpanId::from_bytes(id.to_bytes())
        }),
        parent_span_is_remote: span.parent_span_id.is_some()
            && matches!(span.kind, SpanKind::Server | SpanKind::Consumer),
        span_kind: span_kind(span.kind),
        name: span.name.clone(),
        start_time: span.start_time,
        end_time: span.end_time(),
        attributes: span.attributes.iter().map(key_value).collect(),
        dropped_attributes_count: span.dropped.attributes,
        events,
        links,
        status: match &span.status {
            Status::Unset => otel::Status::Unset,
            Status::Ok => otel::Status::Ok,
            Status::Error { message } => otel::Status::Error {
                description: message.clone(),
            },
        },
        instrumentation_scope: scope.clone(),
    }
}

fn span_kind(kind: SpanKind) -> otel::SpanKind {
    match kind {
        SpanKind::Server => otel::SpanKind::Server,
        SpanKind::Client => otel::SpanKind::Client,
        SpanKind::Internal => otel::SpanKind::Internal,
        SpanKind::Producer => otel::SpanKind::Producer,
        SpanKind::Consumer => otel::SpanKind::Consumer,
    }
}

/// Our trace state is validated W3C text, so the SDK's parser accepts it; anything it refuses
/// becomes an empty state rather than a failed export.
fn trace_state(state: &TraceState) -> otel::TraceState {
    state
        .header_value()
        .and_then(|header| otel::TraceState::from_str(header).ok())
        .unwrap_or(otel::TraceState::NONE)
}

fn key_value(kv: &KeyValue) -> OtelKeyValue {
    OtelKeyValue::new(kv.key.clone(), value(&kv.value))
}

fn string(value: &StringValue) -> opentelemetry::StringValue {
    match value {
        StringValue::Static(s) => (*s).into(),
        StringValue::Shared(s) => s.clone().into(),
        StringValue::Owned(s) => String::from(&**s).into(),
        StringValue::Inline(s) => String::from(s.as_str()).into(),
    }
}

fn value(value: &Value) -> opentelemetry::Value {
    match value {
        Value::String(s) => opentelemetry::Value::String(string(s)),
        Value::Bool(b) => opentelemetry::Value::Bool(*b),
        Value::I64(i) => opentelemetry::Value::I64(*i),
        Value::F64(x) => opentelemetry::Value::F64(*x),
        Value::Array(array) => opentelemetry::Value::Array(match array {
            Array::Bool(v) => opentelemetry::Array::Bool(v.clone()),
            Array::I64(v) => opentelemetry::Array::I64(v.clone()),
            Array::F64(v) => opentelemetry::Array::F64(v.clone()),
            Array::String(v) => opentelemetry::Array::String(v.iter().map(string).collect()),
        }),
    }
}
