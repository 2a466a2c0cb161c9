//! The Jaeger collector exporter: a Thrift binary `Batch` POSTed to `/api/traces`.

use std::fmt;
use std::net::SocketAddr;

use base64::Engine as _;
use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue, Uri};
use trace_core::Span;

use super::thrift::{self, Binary, Protocol as _, Type};
use super::{JaegerError, ProcessTags, collector_endpoint, local_ip_towards};
use crate::export::{ExportFuture, ExportOutcome, ExportResult, SpanExporter};
use crate::resource::Resource;
use crate::transport::http::HttpTransport;

/// Where batches go when no endpoint is set: a local collector.
pub const DEFAULT_COLLECTOR_ENDPOINT: &str = "http://127.0.0.1:14268/api/traces";

/// The content type of a Thrift binary batch.
const CONTENT_TYPE: &str = "application/x-thrift";

/// POSTs spans to a Jaeger collector as one Thrift binary `jaeger.Batch` per batch.
///
/// Failures are classified by the shared HTTP transport: connection errors and 408, 429, 502, 503
/// and 504 are retryable (after the collector's `Retry-After`), other statuses are permanent.
/// Building needs no runtime and does no I/O.
///
/// ```
/// use trace_exporters::{Resource, SpanExporter};
/// use trace_exporters::jaeger::JaegerCollectorExporter;
///
/// let exporter = JaegerCollectorExporter::builder()
///     .endpoint("jaeger:14268")
///     .basic_auth("tracer", "s3cret")
///     .resource(Resource::new("checkout"))
///     .build()?;
/// assert_eq!(exporter.endpoint(), "http://jaeger:14268/api/traces");
/// assert_eq!(exporter.kind(), "jaeger_collector");
/// # Ok::<(), trace_exporters::jaeger::JaegerError>(())
/// ```
pub struct JaegerCollectorExporter {
    transport: HttpTransport,
    endpoint: String,
    process: ProcessTags,
    /// Whether the `ip` process tag has been looked for (once, at the first export).
    ip_looked_up: bool,
    /// The batch up to its span list's element count.
    head: Vec<u8>,
    body: Vec<u8>,
}

impl JaegerCollectorExporter {
    /// A builder with the defaults: [`DEFAULT_COLLECTOR_ENDPOINT`], no authentication,
    /// `Resource::default()`.
    pub fn builder() -> JaegerCollectorExporterBuilder {
        JaegerCollectorExporterBuilder::default()
    }

    /// The URL batches are POSTed to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn encode_head(&mut self) {
        self.head.clear();
        thrift::write_batch_head::<Binary>(
            &mut self.head,
            self.process.service_name(),
            self.process.tags(),
        );
    }

    /// Finds the local address that reaches the collector, for the process's `ip` tag.
    async fn look_up_ip(&mut self) {
        self.ip_looked_up = true;
        let uri: Uri = match self.endpoint.parse() {
            Ok(uri) => uri,
            Err(_) => return,
        };
        let Some(host) = uri.host() else { return };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let address = match host.parse() {
            Ok(ip) => Some(SocketAddr::new(ip, port)),
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .ok()
                .and_then(|mut addresses| addresses.next()),
        };
        if let Some(ip) = address.and_then(local_ip_towards) {
            self.process.set_ip(ip);
            self.encode_head();
        }
    }

    async fn send_batch(&mut self, batch: &[Span]) -> ExportResult {
        if batch.is_empty() {
            return Ok(ExportOutcome::delivered());
        }
        if !self.ip_looked_up && self.process.wants_ip() {
            self.look_up_ip().await;
        }
        self.body.clear();
        self.body.extend_from_slice(&self.head);
        Binary::list(&mut self.body, Type::Struct, batch.len());
        for span in batch {
            thrift::write_span::<Binary>(&mut self.body, span);
        }
        Binary::stop(&mut self.body);
        self.transport
            .post(CONTENT_TYPE, None, Bytes::copy_from_slice(&self.body))
            .await?;
        Ok(ExportOutcome::delivered())
    }
}

impl SpanExporter for JaegerCollectorExporter {
    fn kind(&self) -> &'static str {
        "jaeger_collector"
    }

    fn export<'a>(&'a mut self, batch: &'a [Span]) -> ExportFuture<'a> {
        Box::pin(self.send_batch(batch))
    }
}

impl fmt::Debug for JaegerCollectorExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JaegerCollectorExporter")
            .field("endpoint", &self.endpoint)
            .field("service_name", &self.process.service_name())
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
enum Auth {
    Basic { user: String, password: String },
    Bearer(String),
}

/// Settings for a [`JaegerCollectorExporter`].
#[derive(Clone)]
pub struct JaegerCollectorExporterBuilder {
    endpoint: String,
    auth: Option<Auth>,
    resource: Option<Resource>,
}

impl Default for JaegerCollectorExporterBuilder {
    fn default() -> Self {
        Self {
            endpoint: DEFAULT_COLLECTOR_ENDPOINT.to_owned(),
            auth: None,
            resource: None,
        }
    }
}

impl fmt::Debug for JaegerCollectorExporterBuilder {
    /// Shows which authentication is set, never the credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.auth {
            None => "none",
            Some(Auth::Basic { .. }) => "basic",
            Some(Auth::Bearer(_)) => "bearer",
        };
        f.debug_struct("JaegerCollectorExporterBuilder")
            .field("endpoint", &self.endpoint)
            .field("auth", &auth)
            .field("resource", &self.resource)
            .finish()
    }
}

impl JaegerCollectorExporterBuilder {
    /// A full URL (`http://jaeger:14268/api/traces`, as `JAEGER_ENDPOINT` holds) or `host:port`
    /// (meaning `http://host:port/api/traces`); see [`collector_endpoint`].
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into();
        self
    }

    /// HTTP basic authentication (`JAEGER_USER`, `JAEGER_PASSWORD`); replaces a bearer token.
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Some(Auth::Basic {
            user: user.into(),
            password: password.into(),
        });
        self
    }

    /// A bearer token (`JAEGER_AUTH_TOKEN`); replaces basic authentication.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.auth = Some(Auth::Bearer(token.into()));
        self
    }

    /// The service and process the spans come from.
    pub fn resource(mut self, resource: Resource) -> Self {
        self.resource = Some(resource);
        self
    }

    /// The exporter. Needs no runtime and does no I/O.
    pub fn build(self) -> Result<JaegerCollectorExporter, JaegerError> {
        let endpoint = collector_endpoint(&self.endpoint)?;
        let mut headers = HeaderMap::new();
        if let Some(auth) = &self.auth {
            let (value, what) = match auth {
                Auth::Basic { user, password } => {
                    let credentials = base64::engine::general_purpose::STANDARD
                        .encode(format!("{user}:{password}"));
                    (format!("Basic {credentials}"), "basic auth user")
                }
                Auth::Bearer(token) => (format!("Bearer {token}"), "bearer token"),
            };
            let mut value =
                HeaderValue::from_str(&value).map_err(|_| JaegerError::BadCredential(what))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let transport =
            HttpTransport::new(&endpoint, headers).map_err(|error| JaegerError::Transport {
                endpoint: endpoint.clone(),
                reason: error.to_string(),
            })?;
        let resource = self.resource.unwrap_or_default();
        let mut exporter = JaegerCollectorExporter {
            transport,
            endpoint,
            process: ProcessTags::new(&resource),
            ip_looked_up: false,
            head: Vec::new(),
            body: Vec::new(),
        };
        exporter.encode_head();
        Ok(exporter)
    }
}
