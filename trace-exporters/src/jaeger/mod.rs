//! Jaeger export: Thrift compact `emitBatch` datagrams to an agent over UDP
//! ([`JaegerAgentExporter`], feature `jaeger-agent`) and Thrift binary `Batch`es to a collector's
//! `/api/traces` over HTTP ([`JaegerCollectorExporter`], feature `jaeger-collector`).
//!
//! Spans map to `jaeger.thrift` as OpenTelemetry's Jaeger mapping does:
//!
//! - the 128-bit trace id splits into `traceIdHigh`/`traceIdLow`; the parent is both
//!   `parentSpanId` and a `CHILD_OF` reference, links are `FOLLOWS_FROM` references;
//! - attributes become typed tags (string, bool, long, double); arrays become JSON text;
//! - events become logs whose `event` field holds the event name, beside its attributes;
//! - a status other than unset becomes `otel.status_code` (`OK`/`ERROR`), an error also
//!   `error=true` and `otel.status_description`; the span kind (other than internal) becomes
//!   `span.kind`; a debug id becomes `jaeger-debug-id`, the trace state `w3c.tracestate`;
//! - what the span's limits dropped becomes long tags `otel.dropped_attributes_count`,
//!   `otel.dropped_events_count` and `otel.dropped_links_count`, each only when not zero;
//! - flags use Jaeger's bits: sampled `1`, debug `2`, firehose `8`.
//!
//! The process carries the service name and, as Jaeger's own clients report them,
//! `jaeger.version`, `hostname`, `ip` (the local address that reaches the destination) and
//! `client-uuid`, then every attribute of the [`Resource`].
//!
//! ```
//! # #[cfg(feature = "jaeger-agent")]
//! # fn main() -> Result<(), trace_exporters::jaeger::JaegerError> {
//! use trace_exporters::Resource;
//! use trace_exporters::jaeger::JaegerAgentExporter;
//!
//! let exporter = JaegerAgentExporter::builder()
//!     .endpoint("127.0.0.1:6831")
//!     .max_packet_size(8192)
//!     .resource(Resource::new("checkout"))
//!     .build()?;
//! # drop(exporter);
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "jaeger-agent"))]
//! # fn main() {}
//! ```

use std::borrow::Cow;
use std::net::IpAddr;

use trace_core::KeyValue;

use crate::config::values;
use crate::resource::{Resource, SDK_VERSION};

mod thrift;

#[cfg(feature = "jaeger-agent")]
mod agent;
#[cfg(feature = "jaeger-collector")]
mod collector;

#[cfg(feature = "jaeger-agent")]
pub use agent::{
    DEFAULT_AGENT_ENDPOINT, DEFAULT_MAX_PACKET_SIZE, JaegerAgentExporter,
    JaegerAgentExporterBuilder, MAX_PACKET_SIZE, MIN_PACKET_SIZE,
};
#[cfg(feature = "jaeger-collector")]
pub use collector::{
    DEFAULT_COLLECTOR_ENDPOINT, JaegerCollectorExporter, JaegerCollectorExporterBuilder,
};
pub use thrift::{ThriftProtocol, encode_span};

/// The port a Jaeger agent takes compact Thrift on.
pub const AGENT_PORT: u16 = crate::config::DEFAULT_JAEGER_AGENT_PORT;
/// The port a Jaeger collector takes Thrift over HTTP on.
pub const COLLECTOR_PORT: u16 = values::JAEGER_COLLECTOR_PORT;
/// The collector path for Thrift batches.
pub const COLLECTOR_PATH: &str = values::JAEGER_COLLECTOR_PATH;

/// Why a Jaeger exporter could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JaegerError {
    /// The agent address is not `host:port` (or a bare host, meaning port 6831).
    #[error("`{0}` is not a Jaeger agent address; expected host:port, such as 127.0.0.1:6831")]
    BadAgentEndpoint(String),
    /// The collector endpoint is neither an `http(s)://` URL nor `host:port`.
    #[error(
        "`{0}` is not a Jaeger collector endpoint; expected a URL such as \
         http://jaeger:14268/api/traces, or host:port"
    )]
    BadCollectorEndpoint(String),
    /// The maximum datagram size is outside what a UDP datagram and one span need.
    #[error("maximum packet size {size} is outside {min}..={max} bytes")]
    BadPacketSize {
        /// The size asked for.
        size: usize,
        /// The smallest allowed.
        min: usize,
        /// The largest allowed (the largest UDP payload over IPv4).
        max: usize,
    },
    /// The local UDP socket could not be opened or pointed at the agent.
    #[error("cannot open a UDP socket to the Jaeger agent at `{endpoint}`: {source}")]
    Socket {
        /// The agent address.
        endpoint: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A credential holds characters an HTTP header cannot carry (the value itself is not shown).
    #[error("the {0} holds characters an HTTP header cannot carry")]
    BadCredential(&'static str),
    /// The HTTP client could not be made for the endpoint.
    #[error("cannot send to the Jaeger collector at `{endpoint}`: {reason}")]
    Transport {
        /// The collector URL.
        endpoint: String,
        /// Why.
        reason: String,
    },
}

/// Normalises a Jaeger agent address to `host:port`: a bare host gets port 6831, an IPv6 address
/// goes in brackets.
///
/// ```
/// use trace_exporters::jaeger::agent_endpoint;
///
/// assert_eq!(agent_endpoint("jaeger-agent")?, "jaeger-agent:6831");
/// assert_eq!(agent_endpoint("127.0.0.1:6832")?, "127.0.0.1:6832");
/// assert_eq!(agent_endpoint("[::1]:6831")?, "[::1]:6831");
/// assert!(agent_endpoint("host:port").is_err());
/// # Ok::<(), trace_exporters::jaeger::JaegerError>(())
/// ```
pub fn agent_endpoint(endpoint: &str) -> Result<String, JaegerError> {
    values::normalize_jaeger_agent(endpoint)
        .map_err(|_| JaegerError::BadAgentEndpoint(endpoint.to_owned()))
}

/// Normalises a Jaeger collector endpoint to the URL batches are POSTed to, by the rules of
/// [`normalize_jaeger_endpoint`](crate::config::normalize_jaeger_endpoint): a full URL is taken
/// as given, except that a URL without a path gets `/api/traces`; `host:port` (or a bare host,
/// meaning port 14268) means `http://host:port/api/traces`.
///
/// ```
/// use trace_exporters::jaeger::collector_endpoint;
///
/// assert_eq!(collector_endpoint("jaeger:14268")?, "http://jaeger:14268/api/traces");
/// assert_eq!(
///     collector_endpoint("https://traces.example.com/jaeger/api/traces")?,
///     "https://traces.example.com/jaeger/api/traces"
/// );
/// assert_eq!(collector_endpoint("http://jaeger:14268")?, "http://jaeger:14268/api/traces");
/// assert!(collector_endpoint("ftp://jaeger/api/traces").is_err());
/// # Ok::<(), trace_exporters::jaeger::JaegerError>(())
/// ```
pub fn collector_endpoint(endpoint: &str) -> Result<String, JaegerError> {
    values::normalize_jaeger(endpoint)
        .map_err(|_| JaegerError::BadCollectorEndpoint(endpoint.to_owned()))
}

/// The process a batch comes from, as Jaeger's clients describe theirs.
#[derive(Debug, Clone)]
pub(crate) struct ProcessTags {
    service_name: String,
    tags: Vec<KeyValue>,
    has_ip: bool,
}

impl ProcessTags {
    /// The process for `resource`; `ip` is added later, once the route to the destination is known.
    pub(crate) fn new(resource: &Resource) -> Self {
        let mut tags = Vec::with_capacity(resource.attributes().len() + 4);
        tags.push(KeyValue::new(
            "jaeger.version",
            format!("tracewire-rust-{SDK_VERSION}"),
        ));
        if let Some(host) = resource.attribute("host.name") {
            tags.push(KeyValue {
                key: Cow::Borrowed("hostname"),
                value: host.clone(),
            });
        }
        tags.push(KeyValue::new("client-uuid", random_uuid()));
        tags.extend(resource.attributes().iter().cloned());
        let has_ip = resource.attribute("ip").is_some();
        Self {
            service_name: resource.service_name().to_owned(),
            tags,
            has_ip,
        }
    }

    /// Whether an `ip` tag is still missing.
    pub(crate) fn wants_ip(&self) -> bool {
        !self.has_ip
    }

    /// Adds the `ip` tag, after `hostname`.
    pub(crate) fn set_ip(&mut self, ip: IpAddr) {
        if self.has_ip {
            return;
        }
        let at = self
            .tags
            .iter()
            .position(|kv| kv.key == "client-uuid")
            .unwrap_or(self.tags.len());
        self.tags.insert(at, KeyValue::new("ip", ip.to_string()));
        self.has_ip = true;
    }

    pub(crate) fn service_name(&self) -> &str {
        &self.service_name
    }

    pub(crate) fn tags(&self) -> &[KeyValue] {
        &self.tags
    }
}

/// The local address the operating system would send from to reach `destination`. Connecting a
/// UDP socket only consults the routing table; nothing is sent.
#[cfg(feature = "jaeger-collector")]
pub(crate) fn local_ip_towards(destination: std::net::SocketAddr) -> Option<IpAddr> {
    let bind: std::net::SocketAddr = if destination.is_ipv4() {
        (IpAddr::from([0u8; 4]), 0).into()
    } else {
        (IpAddr::from([0u16; 8]), 0).into()
    };
    let socket = std::net::UdpSocket::bind(bind).ok()?;
    socket.connect(destination).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// A random (version 4) UUID in its usual text form, for the `client-uuid` tag.
fn random_uuid() -> String {
    let mut bytes = fastrand::u128(..).to_be_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut text = String::with_capacity(36);
    for (index, byte) in bytes.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_endpoints() {
        assert_eq!(
            agent_endpoint("localhost").expect("bare host"),
            "localhost:6831"
        );
        assert_eq!(agent_endpoint("::1").expect("bare v6"), "[::1]:6831");
        for bad in ["", ":6831", "host:0", "host:99999", "a b:1", "http://x:1"] {
            assert!(agent_endpoint(bad).is_err(), "{bad}");
        }
        let message = agent_endpoint("a b").expect_err("space").to_string();
        assert!(message.contains("`a b`"), "{message}");
    }

    #[test]
    fn collector_endpoints() {
        assert_eq!(
            collector_endpoint("127.0.0.1:9").expect("address"),
            "http://127.0.0.1:9/api/traces"
        );
        assert_eq!(
            collector_endpoint("jaeger").expect("bare host"),
            "http://jaeger:14268/api/traces"
        );
        assert_eq!(
            collector_endpoint("[::1]:9").expect("v6"),
            "http://[::1]:9/api/traces"
        );
        assert_eq!(
            collector_endpoint("http://jaeger:14268/").expect("root path"),
            "http://jaeger:14268/api/traces"
        );
        for bad in ["", "http://", "jaeger:x", "ws://jaeger/api/traces", "a b:1"] {
            assert!(collector_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn process_tags_follow_jaeger_clients() {
        let mut process = ProcessTags::new(&Resource::new("svc").with_attribute("k", 1i64));
        process.set_ip(IpAddr::from([10, 0, 0, 1]));
        let keys: Vec<&str> = process.tags().iter().map(|kv| &*kv.key).collect();
        assert_eq!(
            &keys[..4],
            ["jaeger.version", "hostname", "ip", "client-uuid"]
        );
        assert!(keys.contains(&"k") && keys.contains(&"telemetry.sdk.name"));
        let uuid = random_uuid();
        assert_eq!(uuid.len(), 36);
        assert_eq!(uuid.as_bytes()[14], b'4');
    }
}
