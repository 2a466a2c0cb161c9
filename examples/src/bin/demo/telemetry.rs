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
use trace_core::sampler::{ParentBased, Sampler, TraceIdRatio};
use trace_core::{Collector, InMemoryCollector};
use trace_http::metrics::{MetricsBuilder, MetricsEndpoint, MetricsLayer, metrics_service};
use trace_http::{ClientTraceLayer, TraceLayer};

/// The HTTP client the users service calls profiles with: traced.
pub(crate) type HttpClient =
    trace_http::client::ClientTraceService<Client<HttpConnector, Empty<Bytes>>>;

/// The gRPC client the front calls users with.
pub(crate) type UsersClient = crate::proto::users_client::UsersClient<Channel>;

/// Shared telemetry; cheap to clone.
#[derive(Clone)]
pub(crate) struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    collector: Arc<dyn Collector>,
    store: Arc<InMemoryCollector>,
    sampler: Arc<dyn Sampler>,
    registry: Arc<Registry>,
    http_metrics: MetricsLayer,
    description: String,
}

impl Telemetry {
    /// Builds the sampler, the collectors and the metrics from the exporter settings.
    pub(crate) fn start(_args: ()) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let store = Arc::new(InMemoryCollector::new(50_000));
        let mut registry = Registry::default();
        let http_metrics = MetricsBuilder::new().server(&mut registry);
        Ok(Self {
            inner: Arc::new(Inner {
                collector: store.clone(),
                store,
                sampler: Arc::new(ParentBased::new(TraceIdRatio::new(0.1))),
                registry: Arc::new(registry),
                http_metrics,
                description: "embedded viewer only".to_owned(),
            }),
        })
    }

    /// A server trace layer for the service `name`.
    pub(crate) fn trace_layer(&self, name: &'static str) -> TraceLayer {
        TraceLayer::new(self.inner.collector.clone())
            .service_name(name)
            .sampler(self.inner.sampler.clone())
    }

    /// The HTTP server metrics layer, shared by the HTTP services (one set of families).
    pub(crate) fn http_metrics(&self) -> MetricsLayer {
        self.inner.http_metrics.clone()
    }

    /// `/metrics` for the whole process.
    pub(crate) fn metrics_service(&self) -> MetricsEndpoint {
        metrics_service(self.inner.registry.clone())
    }

    /// The trace viewer.
    pub(crate) fn viewer(&self) -> MetricsEndpoint {
        let _ = &self.inner.store;
        metrics_service(self.inner.registry.clone())
    }

    /// A traced HTTP client.
    pub(crate) fn http_client(&self) -> HttpClient {
        let client = Client::builder(TokioExecutor::new()).build_http();
        ClientTraceLayer::new().layer(client)
    }

    /// A traced gRPC client of the users service.
    pub(crate) fn users_client(
        &self,
        users: SocketAddr,
    ) -> Result<UsersClient, Box<dyn std::error::Error + Send + Sync>> {
        let channel = Endpoint::from_shared(format!("http://{users}"))?
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy();
        Ok(UsersClient::new(channel))
    }

    /// The gRPC server layer.
    pub(crate) fn grpc_server_layer(&self) -> tower::layer::util::Identity {
        tower::layer::util::Identity::new()
    }

    /// Where spans are exported, for the start-up banner.
    pub(crate) fn exporter_description(&self) -> &str {
        &self.inner.description
    }

    /// Flushes the exporter within `deadline`; what to print about it.
    pub(crate) async fn shutdown(&self, _deadline: Duration) -> String {
        "nothing to flush".to_owned()
    }
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("exporter", &self.inner.description)
            .finish_non_exhaustive()
    }
}
