//! Everything the demo's services share: the sampler, where spans go (the viewer's store and
//! the configured exporter), the metrics registry, and the layers built from them.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prometheus_client::registry::Registry;
use tonic::transport::{Channel, Endpoint};
use tower::Layer;
use trace_core::{Collector, InMemoryCollector};
use trace_exporters::config::{ExporterArgs, ExporterConfig, ExporterKind, SamplerConfig};
use trace_exporters::{ExporterMetrics, ShutdownReport};
use trace_grpc::{GrpcClientLayer, GrpcClientMetrics, GrpcServerMetrics, GrpcTraceLayer};
use trace_http::metrics::{MetricsBuilder, MetricsEndpoint, MetricsLayer, metrics_service};
use trace_http::{ClientTraceLayer, TraceLayer, TraceViewer};

/// The HTTP client the users service calls profiles with: traced.
pub(crate) type HttpClient =
    trace_http::client::ClientTraceService<Client<HttpConnector, Empty<Bytes>>>;

/// The gRPC client the front calls users with: traced and measured.
pub(crate) type UsersClient =
    crate::proto::users_client::UsersClient<trace_grpc::GrpcClientService<Channel>>;

/// Shared telemetry; cheap to clone.
#[derive(Clone)]
pub(crate) struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    export: trace_exporters::Telemetry,
    collector: Arc<dyn Collector>,
    store: Arc<InMemoryCollector>,
    registry: Arc<Registry>,
    http_metrics: MetricsLayer,
    grpc_server_metrics: GrpcServerMetrics,
    grpc_client_metrics: GrpcClientMetrics,
    description: String,
}

/// How many traces the viewer keeps, and how many spans of each.
const VIEWER_TRACES: usize = 5_000;
const VIEWER_SPANS_PER_TRACE: usize = 500;

impl Telemetry {
    /// Builds the sampler, the collectors and the metrics from the exporter settings.
    ///
    /// The demo's own defaults (no exporter besides the viewer, 10% of new traces) come first;
    /// flags and the standard environment variables override them.
    pub(crate) fn start(
        args: ExporterArgs,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let defaults = ExporterConfig::default()
            .with_exporter(ExporterKind::None)
            .with_service_name("tracewire-demo")
            .with_sampler(SamplerConfig::parent_based_ratio(0.1));
        let config = args.apply_to(defaults)?;
        let mut registry = Registry::default();
        let exporter_metrics = ExporterMetrics::register(&mut registry);
        let store = Arc::new(
            InMemoryCollector::builder()
                .max_traces(VIEWER_TRACES)
                .max_spans_per_trace(VIEWER_SPANS_PER_TRACE)
                .build(),
        );
        let export = config
            .build_with_metrics(&exporter_metrics)?
            .also_collect_into(store.clone());
        let description = match export.exporter() {
            Some(_) => format!("{} (and the viewer)", export.description()),
            None => "the embedded viewer only (set TRACES_EXPORTER to export)".to_owned(),
        };
        let http_metrics = MetricsBuilder::new().server(&mut registry);
        let grpc_server_metrics = GrpcServerMetrics::new(&mut registry);
        let grpc_client_metrics = GrpcClientMetrics::new(&mut registry);
        Ok(Self {
            inner: Arc::new(Inner {
                collector: export.collector(),
                export,
                store,
                registry: Arc::new(registry),
                http_metrics,
                grpc_server_metrics,
                grpc_client_metrics,
                description,
            }),
        })
    }

    /// A server trace layer for the service `name`.
    pub(crate) fn trace_layer(&self, name: &'static str) -> TraceLayer {
        TraceLayer::new(self.inner.collector.clone())
            .service_name(name)
            .sampler(self.inner.export.sampler())
            .propagation(self.inner.export.propagator())
    }

    /// The HTTP server metrics layer, shared by the HTTP services (one set of families).
    pub(crate) fn http_metrics(&self) -> MetricsLayer {
        self.inner.http_metrics.clone()
    }

    /// `/metrics` for the whole process.
    pub(crate) fn metrics_service(&self) -> MetricsEndpoint {
        metrics_service(self.inner.registry.clone())
    }

    /// The trace viewer, reading the spans every service of the demo records.
    pub(crate) fn viewer(&self) -> TraceViewer {
        TraceViewer::new(self.inner.store.clone())
    }

    /// A traced HTTP client.
    pub(crate) fn http_client(&self) -> HttpClient {
        let client = Client::builder(TokioExecutor::new()).build_http();
        ClientTraceLayer::new()
            .propagation(self.inner.export.propagator())
            .layer(client)
    }

    /// A traced gRPC client of the users service.
    pub(crate) fn users_client(
        &self,
        users: SocketAddr,
    ) -> Result<UsersClient, Box<dyn std::error::Error + Send + Sync>> {
        let channel = Endpoint::from_shared(format!("http://{users}"))?
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy();
        let layer = GrpcClientLayer::new()
            .propagation(self.inner.export.propagator())
            .server_address(users.ip().to_string(), Some(users.port()))
            .metrics(self.inner.grpc_client_metrics.clone());
        Ok(UsersClient::new(layer.layer(channel)))
    }

    /// The gRPC server layer: traced and measured.
    pub(crate) fn grpc_server_layer(&self) -> GrpcTraceLayer {
        GrpcTraceLayer::new(self.inner.collector.clone())
            .service_name("users")
            .sampler(self.inner.export.sampler())
            .propagation(self.inner.export.propagator())
            .metrics(self.inner.grpc_server_metrics.clone())
    }

    /// Where spans are exported, for the start-up banner.
    pub(crate) fn exporter_description(&self) -> &str {
        &self.inner.description
    }

    /// The exporter's counters: spans exported and dropped so far; `None` without an exporter.
    pub(crate) fn exporter_totals(&self) -> Option<(u64, u64)> {
        let exporter = self.inner.export.exporter()?;
        Some((exporter.exported(), exporter.dropped()))
    }

    /// Flushes the exporter within `deadline`.
    pub(crate) async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        self.inner.export.shutdown(deadline).await
    }
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("exporter", &self.inner.description)
            .finish_non_exhaustive()
    }
}
