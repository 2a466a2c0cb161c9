use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::exponential_buckets;
use prometheus_client::registry::{Registry, Unit};
use tower_layer::Layer;

use super::duration::{DEFAULT_EXEMPLAR_INTERVAL, DurationSeries};
use super::family::{
    ClientLabels, Interner, MethodLabel, SeriesCache, ServerLabels, TraceExemplar,
};
use super::gauge::InFlightGauge;
use super::histogram::AtomicHistogram;
use super::service::{ClientMetricsService, MetricsService};

/// The OpenTelemetry HTTP semantic conventions' advisory buckets for request durations.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Distinct label sets kept per metric unless configured otherwise.
pub const DEFAULT_MAX_SERIES: usize = 2000;

/// The handles a server label set records into.
#[derive(Debug)]
pub(crate) struct ServerSeries {
    pub(crate) duration: DurationSeries,
    pub(crate) request_size: AtomicHistogram,
    pub(crate) response_size: AtomicHistogram,
}

fn duration_histogram() -> HistogramWithExemplars<TraceExemplar> {
    HistogramWithExemplars::new(DURATION_BUCKETS.into_iter())
}

fn size_histogram() -> AtomicHistogram {
    // 64 B to 16 MiB, in steps of 4.
    AtomicHistogram::new(exponential_buckets(64.0, 4.0, 10))
}

/// When a request's duration stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DurationEnd {
    /// When the response body has been sent (or failed, or was dropped): the whole request, as
    /// the trace span measures it.
    #[default]
    BodyEnd,
    /// When the response head is ready.
    Headers,
}

/// What the server metrics layer records into.
#[derive(Debug)]
pub(crate) struct ServerMetrics {
    pub(crate) series: SeriesCache<ServerLabels, ServerSeries>,
    /// One gauge per normalised method, made up front: no lookup per request.
    pub(crate) active: Vec<(&'static str, InFlightGauge)>,
    pub(crate) duration_end: DurationEnd,
}

impl ServerMetrics {
    /// The in-flight gauge for a normalised method name.
    pub(crate) fn active(&self, method: super::KeptText) -> Option<&InFlightGauge> {
        let index = crate::semconv::method_index(method)?;
        self.active.get(index).map(|(_, gauge)| gauge)
    }
}

/// What the client metrics layer records into.
#[derive(Debug)]
pub(crate) struct ClientMetrics {
    pub(crate) series: SeriesCache<ClientLabels, DurationSeries>,
    pub(crate) addresses: Interner,
}

/// Options for [`MetricsLayer`] and [`ClientMetricsLayer`], and where they register.
///
/// ```
/// use std::time::Duration;
/// use prometheus_client::registry::Registry;
/// use trace_http::metrics::{DurationEnd, MetricsBuilder};
///
/// let mut registry = Registry::default();
/// let layer = MetricsBuilder::new()
///     .prefix("shop")
///     .constant_label("service", "checkout")
///     .max_series_per_metric(500)
///     .duration_end(DurationEnd::Headers)
///     .exemplar_interval(Duration::from_secs(1))
///     .server(&mut registry);
/// # drop(layer);
/// ```
#[derive(Debug, Clone)]
pub struct MetricsBuilder {
    prefix: Option<String>,
    labels: Vec<(String, String)>,
    max_series: usize,
    duration_end: DurationEnd,
    exemplar_interval: Duration,
}

impl Default for MetricsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsBuilder {
    /// No prefix, no constant labels, [`DEFAULT_MAX_SERIES`], durations to the body's end,
    /// exemplars every [`DEFAULT_EXEMPLAR_INTERVAL`] per bucket at most.
    pub fn new() -> Self {
        // Finds (once per process) how the clock is best read, here rather than on a request.
        trace_core::clock::monotonic();
        Self {
            prefix: None,
            labels: Vec::new(),
            max_series: DEFAULT_MAX_SERIES,
            duration_end: DurationEnd::default(),
            exemplar_interval: DEFAULT_EXEMPLAR_INTERVAL,
        }
    }

    /// Prefixes every metric name (`{prefix}_http_server_...`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Adds a label with a fixed value to every series (such as `service`).
    pub fn constant_label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push((name.into(), value.into()));
        self
    }

    /// At most this many distinct label sets per metric; further ones are recorded in one
    /// overflow series (method `_overflow`) and counted in
    /// `tracewire_http_server_series_overflow_total` (or `..._client_...`).
    pub fn max_series_per_metric(mut self, max: usize) -> Self {
        self.max_series = max.max(1);
        self
    }

    /// When durations stop: at the body's end (default) or at the response head.
    pub fn duration_end(mut self, end: DurationEnd) -> Self {
        self.duration_end = end;
        self
    }

    /// How often each bucket of a duration histogram takes a new trace exemplar, at most
    /// (default [`DEFAULT_EXEMPLAR_INTERVAL`], 100 ms).
    ///
    /// A bucket shows the last exemplar it took; between two, the sampled requests that land
    /// in it are counted as usual but leave its exemplar as it is. Buckets are limited one by
    /// one, so a rare slow request still marks its bucket. [`Duration::ZERO`] replaces the
    /// exemplar on every sampled request (each then costs a map insert under the histogram's
    /// lock).
    pub fn exemplar_interval(mut self, interval: Duration) -> Self {
        self.exemplar_interval = interval;
        self
    }

    fn sub_registry<'r>(&self, registry: &'r mut Registry) -> &'r mut Registry {
        let registry = match &self.prefix {
            Some(prefix) => registry.sub_registry_with_prefix(prefix),
            None => registry,
        };
        let labels = self
            .labels
            .iter()
            .map(|(k, v)| (k.clone().into(), v.clone().into()));
        registry.sub_registry_with_labels(labels)
    }

    /// The counter of observations that went to an overflow series, one per layer kind (so a
    /// registry holding both layers declares two distinct families, never one twice).
    fn overflow_counter(registry: &mut Registry, layer: &'static str) -> Counter {
        let counter = Counter::default();
        registry.register(
            format!("tracewire_{layer}_series_overflow"),
            "Observations recorded in an overflow series because a metric reached its cap of distinct label sets",
            counter.clone(),
        );
        counter
    }

    /// The registry this builder's metrics go into: `registry` with the prefix and constant
    /// labels applied. For `trace-grpc`, which registers its RPC metrics with the same options;
    /// not a stable API.
    #[doc(hidden)]
    pub fn scoped_registry<'r>(&self, registry: &'r mut Registry) -> &'r mut Registry {
        self.sub_registry(registry)
    }

    /// The configured cap of distinct label sets per metric. Not a stable API.
    #[doc(hidden)]
    pub fn series_cap(&self) -> usize {
        self.max_series
    }

    /// Registers `tracewire_{layer}_series_overflow_total` into `registry` (already scoped) and
    /// returns it. Not a stable API.
    #[doc(hidden)]
    pub fn register_overflow_counter(registry: &mut Registry, layer: &'static str) -> Counter {
        Self::overflow_counter(registry, layer)
    }

    /// Registers the server metrics into `registry` and returns the layer that records them:
    /// `http_server_request_duration_seconds` (with trace exemplars),
    /// `http_server_active_requests`, `http_server_request_body_size_bytes` and
    /// `http_server_response_body_size_bytes`.
    pub fn server(self, registry: &mut Registry) -> MetricsLayer {
        let registry = self.sub_registry(registry);
        let overflowed = Self::overflow_counter(registry, "http_server");
        let duration = Family::new_with_constructor(duration_histogram as fn() -> _);
        let request_size = Family::new_with_constructor(size_histogram as fn() -> _);
        let response_size = Family::new_with_constructor(size_histogram as fn() -> _);
        let active = Family::<MethodLabel, InFlightGauge>::default();
        let help = match self.duration_end {
            DurationEnd::BodyEnd => {
                "Duration of HTTP server requests, until the response body ended"
            }
            DurationEnd::Headers => {
                "Duration of HTTP server requests, until the response head was ready"
            }
        };
        registry.register_with_unit(
            "http_server_request_duration",
            help,
            Unit::Seconds,
            duration.clone(),
        );
        registry.register(
            "http_server_active_requests",
            "Number of HTTP server requests in flight",
            active.clone(),
        );
        registry.register_with_unit(
            "http_server_request_body_size",
            "Size of HTTP server request bodies, from Content-Length",
            Unit::Bytes,
            request_size.clone(),
        );
        registry.register_with_unit(
            "http_server_response_body_size",
            "Size of HTTP server response bodies, as sent",
            Unit::Bytes,
            response_size.clone(),
        );
        let active_gauges = crate::semconv::METHOD_NAMES
            .iter()
            .map(|&method| (method, active.get_or_create_owned(&MethodLabel(method))))
            .collect();
        let interval = self.exemplar_interval;
        let series = SeriesCache::new(
            move |labels: &ServerLabels| ServerSeries {
                duration: DurationSeries::new(duration.get_or_create_owned(labels), interval),
                request_size: request_size.get_or_create_owned(labels),
                response_size: response_size.get_or_create_owned(labels),
            },
            self.max_series,
            overflowed,
        );
        MetricsLayer {
            metrics: Arc::new(ServerMetrics {
                series,
                active: active_gauges,
                duration_end: self.duration_end,
            }),
        }
    }

    /// Registers `http_client_request_duration_seconds` (with trace exemplars) into `registry`
    /// and returns the client layer that records it.
    pub fn client(self, registry: &mut Registry) -> ClientMetricsLayer {
        let registry = self.sub_registry(registry);
        let overflowed = Self::overflow_counter(registry, "http_client");
        let duration = Family::new_with_constructor(duration_histogram as fn() -> _);
        registry.register_with_unit(
            "http_client_request_duration",
            "Duration of HTTP client requests, until the response body ended",
            Unit::Seconds,
            duration.clone(),
        );
        let interval = self.exemplar_interval;
        let series = SeriesCache::new(
            move |labels: &ClientLabels| {
                DurationSeries::new(duration.get_or_create_owned(labels), interval)
            },
            self.max_series,
            overflowed,
        );
        ClientMetricsLayer {
            metrics: Arc::new(ClientMetrics {
                series,
                addresses: Interner::new(self.max_series),
            }),
        }
    }
}

/// Records request metrics of an HTTP server (axum, hyper) for Prometheus: durations with trace
/// exemplars, requests in flight, body sizes.
///
/// It works alone (no exemplars then) or with [`TraceLayer`](crate::TraceLayer) in either order:
/// a sampled request's duration carries its `trace_id` and `span_id` as an OpenMetrics
/// exemplar, so a slow bucket leads to the trace. With both, the cheaper way is to give it to
/// the trace layer, [`TraceLayer::metrics`](crate::TraceLayer::metrics), which records these
/// same metrics from its own service: one layer instead of two. Labels come only from bounded sources (the
/// normalised method, axum's matched route — empty when none matched —, the status code), and
/// each metric is capped in distinct series. Route templates are kept once for the whole
/// program, up to 4,096 distinct ones; a route beyond that (only routes made per request could
/// get there) is labelled `_overflow`.
///
/// A failed request carries `error_type`: its status code for a 5xx response, `response_body`
/// when the body failed while being sent, `_OTHER` when the inner service returned an error,
/// `aborted` when it was given up before its response was ready (the client went away, a
/// timeout layer outside cancelled it; no status then), and `panic` when its handler panicked
/// under a panic-catching layer outside this one, or its response body panicked while sent.
///
/// ```
/// use std::sync::Arc;
/// use axum::{Router, routing::get};
/// use prometheus_client::registry::Registry;
/// use trace_http::metrics::{MetricsLayer, metrics_service};
///
/// let mut registry = Registry::default();
/// let metrics = MetricsLayer::new(&mut registry);
/// let registry = Arc::new(registry);
/// let app: Router = Router::new()
///     .route("/users/{id}", get(|| async { "alice" }))
///     .layer(metrics)
///     .route_service("/metrics", metrics_service(registry));
/// ```
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    metrics: Arc<ServerMetrics>,
}

impl MetricsLayer {
    /// Registers the server metrics into `registry` with the default options.
    pub fn new(registry: &mut Registry) -> Self {
        MetricsBuilder::new().server(registry)
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService::new(inner, self.metrics.clone())
    }
}

/// Records `http_client_request_duration_seconds` for requests made through a client service,
/// labelled with `server_address`, with trace exemplars when the request's context (in its
/// extensions, or the current one) is sampled.
#[derive(Debug, Clone)]
pub struct ClientMetricsLayer {
    metrics: Arc<ClientMetrics>,
}

impl ClientMetricsLayer {
    /// Registers the client metric into `registry` with the default options.
    pub fn new(registry: &mut Registry) -> Self {
        MetricsBuilder::new().client(registry)
    }
}

impl<S> Layer<S> for ClientMetricsLayer {
    type Service = ClientMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientMetricsService::new(inner, self.metrics.clone())
    }
}

impl MetricsLayer {
    /// The metrics this layer records into, for the trace layer to record them itself.
    pub(crate) fn server_metrics(&self) -> &Arc<ServerMetrics> {
        &self.metrics
    }
}
