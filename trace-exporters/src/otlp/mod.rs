//! OTLP export to an OpenTelemetry collector (or any OTLP receiver): over HTTP as protobuf or
//! JSON ([`OtlpHttpExporter`]), or over gRPC ([`OtlpGrpcExporter`]).
//!
//! Both encode a batch straight from our [`Span`]s into a reusable buffer (no generated message
//! structs in between, see [`OtlpEncoder`]), optionally gzip it, and send it once: timeouts and
//! retries belong to the pipeline that drives them. Both take custom headers (gRPC metadata), a
//! bearer token read from a file that is re-read when it changes, and [TLS settings](TlsConfig).
//!
//! ```
//! use trace_exporters::Resource;
//! use trace_exporters::otlp::{OtlpHttpExporter, OtlpProtocol};
//!
//! # #[cfg(feature = "otlp-http")]
//! # fn main() -> Result<(), trace_exporters::otlp::OtlpError> {
//! let exporter = OtlpHttpExporter::builder()
//!     .endpoint("http://collector:4318/v1/traces")
//!     .protocol(OtlpProtocol::HttpProtobuf)
//!     .gzip(true)
//!     .header("x-tenant", "shop")
//!     .resource(Resource::new("checkout"))
//!     .build_http()?;
//! # drop(exporter);
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "otlp-http"))]
//! # fn main() {}
//! ```

use std::path::PathBuf;
use std::str::FromStr;

use http::{HeaderMap, HeaderName, HeaderValue};
use trace_core::Span;

use crate::transport::tls::{TlsConfig, TlsError};
use crate::{Resource, SDK_VERSION, SpanExporter};

mod auth;
mod protobuf;
mod response;

#[cfg(feature = "otlp-http")]
mod http_exporter;
#[cfg(feature = "otlp-http")]
mod json;

#[cfg(feature = "otlp-grpc")]
mod grpc;

#[cfg(feature = "otlp-grpc")]
pub use grpc::OtlpGrpcExporter;
#[cfg(feature = "otlp-http")]
pub use http_exporter::OtlpHttpExporter;

// The protocol names and endpoint rules are part of the configuration, which is compiled
// whatever exporters are; they are offered here too, where exporter code looks for them.
pub use crate::config::{
    DEFAULT_OTLP_GRPC_ENDPOINT, DEFAULT_OTLP_HTTP_ENDPOINT, OtlpProtocol, http_traces_url,
    traces_endpoint,
};

/// The instrumentation scope name every exported span carries.
pub const SCOPE_NAME: &str = "tracewire";

impl FromStr for OtlpProtocol {
    type Err = OtlpError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim() {
            "grpc" => Ok(Self::Grpc),
            "http/protobuf" => Ok(Self::HttpProtobuf),
            "http/json" => Ok(Self::HttpJson),
            other => Err(OtlpError::UnknownProtocol(other.to_owned())),
        }
    }
}

/// Why an OTLP exporter could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtlpError {
    /// The endpoint is not an absolute `http://` or `https://` URL.
    #[error("invalid OTLP endpoint `{endpoint}`: {reason}")]
    InvalidEndpoint {
        /// The endpoint given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A custom header's name or value cannot be sent.
    #[error("invalid header `{name}`: {reason}")]
    InvalidHeader {
        /// The header name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The bearer token file cannot be read or holds no usable token.
    #[error("bearer token file {path}: {reason}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The TLS settings cannot be applied.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Not one of `grpc`, `http/protobuf`, `http/json`.
    #[error("unknown OTLP protocol `{0}` (expected grpc, http/protobuf or http/json)")]
    UnknownProtocol(String),
    /// The builder's protocol is not the one of the exporter asked for (`grpc` for
    /// [`build_http`](OtlpExporterBuilder::build_http), say).
    #[error("protocol {protocol} cannot be sent by the {exporter} exporter")]
    WrongProtocol {
        /// The builder's protocol.
        protocol: OtlpProtocol,
        /// The exporter asked for.
        exporter: &'static str,
    },
    /// The protocol's exporter was not compiled in.
    #[error("protocol {protocol} needs trace-exporters' `{feature}` feature")]
    NotCompiled {
        /// The protocol asked for.
        protocol: OtlpProtocol,
        /// The cargo feature that brings it.
        feature: &'static str,
    },
    /// The gRPC exporter was built outside a Tokio runtime (its connection task needs one).
    #[error("the OTLP/gRPC exporter must be built inside a Tokio runtime")]
    NoRuntime,
}

/// Encodes batches as OTLP `ExportTraceServiceRequest`s, protobuf or JSON, into a caller's
/// buffer. The resource and instrumentation scope are encoded once, when it is made; protobuf
/// encoding makes one pass over the spans and allocates nothing once the buffer has grown.
///
/// ```
/// use trace_core::{SpanContext, TraceFlags, InMemoryCollector};
/// use trace_exporters::Resource;
/// use trace_exporters::otlp::OtlpEncoder;
/// # use std::sync::Arc;
///
/// # let collector = Arc::new(InMemoryCollector::new(10));
/// # let context = SpanContext::new_root(TraceFlags::SAMPLED).with_collector(collector.clone());
/// # drop(context.child("work"));
/// # let spans = collector.spans_of_trace(context.trace_id());
/// let mut encoder = OtlpEncoder::new(&Resource::new("checkout"));
/// let mut body = Vec::new();
/// encoder.encode_protobuf(&spans, &mut body);
/// assert!(!body.is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct OtlpEncoder {
    resource: Resource,
    protobuf: protobuf::FixedParts,
    #[cfg(feature = "otlp-http")]
    json: Option<json::JsonFixedParts>,
}

impl OtlpEncoder {
    /// An encoder whose requests carry `resource` (plus `service.name`) and the `tracewire`
    /// instrumentation scope.
    pub fn new(resource: &Resource) -> Self {
        Self {
            resource: resource.clone(),
            protobuf: protobuf::FixedParts::new(resource, SCOPE_NAME, SDK_VERSION),
            #[cfg(feature = "otlp-http")]
            json: None,
        }
    }

    /// The resource every request carries.
    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    /// Appends the protobuf `ExportTraceServiceRequest` for `spans` to `buf`.
    pub fn encode_protobuf(&mut self, spans: &[Span], buf: &mut Vec<u8>) {
        protobuf::encode_request(&self.protobuf, spans, buf);
    }

    /// Appends the protobuf `ExportTraceServiceRequest` for spans written one by one by
    /// `protobuf::encode_span_field` (the OTLP exporters' span encoder).
    pub(crate) fn encode_protobuf_encoded(&self, batch: &crate::EncodedSpans, buf: &mut Vec<u8>) {
        protobuf::encode_wrapped_request(&self.protobuf, batch, buf);
    }

    /// Appends the OTLP/JSON `ExportTraceServiceRequest` for `spans` to `buf`.
    #[cfg(feature = "otlp-http")]
    pub fn encode_json(
        &mut self,
        spans: &[Span],
        buf: &mut Vec<u8>,
    ) -> Result<(), serde_json::Error> {
        let fixed = match &mut self.json {
            Some(fixed) => fixed,
            json @ None => json.insert(json::JsonFixedParts::new(
                &self.resource,
                SCOPE_NAME,
                SDK_VERSION,
            )?),
        };
        json::encode_request(fixed, spans, buf)
    }
}

/// Settings for an OTLP exporter, HTTP or gRPC. Made by [`OtlpHttpExporter::builder`],
/// [`OtlpGrpcExporter::builder`] or [`OtlpExporterBuilder::new`]; finished by
/// [`build_http`](Self::build_http), [`build_grpc`](Self::build_grpc), or [`build`](Self::build)
/// (whichever the protocol says, boxed).
///
/// Header names and values are checked when the exporter is built.
#[derive(Debug, Clone)]
pub struct OtlpExporterBuilder {
    protocol: OtlpProtocol,
    endpoint: Option<String>,
    gzip: bool,
    headers: Vec<(String, String)>,
    token_file: Option<PathBuf>,
    tls: TlsConfig,
    resource: Option<Resource>,
}

impl OtlpExporterBuilder {
    /// Settings for `protocol`: its default endpoint, no compression, no headers, web PKI TLS,
    /// the default [`Resource`].
    pub fn new(protocol: OtlpProtocol) -> Self {
        Self {
            protocol,
            endpoint: None,
            gzip: false,
            headers: Vec::new(),
            token_file: None,
            tls: TlsConfig::default(),
            resource: None,
        }
    }

    /// Where batches go. For HTTP this is the full traces URL
    /// (`http://collector:4318/v1/traces`; see [`traces_endpoint`] to derive it from a base);
    /// for gRPC the server's URL (`http://collector:4317`). Defaults to the protocol's default.
    #[must_use]
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The protocol: `HttpProtobuf` or `HttpJson` for [`build_http`](Self::build_http), `Grpc`
    /// for [`build_grpc`](Self::build_grpc).
    #[must_use]
    pub fn protocol(mut self, protocol: OtlpProtocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Gzip-compresses every request (`Content-Encoding: gzip`, or gRPC's `grpc-encoding: gzip`).
    #[must_use]
    pub fn gzip(mut self, gzip: bool) -> Self {
        self.gzip = gzip;
        self
    }

    /// A header (gRPC: metadata entry) sent with every request, such as an API key.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Several [headers](Self::header).
    #[must_use]
    pub fn headers<N, V>(mut self, headers: impl IntoIterator<Item = (N, V)>) -> Self
    where
        N: Into<String>,
        V: Into<String>,
    {
        self.headers
            .extend(headers.into_iter().map(|(n, v)| (n.into(), v.into())));
        self
    }

    /// Sends `Authorization: Bearer <token>` with the token in this file (surrounding whitespace
    /// trimmed). The file is read when the exporter is built and again before an export whenever
    /// its modification time or size changed, so a rotated token is picked up.
    #[must_use]
    pub fn token_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.token_file = Some(path.into());
        self
    }

    /// TLS settings for `https://` endpoints.
    #[must_use]
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = tls;
        self
    }

    /// The resource the spans come from (default: [`Resource::default`]).
    #[must_use]
    pub fn resource(mut self, resource: Resource) -> Self {
        self.resource = Some(resource);
        self
    }

    /// The exporter the protocol calls for, boxed.
    pub fn build(self) -> Result<Box<dyn SpanExporter>, OtlpError> {
        match self.protocol {
            #[cfg(feature = "otlp-grpc")]
            OtlpProtocol::Grpc => Ok(Box::new(self.build_grpc()?)),
            #[cfg(not(feature = "otlp-grpc"))]
            OtlpProtocol::Grpc => Err(OtlpError::NotCompiled {
                protocol: self.protocol,
                feature: "otlp-grpc",
            }),
            #[cfg(feature = "otlp-http")]
            OtlpProtocol::HttpProtobuf | OtlpProtocol::HttpJson => Ok(Box::new(self.build_http()?)),
            #[cfg(not(feature = "otlp-http"))]
            OtlpProtocol::HttpProtobuf | OtlpProtocol::HttpJson => Err(OtlpError::NotCompiled {
                protocol: self.protocol,
                feature: "otlp-http",
            }),
        }
    }

    /// The endpoint to use: the one given or the protocol's default.
    fn endpoint_or_default(&self) -> String {
        match &self.endpoint {
            Some(endpoint) => endpoint.trim().to_owned(),
            None => traces_endpoint(self.protocol, None, None),
        }
    }

    /// The custom headers, checked.
    fn header_map(&self) -> Result<HeaderMap, OtlpError> {
        let mut map = HeaderMap::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            let invalid = |reason: String| OtlpError::InvalidHeader {
                name: name.clone(),
                reason,
            };
            let header_name =
                HeaderName::try_from(name.trim()).map_err(|error| invalid(error.to_string()))?;
            let header_value =
                HeaderValue::try_from(value.trim()).map_err(|error| invalid(error.to_string()))?;
            map.append(header_name, header_value);
        }
        Ok(map)
    }

    fn open_token_file(&self) -> Result<Option<auth::BearerTokenFile>, OtlpError> {
        self.token_file
            .as_ref()
            .map(|path| {
                auth::BearerTokenFile::open(path).map_err(|error| OtlpError::TokenFile {
                    path: path.clone(),
                    reason: error.to_string(),
                })
            })
            .transpose()
    }

    fn encoder(&self) -> OtlpEncoder {
        match &self.resource {
            Some(resource) => OtlpEncoder::new(resource),
            None => OtlpEncoder::new(&Resource::default()),
        }
    }
}

/// The encoded request in `body` as [`Bytes`](bytes::Bytes), moved rather than copied; `body`
/// is left empty with the same capacity, so the next batch encodes without growing it.
pub(crate) fn take_body(body: &mut Vec<u8>) -> bytes::Bytes {
    let capacity = body.capacity();
    bytes::Bytes::from(std::mem::replace(body, Vec::with_capacity(capacity)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_parse_and_print() {
        for protocol in [
            OtlpProtocol::Grpc,
            OtlpProtocol::HttpProtobuf,
            OtlpProtocol::HttpJson,
        ] {
            assert_eq!(
                protocol.as_str().parse::<OtlpProtocol>().ok(),
                Some(protocol)
            );
            let json = serde_json::to_string(&protocol).expect("serializable");
            assert_eq!(json, format!("\"{protocol}\""));
            let back: OtlpProtocol = serde_json::from_str(&json).expect("deserializable");
            assert_eq!(back, protocol);
        }
        assert!(matches!(
            "http".parse::<OtlpProtocol>(),
            Err(OtlpError::UnknownProtocol(_))
        ));
    }

    #[test]
    fn endpoints_follow_the_exporter_spec() {
        let http = OtlpProtocol::HttpJson;
        assert_eq!(http_traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(
            traces_endpoint(http, Some(""), Some("https://c")),
            "https://c/v1/traces"
        );
        assert_eq!(
            traces_endpoint(http, Some("http://c:1/custom"), None),
            "http://c:1/custom"
        );
        assert_eq!(
            traces_endpoint(OtlpProtocol::Grpc, None, None),
            "http://localhost:4317"
        );
        assert_eq!(
            traces_endpoint(OtlpProtocol::Grpc, Some("http://g:4317"), Some("http://x")),
            "http://g:4317"
        );
    }

    #[test]
    fn bad_headers_fail_the_build() {
        let builder = OtlpExporterBuilder::new(OtlpProtocol::HttpProtobuf).header("bad name", "x");
        assert!(matches!(
            builder.header_map(),
            Err(OtlpError::InvalidHeader { .. })
        ));
        let builder = OtlpExporterBuilder::new(OtlpProtocol::HttpProtobuf).header("x-ok", "a\nb");
        assert!(builder.header_map().is_err());
    }
}
