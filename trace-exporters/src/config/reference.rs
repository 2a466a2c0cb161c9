//! The list of every variable, for `--help`-like output and the README.

use std::fmt::Write as _;

use super::ExporterConfig;

/// One configuration variable: its name, its command-line flag, its default and what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The environment variable.
    pub variable: &'static str,
    /// The `ExporterArgs` flag that sets it (feature `clap`).
    pub flag: &'static str,
    /// The value used when it is unset, as text (`(none)` when there is none).
    pub default: &'static str,
    /// What it does and the values it takes.
    pub meaning: &'static str,
}

const fn setting(
    variable: &'static str,
    flag: &'static str,
    default: &'static str,
    meaning: &'static str,
) -> Setting {
    Setting {
        variable,
        flag,
        default,
        meaning,
    }
}

static REFERENCE: &[Setting] = &[
    setting(
        "TRACES_EXPORTER",
        "--traces-exporter",
        "otlp",
        "Where spans go: `none`, `stdout`, `jaeger` (agent, UDP), `jaeger-http` (collector), \
         `otlp` (transport from OTEL_EXPORTER_OTLP_PROTOCOL), `otlp-grpc`, `zipkin`.",
    ),
    setting(
        "OTEL_TRACES_EXPORTER",
        "--otel-traces-exporter",
        "otlp",
        "The OpenTelemetry name for the same choice (`console` means `stdout`); \
         TRACES_EXPORTER wins.",
    ),
    setting(
        "OTEL_SERVICE_NAME",
        "--service-name",
        "unknown_service",
        "The service name. Wins over `service.name` in OTEL_RESOURCE_ATTRIBUTES, which wins over \
         TRACES_EXPORTER_JAEGER_SERVICE_NAME.",
    ),
    setting(
        "OTEL_RESOURCE_ATTRIBUTES",
        "--resource-attributes",
        "(none)",
        "More resource attributes, `key=value,key=value`, percent-decoded \
         (`service.version=1.2,deployment.environment=prod`).",
    ),
    setting(
        "TRACES_SAMPLER",
        "--traces-sampler",
        "parentbased_always_on",
        "The sampler: `always_on`, `always_off`, `traceidratio`, `parentbased_always_on`, \
         `parentbased_always_off`, `parentbased_traceidratio`, `ratelimiting` (parent-based). \
         Wins over OTEL_TRACES_SAMPLER.",
    ),
    setting(
        "TRACES_SAMPLER_ARG",
        "--traces-sampler-arg",
        "1 (ratio), 10 (ratelimiting)",
        "The sampler's argument: a ratio in [0, 1] for the `traceidratio` samplers, new traces \
         a second for `ratelimiting`. Wins over OTEL_TRACES_SAMPLER_ARG.",
    ),
    setting(
        "OTEL_TRACES_SAMPLER",
        "--otel-traces-sampler",
        "parentbased_always_on",
        "The OpenTelemetry sampler variable: the same names except `ratelimiting`.",
    ),
    setting(
        "OTEL_TRACES_SAMPLER_ARG",
        "--otel-traces-sampler-arg",
        "1",
        "The ratio for the `traceidratio` samplers; ignored when TRACES_SAMPLER is set.",
    ),
    setting(
        "OTEL_PROPAGATORS",
        "--propagators",
        "tracecontext,baggage,jaeger,b3",
        "Header formats read and written, preferred first: `tracecontext`, `baggage`, `b3` \
         (single header), `b3multi` (`x-b3-*`; listed with `b3`, both are written), `jaeger`, \
         `none`.",
    ),
    setting(
        "OTEL_BSP_SCHEDULE_DELAY",
        "--bsp-schedule-delay",
        "5000",
        "The longest a finished span waits before its batch is sent, in milliseconds.",
    ),
    setting(
        "OTEL_BSP_EXPORT_TIMEOUT",
        "--bsp-export-timeout",
        "30000",
        "How long one export may take, in milliseconds.",
    ),
    setting(
        "OTEL_BSP_MAX_QUEUE_SIZE",
        "--bsp-max-queue-size",
        "2048",
        "Spans held waiting for export (at most 1048576); more are dropped and counted.",
    ),
    setting(
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        "--bsp-max-export-batch-size",
        "512",
        "Spans sent in one batch; at most OTEL_BSP_MAX_QUEUE_SIZE.",
    ),
    setting(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "--otlp-endpoint",
        "http://localhost:4318 (http), http://localhost:4317 (grpc)",
        "The OTLP base URL; `/v1/traces` is appended for OTLP/HTTP.",
    ),
    setting(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "--otlp-traces-endpoint",
        "(none)",
        "The full OTLP traces URL, used as is; wins over OTEL_EXPORTER_OTLP_ENDPOINT.",
    ),
    setting(
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "--otlp-protocol",
        "http/protobuf",
        "The OTLP transport for TRACES_EXPORTER=otlp: `grpc`, `http/protobuf`, `http/json` \
         (`otlp-grpc` always uses gRPC).",
    ),
    setting(
        "OTEL_EXPORTER_OTLP_HEADERS",
        "--otlp-headers",
        "(none)",
        "Headers sent with every OTLP export, `name=value,name=value`, percent-decoded.",
    ),
    setting(
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "--otlp-timeout",
        "10000",
        "How long one OTLP request may take, in milliseconds.",
    ),
    setting(
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        "--otlp-compression",
        "none",
        "OTLP request compression: `gzip` or `none`.",
    ),
    setting(
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
        "--otlp-certificate",
        "(none)",
        "A PEM file of CA certificates trusted for `https` OTLP endpoints, instead of the web PKI \
         roots.",
    ),
    setting(
        "OTEL_EXPORTER_OTLP_INSECURE",
        "--otlp-insecure",
        "false",
        "`true` makes an OTLP endpoint given without a scheme plaintext `http://` instead of \
         `https://`.",
    ),
    setting(
        "TRACES_EXPORTER_JAEGER_AGENT_HOST",
        "--jaeger-agent-host",
        "localhost",
        "The Jaeger agent's host (exporter `jaeger`).",
    ),
    setting(
        "TRACES_EXPORTER_JAEGER_AGENT_PORT",
        "--jaeger-agent-port",
        "6831",
        "The Jaeger agent's UDP port (compact Thrift).",
    ),
    setting(
        "TRACES_EXPORTER_JAEGER_MAX_PACKET_SIZE",
        "--jaeger-max-packet-size",
        "65000",
        "The largest datagram sent to the Jaeger agent, 512 to 65507 bytes.",
    ),
    setting(
        "TRACES_EXPORTER_JAEGER_SERVICE_NAME",
        "--jaeger-service-name",
        "(the service name)",
        "The service name Jaeger shows, when it should differ from OTEL_SERVICE_NAME.",
    ),
    setting(
        "TRACES_EXPORTER_JAEGER_TAGS",
        "--jaeger-tags",
        "(none)",
        "Jaeger process tags, `key=value,key=value`.",
    ),
    setting(
        "JAEGER_ENDPOINT",
        "--jaeger-endpoint",
        "http://localhost:14268/api/traces",
        "The Jaeger collector (exporter `jaeger-http`): a full URL, or `host:port` meaning \
         `http://host:port/api/traces`.",
    ),
    setting(
        "OTEL_EXPORTER_ZIPKIN_ENDPOINT",
        "--zipkin-endpoint",
        "http://localhost:9411/api/v2/spans",
        "The Zipkin v2 spans URL (exporter `zipkin`).",
    ),
];

impl ExporterConfig {
    /// Every variable read by [`from_env`](Self::from_env), with its flag, default and meaning.
    ///
    /// ```
    /// use trace_exporters::config::ExporterConfig;
    ///
    /// let timeout = ExporterConfig::reference()
    ///     .iter()
    ///     .find(|setting| setting.variable == "OTEL_EXPORTER_OTLP_TIMEOUT")
    ///     .expect("listed");
    /// assert_eq!((timeout.flag, timeout.default), ("--otlp-timeout", "10000"));
    /// ```
    pub fn reference() -> &'static [Setting] {
        REFERENCE
    }

    /// [`reference`](Self::reference) as a Markdown table (variable, flag, default, meaning).
    pub fn reference_markdown() -> String {
        let mut table =
            String::from("| Variable | Flag | Default | Meaning |\n|---|---|---|---|\n");
        for setting in REFERENCE {
            let _ = writeln!(
                table,
                "| `{}` | `{}` | {} | {} |",
                setting.variable,
                setting.flag,
                if setting.default.starts_with('(') {
                    setting.default.to_owned()
                } else {
                    format!("`{}`", setting.default)
                },
                setting.meaning
            );
        }
        table
    }
}
