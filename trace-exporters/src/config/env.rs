//! Reading the configuration from environment variables (or anything that looks names up).

use std::path::PathBuf;

use super::values::{self, PairsFormat, Problem};
use super::{
    Compression, ConfigError, ExporterConfig, ExporterKind, OtlpProtocol, Propagators, SamplerName,
};

impl ExporterConfig {
    /// The defaults, overridden by the process's environment variables (see
    /// [`reference`](Self::reference) for the list).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(process_env)
    }

    /// The defaults, overridden by the variables `lookup` finds. Tests pass a map's lookup here,
    /// since setting the process environment is `unsafe` in edition 2024.
    ///
    /// ```
    /// use trace_exporters::config::{ExporterConfig, ExporterKind};
    ///
    /// let config = ExporterConfig::from_lookup(|name| match name {
    ///     "TRACES_EXPORTER" => Some("zipkin".to_owned()),
    ///     "OTEL_EXPORTER_ZIPKIN_ENDPOINT" => Some("http://zipkin:9411/api/v2/spans".to_owned()),
    ///     _ => None,
    /// })?;
    /// assert_eq!(config.exporter, ExporterKind::Zipkin);
    /// assert_eq!(config.zipkin.endpoint, "http://zipkin:9411/api/v2/spans");
    /// # Ok::<(), trace_exporters::config::ConfigError>(())
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        config.apply_env(lookup)?;
        Ok(config)
    }

    /// Lets the process's environment variables override this configuration (typically loaded
    /// from a file).
    pub fn apply_env_vars(&mut self) -> Result<(), ConfigError> {
        self.apply_env(process_env)
    }

    /// Lets the variables `lookup` finds override this configuration, then checks the result
    /// ([`validate`](Self::validate)). On an error the configuration is left as it was.
    ///
    /// Every variable is read and checked, even one that loses to another (an
    /// `OTEL_TRACES_SAMPLER` behind a `TRACES_SAMPLER`), so a typo is seen at start-up. Empty
    /// values count as unset.
    pub fn apply_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let env = Env { lookup: &lookup };
        let mut next = self.clone();
        next.read_exporter(&env)?;
        next.read_service(&env)?;
        next.read_sampler(&env)?;
        next.read_batch(&env)?;
        next.read_otlp(&env)?;
        next.read_jaeger(&env)?;
        if let Some(endpoint) = env.parse("OTEL_EXPORTER_ZIPKIN_ENDPOINT", |value| {
            values::check_url(value.trim()).map(|()| value.trim().to_owned())
        })? {
            next.zipkin.endpoint = endpoint;
        }
        if let Some(propagators) = env.parse("OTEL_PROPAGATORS", |value| {
            Propagators::parse(value).map_err(|error| format!("names an {error}").into())
        })? {
            next.propagators = Some(propagators);
        }
        next.validate()?;
        *self = next;
        Ok(())
    }

    fn read_exporter(&mut self, env: &Env<'_>) -> Result<(), ConfigError> {
        let ours = env.parse("TRACES_EXPORTER", exporter_name)?;
        let otel = env.parse("OTEL_TRACES_EXPORTER", |value| {
            if value.contains(',') {
                return Err("names more than one exporter; one is supported".into());
            }
            if value.trim().eq_ignore_ascii_case("console") {
                return Ok(ExporterKind::Stdout);
            }
            exporter_name(value)
        })?;
        if let Some(exporter) = ours.or(otel) {
            self.exporter = exporter;
        }
        Ok(())
    }

    fn read_service(&mut self, env: &Env<'_>) -> Result<(), ConfigError> {
        let mut service_name_attribute = None;
        if let Some(pairs) = env.parse("OTEL_RESOURCE_ATTRIBUTES", |value| {
            values::parse_key_values(value, PairsFormat::RESOURCE)
        })? {
            for (key, value) in pairs {
                // Lifted into their own fields, so that the environment's values replace a
                // file's whichever way each was given.
                match key.as_str() {
                    "service.name" => service_name_attribute = Some(value),
                    "service.version" => self.service_version = Some(value),
                    _ => {
                        self.resource_attributes.insert(key, value);
                    }
                }
            }
        }
        let service_name = env.parse("OTEL_SERVICE_NAME", trimmed)?;
        if let Some(name) = service_name.or(service_name_attribute) {
            self.service_name = Some(name);
        }
        Ok(())
    }

    fn read_sampler(&mut self, env: &Env<'_>) -> Result<(), ConfigError> {
        let ours = env.parse("TRACES_SAMPLER", |value| sampler_name(value, true))?;
        let otel = env.parse("OTEL_TRACES_SAMPLER", |value| sampler_name(value, false))?;
        let ours_arg = env.parse("TRACES_SAMPLER_ARG", values::parse_number)?;
        let otel_arg = env.parse("OTEL_TRACES_SAMPLER_ARG", values::parse_number)?;
        // OTEL_TRACES_SAMPLER_ARG goes with OTEL_TRACES_SAMPLER: when TRACES_SAMPLER picked
        // another sampler, it does not apply.
        let arg = match (ours_arg, otel_arg) {
            (Some(arg), _) => Some(("TRACES_SAMPLER_ARG", arg)),
            (None, Some(arg)) if ours.is_none() => Some(("OTEL_TRACES_SAMPLER_ARG", arg)),
            _ => None,
        };
        if let Some(name) = ours.or(otel) {
            self.sampler.name = name;
            self.sampler.arg = None;
        }
        if let Some((variable, arg)) = arg {
            if let Some(kind) = self.sampler.name.argument() {
                values::check_sampler_arg(kind, arg).map_err(|problem| {
                    ConfigError::invalid(variable, env.get(variable).unwrap_or_default(), problem)
                })?;
            }
            self.sampler.arg = Some(arg);
        }
        Ok(())
    }

    fn read_batch(&mut self, env: &Env<'_>) -> Result<(), ConfigError> {
        let batch = &mut self.batch;
        if let Some(delay) = env.parse("OTEL_BSP_SCHEDULE_DELAY", values::parse_millis)? {
            batch.scheduled_delay = delay;
        }
        if let Some(timeout) = env.parse("OTEL_BSP_EXPORT_TIMEOUT", values::parse_millis)? {
            batch.export_timeout = timeout;
        }
        let queue = env.parse("OTEL_BSP_MAX_QUEUE_SIZE", values::parse_size)?;
        let size = env.parse("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", values::parse_size)?;
        batch.max_queue_size = queue.unwrap_or(batch.max_queue_size);
        batch.max_export_batch_size = size.unwrap_or(batch.max_export_batch_size);
        if batch.max_export_batch_size > batch.max_queue_size {
            let (variable, problem) = if size.is_some() {
                (
                    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                    format!(
                        "is larger than the queue (max queue size {})",
                        batch.max_queue_size
                    ),
                )
            } else {
                (
                    "OTEL_BSP_MAX_QUEUE_SIZE",
                    format!(
                        "is smaller than a batch (max export batch size {})",
                        batch.max_export_batch_size
                    ),
                )
            };
            return Err(ConfigError::invalid(
                variable,
                env.get(variable).unwrap_or_default(),
                problem,
            ));
        }
        Ok(())
    }

    fn read_otlp(&mut self, env: &Env<'_>) -> Result<(), ConfigError> {
        let otlp = &mut self.otlp;
        if let Some(insecure) = env.parse("OTEL_EXPORTER_OTLP_INSECURE", values::parse_bool)? {
            otlp.insecure = insecure;
        }
        let insecure = otlp.insecure;
        let url = |value: &str| {
            let value = value.trim();
            values::check_url(&values::with_scheme(value, insecure)).map(|()| value.to_owned())
        };
        if let Some(endpoint) = env.parse("OTEL_EXPORTER_OTLP_ENDPOINT", url)? {
            otlp.endpoint = Some(endpoint);
        }
        if let Some(endpoint) = env.parse("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url)? {
            otlp.traces_endpoint = Some(endpoint);
        }
        // Header values carry credentials: errors show the list with its values redacted.
        if let Some(headers) = env.parse_secret("OTEL_EXPORTER_OTLP_HEADERS", |value| {
            let pairs = values::parse_key_values(value, PairsFormat::HEADERS)?;
            for (name, value) in &pairs {
                values::header(name, value)?;
            }
            Ok(pairs)
        })? {
            for (name, value) in headers {
                // Header names are case-insensitive: the variable's replaces a header of the
                // same name from the file whatever the case of either.
                otlp.headers
                    .retain(|existing, _| !existing.eq_ignore_ascii_case(&name));
                otlp.headers.insert(name, value);
            }
        }
        if let Some(protocol) = env.parse("OTEL_EXPORTER_OTLP_PROTOCOL", |value| {
            OtlpProtocol::from_name(value).ok_or_else(|| {
                "is not an OTLP protocol (expected grpc, http/protobuf or http/json)".into()
            })
        })? {
            otlp.protocol = protocol;
        }
        if let Some(timeout) = env.parse("OTEL_EXPORTER_OTLP_TIMEOUT", values::parse_millis)? {
            otlp.timeout = timeout;
        }
        if let Some(compression) = env.parse("OTEL_EXPORTER_OTLP_COMPRESSION", |value| {
            Compression::from_name(value)
                .ok_or_else(|| "is not a compression (expected gzip or none)".into())
        })? {
            otlp.compression = compression;
        }
        if let Some(path) = env.parse("OTEL_EXPORTER_OTLP_CERTIFICATE", trimmed)? {
            otlp.certificate = Some(PathBuf::from(path));
        }
        Ok(())
    }

    fn read_jaeger(&mut self, env: &Env<'_>) -> Result<(), ConfigError> {
        let jaeger = &mut self.jaeger;
        if let Some(host) = env.parse("TRACES_EXPORTER_JAEGER_AGENT_HOST", |value| {
            let host = value.trim();
            values::check_host(host).map(|()| host.to_owned())
        })? {
            jaeger.agent_host = host;
        }
        if let Some(port) = env.parse("TRACES_EXPORTER_JAEGER_AGENT_PORT", values::parse_port)? {
            jaeger.agent_port = port;
        }
        if let Some(name) = env.parse("TRACES_EXPORTER_JAEGER_SERVICE_NAME", trimmed)? {
            jaeger.service_name = Some(name);
        }
        if let Some(tags) = env.parse("TRACES_EXPORTER_JAEGER_TAGS", |value| {
            values::parse_key_values(value, PairsFormat::PLAIN)
        })? {
            jaeger.tags.extend(tags);
        }
        if let Some(size) = env.parse(
            "TRACES_EXPORTER_JAEGER_MAX_PACKET_SIZE",
            values::parse_packet_size,
        )? {
            jaeger.max_packet_size = size;
        }
        if let Some(endpoint) = env.parse("JAEGER_ENDPOINT", values::normalize_jaeger)? {
            jaeger.collector_endpoint = endpoint;
        }
        Ok(())
    }
}

/// The variables, as a lookup sees them.
struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Env<'_> {
    /// The variable's value; an empty one counts as unset.
    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.trim().is_empty())
    }

    /// The variable parsed, `None` when unset, or an error naming the variable and the value.
    fn parse<T>(
        &self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, Problem>,
    ) -> Result<Option<T>, ConfigError> {
        self.parse_showing(name, str::to_owned, parse)
    }

    /// As [`parse`](Self::parse) for a `key=value` list of secrets: an error shows the keys only.
    fn parse_secret<T>(
        &self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, Problem>,
    ) -> Result<Option<T>, ConfigError> {
        self.parse_showing(name, values::redact_pairs, parse)
    }

    fn parse_showing<T>(
        &self,
        name: &'static str,
        show: impl FnOnce(&str) -> String,
        parse: impl FnOnce(&str) -> Result<T, Problem>,
    ) -> Result<Option<T>, ConfigError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        match parse(&value) {
            Ok(parsed) => Ok(Some(parsed)),
            Err(problem) => Err(ConfigError::invalid(name, show(&value), problem)),
        }
    }
}

/// A variable of this process. A value that is not UTF-8 is read lossily rather than ignored, so
/// that it fails its check visibly instead of silently leaving the default.
fn process_env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|value| value.to_string_lossy().into_owned())
}

fn trimmed(value: &str) -> Result<String, Problem> {
    Ok(value.trim().to_owned())
}

fn exporter_name(value: &str) -> Result<ExporterKind, Problem> {
    ExporterKind::from_name(value).ok_or_else(|| {
        "is not an exporter (expected none, stdout, jaeger, jaeger-http, otlp, otlp-grpc or zipkin)"
            .into()
    })
}

fn sampler_name(value: &str, rate_limiting: bool) -> Result<SamplerName, Problem> {
    match SamplerName::from_name(value) {
        Some(SamplerName::RateLimiting) if !rate_limiting => {
            Err("is not an OpenTelemetry sampler (ratelimiting is set with TRACES_SAMPLER)".into())
        }
        Some(name) => Ok(name),
        None if rate_limiting => Err("is not a sampler (expected always_on, always_off, \
             traceidratio, parentbased_always_on, parentbased_always_off, \
             parentbased_traceidratio or ratelimiting)"
            .into()),
        None => Err(
            "is not a sampler (expected always_on, always_off, traceidratio, \
             parentbased_always_on, parentbased_always_off or parentbased_traceidratio)"
                .into(),
        ),
    }
}
