//! The settings as command-line flags (feature `clap`).

use std::borrow::Cow;

use super::{ConfigError, ExporterConfig};

/// Every exporter setting as a long flag that falls back to its environment variable; flatten it
/// into a service's own arguments. The values are checked by
/// [`into_config`](Self::into_config), with the same rules (and error messages, naming the flag
/// and its variable) as [`ExporterConfig::from_env`].
///
/// ```
/// use clap::Parser;
/// use trace_exporters::config::{ExporterArgs, ExporterKind};
///
/// #[derive(Parser)]
/// struct Cli {
///     #[arg(long, default_value_t = 8080)]
///     port: u16,
///     #[command(flatten)]
///     tracing: ExporterArgs,
/// }
///
/// let cli = Cli::try_parse_from([
///     "server",
///     "--traces-exporter",
///     "zipkin",
///     "--service-name",
///     "checkout",
///     "--traces-sampler=traceidratio",
///     "--traces-sampler-arg=0.1",
/// ])?;
/// let config = cli.tracing.into_config()?;
/// assert_eq!(config.exporter, ExporterKind::Zipkin);
/// assert_eq!(config.sampler.arg, Some(0.1));
/// assert_eq!(config.resource().service_name(), "checkout");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Tracing")]
pub struct ExporterArgs {
    /// Where spans go: none, stdout, jaeger (agent, UDP), jaeger-http (collector), otlp,
    /// otlp-grpc, zipkin [default: otlp]
    #[arg(long, env = "TRACES_EXPORTER", value_name = "EXPORTER")]
    pub traces_exporter: Option<String>,
    /// OpenTelemetry's name for the same choice (console = stdout); --traces-exporter wins
    #[arg(long, env = "OTEL_TRACES_EXPORTER", value_name = "EXPORTER")]
    pub otel_traces_exporter: Option<String>,
    /// The service name [default: unknown_service]
    #[arg(long, env = "OTEL_SERVICE_NAME", value_name = "NAME")]
    pub service_name: Option<String>,
    /// More resource attributes: key=value,key=value (percent-decoded)
    #[arg(long, env = "OTEL_RESOURCE_ATTRIBUTES", value_name = "PAIRS")]
    pub resource_attributes: Option<String>,
    /// The sampler: always_on, always_off, traceidratio, parentbased_always_on,
    /// parentbased_always_off, parentbased_traceidratio, ratelimiting [default:
    /// parentbased_always_on]
    #[arg(long, env = "TRACES_SAMPLER", value_name = "SAMPLER")]
    pub traces_sampler: Option<String>,
    /// The sampler's argument: a ratio in [0, 1], or new traces a second for ratelimiting
    #[arg(long, env = "TRACES_SAMPLER_ARG", value_name = "NUMBER")]
    pub traces_sampler_arg: Option<String>,
    /// The OpenTelemetry sampler (no ratelimiting); --traces-sampler wins
    #[arg(long, env = "OTEL_TRACES_SAMPLER", value_name = "SAMPLER")]
    pub otel_traces_sampler: Option<String>,
    /// The OpenTelemetry sampler's ratio; ignored when --traces-sampler is given
    #[arg(long, env = "OTEL_TRACES_SAMPLER_ARG", value_name = "RATIO")]
    pub otel_traces_sampler_arg: Option<String>,
    /// Header formats, preferred first: tracecontext, baggage, b3, b3multi (with b3: both
    /// written), jaeger, none
    #[arg(long, env = "OTEL_PROPAGATORS", value_name = "LIST")]
    pub propagators: Option<String>,
    /// The longest a span waits before its batch is sent, in ms [default: 5000]
    #[arg(long, env = "OTEL_BSP_SCHEDULE_DELAY", value_name = "MS")]
    pub bsp_schedule_delay: Option<String>,
    /// How long one export may take, in ms [default: 30000]
    #[arg(long, env = "OTEL_BSP_EXPORT_TIMEOUT", value_name = "MS")]
    pub bsp_export_timeout: Option<String>,
    /// Spans held waiting for export [default: 2048]
    #[arg(long, env = "OTEL_BSP_MAX_QUEUE_SIZE", value_name = "SPANS")]
    pub bsp_max_queue_size: Option<String>,
    /// Spans sent in one batch, at most the queue size [default: 512]
    #[arg(long, env = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", value_name = "SPANS")]
    pub bsp_max_export_batch_size: Option<String>,
    /// The OTLP base URL; /v1/traces is appended for OTLP/HTTP
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// The full OTLP traces URL, used as is; wins over --otlp-endpoint
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", value_name = "URL")]
    pub otlp_traces_endpoint: Option<String>,
    /// The OTLP transport: grpc, http/protobuf, http/json [default: http/protobuf]
    #[arg(long, env = "OTEL_EXPORTER_OTLP_PROTOCOL", value_name = "PROTOCOL")]
    pub otlp_protocol: Option<String>,
    /// Headers for every OTLP export: name=value,name=value (percent-decoded)
    #[arg(long, env = "OTEL_EXPORTER_OTLP_HEADERS", value_name = "PAIRS")]
    pub otlp_headers: Option<String>,
    /// How long one OTLP request may take, in ms [default: 10000]
    #[arg(long, env = "OTEL_EXPORTER_OTLP_TIMEOUT", value_name = "MS")]
    pub otlp_timeout: Option<String>,
    /// OTLP compression: gzip or none [default: none]
    #[arg(
        long,
        env = "OTEL_EXPORTER_OTLP_COMPRESSION",
        value_name = "COMPRESSION"
    )]
    pub otlp_compression: Option<String>,
    /// A PEM file of CA certificates to trust for https OTLP endpoints
    #[arg(long, env = "OTEL_EXPORTER_OTLP_CERTIFICATE", value_name = "FILE")]
    pub otlp_certificate: Option<String>,
    /// An OTLP endpoint without a scheme means http:// rather than https://
    #[arg(
        long,
        env = "OTEL_EXPORTER_OTLP_INSECURE",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub otlp_insecure: Option<String>,
    /// The Jaeger agent's host [default: localhost]
    #[arg(long, env = "TRACES_EXPORTER_JAEGER_AGENT_HOST", value_name = "HOST")]
    pub jaeger_agent_host: Option<String>,
    /// The Jaeger agent's UDP port [default: 6831]
    #[arg(long, env = "TRACES_EXPORTER_JAEGER_AGENT_PORT", value_name = "PORT")]
    pub jaeger_agent_port: Option<String>,
    /// The largest datagram sent to the Jaeger agent, 512 to 65507 [default: 65000]
    #[arg(
        long,
        env = "TRACES_EXPORTER_JAEGER_MAX_PACKET_SIZE",
        value_name = "BYTES"
    )]
    pub jaeger_max_packet_size: Option<String>,
    /// The service name Jaeger shows, when it should differ from --service-name
    #[arg(long, env = "TRACES_EXPORTER_JAEGER_SERVICE_NAME", value_name = "NAME")]
    pub jaeger_service_name: Option<String>,
    /// Jaeger process tags: key=value,key=value
    #[arg(long, env = "TRACES_EXPORTER_JAEGER_TAGS", value_name = "PAIRS")]
    pub jaeger_tags: Option<String>,
    /// The Jaeger collector: a URL, or host:port for http://host:port/api/traces
    #[arg(long, env = "JAEGER_ENDPOINT", value_name = "URL")]
    pub jaeger_endpoint: Option<String>,
    /// The Zipkin v2 spans URL [default: http://localhost:9411/api/v2/spans]
    #[arg(long, env = "OTEL_EXPORTER_ZIPKIN_ENDPOINT", value_name = "URL")]
    pub zipkin_endpoint: Option<String>,
}

impl ExporterArgs {
    /// The defaults with the given flags (or their variables) applied, checked.
    pub fn into_config(self) -> Result<ExporterConfig, ConfigError> {
        self.apply_to(ExporterConfig::default())
    }

    /// `config` (loaded from a file, say) with the given flags (or their variables) applied,
    /// checked.
    pub fn apply_to(self, mut config: ExporterConfig) -> Result<ExporterConfig, ConfigError> {
        let given = self.by_variable();
        config
            .apply_env(|name| {
                given
                    .iter()
                    .find(|(variable, _)| *variable == name)
                    .and_then(|(_, value)| value.clone())
            })
            .map_err(name_the_flag)?;
        Ok(config)
    }

    /// Each flag's value under its variable's name.
    fn by_variable(self) -> [(&'static str, Option<String>); 28] {
        [
            ("TRACES_EXPORTER", self.traces_exporter),
            ("OTEL_TRACES_EXPORTER", self.otel_traces_exporter),
            ("OTEL_SERVICE_NAME", self.service_name),
            ("OTEL_RESOURCE_ATTRIBUTES", self.resource_attributes),
            ("TRACES_SAMPLER", self.traces_sampler),
            ("TRACES_SAMPLER_ARG", self.traces_sampler_arg),
            ("OTEL_TRACES_SAMPLER", self.otel_traces_sampler),
            ("OTEL_TRACES_SAMPLER_ARG", self.otel_traces_sampler_arg),
            ("OTEL_PROPAGATORS", self.propagators),
            ("OTEL_BSP_SCHEDULE_DELAY", self.bsp_schedule_delay),
            ("OTEL_BSP_EXPORT_TIMEOUT", self.bsp_export_timeout),
            ("OTEL_BSP_MAX_QUEUE_SIZE", self.bsp_max_queue_size),
            (
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                self.bsp_max_export_batch_size,
            ),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", self.otlp_endpoint),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                self.otlp_traces_endpoint,
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", self.otlp_protocol),
            ("OTEL_EXPORTER_OTLP_HEADERS", self.otlp_headers),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", self.otlp_timeout),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", self.otlp_compression),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", self.otlp_certificate),
            ("OTEL_EXPORTER_OTLP_INSECURE", self.otlp_insecure),
            ("TRACES_EXPORTER_JAEGER_AGENT_HOST", self.jaeger_agent_host),
            ("TRACES_EXPORTER_JAEGER_AGENT_PORT", self.jaeger_agent_port),
            (
                "TRACES_EXPORTER_JAEGER_MAX_PACKET_SIZE",
                self.jaeger_max_packet_size,
            ),
            (
                "TRACES_EXPORTER_JAEGER_SERVICE_NAME",
                self.jaeger_service_name,
            ),
            ("TRACES_EXPORTER_JAEGER_TAGS", self.jaeger_tags),
            ("JAEGER_ENDPOINT", self.jaeger_endpoint),
            ("OTEL_EXPORTER_ZIPKIN_ENDPOINT", self.zipkin_endpoint),
        ]
    }
}

/// Names the flag beside the variable, since the value may have come from either.
fn name_the_flag(error: ConfigError) -> ConfigError {
    match error {
        ConfigError::InvalidValue {
            setting,
            value,
            problem,
        } => {
            let flag = ExporterConfig::reference()
                .iter()
                .find(|known| known.variable == setting)
                .map(|known| known.flag);
            let setting = match flag {
                Some(flag) => Cow::Owned(format!("{flag}/{setting}")),
                None => setting,
            };
            ConfigError::InvalidValue {
                setting,
                value,
                problem,
            }
        }
        other => other,
    }
}
