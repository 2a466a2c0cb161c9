//! The server under test, one router per mode, all serving the same handler.

use std::borrow::Cow;
use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, Path};
use axum::routing::get;
use clap::ValueEnum;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use prometheus_client::registry::Registry;
use serde::Serialize;
use trace_core::Collector;
use trace_core::sampler::AlwaysOff;
use trace_http::TraceLayer;
use trace_http::metrics::{MetricsBuilder, metrics_service};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The `service.name` every traced mode reports.
const SERVICE_NAME: &str = "tracewire-bench";

/// What wraps the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// The handler alone: the baseline every other mode is compared with.
    Bare,
    /// A layer that does nothing, added with `Router::layer`: what axum charges for any layer
    /// on its routes (the route re-boxed and cloned per request, its future boxed), the floor
    /// under every layered mode.
    IdentityLayer,
    /// tracewire's `TraceLayer` recording `MetricsLayer`'s metrics too (exemplars), every
    /// request sampled, spans exported over OTLP/HTTP.
    Tracewire,
    /// The same stack with the request unsampled (root sampler never; the load generator sends
    /// an unsampled `traceparent`, which the parent-based sampler follows).
    TracewireUnsampled,
    /// The `tracewire` stack, every request sampled, with a collector that drops each finished
    /// span: what recording the span and the metrics costs, without the export (its hand-off,
    /// encoding and sending), which `tracewire` minus this mode measures.
    TracewireNoExport,
    /// The `tracewire` stack as two layers of their own (`.layer(metrics).layer(trace)`), every
    /// request sampled: what the combined layer saves.
    TracewireLayers,
    /// tracewire's `MetricsLayer` alone.
    TracewireMetrics,
    /// The `tracewire` stack, every request sampled, with the OTLP exporter's span encoder
    /// hidden from the batch pipeline, so that spans are queued whole and encoded by the export
    /// task (the path exporters without a span encoder take): what encoding spans on the thread
    /// that ends them saves, which this mode minus `tracewire` measures.
    TracewireSpanQueue,
    /// tower-http `TraceLayer` + tracing-subscriber + tracing-opentelemetry + opentelemetry-otlp
    /// (HTTP/protobuf, batch processor), sampler always on.
    Otel,
    /// The same with the sampler always off.
    OtelOff,
    /// fastrace-axum + fastrace-opentelemetry exporting over OTLP/HTTP.
    Fastrace,
    /// axum-prometheus' metrics layer.
    AxumPrometheus,
    /// A deliberately minimal hand-written middleware doing the same whole job as `tracewire`
    /// (see [`crate::minimal`]), every request sampled: the reference floor.
    Minimal,
    /// The same with the request unsampled.
    MinimalUnsampled,
}

/// Work left for after the server stopped: flushing the spans still buffered.
pub(crate) type Finish = Box<dyn FnOnce() + Send>;

/// Errors while setting a mode up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SetupError {
    /// The OTLP exporter could not be built.
    #[error("building the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// tracewire's OTLP exporter could not be built.
    #[error("building tracewire's OTLP exporter: {0}")]
    Tracewire(#[from] trace_exporters::otlp::OtlpError),
    /// A global tracing subscriber was already installed.
    #[error("installing the tracing subscriber: {0}")]
    Subscriber(#[from] tracing_subscriber::util::TryInitError),
}

/// The response body: a small JSON object, as a typical API returns.
#[derive(Debug, Serialize)]
struct User {
    id: u64,
    name: &'static str,
    email: &'static str,
    active: bool,
}

/// `GET /users/{id}`, the same in every mode.
async fn get_user(Path(id): Path<u64>) -> axum::Json<User> {
    axum::Json(User {
        id,
        name: "Ada Lovelace",
        email: "ada@example.com",
        active: true,
    })
}

fn users() -> Router {
    Router::new().route("/users/{id}", get(get_user))
}

/// The router for `mode`, exporting spans (where the mode traces) to the OTLP/HTTP collector at
/// `otlp_endpoint` (a base URL such as `http://127.0.0.1:4318`), and what to run after the
/// server stopped. `runtime` is the runtime that will serve it.
pub(crate) fn app(
    mode: Mode,
    otlp_endpoint: &str,
    runtime: &tokio::runtime::Handle,
) -> Result<(Router, Finish), SetupError> {
    let nothing: Finish = Box::new(|| {});
    Ok(match mode {
        Mode::Bare => (users(), nothing),
        Mode::IdentityLayer => (users().layer(tower_layer::Identity::new()), nothing),
        Mode::Tracewire
        | Mode::TracewireUnsampled
        | Mode::TracewireNoExport
        | Mode::TracewireSpanQueue => {
            let mut registry = Registry::default();
            let metrics = MetricsBuilder::new().server(&mut registry);
            let (collector, finish): (Arc<dyn Collector>, Finish) = match mode {
                Mode::TracewireNoExport => (Arc::new(trace_core::NoopCollector), nothing),
                Mode::TracewireSpanQueue => {
                    tracewire_collector(otlp_endpoint, &mut registry, runtime, SpanQueue::Spans)?
                }
                _ => {
                    tracewire_collector(otlp_endpoint, &mut registry, runtime, SpanQueue::Encoded)?
                }
            };
            let mut trace = TraceLayer::new(collector).service_name(SERVICE_NAME);
            if mode == Mode::TracewireUnsampled {
                trace = trace.sampler(AlwaysOff);
            }
            // The trace layer records the metrics itself: one layer, one pair of clock
            // readings (the documented way to have both).
            let router = users()
                .layer(trace.metrics(metrics))
                .route_service("/metrics", metrics_service(Arc::new(registry)));
            (router, finish)
        }
        Mode::TracewireLayers => {
            let mut registry = Registry::default();
            let metrics = MetricsBuilder::new().server(&mut registry);
            let (collector, finish) =
                tracewire_collector(otlp_endpoint, &mut registry, runtime, SpanQueue::Encoded)?;
            let trace = TraceLayer::new(collector).service_name(SERVICE_NAME);
            let router = users()
                .layer(metrics)
                .layer(trace)
                .route_service("/metrics", metrics_service(Arc::new(registry)));
            (router, finish)
        }
        Mode::TracewireMetrics => {
            let mut registry = Registry::default();
            let metrics = MetricsBuilder::new().server(&mut registry);
            let router = users()
                .layer(metrics)
                .route_service("/metrics", metrics_service(Arc::new(registry)));
            (router, nothing)
        }
        Mode::Otel => otel(otlp_endpoint, Sampler::AlwaysOn)?,
        Mode::OtelOff => otel(otlp_endpoint, Sampler::AlwaysOff)?,
        Mode::Fastrace => fastrace(otlp_endpoint)?,
        Mode::AxumPrometheus => {
            // Its handle spawns the histogram upkeep task on the current runtime.
            let _entered = runtime.enter();
            let (layer, handle) = axum_prometheus::PrometheusMetricLayer::pair();
            let router = users()
                .layer(layer)
                .route("/metrics", get(move || std::future::ready(handle.render())));
            (router, nothing)
        }
        Mode::Minimal | Mode::MinimalUnsampled => {
            let (layer, handle) = crate::minimal::layer(otlp_endpoint, SERVICE_NAME);
            let finish: Finish = Box::new(move || handle.shutdown());
            (users().layer(layer), finish)
        }
    })
}

/// What tracewire's batch pipeline queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpanQueue {
    /// Spans encoded on the threads that end them (the OTLP exporter's own setting).
    Encoded,
    /// Whole spans, encoded by the export task.
    Spans,
}

/// An exporter with its span encoder hidden: the batch pipeline queues whole spans for it.
#[derive(Debug)]
struct WholeSpans<E>(E);

impl<E: trace_exporters::SpanExporter> trace_exporters::SpanExporter for WholeSpans<E> {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }

    fn export<'a>(
        &'a mut self,
        batch: &'a [trace_core::Span],
    ) -> trace_exporters::ExportFuture<'a> {
        self.0.export(batch)
    }

    fn shutdown(&mut self) -> trace_exporters::ExportFuture<'_> {
        self.0.shutdown()
    }
}

/// tracewire's span pipeline to the OTLP/HTTP collector at `otlp_endpoint`, its health metrics
/// registered into `registry`, and the flush to run at shutdown.
fn tracewire_collector(
    otlp_endpoint: &str,
    registry: &mut Registry,
    runtime: &tokio::runtime::Handle,
    queue: SpanQueue,
) -> Result<(Arc<dyn Collector>, Finish), SetupError> {
    let exporter = trace_exporters::otlp::OtlpHttpExporter::builder()
        .endpoint(trace_exporters::config::http_traces_url(otlp_endpoint))
        .resource(trace_exporters::Resource::new(SERVICE_NAME))
        .build_http()?;
    let builder = match queue {
        SpanQueue::Encoded => trace_exporters::BatchExporter::builder(exporter),
        SpanQueue::Spans => trace_exporters::BatchExporter::builder(WholeSpans(exporter)),
    };
    let batch = builder
        .metrics(&trace_exporters::ExporterMetrics::register(registry))
        .runtime(runtime.clone())
        .build();
    let flush = batch.clone();
    let finish: Finish = Box::new(move || {
        // Called from the main thread while the runtime still runs the export task.
        let _ = flush.shutdown_blocking(std::time::Duration::from_secs(5));
    });
    Ok((batch, finish))
}

/// The OTLP/HTTP protobuf span exporter of opentelemetry-otlp, with its default client.
fn otlp_exporter(otlp_endpoint: &str) -> Result<opentelemetry_otlp::SpanExporter, SetupError> {
    use opentelemetry_otlp::{Protocol, WithExportConfig as _};
    Ok(opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/traces", otlp_endpoint.trim_end_matches('/')))
        .build()?)
}

/// The setup the OpenTelemetry documentation leads to: a tracer provider with the batch
/// processor, tracing-opentelemetry under an INFO filter, and tower-http's `TraceLayer` making
/// an INFO server span per request that continues the caller's W3C trace.
fn otel(otlp_endpoint: &str, sampler: Sampler) -> Result<(Router, Finish), SetupError> {
    let provider = SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_batch_exporter(otlp_exporter(otlp_endpoint)?)
        .with_resource(Resource::builder().with_service_name(SERVICE_NAME).build())
        .build();
    let tracer = provider.tracer(SERVICE_NAME);
    tracing_subscriber::registry()
        .with(LevelFilter::INFO)
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .try_init()?;

    let propagator = TraceContextPropagator::new();
    let layer = tower_http::trace::TraceLayer::new_for_http()
        .make_span_with(move |request: &http::Request<axum::body::Body>| {
            let route = request
                .extensions()
                .get::<MatchedPath>()
                .map_or("", MatchedPath::as_str);
            let span = tracing::info_span!(
                "request",
                otel.name = %format_args!("{} {}", request.method(), route),
                otel.kind = "server",
                http.request.method = %request.method(),
                http.route = route,
                url.path = request.uri().path(),
                http.response.status_code = tracing::field::Empty,
            );
            let parent =
                propagator.extract(&opentelemetry_http::HeaderExtractor(request.headers()));
            // Fails only without the OpenTelemetry layer, which is installed above.
            let _ = span.set_parent(parent);
            span
        })
        .on_response(
            |response: &http::Response<axum::body::Body>,
             _latency: std::time::Duration,
             span: &tracing::Span| {
                span.record("http.response.status_code", response.status().as_u16());
            },
        );
    let finish: Finish = Box::new(move || {
        // Flushes the batch; an error here only means spans were lost, which the sink shows.
        let _ = provider.shutdown();
    });
    Ok((users().layer(layer), finish))
}

/// fastrace's axum layer, reporting through fastrace-opentelemetry to the same OTLP exporter.
fn fastrace(otlp_endpoint: &str) -> Result<(Router, Finish), SetupError> {
    let reporter = fastrace_opentelemetry::OpenTelemetryReporter::new(
        otlp_exporter(otlp_endpoint)?,
        Cow::Owned(Resource::builder().with_service_name(SERVICE_NAME).build()),
        opentelemetry::InstrumentationScope::builder(SERVICE_NAME).build(),
    );
    fastrace::set_reporter(reporter, fastrace::collector::Config::default());
    let finish: Finish = Box::new(fastrace::flush);
    Ok((
        users().layer(fastrace_axum::FastraceLayer::default()),
        finish,
    ))
}
