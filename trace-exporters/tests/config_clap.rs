//! `ExporterArgs`: flags flattened into a service's own arguments, falling back to the
//! variables. Run with `--features clap`.
#![cfg(feature = "clap")]

use std::process::Command;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use trace_exporters::config::{
    Compression, ExporterArgs, ExporterConfig, ExporterKind, OtlpProtocol, SamplerConfig,
};

#[derive(Debug, Parser)]
#[command(name = "service")]
struct Cli {
    /// The service's own flag, beside the flattened tracing ones.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    #[command(flatten)]
    tracing: ExporterArgs,
}

fn parse(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("service").chain(args.iter().copied()))
        .unwrap_or_else(|error| panic!("{args:?}: {error}"))
}

#[test]
fn flags_become_a_config() {
    let cli = parse(&[
        "--port=9000",
        "--traces-exporter=otlp",
        "--otlp-endpoint",
        "http://collector:4318",
        "--otlp-protocol=http/json",
        "--otlp-headers=api-key=abc",
        "--otlp-timeout=1500",
        "--otlp-compression=gzip",
        "--traces-sampler=parentbased_traceidratio",
        "--traces-sampler-arg=0.25",
        "--service-name=checkout",
        "--resource-attributes=service.version=3.1.4",
        "--jaeger-agent-host=agent",
        "--jaeger-agent-port=6832",
        "--jaeger-endpoint=jaeger:14268",
        "--bsp-max-queue-size=64",
        "--bsp-max-export-batch-size=16",
        "--propagators=tracecontext",
    ]);
    assert_eq!(cli.port, 9000);
    let config = cli.tracing.into_config().expect("valid flags");
    assert_eq!(config.exporter, ExporterKind::Otlp);
    assert_eq!(config.otlp_protocol(), OtlpProtocol::HttpJson);
    assert_eq!(
        config.otlp_traces_endpoint(),
        "http://collector:4318/v1/traces"
    );
    assert_eq!(config.otlp.timeout, Duration::from_millis(1500));
    assert_eq!(config.otlp.compression, Compression::Gzip);
    assert_eq!(
        config
            .otlp_headers()
            .expect("headers")
            .get("api-key")
            .map(|v| v.as_bytes()),
        Some(&b"abc"[..])
    );
    assert_eq!(config.sampler, SamplerConfig::parent_based_ratio(0.25));
    let resource = config.resource();
    assert_eq!(resource.service_name(), "checkout");
    assert_eq!(config.service_version.as_deref(), Some("3.1.4"));
    assert_eq!(config.jaeger_agent_endpoint(), "agent:6832");
    assert_eq!(
        config.jaeger_collector_endpoint(),
        "http://jaeger:14268/api/traces"
    );
    assert_eq!(
        (
            config.batch.max_queue_size,
            config.batch.max_export_batch_size
        ),
        (64, 16)
    );
    assert_eq!(config.propagator().formats().count(), 1);
}

#[test]
fn no_flags_give_the_defaults_and_flags_override_a_file() {
    let config = parse(&[]).tracing.into_config().expect("defaults");
    assert_eq!(config, ExporterConfig::default());

    let file = ExporterConfig::default()
        .with_exporter(ExporterKind::Jaeger)
        .with_service_name("from-file");
    let config = parse(&["--service-name", "from-flag"])
        .tracing
        .apply_to(file)
        .expect("valid");
    assert_eq!(config.exporter, ExporterKind::Jaeger);
    assert_eq!(config.resource().service_name(), "from-flag");
}

#[test]
fn insecure_is_a_switch_with_an_optional_value() {
    let on = parse(&[
        "--otlp-insecure",
        "--otlp-endpoint=collector:4317",
        "--traces-exporter=otlp-grpc",
    ]);
    let config = on.tracing.into_config().expect("valid");
    assert!(config.otlp.insecure);
    assert_eq!(config.otlp_traces_endpoint(), "http://collector:4317");
    let off = parse(&["--otlp-insecure=false"])
        .tracing
        .into_config()
        .expect("valid");
    assert!(!off.otlp.insecure);
}

#[test]
fn bad_flag_values_name_the_flag_and_the_variable() {
    let cases = [
        (
            "--otlp-timeout=abc",
            r#"--otlp-timeout/OTEL_EXPORTER_OTLP_TIMEOUT="abc" is not a number of milliseconds"#,
        ),
        (
            "--traces-exporter=kafka",
            r#"--traces-exporter/TRACES_EXPORTER="kafka" is not an exporter"#,
        ),
        (
            "--jaeger-agent-port=99999",
            r#"--jaeger-agent-port/TRACES_EXPORTER_JAEGER_AGENT_PORT="99999" is not a port number (1-65535)"#,
        ),
    ];
    for (flag, expected) in cases {
        let error = parse(&[flag]).tracing.into_config().expect_err(flag);
        assert!(error.to_string().starts_with(expected), "{flag}: {error}");
    }
    // Values that only fail together are checked with the same rules as the variables.
    let error = parse(&["--traces-sampler=traceidratio", "--traces-sampler-arg=3"])
        .tracing
        .into_config()
        .expect_err("ratio above 1");
    assert_eq!(
        error.to_string(),
        r#"--traces-sampler-arg/TRACES_SAMPLER_ARG="3" is not a ratio between 0 and 1"#
    );
}

#[test]
fn every_listed_variable_has_its_flag_and_env_fallback() {
    let command = Cli::command();
    for setting in ExporterConfig::reference() {
        let argument = command
            .get_arguments()
            .find(|argument| {
                argument
                    .get_long()
                    .map(|long| format!("--{long}"))
                    .as_deref()
                    == Some(setting.flag)
            })
            .unwrap_or_else(|| panic!("no flag {}", setting.flag));
        assert_eq!(
            argument.get_env().and_then(|env| env.to_str()),
            Some(setting.variable),
            "{}",
            setting.flag
        );
        assert!(argument.get_help().is_some(), "{} has help", setting.flag);
    }
    // And nothing more than the list, besides the service's own --port.
    assert_eq!(
        command.get_arguments().count(),
        ExporterConfig::reference().len() + 1
    );
}

/// Set by the parent test in the child process it starts.
const CHILD_MARKER: &str = "TRACEWIRE_CLAP_ENV_CHILD";

/// Runs this test binary again, with variables set, to see clap read them: the test process's own
/// environment cannot be changed without `unsafe`.
#[test]
fn variables_fill_in_for_missing_flags() {
    let mut child = Command::new(std::env::current_exe().expect("test binary"));
    child.args([
        "env_fallback_child",
        "--exact",
        "--ignored",
        "--test-threads=1",
    ]);
    for setting in ExporterConfig::reference() {
        child.env_remove(setting.variable);
    }
    child
        .env(CHILD_MARKER, "1")
        .env("TRACES_EXPORTER", "zipkin")
        .env(
            "OTEL_EXPORTER_ZIPKIN_ENDPOINT",
            "http://zipkin:9411/api/v2/spans",
        )
        .env("OTEL_SERVICE_NAME", "from-env")
        .env("TRACES_SAMPLER", "ratelimiting")
        .env("TRACES_SAMPLER_ARG", "4");
    let output = child.output().expect("run the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
#[ignore = "run by variables_fill_in_for_missing_flags in a child process"]
fn env_fallback_child() {
    if std::env::var_os(CHILD_MARKER).is_none() {
        return;
    }
    let config = parse(&["--service-name=from-flag"])
        .tracing
        .into_config()
        .expect("valid");
    assert_eq!(config.exporter, ExporterKind::Zipkin);
    assert_eq!(config.zipkin.endpoint, "http://zipkin:9411/api/v2/spans");
    assert_eq!(config.sampler, SamplerConfig::rate_limited(4.0));
    // A flag wins over its variable.
    assert_eq!(config.resource().service_name(), "from-flag");
}
