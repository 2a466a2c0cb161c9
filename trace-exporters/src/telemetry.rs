//! One call from settings to everything a traced service needs.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use trace_core::propagation::CompositePropagator;
use trace_core::sampler::Sampler;
use trace_core::{Collector, FanOut, NoopCollector};

use crate::config::{ConfigError, ExporterConfig, ExporterKind};
use crate::pipeline::{BatchConfig, BatchExporter, ExporterMetrics, ShutdownReport};
use crate::{Resource, SpanExporter};

/// Why [`ExporterConfig::build`] failed: a setting is invalid, or the chosen exporter is not
/// compiled in or refused its settings. The message names the setting or endpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The exporter was compiled out (its cargo feature is off).
    #[error("exporter `{exporter}` needs trace-exporters' `{feature}` feature")]
    NotCompiled {
        /// The exporter asked for.
        exporter: &'static str,
        /// The cargo feature that provides it.
        feature: &'static str,
    },
    /// The exporter refused its settings.
    #[error("exporter `{exporter}`: {message}")]
    Exporter {
        /// The exporter.
        exporter: &'static str,
        /// What it said.
        message: String,
    },
}

/// An exporter and a line saying where it sends spans.
type DescribedExporter = (Box<dyn SpanExporter>, String);

/// What a service needs for tracing, built from an [`ExporterConfig`]: the sampler and header
/// formats for its layers, the collector its spans go to, and the handle that flushes the
/// exporter on shutdown.
///
/// ```
/// use std::time::Duration;
/// use trace_exporters::config::{ExporterConfig, ExporterKind};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), trace_exporters::BuildError> {
/// // Usually `ExporterConfig::from_env()?`.
/// let config = ExporterConfig::default()
///     .with_exporter(ExporterKind::Stdout)
///     .with_service_name("checkout");
/// let telemetry = config.build()?;
/// // trace_http::TraceLayer::new(telemetry.collector())
/// //     .sampler(telemetry.sampler())
/// //     .propagation(telemetry.propagator());
/// let report = telemetry.shutdown(Duration::from_secs(5)).await;
/// assert_eq!(report.lost, 0);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Telemetry {
    sampler: Arc<dyn Sampler>,
    propagator: CompositePropagator,
    resource: Resource,
    exporter: Option<Arc<BatchExporter>>,
    collector: Arc<dyn Collector>,
    /// Whether `collector` already includes a collector given to `also_collect_into`.
    tees: bool,
    description: String,
}

impl ExporterConfig {
    /// Validates the settings and builds the sampler, propagators and exporter pipeline.
    ///
    /// The exporter's background task starts on the current tokio runtime (or on its own
    /// thread outside one; see [`BatchExporter`]); the gRPC exporter needs a runtime.
    pub fn build(&self) -> Result<Telemetry, BuildError> {
        self.build_inner(None)
    }

    /// Like [`build`](Self::build), with the exporter's health reported into `metrics`.
    pub fn build_with_metrics(&self, metrics: &ExporterMetrics) -> Result<Telemetry, BuildError> {
        self.build_inner(Some(metrics))
    }

    fn build_inner(&self, metrics: Option<&ExporterMetrics>) -> Result<Telemetry, BuildError> {
        self.validate()?;
        let (exporter, description) = match self.span_exporter()? {
            Some((exporter, description)) => {
                let mut batch = BatchExporter::builder(exporter).config(self.batch_config());
                if let Some(metrics) = metrics {
                    batch = batch.metrics(metrics);
                }
                (Some(batch.build()), description)
            }
            None => (None, "none".to_owned()),
        };
        let collector: Arc<dyn Collector> = match &exporter {
            Some(exporter) => exporter.clone(),
            None => Arc::new(NoopCollector),
        };
        Ok(Telemetry {
            sampler: self.sampler(),
            propagator: self.propagator(),
            resource: self.resource(),
            exporter,
            collector,
            tees: false,
            description,
        })
    }

    /// The pipeline settings: the `OTEL_BSP_*` values, with the OTLP timeout bounding each
    /// export when OTLP is the exporter.
    fn batch_config(&self) -> BatchConfig {
        let mut export_timeout = self.batch.export_timeout;
        if matches!(self.exporter, ExporterKind::Otlp | ExporterKind::OtlpGrpc) {
            export_timeout = export_timeout.min(self.otlp.timeout);
        }
        BatchConfig {
            max_queue_size: self.batch.max_queue_size,
            max_batch_size: self.batch.max_export_batch_size,
            scheduled_delay: self.batch.scheduled_delay,
            export_timeout,
            ..BatchConfig::default()
        }
    }

    /// The exporter the settings name, and a line saying where it sends spans.
    fn span_exporter(&self) -> Result<Option<DescribedExporter>, BuildError> {
        match self.exporter {
            ExporterKind::None => Ok(None),
            ExporterKind::Stdout => self.stdout_exporter().map(Some),
            ExporterKind::Jaeger => self.jaeger_agent_exporter().map(Some),
            ExporterKind::JaegerHttp => self.jaeger_collector_exporter().map(Some),
            ExporterKind::Otlp | ExporterKind::OtlpGrpc => self.otlp_exporter().map(Some),
            ExporterKind::Zipkin => self.zipkin_exporter().map(Some),
        }
    }

    #[cfg(feature = "stdout")]
    fn stdout_exporter(&self) -> Result<DescribedExporter, BuildError> {
        let exporter = crate::stdout::StdoutExporter::new(self.resource());
        Ok((
            Box::new(exporter),
            "stdout (one JSON object per span)".to_owned(),
        ))
    }

    #[cfg(not(feature = "stdout"))]
    fn stdout_exporter(&self) -> Result<DescribedExporter, BuildError> {
        Err(not_compiled("stdout", "stdout"))
    }

    #[cfg(feature = "jaeger-agent")]
    fn jaeger_agent_exporter(&self) -> Result<DescribedExporter, BuildError> {
        let endpoint = self.jaeger_agent_endpoint();
        let exporter = crate::jaeger::JaegerAgentExporter::builder()
            .endpoint(endpoint.clone())
            .max_packet_size(self.jaeger.max_packet_size)
            .resource(self.jaeger_resource())
            .build()
            .map_err(|error| exporter_error("jaeger", error))?;
        Ok((Box::new(exporter), format!("Jaeger agent, UDP {endpoint}")))
    }

    #[cfg(not(feature = "jaeger-agent"))]
    fn jaeger_agent_exporter(&self) -> Result<DescribedExporter, BuildError> {
        Err(not_compiled("jaeger", "jaeger-agent"))
    }

    #[cfg(feature = "jaeger-collector")]
    fn jaeger_collector_exporter(&self) -> Result<DescribedExporter, BuildError> {
        let endpoint = self.jaeger_collector_endpoint();
        let exporter = crate::jaeger::JaegerCollectorExporter::builder()
            .endpoint(endpoint.clone())
            .resource(self.jaeger_resource())
            .build()
            .map_err(|error| exporter_error("jaeger-http", error))?;
        Ok((
            Box::new(exporter),
            format!("Jaeger collector, POST {endpoint}"),
        ))
    }

    #[cfg(not(feature = "jaeger-collector"))]
    fn jaeger_collector_exporter(&self) -> Result<DescribedExporter, BuildError> {
        Err(not_compiled("jaeger-http", "jaeger-collector"))
    }

    #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
    fn otlp_exporter(&self) -> Result<DescribedExporter, BuildError> {
        let protocol = self.otlp_protocol();
        let endpoint = self.otlp_traces_endpoint();
        let mut builder = crate::otlp::OtlpExporterBuilder::new(protocol)
            .endpoint(endpoint.clone())
            .gzip(self.otlp.compression == crate::config::Compression::Gzip)
            .headers(self.otlp.headers.clone())
            .resource(self.resource());
        if let Some(ca_file) = &self.otlp.certificate {
            builder = builder.tls(crate::TlsConfig::new().with_ca_file(ca_file.clone()));
        }
        let exporter = builder
            .build()
            .map_err(|error| exporter_error("otlp", error))?;
        Ok((exporter, format!("OTLP {protocol}, {endpoint}")))
    }

    #[cfg(not(any(feature = "otlp-http", feature = "otlp-grpc")))]
    fn otlp_exporter(&self) -> Result<DescribedExporter, BuildError> {
        Err(not_compiled("otlp", "otlp-http"))
    }

    #[cfg(feature = "zipkin")]
    fn zipkin_exporter(&self) -> Result<DescribedExporter, BuildError> {
        let endpoint = self.zipkin.endpoint.clone();
        let exporter = crate::zipkin::ZipkinExporter::builder()
            .endpoint(endpoint.clone())
            .resource(self.resource())
            .build()
            .map_err(|error| exporter_error("zipkin", error))?;
        Ok((Box::new(exporter), format!("Zipkin, POST {endpoint}")))
    }

    #[cfg(not(feature = "zipkin"))]
    fn zipkin_exporter(&self) -> Result<DescribedExporter, BuildError> {
        Err(not_compiled("zipkin", "zipkin"))
    }
}

#[allow(dead_code)] // Used only when some exporter is compiled out.
fn not_compiled(exporter: &'static str, feature: &'static str) -> BuildError {
    BuildError::NotCompiled { exporter, feature }
}

#[allow(dead_code)] // Used only when some exporter is compiled in.
fn exporter_error(exporter: &'static str, error: impl fmt::Display) -> BuildError {
    BuildError::Exporter {
        exporter,
        message: error.to_string(),
    }
}

impl Telemetry {
    /// The sampler for new traces (`TraceLayer::sampler`).
    pub fn sampler(&self) -> Arc<dyn Sampler> {
        self.sampler.clone()
    }

    /// The header formats read and written (`TraceLayer::propagation`,
    /// `ClientTraceLayer::propagation`).
    pub fn propagator(&self) -> CompositePropagator {
        self.propagator.clone()
    }

    /// The service and process the spans are reported for.
    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    /// Where finished spans go (`TraceLayer::new`): the exporter pipeline, plus whatever
    /// [`also_collect_into`](Self::also_collect_into) added; a no-op when the exporter is `none`.
    pub fn collector(&self) -> Arc<dyn Collector> {
        self.collector.clone()
    }

    /// The exporter pipeline, for its counters; `None` when the exporter is `none`.
    pub fn exporter(&self) -> Option<&Arc<BatchExporter>> {
        self.exporter.as_ref()
    }

    /// Where spans are exported, in words (for a start-up message).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Also hands every span to `other` (such as the embedded trace viewer's store), before the
    /// exporter gets it. Each call adds one more collector.
    #[must_use]
    pub fn also_collect_into(mut self, other: Arc<dyn Collector>) -> Self {
        self.collector = if self.exporter.is_none() && !self.tees {
            // Nothing but a no-op to tee with.
            other
        } else {
            Arc::new(FanOut::new([other, self.collector]))
        };
        self.tees = true;
        self
    }

    /// Exports everything queued, waiting at most `deadline`; reports what was lost. Without an
    /// exporter there is nothing to flush.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        match &self.exporter {
            Some(exporter) => exporter.shutdown(deadline).await,
            None => ShutdownReport::default(),
        }
    }
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("exporter", &self.description)
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}
