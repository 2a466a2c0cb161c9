//! Spans as JSON lines on standard output (or any writer), for development and for log
//! pipelines that pick JSON up from a container's output.
//!
//! Each span is one JSON object on one line:
//!
//! | field | value |
//! |---|---|
//! | `name`, `kind` | the span's name; `server`, `client`, `internal`, `producer` or `consumer` |
//! | `trace_id`, `span_id`, `parent_span_id` | lower-case hex; `parent_span_id` is `null` for a root |
//! | `sampled`, `trace_state`, `debug_id` | the flags' sampled bit; W3C trace state and `jaeger-debug-id` when present |
//! | `start_time_unix_nano`, `end_time_unix_nano`, `duration_nano` | integers |
//! | `status` | `{"code": "unset" \| "ok" \| "error", "message"?: "..."}` |
//! | `attributes` | an object, keys in the order they were set; values keep their JSON type (string, boolean, integer, float, array); non-finite floats become the strings `"NaN"`, `"inf"`, `"-inf"` |
//! | `events` | `[{"name", "time_unix_nano", "attributes"}]` |
//! | `links` | `[{"trace_id", "span_id", "trace_state"?, "attributes"}]` |
//! | `dropped_attributes_count`, `dropped_events_count`, `dropped_links_count` | what the span's limits dropped, each only when not zero |
//! | `service_name`, `resource` | from the [`Resource`]: its service name and other attributes |

use std::fmt;
use std::io::{self, Write};
use std::time::SystemTime;

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use trace_core::{Array, Event, KeyValue, Link, Span, Status, Value};

use crate::export::{ExportError, ExportFuture, ExportOutcome, SpanExporter};
use crate::resource::Resource;

/// Writes each span as one line of JSON.
///
/// Writing is blocking I/O done on the export task, which is fine for a development exporter
/// and for standard output; for a slow writer, wrap it in a buffer of your own. Each batch is
/// written with one `write_all` and flushed. A write error drops the batch
/// ([`rejected`](crate::pipeline::drop_reason::REJECTED)): retrying a half-written batch would
/// repeat lines.
///
/// ```
/// use std::io::Write;
/// use std::sync::{Arc, Mutex};
/// use trace_exporters::Resource;
/// use trace_exporters::stdout::StdoutExporter;
///
/// // Any `Write + Send` will do; this one keeps the lines for the example to read.
/// #[derive(Clone, Default)]
/// struct Lines(Arc<Mutex<Vec<u8>>>);
/// impl Write for Lines {
///     fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
///         self.0.lock().expect("not poisoned").write(bytes)
///     }
///     fn flush(&mut self) -> std::io::Result<()> {
///         Ok(())
///     }
/// }
///
/// let lines = Lines::default();
/// let exporter = StdoutExporter::new(Resource::new("checkout")).with_writer(Box::new(lines.clone()));
/// # let _ = exporter;
/// ```
pub struct StdoutExporter {
    resource: Resource,
    writer: Box<dyn Write + Send>,
    buffer: Vec<u8>,
}

impl StdoutExporter {
    /// Writes to standard output, naming `resource`'s service.
    pub fn new(resource: Resource) -> Self {
        Self {
            resource,
            writer: Box::new(io::stdout()),
            buffer: Vec::new(),
        }
    }

    /// Writes to `writer` instead of standard output.
    pub fn with_writer(mut self, writer: Box<dyn Write + Send>) -> Self {
        self.writer = writer;
        self
    }

    /// Appends `span` as one JSON line (with its newline) to `out`.
    pub fn encode_line(&self, span: &Span, out: &mut Vec<u8>) {
        let json = SpanJson {
            span,
            resource: &self.resource,
        };
        // Serializing into a Vec fails only for maps with non-string keys, which we never write.
        if serde_json::to_writer(&mut *out, &json).is_ok() {
            out.push(b'\n');
        }
    }

    fn write_batch(&mut self, batch: &[Span]) -> io::Result<()> {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.clear();
        for span in batch {
            self.encode_line(span, &mut buffer);
        }
        let written = self
            .writer
            .write_all(&buffer)
            .and_then(|()| self.writer.flush());
        self.buffer = buffer;
        written
    }
}

impl SpanExporter for StdoutExporter {
    fn kind(&self) -> &'static str {
        "stdout"
    }

    fn export<'a>(&'a mut self, batch: &'a [Span]) -> ExportFuture<'a> {
        let written = self.write_batch(batch);
        Box::pin(async move {
            written
                .map(|()| ExportOutcome::delivered())
                .map_err(|error| ExportError::permanent(format_args!("writing spans: {error}")))
        })
    }

    fn shutdown(&mut self) -> ExportFuture<'_> {
        let flushed = self.writer.flush();
        Box::pin(async move {
            flushed
                .map(|()| ExportOutcome::delivered())
                .map_err(|error| ExportError::permanent(format_args!("flushing spans: {error}")))
        })
    }
}

impl fmt::Debug for StdoutExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StdoutExporter")
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}

fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        })
}

struct SpanJson<'a> {
    span: &'a Span,
    resource: &'a Resource,
}

impl Serialize for SpanJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let span = self.span;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("name", &*span.name)?;
        map.serialize_entry("kind", span.kind.as_str())?;
        map.serialize_entry("trace_id", span.trace_id.to_hex().as_str())?;
        map.serialize_entry("span_id", span.span_id.to_hex().as_str())?;
        map.serialize_entry(
            "parent_span_id",
            &span.parent_span_id.map(|id| id.to_hex()).as_deref(),
        )?;
        map.serialize_entry("sampled", &span.flags.is_sampled())?;
        if let Some(trace_state) = span.trace_state.header_value() {
            map.serialize_entry("trace_state", trace_state)?;
        }
        if let Some(debug_id) = &span.debug_id {
            map.serialize_entry("debug_id", &**debug_id)?;
        }
        map.serialize_entry("start_time_unix_nano", &unix_nanos(span.start_time))?;
        map.serialize_entry("end_time_unix_nano", &unix_nanos(span.end_time()))?;
        map.serialize_entry(
            "duration_nano",
            &u64::try_from(span.duration.as_nanos()).unwrap_or(u64::MAX),
        )?;
        map.serialize_entry("status", &StatusJson(&span.status))?;
        map.serialize_entry("attributes", &AttributesJson(&span.attributes))?;
        map.serialize_entry("events", &EventsJson(&span.events))?;
        map.serialize_entry("links", &LinksJson(&span.links))?;
        for (key, count) in [
            ("dropped_attributes_count", span.dropped.attributes),
            ("dropped_events_count", span.dropped.events),
            ("dropped_links_count", span.dropped.links),
        ] {
            if count > 0 {
                map.serialize_entry(key, &count)?;
            }
        }
        map.serialize_entry("service_name", self.resource.service_name())?;
        map.serialize_entry("resource", &AttributesJson(self.resource.attributes()))?;
        map.end()
    }
}

struct StatusJson<'a>(&'a Status);

impl Serialize for StatusJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match self.0 {
            Status::Unset => map.serialize_entry("code", "unset")?,
            Status::Ok => map.serialize_entry("code", "ok")?,
            Status::Error { message } => {
                map.serialize_entry("code", "error")?;
                map.serialize_entry("message", &**message)?;
            }
        }
        map.end()
    }
}

struct AttributesJson<'a>(&'a [KeyValue]);

impl Serialize for AttributesJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for kv in self.0 {
            map.serialize_entry(&*kv.key, &ValueJson(&kv.value))?;
        }
        map.end()
    }
}

struct ValueJson<'a>(&'a Value);

fn serialize_f64<S: Serializer>(value: f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_finite() {
        serializer.serialize_f64(value)
    } else if value.is_nan() {
        serializer.serialize_str("NaN")
    } else if value > 0.0 {
        serializer.serialize_str("inf")
    } else {
        serializer.serialize_str("-inf")
    }
}

struct F64Json(f64);

impl Serialize for F64Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_f64(self.0, serializer)
    }
}

impl Serialize for ValueJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::String(s) => serializer.serialize_str(s.as_str()),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::I64(i) => serializer.serialize_i64(*i),
            Value::F64(x) => serialize_f64(*x, serializer),
            Value::Array(Array::Bool(v)) => v.serialize(serializer),
            Value::Array(Array::I64(v)) => v.serialize(serializer),
            Value::Array(Array::F64(v)) => {
                let mut seq = serializer.serialize_seq(Some(v.len()))?;
                for x in v {
                    seq.serialize_element(&F64Json(*x))?;
                }
                seq.end()
            }
            Value::Array(Array::String(v)) => {
                let mut seq = serializer.serialize_seq(Some(v.len()))?;
                for s in v {
                    seq.serialize_element(s.as_str())?;
                }
                seq.end()
            }
        }
    }
}

struct EventsJson<'a>(&'a [Event]);

impl Serialize for EventsJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for event in self.0 {
            seq.serialize_element(&EventJson(event))?;
        }
        seq.end()
    }
}

struct EventJson<'a>(&'a Event);

impl Serialize for EventJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("name", &*self.0.name)?;
        map.serialize_entry("time_unix_nano", &unix_nanos(self.0.time))?;
        map.serialize_entry("attributes", &AttributesJson(&self.0.attributes))?;
        map.end()
    }
}

struct LinksJson<'a>(&'a [Link]);

impl Serialize for LinksJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for link in self.0 {
            seq.serialize_element(&LinkJson(link))?;
        }
        seq.end()
    }
}

struct LinkJson<'a>(&'a Link);

impl Serialize for LinkJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let link = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("trace_id", link.trace_id.to_hex().as_str())?;
        map.serialize_entry("span_id", link.span_id.to_hex().as_str())?;
        if let Some(trace_state) = link.trace_state.header_value() {
            map.serialize_entry("trace_state", trace_state)?;
        }
        map.serialize_entry("attributes", &AttributesJson(&link.attributes))?;
        map.end()
    }
}
