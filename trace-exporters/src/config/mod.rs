//! Exporter settings from environment variables, command-line flags or a service's own
//! configuration file.
//!
//! [`ExporterConfig`] says which exporter to use and how (endpoints, headers, timeouts), how to
//! sample, which header formats to read and write, how to batch, and what to report about the
//! service. It can be
//!
//! - read from the environment: [`ExporterConfig::from_env`] (the OpenTelemetry `OTEL_*`
//!   variables plus the `TRACES_*` and `JAEGER_ENDPOINT` ones, listed in
//!   [`ExporterConfig::reference`]);
//! - kept in a service's own configuration file, since it is `serde` serialisable, and then
//!   overridden by the environment with [`ExporterConfig::apply_env_vars`];
//! - taken from the command line with `ExporterArgs` (feature `clap`), whose flags fall back to
//!   the same variables.
//!
//! Every value is checked when it is read, and a bad one is reported with the variable (or flag,
//! or file field) and the value: `OTEL_EXPORTER_OTLP_TIMEOUT="abc" is not a number of
//! milliseconds`.
//!
//! # Precedence
//!
//! - Environment variables override what a file (or the code) set; flags override nothing but
//!   their own variable, which they replace.
//! - `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is) wins over `OTEL_EXPORTER_OTLP_ENDPOINT`
//!   (a base URL to which `/v1/traces` is appended for OTLP/HTTP).
//! - `TRACES_SAMPLER` and `TRACES_SAMPLER_ARG`, the more specific, win over
//!   `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`; when `TRACES_SAMPLER` is set,
//!   `OTEL_TRACES_SAMPLER_ARG` is ignored (it belongs to the other sampler).
//! - `TRACES_EXPORTER` wins over `OTEL_TRACES_EXPORTER`.
//! - `OTEL_SERVICE_NAME` wins over `service.name` in `OTEL_RESOURCE_ATTRIBUTES`; the service name
//!   falls back to `TRACES_EXPORTER_JAEGER_SERVICE_NAME`, then to `unknown_service`.
//! - An empty variable counts as unset.
//!
//! # In a service's own configuration file
//!
//! A service that keeps its settings in a JSON file (as IPFS Cluster keeps
//! `observations.tracing` in its `service.json`) embeds [`ExporterConfig`] in its own structure;
//! missing fields take their defaults, and the environment still has the last word:
//!
//! ```
//! use serde::Deserialize;
//! use trace_exporters::config::{ExporterConfig, ExporterKind, SamplerName};
//!
//! #[derive(Deserialize)]
//! struct ServiceJson {
//!     observations: Observations,
//! }
//!
//! #[derive(Deserialize)]
//! struct Observations {
//!     tracing: ExporterConfig,
//! }
//!
//! let service_json = r#"{
//!   "observations": {
//!     "tracing": {
//!       "exporter": "jaeger",
//!       "service_name": "cluster-peer",
//!       "sampler": { "name": "parentbased_traceidratio", "arg": 0.3 },
//!       "jaeger": { "agent_host": "jaeger.internal", "agent_port": 6831 }
//!     }
//!   }
//! }"#;
//! let mut tracing = serde_json::from_str::<ServiceJson>(service_json)?.observations.tracing;
//! assert_eq!(tracing.exporter, ExporterKind::Jaeger);
//! assert_eq!(tracing.jaeger_agent_endpoint(), "jaeger.internal:6831");
//!
//! // In production: tracing.apply_env_vars()?; here, a fixed environment.
//! tracing.apply_env(|name| (name == "TRACES_SAMPLER_ARG").then(|| "0.05".to_owned()))?;
//! assert_eq!(tracing.sampler.name, SamplerName::ParentBasedTraceIdRatio);
//! assert_eq!(tracing.sampler.arg, Some(0.05));
//! assert_eq!(tracing.resource().service_name(), "cluster-peer");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod env;
mod error;
mod reference;
pub(crate) mod values;

#[cfg(feature = "clap")]
mod args;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use serde::{Deserialize, Serialize};
use trace_core::propagation::{CompositePropagator, UnknownPropagator};
use trace_core::sampler::{AlwaysOff, AlwaysOn, ParentBased, RateLimited, Sampler, TraceIdRatio};

use crate::resource::Resource;

#[cfg(feature = "clap")]
pub use args::ExporterArgs;
pub use error::ConfigError;
pub use reference::Setting;
pub use values::normalize_jaeger_endpoint;

/// Where OTLP/HTTP collectors listen when nothing else is configured (`/v1/traces` is appended).
pub const DEFAULT_OTLP_HTTP_ENDPOINT: &str = "http://localhost:4318";
/// Where OTLP/gRPC collectors listen when nothing else is configured.
pub const DEFAULT_OTLP_GRPC_ENDPOINT: &str = "http://localhost:4317";
/// The Jaeger collector's Thrift-over-HTTP URL when nothing else is configured.
pub const DEFAULT_JAEGER_COLLECTOR_ENDPOINT: &str = "http://localhost:14268/api/traces";
/// The Jaeger agent's host when nothing else is configured.
pub const DEFAULT_JAEGER_AGENT_HOST: &str = "localhost";
/// The Jaeger agent's compact-Thrift UDP port.
pub const DEFAULT_JAEGER_AGENT_PORT: u16 = 6831;
/// The largest Jaeger agent datagram by default (the agent's own default buffer size).
pub const DEFAULT_JAEGER_MAX_PACKET_SIZE: usize = 65_000;
/// The Zipkin v2 endpoint when nothing else is configured.
pub const DEFAULT_ZIPKIN_ENDPOINT: &str = "http://localhost:9411/api/v2/spans";
/// New traces a second for the `ratelimiting` sampler when no argument is given.
pub const DEFAULT_RATE_LIMIT: f64 = 10.0;

/// Every exporter setting. See the [module docs](self) for where the values come from.
///
/// ```
/// use std::time::Duration;
/// use trace_exporters::config::{ExporterConfig, ExporterKind, OtlpProtocol, SamplerConfig};
///
/// let config = ExporterConfig::default()
///     .with_exporter(ExporterKind::Otlp)
///     .with_service_name("checkout")
///     .with_otlp_endpoint("http://collector:4318")
///     .with_sampler(SamplerConfig::parent_based_ratio(0.25));
/// config.validate()?;
/// assert_eq!(config.otlp_protocol(), OtlpProtocol::HttpProtobuf);
/// assert_eq!(config.otlp_traces_endpoint(), "http://collector:4318/v1/traces");
/// assert_eq!(config.batch.scheduled_delay, Duration::from_secs(5));
/// # Ok::<(), trace_exporters::config::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExporterConfig {
    /// Which exporter ships the spans (`TRACES_EXPORTER`). Default: `otlp`, as in OpenTelemetry.
    pub exporter: ExporterKind,
    /// The service name (`OTEL_SERVICE_NAME`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// The service version, reported as `service.version`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_version: Option<String>,
    /// More resource attributes (`OTEL_RESOURCE_ATTRIBUTES`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub resource_attributes: BTreeMap<String, String>,
    /// How traces are sampled (`TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER`).
    pub sampler: SamplerConfig,
    /// Header formats read and written (`OTEL_PROPAGATORS`); `None` for
    /// [`CompositePropagator::default`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub propagators: Option<Propagators>,
    /// Batching (`OTEL_BSP_*`).
    pub batch: BatchSettings,
    /// OTLP exporters (`OTEL_EXPORTER_OTLP_*`).
    pub otlp: OtlpSettings,
    /// Jaeger exporters (`TRACES_EXPORTER_JAEGER_*`, `JAEGER_ENDPOINT`).
    pub jaeger: JaegerSettings,
    /// The Zipkin exporter (`OTEL_EXPORTER_ZIPKIN_ENDPOINT`).
    pub zipkin: ZipkinSettings,
}

impl Default for ExporterConfig {
    fn default() -> Self {
        Self {
            exporter: ExporterKind::Otlp,
            service_name: None,
            service_version: None,
            resource_attributes: BTreeMap::new(),
            sampler: SamplerConfig::default(),
            propagators: None,
            batch: BatchSettings::default(),
            otlp: OtlpSettings::default(),
            jaeger: JaegerSettings::default(),
            zipkin: ZipkinSettings::default(),
        }
    }
}

impl ExporterConfig {
    /// With this exporter.
    #[must_use]
    pub fn with_exporter(mut self, exporter: ExporterKind) -> Self {
        self.exporter = exporter;
        self
    }

    /// With this service name.
    #[must_use]
    pub fn with_service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// With this service version (`service.version`).
    #[must_use]
    pub fn with_service_version(mut self, version: impl Into<String>) -> Self {
        self.service_version = Some(version.into());
        self
    }

    /// With one more resource attribute.
    #[must_use]
    pub fn with_resource_attribute(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.resource_attributes.insert(key.into(), value.into());
        self
    }

    /// With this sampler.
    #[must_use]
    pub fn with_sampler(mut self, sampler: SamplerConfig) -> Self {
        self.sampler = sampler;
        self
    }

    /// With these header formats.
    #[must_use]
    pub fn with_propagators(mut self, propagators: Propagators) -> Self {
        self.propagators = Some(propagators);
        self
    }

    /// With these batch settings.
    #[must_use]
    pub fn with_batch(mut self, batch: BatchSettings) -> Self {
        self.batch = batch;
        self
    }

    /// With this OTLP base URL (`/v1/traces` is appended for OTLP/HTTP).
    #[must_use]
    pub fn with_otlp_endpoint(mut self, url: impl Into<String>) -> Self {
        self.otlp.endpoint = Some(url.into());
        self
    }

    /// With this Jaeger agent.
    #[must_use]
    pub fn with_jaeger_agent(mut self, host: impl Into<String>, port: u16) -> Self {
        self.jaeger.agent_host = host.into();
        self.jaeger.agent_port = port;
        self
    }

    /// With this Jaeger collector URL.
    #[must_use]
    pub fn with_jaeger_collector_endpoint(mut self, url: impl Into<String>) -> Self {
        self.jaeger.collector_endpoint = url.into();
        self
    }

    /// With this Zipkin URL.
    #[must_use]
    pub fn with_zipkin_endpoint(mut self, url: impl Into<String>) -> Self {
        self.zipkin.endpoint = url.into();
        self
    }

    /// The transport OTLP uses: gRPC for the `otlp-grpc` exporter, otherwise
    /// [`OtlpSettings::protocol`].
    pub fn otlp_protocol(&self) -> OtlpProtocol {
        match self.exporter {
            ExporterKind::OtlpGrpc => OtlpProtocol::Grpc,
            _ => self.otlp.protocol,
        }
    }

    /// The URL OTLP spans go to: the traces endpoint as is when set; otherwise the base endpoint
    /// (or the default for the protocol), with `/v1/traces` appended for OTLP/HTTP. An endpoint
    /// without a scheme gets `https://`, or `http://` when [`OtlpSettings::insecure`] is set.
    pub fn otlp_traces_endpoint(&self) -> String {
        let insecure = self.otlp.insecure;
        let with_scheme =
            |url: &Option<String>| url.as_deref().map(|url| values::with_scheme(url, insecure));
        traces_endpoint(
            self.otlp_protocol(),
            with_scheme(&self.otlp.traces_endpoint).as_deref(),
            with_scheme(&self.otlp.endpoint).as_deref(),
        )
    }

    /// The OTLP headers as an HTTP header map.
    pub fn otlp_headers(&self) -> Result<HeaderMap, ConfigError> {
        values::header_map(&self.otlp.headers, "otlp.headers")
    }

    /// The Jaeger agent's `host:port` (an IPv6 host in brackets).
    pub fn jaeger_agent_endpoint(&self) -> String {
        values::host_port(&self.jaeger.agent_host, self.jaeger.agent_port)
    }

    /// The Jaeger collector's full URL ([`normalize_jaeger_endpoint`] applied; an endpoint that
    /// cannot be normalised is returned as is, for the exporter to reject).
    pub fn jaeger_collector_endpoint(&self) -> String {
        values::normalize_jaeger(&self.jaeger.collector_endpoint)
            .unwrap_or_else(|_| self.jaeger.collector_endpoint.clone())
    }

    /// The service name: [`service_name`](Self::service_name), else `service.name` among the
    /// resource attributes, else the Jaeger service name, else `unknown_service`.
    pub fn effective_service_name(&self) -> &str {
        self.service_name
            .as_deref()
            .or_else(|| {
                self.resource_attributes
                    .get("service.name")
                    .map(String::as_str)
            })
            .or(self.jaeger.service_name.as_deref())
            .unwrap_or("unknown_service")
    }

    /// The resource every exporter reports: the service name, the resource attributes and
    /// `service.version` when given.
    pub fn resource(&self) -> Resource {
        let mut resource = Resource::new(self.effective_service_name().to_owned());
        for (key, value) in &self.resource_attributes {
            if key != "service.name" {
                resource.set_attribute(key.clone(), value.clone());
            }
        }
        if let Some(version) = &self.service_version {
            resource.set_attribute("service.version", version.clone());
        }
        resource
    }

    /// The resource for the Jaeger exporters: [`resource`](Self::resource) with the Jaeger
    /// service name (when set) and the Jaeger process tags.
    pub fn jaeger_resource(&self) -> Resource {
        let mut resource = self.resource();
        if let Some(name) = &self.jaeger.service_name {
            resource.set_attribute("service.name", name.clone());
        }
        for (key, value) in &self.jaeger.tags {
            resource.set_attribute(key.clone(), value.clone());
        }
        resource
    }

    /// The sampler described by [`sampler`](Self::sampler).
    pub fn sampler(&self) -> Arc<dyn Sampler> {
        self.sampler.build()
    }

    /// The header formats described by [`propagators`](Self::propagators).
    pub fn propagator(&self) -> CompositePropagator {
        self.propagators
            .as_ref()
            .map_or_else(CompositePropagator::default, Propagators::build)
    }

    /// Checks every value (as [`from_env`](Self::from_env) does for variables); call it after
    /// loading a configuration file. Errors name the field, such as `sampler.arg`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let check = |setting: &'static str, value: &str, result: Result<(), values::Problem>| {
            result.map_err(|problem| ConfigError::invalid(setting, value, problem))
        };
        for key in self.resource_attributes.keys() {
            check("resource_attributes", key, values::check_key(key))?;
        }
        self.sampler.validate("sampler.arg")?;
        self.batch.validate()?;
        let otlp = &self.otlp;
        for (setting, url) in [
            ("otlp.endpoint", &otlp.endpoint),
            ("otlp.traces_endpoint", &otlp.traces_endpoint),
        ] {
            if let Some(url) = url {
                let full = values::with_scheme(url, otlp.insecure);
                check(setting, url, values::check_url(&full))?;
            }
        }
        self.otlp_headers()?;
        check(
            "otlp.timeout_ms",
            &otlp.timeout.as_millis().to_string(),
            values::check_positive_duration(otlp.timeout),
        )?;
        if let Some(path) = &otlp.certificate
            && path.as_os_str().is_empty()
        {
            return Err(ConfigError::invalid(
                "otlp.certificate",
                "",
                "is not a file path",
            ));
        }
        let jaeger = &self.jaeger;
        check(
            "jaeger.agent_host",
            &jaeger.agent_host,
            values::check_host(&jaeger.agent_host),
        )?;
        check(
            "jaeger.agent_port",
            &jaeger.agent_port.to_string(),
            values::check_port(jaeger.agent_port),
        )?;
        check(
            "jaeger.max_packet_size",
            &jaeger.max_packet_size.to_string(),
            values::check_packet_size(jaeger.max_packet_size),
        )?;
        values::normalize_jaeger(&jaeger.collector_endpoint).map_err(|problem| {
            ConfigError::invalid(
                "jaeger.collector_endpoint",
                jaeger.collector_endpoint.clone(),
                problem,
            )
        })?;
        for key in jaeger.tags.keys() {
            check("jaeger.tags", key, values::check_key(key))?;
        }
        check(
            "zipkin.endpoint",
            &self.zipkin.endpoint,
            values::check_url(&self.zipkin.endpoint),
        )?;
        Ok(())
    }
}

/// Which exporter ships the spans; the names are `TRACES_EXPORTER`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExporterKind {
    /// Spans are not exported (`none`).
    #[serde(rename = "none")]
    None,
    /// One JSON object per span on standard output (`stdout`).
    #[serde(rename = "stdout")]
    Stdout,
    /// Jaeger agent, compact Thrift over UDP (`jaeger`).
    #[serde(rename = "jaeger")]
    Jaeger,
    /// Jaeger collector, binary Thrift over HTTP (`jaeger-http`).
    #[serde(rename = "jaeger-http")]
    JaegerHttp,
    /// OTLP, over the transport [`OtlpSettings::protocol`] names (`otlp`).
    #[serde(rename = "otlp")]
    Otlp,
    /// OTLP over gRPC, whatever the protocol setting says (`otlp-grpc`).
    #[serde(rename = "otlp-grpc")]
    OtlpGrpc,
    /// Zipkin v2 JSON over HTTP (`zipkin`).
    #[serde(rename = "zipkin")]
    Zipkin,
}

impl ExporterKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [Self; 7] = [
        Self::None,
        Self::Stdout,
        Self::Jaeger,
        Self::JaegerHttp,
        Self::Otlp,
        Self::OtlpGrpc,
        Self::Zipkin,
    ];

    /// The name `TRACES_EXPORTER` takes.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Stdout => "stdout",
            Self::Jaeger => "jaeger",
            Self::JaegerHttp => "jaeger-http",
            Self::Otlp => "otlp",
            Self::OtlpGrpc => "otlp-grpc",
            Self::Zipkin => "zipkin",
        }
    }

    /// The kind with this name (ASCII case ignored).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(name.trim()))
    }
}

impl fmt::Display for ExporterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The OTLP transport and encoding (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum OtlpProtocol {
    /// Protobuf over gRPC (`grpc`).
    #[serde(rename = "grpc")]
    Grpc,
    /// Protobuf over HTTP (`http/protobuf`), the OpenTelemetry default.
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// JSON over HTTP (`http/json`).
    #[serde(rename = "http/json")]
    HttpJson,
}

impl OtlpProtocol {
    /// The name `OTEL_EXPORTER_OTLP_PROTOCOL` takes.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
            Self::HttpJson => "http/json",
        }
    }

    /// The protocol with this name (ASCII case ignored).
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Grpc, Self::HttpProtobuf, Self::HttpJson]
            .into_iter()
            .find(|protocol| protocol.as_str().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether this protocol is one of the HTTP ones.
    pub const fn is_http(self) -> bool {
        !matches!(self, Self::Grpc)
    }
}

impl fmt::Display for OtlpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The traces URL for an OTLP/HTTP base endpoint: `/v1/traces` appended with exactly one slash
/// between (`http://c:4318` and `http://c:4318/` both give `http://c:4318/v1/traces`).
///
/// ```
/// use trace_exporters::config::http_traces_url;
///
/// assert_eq!(http_traces_url("http://c:4318"), "http://c:4318/v1/traces");
/// assert_eq!(http_traces_url("http://c/otlp/"), "http://c/otlp/v1/traces");
/// ```
pub fn http_traces_url(base: &str) -> String {
    format!("{}/v1/traces", base.trim().trim_end_matches('/'))
}

/// The URL an OTLP exporter of `protocol` sends traces to, as the OTLP exporter specification
/// chooses it: a traces endpoint (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is used as is; a base
/// endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`) gets `/v1/traces` appended for HTTP and is used as is
/// for gRPC; with neither, the protocol's default. Empty values count as unset.
///
/// ```
/// use trace_exporters::config::{OtlpProtocol, traces_endpoint};
///
/// let http = OtlpProtocol::HttpProtobuf;
/// assert_eq!(traces_endpoint(http, None, None), "http://localhost:4318/v1/traces");
/// assert_eq!(traces_endpoint(http, None, Some("http://c:4318")), "http://c:4318/v1/traces");
/// assert_eq!(traces_endpoint(http, Some("http://c/t"), Some("http://x")), "http://c/t");
/// assert_eq!(traces_endpoint(OtlpProtocol::Grpc, None, Some("http://c:4317")), "http://c:4317");
/// ```
pub fn traces_endpoint(
    protocol: OtlpProtocol,
    traces_endpoint: Option<&str>,
    base_endpoint: Option<&str>,
) -> String {
    fn set(value: Option<&str>) -> Option<&str> {
        value.map(str::trim).filter(|value| !value.is_empty())
    }
    if let Some(endpoint) = set(traces_endpoint) {
        return endpoint.to_owned();
    }
    match (protocol.is_http(), set(base_endpoint)) {
        (true, Some(base)) => http_traces_url(base),
        (true, None) => http_traces_url(DEFAULT_OTLP_HTTP_ENDPOINT),
        (false, Some(base)) => base.to_owned(),
        (false, None) => DEFAULT_OTLP_GRPC_ENDPOINT.to_owned(),
    }
}

/// Compression of OTLP request bodies (`OTEL_EXPORTER_OTLP_COMPRESSION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Uncompressed (`none`).
    #[default]
    None,
    /// gzip (`gzip`).
    Gzip,
}

impl Compression {
    /// The name `OTEL_EXPORTER_OTLP_COMPRESSION` takes.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
        }
    }

    /// The compression with this name (ASCII case ignored).
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::None, Self::Gzip]
            .into_iter()
            .find(|compression| compression.as_str().eq_ignore_ascii_case(name.trim()))
    }
}

/// A sampler's name, as `OTEL_TRACES_SAMPLER` and `TRACES_SAMPLER` spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum SamplerName {
    /// Every trace (`always_on`).
    #[serde(rename = "always_on")]
    AlwaysOn,
    /// No trace (`always_off`).
    #[serde(rename = "always_off")]
    AlwaysOff,
    /// A fraction of traces chosen by trace id; the argument is the ratio (`traceidratio`).
    #[serde(rename = "traceidratio")]
    TraceIdRatio,
    /// The parent's decision; every new trace (`parentbased_always_on`, the default).
    #[default]
    #[serde(rename = "parentbased_always_on")]
    ParentBasedAlwaysOn,
    /// The parent's decision; no new trace (`parentbased_always_off`).
    #[serde(rename = "parentbased_always_off")]
    ParentBasedAlwaysOff,
    /// The parent's decision; a fraction of new traces (`parentbased_traceidratio`).
    #[serde(rename = "parentbased_traceidratio")]
    ParentBasedTraceIdRatio,
    /// The parent's decision; at most the argument's number of new traces a second
    /// (`ratelimiting`, `TRACES_SAMPLER` only). Parent-based because a rate limit on spans that
    /// continue a trace would cut traces in pieces; Jaeger's rate-limiting sampler also decides
    /// only for the traces a service starts.
    #[serde(rename = "ratelimiting")]
    RateLimiting,
}

impl SamplerName {
    /// Every name, in the order the docs list them.
    pub const ALL: [Self; 7] = [
        Self::AlwaysOn,
        Self::AlwaysOff,
        Self::TraceIdRatio,
        Self::ParentBasedAlwaysOn,
        Self::ParentBasedAlwaysOff,
        Self::ParentBasedTraceIdRatio,
        Self::RateLimiting,
    ];

    /// The name the variables take.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AlwaysOn => "always_on",
            Self::AlwaysOff => "always_off",
            Self::TraceIdRatio => "traceidratio",
            Self::ParentBasedAlwaysOn => "parentbased_always_on",
            Self::ParentBasedAlwaysOff => "parentbased_always_off",
            Self::ParentBasedTraceIdRatio => "parentbased_traceidratio",
            Self::RateLimiting => "ratelimiting",
        }
    }

    /// The sampler with this name (ASCII case ignored).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|sampler| sampler.as_str().eq_ignore_ascii_case(name.trim()))
    }

    /// What the argument means for this sampler, if it takes one.
    pub const fn argument(self) -> Option<SamplerArgument> {
        match self {
            Self::TraceIdRatio | Self::ParentBasedTraceIdRatio => Some(SamplerArgument::Ratio),
            Self::RateLimiting => Some(SamplerArgument::TracesPerSecond),
            _ => None,
        }
    }
}

/// What a sampler's argument means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SamplerArgument {
    /// A ratio in `[0, 1]`; default 1.
    Ratio,
    /// New traces a second, more than 0; default [`DEFAULT_RATE_LIMIT`].
    TracesPerSecond,
}

/// A sampler and its argument, as the variables describe one.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplerConfig {
    /// Which sampler.
    pub name: SamplerName,
    /// Its argument (see [`SamplerName::argument`]); `None` for the default. Ignored by samplers
    /// that take none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arg: Option<f64>,
}

impl SamplerConfig {
    /// A sampler without an argument, or with its default one.
    pub const fn new(name: SamplerName) -> Self {
        Self { name, arg: None }
    }

    /// `ratio` of all traces, ignoring the parent (`traceidratio`).
    pub const fn ratio(ratio: f64) -> Self {
        Self {
            name: SamplerName::TraceIdRatio,
            arg: Some(ratio),
        }
    }

    /// The parent's decision, else `ratio` of new traces (`parentbased_traceidratio`).
    pub const fn parent_based_ratio(ratio: f64) -> Self {
        Self {
            name: SamplerName::ParentBasedTraceIdRatio,
            arg: Some(ratio),
        }
    }

    /// The parent's decision, else at most `per_second` new traces a second (`ratelimiting`).
    pub const fn rate_limited(per_second: f64) -> Self {
        Self {
            name: SamplerName::RateLimiting,
            arg: Some(per_second),
        }
    }

    /// The sampler.
    pub fn build(&self) -> Arc<dyn Sampler> {
        let ratio = || TraceIdRatio::new(self.arg.unwrap_or(1.0));
        match self.name {
            SamplerName::AlwaysOn => Arc::new(AlwaysOn),
            SamplerName::AlwaysOff => Arc::new(AlwaysOff),
            SamplerName::TraceIdRatio => Arc::new(ratio()),
            SamplerName::ParentBasedAlwaysOn => Arc::new(ParentBased::new(AlwaysOn)),
            SamplerName::ParentBasedAlwaysOff => Arc::new(ParentBased::new(AlwaysOff)),
            SamplerName::ParentBasedTraceIdRatio => Arc::new(ParentBased::new(ratio())),
            SamplerName::RateLimiting => Arc::new(ParentBased::new(RateLimited::new(
                self.arg.unwrap_or(DEFAULT_RATE_LIMIT),
            ))),
        }
    }

    fn validate(&self, setting: &'static str) -> Result<(), ConfigError> {
        match (self.name.argument(), self.arg) {
            (Some(kind), Some(arg)) => values::check_sampler_arg(kind, arg)
                .map_err(|problem| ConfigError::invalid(setting, arg.to_string(), problem)),
            _ => Ok(()),
        }
    }
}

/// A checked `OTEL_PROPAGATORS` list, such as `tracecontext,baggage,b3`.
///
/// Only a list that trace-core's
/// [`CompositePropagator::from_otel_propagators`] accepts can be made (deserialising checks it
/// too), so [`build`](Self::build) cannot fail.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Propagators(String);

impl Propagators {
    /// The list, if every name in it is known.
    pub fn parse(list: &str) -> Result<Self, UnknownPropagator> {
        CompositePropagator::from_otel_propagators(list)?;
        Ok(Self(list.trim().to_owned()))
    }

    /// The list as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The propagator.
    pub fn build(&self) -> CompositePropagator {
        // `parse` checked the list; the fallback is unreachable.
        CompositePropagator::from_otel_propagators(&self.0).unwrap_or_default()
    }
}

impl TryFrom<String> for Propagators {
    type Error = UnknownPropagator;

    fn try_from(list: String) -> Result<Self, Self::Error> {
        Self::parse(&list)
    }
}

impl From<Propagators> for String {
    fn from(propagators: Propagators) -> Self {
        propagators.0
    }
}

/// How spans are batched (`OTEL_BSP_*`), as plain values; the batching pipeline takes them over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchSettings {
    /// The longest a finished span waits before its batch is sent (`OTEL_BSP_SCHEDULE_DELAY`).
    /// Default 5 s.
    #[serde(rename = "scheduled_delay_ms", with = "crate::duration_ms")]
    pub scheduled_delay: Duration,
    /// How long one export may take (`OTEL_BSP_EXPORT_TIMEOUT`). Default 30 s.
    #[serde(rename = "export_timeout_ms", with = "crate::duration_ms")]
    pub export_timeout: Duration,
    /// Spans held waiting for export; more are dropped (`OTEL_BSP_MAX_QUEUE_SIZE`). Default 2048,
    /// at most [`BatchConfig::MAX_QUEUE_SIZE`](crate::BatchConfig::MAX_QUEUE_SIZE).
    pub max_queue_size: usize,
    /// Spans sent in one batch, at most the queue size (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
    /// Default 512.
    pub max_export_batch_size: usize,
}

impl Default for BatchSettings {
    /// The OpenTelemetry defaults: 5 s, 30 s, 2048, 512.
    fn default() -> Self {
        Self {
            scheduled_delay: Duration::from_millis(5000),
            export_timeout: Duration::from_millis(30_000),
            max_queue_size: 2048,
            max_export_batch_size: 512,
        }
    }
}

impl BatchSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        let check_duration = |setting: &'static str, duration: Duration| {
            values::check_positive_duration(duration).map_err(|problem| {
                ConfigError::invalid(setting, duration.as_millis().to_string(), problem)
            })
        };
        check_duration("batch.scheduled_delay_ms", self.scheduled_delay)?;
        check_duration("batch.export_timeout_ms", self.export_timeout)?;
        for (setting, size) in [
            ("batch.max_queue_size", self.max_queue_size),
            ("batch.max_export_batch_size", self.max_export_batch_size),
        ] {
            values::check_size(size)
                .map_err(|problem| ConfigError::invalid(setting, size.to_string(), problem))?;
        }
        if self.max_export_batch_size > self.max_queue_size {
            return Err(ConfigError::invalid(
                "batch.max_export_batch_size",
                self.max_export_batch_size.to_string(),
                format!(
                    "is larger than the queue (max queue size {})",
                    self.max_queue_size
                ),
            ));
        }
        Ok(())
    }
}

/// The OTLP exporters' settings (`OTEL_EXPORTER_OTLP_*`). Their `Debug` output shows header
/// names but not their values, which usually carry credentials.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpSettings {
    /// The base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`); `None` for the protocol's default
    /// ([`DEFAULT_OTLP_HTTP_ENDPOINT`], [`DEFAULT_OTLP_GRPC_ENDPOINT`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The full traces URL, used as is and winning over `endpoint`
    /// (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traces_endpoint: Option<String>,
    /// Transport and encoding (`OTEL_EXPORTER_OTLP_PROTOCOL`). Default `http/protobuf`.
    pub protocol: OtlpProtocol,
    /// Headers sent with every export (`OTEL_EXPORTER_OTLP_HEADERS`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// How long one export request may take (`OTEL_EXPORTER_OTLP_TIMEOUT`). Default 10 s.
    #[serde(rename = "timeout_ms", with = "crate::duration_ms")]
    pub timeout: Duration,
    /// Request body compression (`OTEL_EXPORTER_OTLP_COMPRESSION`). Default none.
    pub compression: Compression,
    /// A PEM file of CA certificates to trust for `https` endpoints
    /// (`OTEL_EXPORTER_OTLP_CERTIFICATE`), instead of the web PKI roots: with it set, only a
    /// server whose chain ends at one of these certificates is trusted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<PathBuf>,
    /// Whether an endpoint given without a scheme means plaintext `http://` rather than
    /// `https://` (`OTEL_EXPORTER_OTLP_INSECURE`, as the OpenTelemetry specification defines it
    /// for gRPC; applied to both transports here). An endpoint with a scheme is used as written.
    pub insecure: bool,
}

impl Default for OtlpSettings {
    fn default() -> Self {
        Self {
            endpoint: None,
            traces_endpoint: None,
            protocol: OtlpProtocol::default(),
            headers: BTreeMap::new(),
            timeout: Duration::from_secs(10),
            compression: Compression::None,
            certificate: None,
            insecure: false,
        }
    }
}

impl fmt::Debug for OtlpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: BTreeMap<&str, &str> = self
            .headers
            .keys()
            .map(|name| (name.as_str(), values::REDACTED))
            .collect();
        f.debug_struct("OtlpSettings")
            .field("endpoint", &self.endpoint)
            .field("traces_endpoint", &self.traces_endpoint)
            .field("protocol", &self.protocol)
            .field("headers", &headers)
            .field("timeout", &self.timeout)
            .field("compression", &self.compression)
            .field("certificate", &self.certificate)
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// The Jaeger exporters' settings (`TRACES_EXPORTER_JAEGER_*`, `JAEGER_ENDPOINT`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JaegerSettings {
    /// The agent's host (`TRACES_EXPORTER_JAEGER_AGENT_HOST`). Default `localhost`.
    pub agent_host: String,
    /// The agent's UDP port (`TRACES_EXPORTER_JAEGER_AGENT_PORT`). Default 6831.
    pub agent_port: u16,
    /// The largest datagram sent to the agent (`TRACES_EXPORTER_JAEGER_MAX_PACKET_SIZE`),
    /// 512 to 65507. Default 65000.
    pub max_packet_size: usize,
    /// The collector's URL (`JAEGER_ENDPOINT`). Default
    /// [`DEFAULT_JAEGER_COLLECTOR_ENDPOINT`].
    pub collector_endpoint: String,
    /// The service name Jaeger shows, when it should differ from the service name
    /// (`TRACES_EXPORTER_JAEGER_SERVICE_NAME`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Process tags for Jaeger (`TRACES_EXPORTER_JAEGER_TAGS`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl Default for JaegerSettings {
    fn default() -> Self {
        Self {
            agent_host: DEFAULT_JAEGER_AGENT_HOST.to_owned(),
            agent_port: DEFAULT_JAEGER_AGENT_PORT,
            max_packet_size: DEFAULT_JAEGER_MAX_PACKET_SIZE,
            collector_endpoint: DEFAULT_JAEGER_COLLECTOR_ENDPOINT.to_owned(),
            service_name: None,
            tags: BTreeMap::new(),
        }
    }
}

/// The Zipkin exporter's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZipkinSettings {
    /// The v2 spans URL (`OTEL_EXPORTER_ZIPKIN_ENDPOINT`). Default
    /// [`DEFAULT_ZIPKIN_ENDPOINT`].
    pub endpoint: String,
}

impl Default for ZipkinSettings {
    fn default() -> Self {
        Self {
            endpoint: DEFAULT_ZIPKIN_ENDPOINT.to_owned(),
        }
    }
}
