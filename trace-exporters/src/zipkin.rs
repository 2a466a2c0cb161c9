//! Zipkin v2 JSON over HTTP.
//!
//! [`ZipkinExporter`] POSTs each batch as a JSON array of Zipkin v2 spans to
//! `/api/v2/spans` (by default `http://localhost:9411/api/v2/spans`). The JSON is written straight
//! from our [`Span`]s with `serde_json`; no Zipkin-shaped copy of a span is built first.
//!
//! How a span maps onto the v2 model:
//!
//! | Zipkin | from |
//! |---|---|
//! | `traceId` | the trace id in lower-case hex: 16 digits when its upper 64 bits are zero (a 64-bit id from a Jaeger or B3 caller, written the way that caller wrote it, and the form Zipkin itself normalises such ids to), 32 otherwise |
//! | `id`, `parentId` | the span's and its parent's ids, 16 hex digits (`parentId` omitted for a root) |
//! | `name`, `kind` | the name; `SERVER`, `CLIENT`, `PRODUCER`, `CONSUMER` (omitted for internal spans) |
//! | `timestamp`, `duration` | start time in microseconds since the Unix epoch; duration in microseconds, at least 1 |
//! | `localEndpoint` | `serviceName` from the [`Resource`], plus the address given to [`ZipkinExporterBuilder::local_address`] |
//! | `remoteEndpoint` | for client and producer spans: `peer.service` or `server.address` (a name), the peer's IP from `network.peer.address` (or `server.address` when it is one) and the port from `network.peer.port`/`server.port`; for server and consumer spans: `peer.service`, `client.address`, `client.port`/`network.peer.port` (older `net.*` names are read too); omitted when none is known |
//! | `tags` | every attribute, non-strings written as text (arrays as JSON arrays); a repeated key keeps its last value; `otel.status_code` = `OK`/`ERROR` when the status is set, and `error` = the message for an error status; `jaeger-debug-id` when a debug header forced the trace; `otel.dropped_attributes_count` (and `_events_`, `_links_`) when the span's limits dropped any |
//! | `annotations` | one per event: its time in microseconds and its name, followed by its attributes as a JSON object when it has any (`cache.miss {"key":"user:7"}`) |
//! | `debug` | `true` when the trace carries the debug flag |
//!
//! ```
//! use trace_exporters::Resource;
//! use trace_exporters::zipkin::ZipkinExporter;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let exporter = ZipkinExporter::builder()
//!     .endpoint("http://zipkin:9411/api/v2/spans")
//!     .resource(Resource::new("checkout"))
//!     .build()?;
//! assert_eq!(exporter.endpoint(), "http://zipkin:9411/api/v2/spans");
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::HeaderMap;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use trace_core::{Array, Event, KeyValue, Span, SpanKind, Status, Value};

use crate::export::{ExportFuture, ExportOutcome, SpanExporter};
use crate::resource::Resource;
use crate::transport::http::HttpTransport;

/// Where a Zipkin server accepts v2 spans when nothing else is configured.
pub const DEFAULT_ZIPKIN_ENDPOINT: &str = "http://localhost:9411/api/v2/spans";

/// The smallest body buffer an export starts with; later exports start at the last body's size.
const MIN_BODY_CAPACITY: usize = 4 * 1024;

/// Why a [`ZipkinExporter`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ZipkinError {
    /// The endpoint is not an absolute `http://` or `https://` URL (or needs TLS that was not
    /// compiled in).
    #[error("invalid Zipkin endpoint: {0}")]
    Endpoint(String),
}

/// Sends batches to a Zipkin server as v2 JSON. See the [module docs](self) for the mapping.
pub struct ZipkinExporter {
    transport: HttpTransport,
    endpoint: String,
    local: LocalEndpoint,
    last_body_len: usize,
}

impl fmt::Debug for ZipkinExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZipkinExporter")
            .field("endpoint", &self.endpoint)
            .field("service_name", &self.local.service_name)
            .field("local_address", &self.local.address)
            .finish_non_exhaustive()
    }
}

impl ZipkinExporter {
    /// A builder: endpoint [`DEFAULT_ZIPKIN_ENDPOINT`], the default [`Resource`].
    pub fn builder() -> ZipkinExporterBuilder {
        ZipkinExporterBuilder::default()
    }

    /// The URL batches are POSTed to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Appends `batch` to `out` as the JSON array this exporter sends.
    pub fn encode(&self, batch: &[Span], out: &mut Vec<u8>) {
        let spans = SpansJson {
            spans: batch,
            local: &self.local,
        };
        // Writing into a Vec cannot fail, and no Serialize impl below returns an error.
        if serde_json::to_writer(out, &spans).is_err() {
            debug_assert!(false, "encoding Zipkin JSON into memory failed");
        }
    }
}

impl SpanExporter for ZipkinExporter {
    fn kind(&self) -> &'static str {
        "zipkin"
    }

    fn export<'a>(&'a mut self, batch: &'a [Span]) -> ExportFuture<'a> {
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(ExportOutcome::delivered());
            }
            let mut body = Vec::with_capacity(
                (self.last_body_len + self.last_body_len / 8).max(MIN_BODY_CAPACITY),
            );
            self.encode(batch, &mut body);
            self.last_body_len = body.len();
            self.transport
                .post("application/json", None, Bytes::from(body))
                .await?;
            Ok(ExportOutcome::delivered())
        })
    }
}

/// Builds a [`ZipkinExporter`].
#[derive(Debug, Default)]
pub struct ZipkinExporterBuilder {
    endpoint: Option<String>,
    resource: Option<Resource>,
    local_address: Option<IpAddr>,
    headers: HeaderMap,
}

impl ZipkinExporterBuilder {
    /// The full URL to POST to, such as `http://zipkin:9411/api/v2/spans`.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// The process the spans come from; its service name becomes `localEndpoint.serviceName`.
    pub fn resource(mut self, resource: Resource) -> Self {
        self.resource = Some(resource);
        self
    }

    /// This host's address, reported as `localEndpoint.ipv4` or `ipv6`.
    pub fn local_address(mut self, address: IpAddr) -> Self {
        self.local_address = Some(address);
        self
    }

    /// Headers sent with every request (authentication for a proxy in front of Zipkin).
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        self.headers = headers;
        self
    }

    /// The exporter, or why the endpoint cannot be used.
    pub fn build(self) -> Result<ZipkinExporter, ZipkinError> {
        let endpoint = self
            .endpoint
            .unwrap_or_else(|| DEFAULT_ZIPKIN_ENDPOINT.to_owned());
        let transport = HttpTransport::new(&endpoint, self.headers)
            .map_err(|error| ZipkinError::Endpoint(error.to_string()))?;
        let resource = self.resource.unwrap_or_default();
        Ok(ZipkinExporter {
            transport,
            endpoint,
            local: LocalEndpoint {
                service_name: resource.service_name().to_owned(),
                address: self.local_address,
            },
            last_body_len: 0,
        })
    }
}

/// `localEndpoint`, the same for every span.
#[derive(Debug)]
struct LocalEndpoint {
    service_name: String,
    address: Option<IpAddr>,
}

impl Serialize for LocalEndpoint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("serviceName", &self.service_name)?;
        serialize_address(&mut map, self.address)?;
        map.end()
    }
}

fn serialize_address<M: SerializeMap>(
    map: &mut M,
    address: Option<IpAddr>,
) -> Result<(), M::Error> {
    match address {
        Some(IpAddr::V4(v4)) => map.serialize_entry("ipv4", &DisplayStr(&v4)),
        Some(IpAddr::V6(v6)) => map.serialize_entry("ipv6", &DisplayStr(&v6)),
        None => Ok(()),
    }
}

/// Writes anything `Display` as a JSON string, without an intermediate `String`.
struct DisplayStr<'a, T: fmt::Display>(&'a T);

impl<T: fmt::Display> Serialize for DisplayStr<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self.0)
    }
}

struct SpansJson<'a> {
    spans: &'a [Span],
    local: &'a LocalEndpoint,
}

impl Serialize for SpansJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.spans.len()))?;
        for span in self.spans {
            seq.serialize_element(&SpanJson {
                span,
                local: self.local,
            })?;
        }
        seq.end()
    }
}

struct SpanJson<'a> {
    span: &'a Span,
    local: &'a LocalEndpoint,
}

impl Serialize for SpanJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let span = self.span;
        let mut map = serializer.serialize_map(None)?;
        let trace_hex = span.trace_id.to_hex();
        let trace_id = if span.trace_id.high_u64() == 0 {
            &trace_hex[16..]
        } else {
            trace_hex.as_str()
        };
        map.serialize_entry("traceId", trace_id)?;
        map.serialize_entry("id", span.span_id.to_hex().as_str())?;
        if let Some(parent) = span.parent_span_id {
            map.serialize_entry("parentId", parent.to_hex().as_str())?;
        }
        map.serialize_entry("name", &*span.name)?;
        if let Some(kind) = zipkin_kind(span.kind) {
            map.serialize_entry("kind", kind)?;
        }
        if let Some(timestamp) = epoch_micros(span.start_time) {
            map.serialize_entry("timestamp", &timestamp)?;
        }
        map.serialize_entry("duration", &duration_micros(span.duration))?;
        map.serialize_entry("localEndpoint", self.local)?;
        if let Some(remote) = RemoteEndpoint::of(span) {
            map.serialize_entry("remoteEndpoint", &remote)?;
        }
        if !span.events.is_empty() {
            map.serialize_entry("annotations", &AnnotationsJson(&span.events))?;
        }
        let tags = TagsJson(span);
        if tags.has_any() {
            map.serialize_entry("tags", &tags)?;
        }
        if span.flags.is_debug() {
            map.serialize_entry("debug", &true)?;
        }
        map.end()
    }
}

fn zipkin_kind(kind: SpanKind) -> Option<&'static str> {
    match kind {
        SpanKind::Server => Some("SERVER"),
        SpanKind::Client => Some("CLIENT"),
        SpanKind::Producer => Some("PRODUCER"),
        SpanKind::Consumer => Some("CONSUMER"),
        SpanKind::Internal => None,
    }
}

/// Microseconds since the Unix epoch; `None` for a time before it (a badly set clock).
fn epoch_micros(time: SystemTime) -> Option<u64> {
    let since = time.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    Some(u64::try_from(since.as_micros()).unwrap_or(u64::MAX))
}

/// Zipkin reads a zero duration as "unknown", so anything shorter than a microsecond is 1.
fn duration_micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// The other side of a remote call, as far as the span's attributes tell.
struct RemoteEndpoint<'a> {
    service_name: Option<&'a str>,
    address: Option<IpAddr>,
    port: Option<u16>,
}

impl<'a> RemoteEndpoint<'a> {
    fn of(span: &'a Span) -> Option<Self> {
        let text = |keys: &[&str]| keys.iter().find_map(|key| string_attribute(span, key));
        let port = |keys: &[&str]| keys.iter().find_map(|key| port_attribute(span, key));
        let ip = |keys: &[&str]| {
            keys.iter()
                .filter_map(|key| string_attribute(span, key))
                .find_map(|value| value.parse::<IpAddr>().ok())
        };
        let remote = match span.kind {
            SpanKind::Client | SpanKind::Producer => {
                let server_name = text(&["server.address", "net.peer.name"])
                    .filter(|name| name.parse::<IpAddr>().is_err());
                Self {
                    service_name: text(&["peer.service"]).or(server_name),
                    address: ip(&[
                        "network.peer.address",
                        "net.sock.peer.addr",
                        "net.peer.ip",
                        "server.address",
                        "net.peer.name",
                    ]),
                    port: port(&["network.peer.port", "server.port", "net.peer.port"]),
                }
            }
            SpanKind::Server | SpanKind::Consumer => Self {
                service_name: text(&["peer.service"]),
                address: ip(&[
                    "client.address",
                    "network.peer.address",
                    "net.sock.peer.addr",
                    "net.peer.ip",
                ]),
                port: port(&["client.port", "network.peer.port", "net.peer.port"]),
            },
            SpanKind::Internal => return None,
        };
        (remote.service_name.is_some() || remote.address.is_some()).then_some(remote)
    }
}

impl Serialize for RemoteEndpoint<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let Some(name) = self.service_name {
            map.serialize_entry("serviceName", name)?;
        }
        serialize_address(&mut map, self.address)?;
        if let Some(port) = self.port {
            map.serialize_entry("port", &port)?;
        }
        map.end()
    }
}

fn string_attribute<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    match span.attribute(key)? {
        Value::String(value) if !value.as_str().is_empty() => Some(value.as_str()),
        _ => None,
    }
}

fn port_attribute(span: &Span, key: &str) -> Option<u16> {
    match span.attribute(key)? {
        Value::I64(port) => u16::try_from(*port).ok().filter(|port| *port != 0),
        Value::String(port) => port.as_str().parse().ok().filter(|port| *port != 0),
        _ => None,
    }
}

/// The `tags` object: attributes (last value of a repeated key), then what the status, the
/// debug id and the span's dropped counts add.
struct TagsJson<'a>(&'a Span);

impl TagsJson<'_> {
    fn has_any(&self) -> bool {
        let span = self.0;
        !span.attributes.is_empty()
            || span.status != Status::Unset
            || span.debug_id.is_some()
            || self.dropped().any(|(_, count)| count > 0)
    }

    /// What the span's limits dropped, as OpenTelemetry's mapping for formats without the
    /// fields: `otel.dropped_*_count` tags, only when not zero.
    fn dropped(&self) -> impl Iterator<Item = (&'static str, u32)> {
        let dropped = self.0.dropped;
        [
            ("otel.dropped_attributes_count", dropped.attributes),
            ("otel.dropped_events_count", dropped.events),
            ("otel.dropped_links_count", dropped.links),
        ]
        .into_iter()
    }

    /// Whether the attribute at `index` is written: not repeated later, not one of the keys
    /// the status or debug id write.
    fn keeps(&self, index: usize, attribute: &KeyValue) -> bool {
        let span = self.0;
        let key = &*attribute.key;
        let later = &span.attributes[index + 1..];
        if later.iter().any(|other| other.key == key) {
            return false;
        }
        match key {
            "otel.status_code" => span.status == Status::Unset,
            "error" => !span.status.is_error(),
            "jaeger-debug-id" => span.debug_id.is_none(),
            "otel.dropped_attributes_count" => span.dropped.attributes == 0,
            "otel.dropped_events_count" => span.dropped.events == 0,
            "otel.dropped_links_count" => span.dropped.links == 0,
            _ => true,
        }
    }
}

impl Serialize for TagsJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let span = self.0;
        let mut map = serializer.serialize_map(None)?;
        for (index, attribute) in span.attributes.iter().enumerate() {
            if self.keeps(index, attribute) {
                map.serialize_entry(&*attribute.key, &TagValue(&attribute.value))?;
            }
        }
        match &span.status {
            Status::Unset => {}
            Status::Ok => map.serialize_entry("otel.status_code", "OK")?,
            Status::Error { message } => {
                map.serialize_entry("otel.status_code", "ERROR")?;
                map.serialize_entry("error", &**message)?;
            }
        }
        if let Some(debug_id) = &span.debug_id {
            map.serialize_entry("jaeger-debug-id", &**debug_id)?;
        }
        for (key, count) in self.dropped() {
            if count > 0 {
                map.serialize_entry(key, &count.to_string())?;
            }
        }
        map.end()
    }
}

/// A tag value: Zipkin tags are strings, so other values are written as their text.
struct TagValue<'a>(&'a Value);

impl Serialize for TagValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::String(text) => serializer.serialize_str(text.as_str()),
            Value::Bool(value) => serializer.serialize_str(if *value { "true" } else { "false" }),
            Value::I64(value) => serialize_integer_text(*value, serializer),
            Value::F64(value) => serializer.collect_str(value),
            Value::Array(array) => {
                // An array tag is its JSON text; arrays are rare enough to afford the String.
                let text = serde_json::to_string(&ArrayJson(array)).unwrap_or_default();
                serializer.serialize_str(&text)
            }
        }
    }
}

/// An integer as a JSON string. Written by hand because going through `fmt` (`collect_str`)
/// took about a twelfth of the encoding time of a typical HTTP span.
fn serialize_integer_text<S: Serializer>(value: i64, serializer: S) -> Result<S::Ok, S::Error> {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut rest = value.unsigned_abs();
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        start -= 1;
        digits[start] = b'-';
    }
    // Only ASCII digits and a sign were written.
    serializer.serialize_str(std::str::from_utf8(&digits[start..]).unwrap_or_default())
}

/// An attribute value as typed JSON (inside annotation values and array tags).
struct ValueJson<'a>(&'a Value);

impl Serialize for ValueJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::String(text) => serializer.serialize_str(text.as_str()),
            Value::Bool(value) => serializer.serialize_bool(*value),
            Value::I64(value) => serializer.serialize_i64(*value),
            Value::F64(value) => serializer.serialize_f64(*value),
            Value::Array(array) => ArrayJson(array).serialize(serializer),
        }
    }
}

struct ArrayJson<'a>(&'a Array);

impl Serialize for ArrayJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Array::Bool(values) => serializer.collect_seq(values),
            Array::I64(values) => serializer.collect_seq(values),
            Array::F64(values) => serializer.collect_seq(values),
            Array::String(values) => serializer.collect_seq(values.iter().map(|v| v.as_str())),
        }
    }
}

struct AnnotationsJson<'a>(&'a [Event]);

impl Serialize for AnnotationsJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for event in self.0 {
            seq.serialize_element(&AnnotationJson(event))?;
        }
        seq.end()
    }
}

struct AnnotationJson<'a>(&'a Event);

impl Serialize for AnnotationJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let event = self.0;
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("timestamp", &epoch_micros(event.time).unwrap_or(0))?;
        if event.attributes.is_empty() {
            map.serialize_entry("value", &*event.name)?;
        } else {
            // Zipkin annotations are plain strings: the attributes ride along as JSON text.
            let attributes =
                serde_json::to_string(&AttributesJson(&event.attributes)).unwrap_or_default();
            map.serialize_entry("value", &format_args!("{} {attributes}", event.name))?;
        }
        map.end()
    }
}

struct AttributesJson<'a>(&'a [KeyValue]);

impl Serialize for AttributesJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(
            self.0
                .iter()
                .map(|attribute| (&*attribute.key, ValueJson(&attribute.value))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_written_as_text() {
        for value in [0, 7, -7, 504, i64::MAX, i64::MIN] {
            let json = serde_json::to_string(&TagValue(&Value::I64(value))).expect("encodes");
            assert_eq!(json, format!("\"{value}\""));
        }
    }

    #[test]
    fn durations_are_at_least_one_microsecond() {
        assert_eq!(duration_micros(Duration::ZERO), 1);
        assert_eq!(duration_micros(Duration::from_nanos(999)), 1);
        assert_eq!(duration_micros(Duration::from_millis(3)), 3000);
    }

    #[test]
    fn times_before_the_epoch_have_no_timestamp() {
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(epoch_micros(before), None);
        let after = SystemTime::UNIX_EPOCH + Duration::from_micros(1_500_000);
        assert_eq!(epoch_micros(after), Some(1_500_000));
    }
}
