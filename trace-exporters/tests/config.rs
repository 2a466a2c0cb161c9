//! `ExporterConfig` from variables (through a lookup: setting the process environment is unsafe
//! in edition 2024), from files (serde), and both together.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use trace_core::sampler::{SamplingDecision, SamplingRequest};
use trace_core::{TraceFlags, TraceId, Value};
use trace_exporters::config::{
    BatchSettings, Compression, ConfigError, ExporterConfig, ExporterKind, OtlpProtocol,
    Propagators, SamplerConfig, SamplerName,
};

fn from(vars: &[(&str, &str)]) -> Result<ExporterConfig, ConfigError> {
    let vars: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    ExporterConfig::from_lookup(|name| vars.get(name).cloned())
}

fn config(vars: &[(&str, &str)]) -> ExporterConfig {
    from(vars).unwrap_or_else(|error| panic!("{vars:?}: {error}"))
}

fn error(vars: &[(&str, &str)]) -> ConfigError {
    match from(vars) {
        Ok(config) => panic!("{vars:?} accepted: {config:?}"),
        Err(error) => error,
    }
}

fn decision(config: &ExporterConfig, parent: Option<TraceFlags>, low: u64) -> SamplingDecision {
    let sampler = config.sampler();
    let mut request = SamplingRequest::new(TraceId::from_halves(1, low).expect("id"), "x");
    request.parent = parent;
    sampler.should_sample(&request)
}

const SAMPLED: Option<TraceFlags> = Some(TraceFlags::SAMPLED);
const UNSAMPLED: Option<TraceFlags> = Some(TraceFlags::EMPTY);
/// Low trace-id bits that every ratio above 0 samples, and one that only a ratio of 1 samples.
const HIGH_RANDOMNESS: u64 = 0x00ff_ffff_ffff_ffff;
const LOW_RANDOMNESS: u64 = 1;

#[test]
fn nothing_set_gives_the_defaults() {
    let config = config(&[]);
    assert_eq!(config, ExporterConfig::default());
    assert_eq!(config.exporter, ExporterKind::Otlp);
    assert_eq!(config.otlp_protocol(), OtlpProtocol::HttpProtobuf);
    assert_eq!(
        config.otlp_traces_endpoint(),
        "http://localhost:4318/v1/traces"
    );
    assert_eq!(config.jaeger_agent_endpoint(), "localhost:6831");
    assert_eq!(
        config.jaeger_collector_endpoint(),
        "http://localhost:14268/api/traces"
    );
    assert_eq!(config.zipkin.endpoint, "http://localhost:9411/api/v2/spans");
    assert_eq!(config.resource().service_name(), "unknown_service");
    assert_eq!(config.sampler.name, SamplerName::ParentBasedAlwaysOn);
    assert_eq!(config.batch, BatchSettings::default());
    assert_eq!(config.otlp.timeout, Duration::from_secs(10));
    config.validate().expect("defaults are valid");
}

#[test]
fn empty_values_count_as_unset() {
    let config = config(&[
        ("TRACES_EXPORTER", ""),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "  "),
        ("OTEL_SERVICE_NAME", ""),
    ]);
    assert_eq!(config, ExporterConfig::default());
}

#[test]
fn every_listed_variable_is_read_and_only_those() {
    let asked = RefCell::new(BTreeSet::new());
    ExporterConfig::from_lookup(|name| {
        asked.borrow_mut().insert(name.to_owned());
        None
    })
    .expect("defaults");
    let listed: BTreeSet<String> = ExporterConfig::reference()
        .iter()
        .map(|setting| setting.variable.to_owned())
        .collect();
    assert_eq!(asked.into_inner(), listed);
    for setting in ExporterConfig::reference() {
        assert!(setting.flag.starts_with("--"), "{setting:?}");
        assert!(
            !setting.meaning.is_empty() && !setting.default.is_empty(),
            "{setting:?}"
        );
    }
    let table = ExporterConfig::reference_markdown();
    assert_eq!(table.lines().count(), ExporterConfig::reference().len() + 2);
    assert!(table.contains("| `OTEL_EXPORTER_OTLP_TIMEOUT` | `--otlp-timeout` | `10000` |"));
}

#[test]
fn the_listed_defaults_are_the_defaults() {
    for setting in ExporterConfig::reference() {
        if setting.default.starts_with('(') || setting.default.contains(' ') {
            continue; // prose, not a value
        }
        let explicit = config(&[(setting.variable, setting.default)]);
        let default = ExporterConfig::default();
        match setting.variable {
            // An explicit list or argument is kept as given; what it builds is the default.
            "OTEL_PROPAGATORS" => assert_eq!(
                format!("{:?}", explicit.propagator()),
                format!("{:?}", default.propagator())
            ),
            "OTEL_TRACES_SAMPLER_ARG" => assert_eq!(explicit.sampler.arg, Some(1.0)),
            "OTEL_SERVICE_NAME" => assert_eq!(
                explicit.resource().service_name(),
                default.resource().service_name()
            ),
            _ => assert_eq!(explicit, default, "{setting:?}"),
        }
    }
}

#[test]
fn exporter_variables() {
    let cases = [
        ("none", ExporterKind::None),
        ("stdout", ExporterKind::Stdout),
        ("jaeger", ExporterKind::Jaeger),
        ("jaeger-http", ExporterKind::JaegerHttp),
        ("otlp", ExporterKind::Otlp),
        ("otlp-grpc", ExporterKind::OtlpGrpc),
        ("Zipkin", ExporterKind::Zipkin),
    ];
    for (name, kind) in cases {
        assert_eq!(
            config(&[("TRACES_EXPORTER", name)]).exporter,
            kind,
            "{name}"
        );
    }
    assert_eq!(
        config(&[("OTEL_TRACES_EXPORTER", "console")]).exporter,
        ExporterKind::Stdout
    );
    assert_eq!(
        config(&[("OTEL_TRACES_EXPORTER", "zipkin")]).exporter,
        ExporterKind::Zipkin
    );
    // The more specific variable wins.
    assert_eq!(
        config(&[
            ("TRACES_EXPORTER", "jaeger"),
            ("OTEL_TRACES_EXPORTER", "zipkin")
        ])
        .exporter,
        ExporterKind::Jaeger
    );
}

#[test]
fn service_and_resource_variables() {
    let config = config(&[
        ("OTEL_SERVICE_NAME", "checkout"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=ignored, service.version=1.4.2,deployment.environment=prod%2Ceu,note=a%3Db",
        ),
    ]);
    assert_eq!(config.service_name.as_deref(), Some("checkout"));
    assert_eq!(config.service_version.as_deref(), Some("1.4.2"));
    let resource = config.resource();
    assert_eq!(resource.service_name(), "checkout");
    assert_eq!(
        resource.attribute("service.version"),
        Some(&Value::from("1.4.2"))
    );
    assert_eq!(
        resource.attribute("deployment.environment"),
        Some(&Value::from("prod,eu"))
    );
    assert_eq!(resource.attribute("note"), Some(&Value::from("a=b")));
    assert!(resource.attribute("host.name").is_some());

    // Without OTEL_SERVICE_NAME, service.name among the attributes names the service.
    let config2 = self::config(&[("OTEL_RESOURCE_ATTRIBUTES", "service.name=billing")]);
    assert_eq!(config2.resource().service_name(), "billing");

    // The Jaeger service name is the last fallback, and what Jaeger shows.
    let jaeger_only = self::config(&[("TRACES_EXPORTER_JAEGER_SERVICE_NAME", "legacy")]);
    assert_eq!(jaeger_only.resource().service_name(), "legacy");
    let both = self::config(&[
        ("OTEL_SERVICE_NAME", "checkout"),
        ("TRACES_EXPORTER_JAEGER_SERVICE_NAME", "checkout-jaeger"),
        ("TRACES_EXPORTER_JAEGER_TAGS", "region=eu-west-1, rack = r7"),
    ]);
    assert_eq!(both.resource().service_name(), "checkout");
    let jaeger = both.jaeger_resource();
    assert_eq!(jaeger.service_name(), "checkout-jaeger");
    assert_eq!(jaeger.attribute("region"), Some(&Value::from("eu-west-1")));
    assert_eq!(jaeger.attribute("rack"), Some(&Value::from("r7")));
}

#[test]
fn sampler_variables() {
    let on = config(&[("OTEL_TRACES_SAMPLER", "always_on")]);
    assert_eq!(
        decision(&on, UNSAMPLED, LOW_RANDOMNESS),
        SamplingDecision::Sample
    );
    let off = config(&[("OTEL_TRACES_SAMPLER", "always_off")]);
    assert_eq!(
        decision(&off, SAMPLED, HIGH_RANDOMNESS),
        SamplingDecision::Drop
    );

    let ratio = config(&[
        ("OTEL_TRACES_SAMPLER", "traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
    ]);
    assert_eq!(ratio.sampler, SamplerConfig::ratio(0.5));
    assert_eq!(
        decision(&ratio, UNSAMPLED, HIGH_RANDOMNESS),
        SamplingDecision::Sample
    );
    assert_eq!(
        decision(&ratio, SAMPLED, LOW_RANDOMNESS),
        SamplingDecision::Drop
    );

    let parent_on = config(&[("OTEL_TRACES_SAMPLER", "parentbased_always_on")]);
    assert_eq!(
        decision(&parent_on, None, LOW_RANDOMNESS),
        SamplingDecision::Sample
    );
    assert_eq!(
        decision(&parent_on, UNSAMPLED, HIGH_RANDOMNESS),
        SamplingDecision::Drop
    );
    let parent_off = config(&[("OTEL_TRACES_SAMPLER", "parentbased_always_off")]);
    assert_eq!(
        decision(&parent_off, None, HIGH_RANDOMNESS),
        SamplingDecision::Drop
    );
    assert_eq!(
        decision(&parent_off, SAMPLED, LOW_RANDOMNESS),
        SamplingDecision::Sample
    );

    let parent_ratio = config(&[
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0"),
    ]);
    assert_eq!(
        decision(&parent_ratio, None, HIGH_RANDOMNESS),
        SamplingDecision::Drop
    );
    assert_eq!(
        decision(&parent_ratio, SAMPLED, LOW_RANDOMNESS),
        SamplingDecision::Sample
    );
    // Without an argument the ratio is 1.
    let ratio_default = config(&[("TRACES_SAMPLER", "traceidratio")]);
    assert_eq!(ratio_default.sampler.arg, None);
    assert_eq!(
        decision(&ratio_default, None, LOW_RANDOMNESS),
        SamplingDecision::Sample
    );

    // One new trace per 1000 s: the first root is sampled, the next is not; a sampled parent is
    // always followed.
    let limited = config(&[
        ("TRACES_SAMPLER", "ratelimiting"),
        ("TRACES_SAMPLER_ARG", "0.001"),
    ]);
    assert_eq!(limited.sampler, SamplerConfig::rate_limited(0.001));
    let sampler = limited.sampler();
    let root = SamplingRequest::new(TraceId::from_halves(1, 1).expect("id"), "x");
    assert_eq!(sampler.should_sample(&root), SamplingDecision::Sample);
    assert_eq!(sampler.should_sample(&root), SamplingDecision::Drop);
    assert_eq!(
        sampler.should_sample(&root.with_parent(TraceFlags::SAMPLED)),
        SamplingDecision::Sample
    );
}

#[test]
fn traces_sampler_wins_over_otel_sampler() {
    let both = config(&[
        ("TRACES_SAMPLER", "ratelimiting"),
        ("TRACES_SAMPLER_ARG", "5"),
        ("OTEL_TRACES_SAMPLER", "traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
    ]);
    assert_eq!(both.sampler, SamplerConfig::rate_limited(5.0));
    // OTEL_TRACES_SAMPLER_ARG belongs to the losing sampler: not applied (nor range-checked as a
    // rate), so ratelimiting keeps its default.
    let name_only = config(&[
        ("TRACES_SAMPLER", "ratelimiting"),
        ("OTEL_TRACES_SAMPLER", "traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
    ]);
    assert_eq!(
        name_only.sampler,
        SamplerConfig::new(SamplerName::RateLimiting)
    );
    // TRACES_SAMPLER_ARG applies to the OpenTelemetry sampler when it is the only name given.
    let arg_only = config(&[
        ("OTEL_TRACES_SAMPLER", "traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
        ("TRACES_SAMPLER_ARG", "0.2"),
    ]);
    assert_eq!(arg_only.sampler, SamplerConfig::ratio(0.2));
}

#[test]
fn batch_variables() {
    let config = config(&[
        ("OTEL_BSP_SCHEDULE_DELAY", "250"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "4000"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "100"),
    ]);
    assert_eq!(
        config.batch,
        BatchSettings {
            scheduled_delay: Duration::from_millis(250),
            export_timeout: Duration::from_secs(4),
            max_queue_size: 100,
            max_export_batch_size: 100,
        }
    );
    // A batch larger than the queue is named by whichever variable made it so.
    assert_eq!(
        error(&[("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096")]).to_string(),
        r#"OTEL_BSP_MAX_EXPORT_BATCH_SIZE="4096" is larger than the queue (max queue size 2048)"#
    );
    assert_eq!(
        error(&[("OTEL_BSP_MAX_QUEUE_SIZE", "100")]).to_string(),
        r#"OTEL_BSP_MAX_QUEUE_SIZE="100" is smaller than a batch (max export batch size 512)"#
    );
}

#[test]
fn otlp_variables() {
    let http = config(&[
        ("TRACES_EXPORTER", "otlp"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "api-key=s3cr%3Dt, x-tenant = acme",
        ),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        (
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            "/etc/ssl/collector-ca.pem",
        ),
    ]);
    assert_eq!(http.otlp_protocol(), OtlpProtocol::HttpJson);
    assert_eq!(
        http.otlp_traces_endpoint(),
        "http://collector:4318/v1/traces"
    );
    let headers = http.otlp_headers().expect("headers");
    assert_eq!(
        headers.get("api-key").map(|v| v.as_bytes()),
        Some(&b"s3cr=t"[..])
    );
    assert_eq!(
        headers.get("x-tenant").map(|v| v.as_bytes()),
        Some(&b"acme"[..])
    );
    assert_eq!(http.otlp.timeout, Duration::from_millis(2500));
    assert_eq!(http.otlp.compression, Compression::Gzip);
    assert_eq!(
        http.otlp.certificate,
        Some(PathBuf::from("/etc/ssl/collector-ca.pem"))
    );

    // A base path is kept; the traces endpoint wins over the base and is used as is.
    let based = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://gateway/otel")]);
    assert_eq!(
        based.otlp_traces_endpoint(),
        "https://gateway/otel/v1/traces"
    );
    let traces = config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://traces:9999/custom",
        ),
    ]);
    assert_eq!(traces.otlp_traces_endpoint(), "http://traces:9999/custom");

    // gRPC: the base is the endpoint; otlp-grpc forces gRPC whatever the protocol says.
    let grpc = config(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
    assert_eq!(grpc.otlp_protocol(), OtlpProtocol::Grpc);
    assert_eq!(grpc.otlp_traces_endpoint(), "http://localhost:4317");
    let forced = config(&[
        ("TRACES_EXPORTER", "otlp-grpc"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
    ]);
    assert_eq!(forced.otlp_protocol(), OtlpProtocol::Grpc);
    assert_eq!(forced.otlp_traces_endpoint(), "http://collector:4317");

    // An endpoint without a scheme is https unless insecure.
    let bare = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]);
    assert_eq!(
        bare.otlp_traces_endpoint(),
        "https://collector:4318/v1/traces"
    );
    let insecure = config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
        ("TRACES_EXPORTER", "otlp-grpc"),
    ]);
    assert!(insecure.otlp.insecure);
    assert_eq!(insecure.otlp_traces_endpoint(), "http://collector:4317");
}

#[test]
fn jaeger_variables() {
    let config = config(&[
        ("TRACES_EXPORTER", "jaeger"),
        ("TRACES_EXPORTER_JAEGER_AGENT_HOST", "::1"),
        ("TRACES_EXPORTER_JAEGER_AGENT_PORT", "6832"),
        ("TRACES_EXPORTER_JAEGER_MAX_PACKET_SIZE", "8192"),
        ("JAEGER_ENDPOINT", "jaeger-collector:14268"),
    ]);
    assert_eq!(config.jaeger_agent_endpoint(), "[::1]:6832");
    assert_eq!(config.jaeger.max_packet_size, 8192);
    assert_eq!(
        config.jaeger_collector_endpoint(),
        "http://jaeger-collector:14268/api/traces"
    );
    let full = self::config(&[("JAEGER_ENDPOINT", "https://jaeger.example.com/api/traces")]);
    assert_eq!(
        full.jaeger_collector_endpoint(),
        "https://jaeger.example.com/api/traces"
    );
}

#[test]
fn zipkin_and_propagator_variables() {
    let config = config(&[
        (
            "OTEL_EXPORTER_ZIPKIN_ENDPOINT",
            "http://zipkin:9411/api/v2/spans",
        ),
        ("OTEL_PROPAGATORS", "b3multi, tracecontext"),
    ]);
    assert_eq!(config.zipkin.endpoint, "http://zipkin:9411/api/v2/spans");
    let names: Vec<&str> = config.propagator().formats().map(|f| f.name()).collect();
    assert_eq!(names, ["b3multi", "tracecontext"]);
    let none = self::config(&[("OTEL_PROPAGATORS", "none")]);
    assert_eq!(none.propagator().formats().count(), 0);
    let default: Vec<&str> = ExporterConfig::default()
        .propagator()
        .formats()
        .map(|f| f.name())
        .collect();
    assert_eq!(default, ["tracecontext", "baggage", "jaeger", "b3"]);
}

/// Every variable that can be wrong, with a wrong value and how the message goes on.
const BAD_VALUES: &[(&str, &str, &str)] = &[
    ("TRACES_EXPORTER", "kafka", "is not an exporter"),
    (
        "OTEL_TRACES_EXPORTER",
        "otlp,console",
        "names more than one exporter",
    ),
    ("OTEL_TRACES_EXPORTER", "prometheus", "is not an exporter"),
    (
        "OTEL_RESOURCE_ATTRIBUTES",
        "team",
        "has entry \"team\", which is not `key=value`",
    ),
    (
        "OTEL_RESOURCE_ATTRIBUTES",
        "a=1,=2",
        "has entry \"=2\", which has an empty key",
    ),
    (
        "OTEL_RESOURCE_ATTRIBUTES",
        "a=%C3%28",
        "which is not UTF-8 once percent-decoded",
    ),
    ("TRACES_SAMPLER", "probabilistic", "is not a sampler"),
    ("TRACES_SAMPLER_ARG", "half", "is not a number"),
    (
        "OTEL_TRACES_SAMPLER",
        "ratelimiting",
        "is not an OpenTelemetry sampler",
    ),
    ("OTEL_TRACES_SAMPLER", "xray", "is not a sampler"),
    ("OTEL_TRACES_SAMPLER_ARG", "NaN", "is not a number"),
    (
        "OTEL_PROPAGATORS",
        "tracecontext,xray",
        "names an unknown propagator \"xray\"",
    ),
    (
        "OTEL_BSP_SCHEDULE_DELAY",
        "5s",
        "is not a number of milliseconds",
    ),
    (
        "OTEL_BSP_SCHEDULE_DELAY",
        "0",
        "must be at least 1 millisecond",
    ),
    (
        "OTEL_BSP_EXPORT_TIMEOUT",
        "-1",
        "is not a number of milliseconds",
    ),
    ("OTEL_BSP_MAX_QUEUE_SIZE", "lots", "is not a whole number"),
    ("OTEL_BSP_MAX_QUEUE_SIZE", "0", "must be at least 1"),
    (
        "OTEL_BSP_MAX_QUEUE_SIZE",
        "18446744073709551615",
        "must be at most 1048576",
    ),
    (
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        "1.5",
        "is not a whole number",
    ),
    (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "ftp://collector",
        "is not an http:// or https:// URL",
    ),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://", "is not a URL"),
    (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "http://collector:43i8",
        "has a port that is not a number",
    ),
    (
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "http://exa mple",
        "is not a URL",
    ),
    (
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "http",
        "is not an OTLP protocol",
    ),
    (
        "OTEL_EXPORTER_OTLP_HEADERS",
        "api key=1",
        "has \"api key\", which is not a valid HTTP header name",
    ),
    (
        "OTEL_EXPORTER_OTLP_HEADERS",
        "a=%0A",
        "has a value for \"a\" that is not a valid HTTP header value",
    ),
    (
        "OTEL_EXPORTER_OTLP_HEADERS",
        "novalue",
        "has entry 1, which is not `key=value`",
    ),
    (
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "abc",
        "is not a number of milliseconds",
    ),
    (
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        "zstd",
        "is not a compression",
    ),
    ("OTEL_EXPORTER_OTLP_INSECURE", "yes", "is not true or false"),
    (
        "TRACES_EXPORTER_JAEGER_AGENT_HOST",
        "jaeger agent",
        "is not a host name or IP address",
    ),
    (
        "TRACES_EXPORTER_JAEGER_AGENT_PORT",
        "70000",
        "is not a port number (1-65535)",
    ),
    (
        "TRACES_EXPORTER_JAEGER_AGENT_PORT",
        "0",
        "is not a port number (1-65535)",
    ),
    (
        "TRACES_EXPORTER_JAEGER_MAX_PACKET_SIZE",
        "100",
        "is not a datagram size between 512 and 65507 bytes",
    ),
    (
        "TRACES_EXPORTER_JAEGER_MAX_PACKET_SIZE",
        "big",
        "is not a datagram size",
    ),
    (
        "TRACES_EXPORTER_JAEGER_TAGS",
        "a=1,b",
        "has entry \"b\", which is not `key=value`",
    ),
    (
        "JAEGER_ENDPOINT",
        "jaeger:port",
        "has a port that is not a number",
    ),
    (
        "JAEGER_ENDPOINT",
        "http://jae ger",
        "is not a URL or host:port",
    ),
    (
        "JAEGER_ENDPOINT",
        "udp://jaeger:6831",
        "is not an http:// or https:// URL",
    ),
    (
        "OTEL_EXPORTER_ZIPKIN_ENDPOINT",
        "zipkin:9411",
        "is not an http:// or https:// URL",
    ),
];

#[test]
fn bad_values_are_rejected_naming_the_variable_and_the_value() {
    for (variable, value, problem) in BAD_VALUES {
        let error = error(&[(variable, value)]);
        assert_eq!(error.setting(), *variable, "{error}");
        let message = error.to_string();
        // Header values are credentials: the message shows the names only.
        let shown = if *variable == "OTEL_EXPORTER_OTLP_HEADERS" {
            value
                .split(',')
                .map(|entry| match entry.split_once('=') {
                    Some((name, _)) => format!("{}=<redacted>", name.trim()),
                    None => "<redacted>".to_owned(),
                })
                .collect::<Vec<_>>()
                .join(",")
        } else {
            (*value).to_owned()
        };
        let expected_start = format!("{variable}={shown:?} ");
        assert!(
            message.starts_with(&expected_start) && message.contains(problem),
            "{variable}={value:?}: {message}"
        );
    }
    // Every variable that can hold a bad value has a case above.
    let free_text = [
        "OTEL_SERVICE_NAME",
        "TRACES_EXPORTER_JAEGER_SERVICE_NAME",
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
    ];
    for setting in ExporterConfig::reference() {
        assert!(
            free_text.contains(&setting.variable)
                || BAD_VALUES
                    .iter()
                    .any(|(variable, _, _)| *variable == setting.variable),
            "no bad value tried for {}",
            setting.variable
        );
    }
}

#[test]
fn header_values_never_show_in_messages_or_debug_output() {
    let secret = "Bearer%20s3cr3t%0A";
    let error = error(&[(
        "OTEL_EXPORTER_OTLP_HEADERS",
        &format!("authorization={secret}"),
    )]);
    let message = error.to_string();
    assert_eq!(
        message,
        r#"OTEL_EXPORTER_OTLP_HEADERS="authorization=<redacted>" has a value for "authorization" that is not a valid HTTP header value"#
    );
    let config = config(&[(
        "OTEL_EXPORTER_OTLP_HEADERS",
        "authorization=Bearer%20s3cr3t",
    )]);
    let debug = format!("{config:?}");
    assert!(
        !debug.contains("s3cr3t") && debug.contains("authorization"),
        "{debug}"
    );
    let mut from_file = ExporterConfig::default();
    from_file
        .otlp
        .headers
        .insert("authorization".into(), "s3cr3t\n".into());
    let error = from_file.validate().expect_err("bad header value");
    assert!(!error.to_string().contains("s3cr3t"), "{error}");
    assert_eq!(error.setting(), "otlp.headers");
}

#[test]
fn sampler_arguments_are_checked_against_the_sampler() {
    let cases = [
        (
            ("TRACES_SAMPLER", "traceidratio"),
            ("TRACES_SAMPLER_ARG", "1.5"),
            "is not a ratio between 0 and 1",
        ),
        (
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "-0.1"),
            "is not a ratio between 0 and 1",
        ),
        (
            ("TRACES_SAMPLER", "ratelimiting"),
            ("TRACES_SAMPLER_ARG", "0"),
            "is not a positive number of traces per second",
        ),
        (
            ("TRACES_SAMPLER", "ratelimiting"),
            ("TRACES_SAMPLER_ARG", "inf"),
            "is not a positive number of traces per second",
        ),
    ];
    for (name, (arg_variable, arg), problem) in cases {
        let error = error(&[name, (arg_variable, arg)]);
        assert_eq!(
            error.to_string(),
            format!("{arg_variable}={arg:?} {problem}")
        );
    }
    // Samplers without an argument ignore one (but it must still be a number).
    let ignored = config(&[
        ("OTEL_TRACES_SAMPLER", "always_on"),
        ("OTEL_TRACES_SAMPLER_ARG", "7"),
    ]);
    assert_eq!(
        decision(&ignored, None, LOW_RANDOMNESS),
        SamplingDecision::Sample
    );
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct ServiceJson {
    peer_name: String,
    observations: Observations,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Observations {
    metrics: Json,
    tracing: ExporterConfig,
}

type Json = serde_json::Value;

fn service_json() -> Json {
    json!({
        "peer_name": "peer-1",
        "observations": {
            "metrics": { "enable": true, "prometheus_endpoint": "/ip4/127.0.0.1/tcp/8888" },
            "tracing": {
                "exporter": "jaeger",
                "service_name": "cluster-peer",
                "sampler": { "name": "parentbased_traceidratio", "arg": 0.3 },
                "jaeger": { "agent_host": "jaeger.internal", "agent_port": 6831 }
            }
        }
    })
}

#[test]
fn a_nested_service_json_document_round_trips() {
    let document: ServiceJson = serde_json::from_value(service_json()).expect("service.json");
    let tracing = &document.observations.tracing;
    assert_eq!(tracing.exporter, ExporterKind::Jaeger);
    assert_eq!(tracing.sampler, SamplerConfig::parent_based_ratio(0.3));
    assert_eq!(tracing.jaeger_agent_endpoint(), "jaeger.internal:6831");
    assert_eq!(
        tracing.batch,
        BatchSettings::default(),
        "missing fields take defaults"
    );
    tracing.validate().expect("valid");

    let text = serde_json::to_string_pretty(&document).expect("serialise");
    let again: ServiceJson = serde_json::from_str(&text).expect("read back");
    assert_eq!(again, document);
}

#[test]
fn every_field_round_trips_through_json() {
    let mut config = ExporterConfig::default()
        .with_exporter(ExporterKind::OtlpGrpc)
        .with_service_name("checkout")
        .with_service_version("2.0.1")
        .with_resource_attribute("deployment.environment", "staging")
        .with_sampler(SamplerConfig::rate_limited(25.0))
        .with_propagators(Propagators::parse("tracecontext,b3multi").expect("known"))
        .with_otlp_endpoint("http://collector:4317")
        .with_jaeger_agent("agent", 6832)
        .with_jaeger_collector_endpoint("http://jaeger:14268/api/traces")
        .with_zipkin_endpoint("http://zipkin:9411/api/v2/spans");
    config.batch = BatchSettings {
        scheduled_delay: Duration::from_millis(100),
        export_timeout: Duration::from_millis(2000),
        max_queue_size: 64,
        max_export_batch_size: 32,
    };
    config.otlp.traces_endpoint = Some("http://traces:4317".into());
    config.otlp.headers.insert("api-key".into(), "k".into());
    config.otlp.timeout = Duration::from_millis(1234);
    config.otlp.compression = Compression::Gzip;
    config.otlp.certificate = Some(PathBuf::from("/ca.pem"));
    config.otlp.insecure = true;
    config.jaeger.max_packet_size = 9000;
    config.jaeger.service_name = Some("checkout-j".into());
    config.jaeger.tags.insert("region".into(), "eu".into());
    config.validate().expect("valid");

    let value = serde_json::to_value(&config).expect("serialise");
    // Durations are whole milliseconds; names are the variables' values.
    assert_eq!(value["batch"]["scheduled_delay_ms"], 100);
    assert_eq!(value["otlp"]["timeout_ms"], 1234);
    assert_eq!(value["exporter"], "otlp-grpc");
    assert_eq!(value["otlp"]["protocol"], "http/protobuf");
    assert_eq!(value["propagators"], "tracecontext,b3multi");
    assert_eq!(
        value["sampler"],
        json!({ "name": "ratelimiting", "arg": 25.0 })
    );
    let back: ExporterConfig = serde_json::from_value(value).expect("deserialise");
    assert_eq!(back, config);

    let default_back: ExporterConfig =
        serde_json::from_str(&serde_json::to_string(&ExporterConfig::default()).expect("ser"))
            .expect("de");
    assert_eq!(default_back, ExporterConfig::default());
    let empty: ExporterConfig = serde_json::from_str("{}").expect("all defaults");
    assert_eq!(empty, ExporterConfig::default());
}

#[test]
fn files_are_checked_too() {
    let unknown = serde_json::from_value::<ExporterConfig>(json!({ "exporterr": "zipkin" }));
    assert!(unknown.expect_err("typo").to_string().contains("exporterr"));
    let propagator = serde_json::from_value::<ExporterConfig>(json!({ "propagators": "w3c" }));
    assert!(propagator.expect_err("unknown").to_string().contains("w3c"));
    let sampler =
        serde_json::from_value::<ExporterConfig>(json!({ "sampler": { "name": "sometimes" } }));
    assert!(sampler.is_err());

    let config: ExporterConfig = serde_json::from_value(json!({
        "sampler": { "name": "traceidratio", "arg": 2.0 }
    }))
    .expect("well-formed");
    assert_eq!(
        config.validate().expect_err("out of range").to_string(),
        r#"sampler.arg="2" is not a ratio between 0 and 1"#
    );
    let config: ExporterConfig = serde_json::from_value(json!({
        "batch": { "max_queue_size": 10, "max_export_batch_size": 20 }
    }))
    .expect("well-formed");
    assert_eq!(
        config.validate().expect_err("too big").setting(),
        "batch.max_export_batch_size"
    );
    let config: ExporterConfig =
        serde_json::from_value(json!({ "jaeger": { "collector_endpoint": "jaeger:x" } }))
            .expect("well-formed");
    assert_eq!(
        config.validate().expect_err("bad").setting(),
        "jaeger.collector_endpoint"
    );
}

/// Header names are case-insensitive: a header from the environment replaces the file's of the
/// same name, whatever the case of either, rather than both being sent (and the file's winning).
#[test]
fn an_environment_header_replaces_the_files_whatever_its_case() {
    let mut config = ExporterConfig::default();
    config
        .otlp
        .headers
        .insert("authorization".into(), "Bearer file-token".into());
    config
        .apply_env(|name| {
            (name == "OTEL_EXPORTER_OTLP_HEADERS")
                .then(|| "Authorization=Bearer%20env-token".into())
        })
        .expect("applies");
    let headers = config.otlp_headers().expect("headers");
    let sent: Vec<&[u8]> = headers
        .get_all("authorization")
        .iter()
        .map(|value| value.as_bytes())
        .collect();
    assert_eq!(sent, [&b"Bearer env-token"[..]]);
}

#[test]
fn environment_overrides_the_file() {
    let document: ServiceJson = serde_json::from_value(service_json()).expect("service.json");
    let mut tracing = document.observations.tracing;
    let env: BTreeMap<&str, &str> = [
        ("TRACES_EXPORTER", "zipkin"),
        ("OTEL_SERVICE_NAME", "from-env"),
        ("TRACES_SAMPLER_ARG", "0.05"),
    ]
    .into();
    tracing
        .apply_env(|name| env.get(name).map(|v| (*v).to_owned()))
        .expect("applies");
    assert_eq!(tracing.exporter, ExporterKind::Zipkin);
    assert_eq!(tracing.resource().service_name(), "from-env");
    // Only the argument was set: the file's sampler keeps its name.
    assert_eq!(tracing.sampler, SamplerConfig::parent_based_ratio(0.05));
    assert_eq!(
        tracing.jaeger.agent_host, "jaeger.internal",
        "untouched by the environment"
    );

    // A bad variable leaves the configuration as it was.
    let before = tracing.clone();
    let error = tracing
        .apply_env(|name| {
            (name == "OTEL_SERVICE_NAME" || name == "OTEL_BSP_MAX_QUEUE_SIZE").then(|| {
                if name == "OTEL_SERVICE_NAME" {
                    "changed"
                } else {
                    "none"
                }
                .to_owned()
            })
        })
        .expect_err("bad queue size");
    assert_eq!(error.setting(), "OTEL_BSP_MAX_QUEUE_SIZE");
    assert_eq!(tracing, before);

    // The environment's service.name attribute replaces the file's service name too.
    let mut from_file = ExporterConfig::default().with_service_name("file-name");
    from_file
        .apply_env(|name| {
            (name == "OTEL_RESOURCE_ATTRIBUTES").then(|| "service.name=attr-name".to_owned())
        })
        .expect("applies");
    assert_eq!(from_file.resource().service_name(), "attr-name");
}
