use std::marker::PhantomData;
use std::sync::Arc;

use http::HeaderName;
use tower_layer::Layer;
use trace_core::propagation::CompositePropagator;
use trace_core::sampler::{AlwaysOn, DebugForced, ParentBased, Sampler};
use trace_core::spread::SpreadCollector;
use trace_core::{Collector, InlineStr, Key, StringValue};

use super::{MetricsSlot, NoMetrics, TraceService, WithMetrics};
use crate::metrics::{MetricsLayer, ServerMetrics};

/// Headers never recorded as attributes, even when listed: they carry credentials.
const NEVER_RECORDED: [HeaderName; 4] = [
    http::header::AUTHORIZATION,
    http::header::COOKIE,
    http::header::SET_COOKIE,
    http::header::PROXY_AUTHORIZATION,
];

/// The debug header Jaeger clients send.
const JAEGER_DEBUG_ID: &str = "jaeger-debug-id";

/// Debug forcing allowed per second unless configured otherwise.
const DEFAULT_DEBUG_CAP: f64 = 10.0;

/// Which response header tells the caller the trace id of its request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TraceIdHeader {
    /// No header, except on debug-forced requests, which get `traceresponse` so that whoever
    /// sent the debug header can find the trace. The default: trace ids stay inside unless
    /// asked for, and a sampled request costs no extra header.
    #[default]
    None,
    /// W3C Trace Context Level 2 `traceresponse: 00-{trace-id}-{span-id}-{flags}`.
    TraceResponse,
    /// `Server-Timing: trace;desc=00-{trace-id}-{span-id}-{flags}`, which browser developer
    /// tools show beside the request's timings. Appended to any `Server-Timing` the handler set.
    ServerTiming,
    /// A header of this name whose value is the 32-digit trace id, such as `trace-id`.
    Custom(HeaderName),
}

#[derive(Clone)]
pub(crate) struct TraceConfig {
    /// Held as it is recorded: a short name inline (copied per span, no shared count to bump).
    pub(crate) service_name: Option<StringValue>,
    pub(crate) propagation: CompositePropagator,
    pub(crate) root_sampler: Arc<dyn Sampler>,
    pub(crate) debug_cap: f64,
    pub(crate) sampler: Arc<DebugForced>,
    /// Handed to each sampled request's context through the replica of the thread serving it.
    pub(crate) collector: SpreadCollector,
    pub(crate) debug_headers: Vec<HeaderName>,
    /// The debug headers the propagation does not already read (the Jaeger format reads
    /// `jaeger-debug-id`): looking them up again would cost every request a hash lookup.
    /// The debug headers no propagation format reads (the server reads them itself), each
    /// with whether the propagation's header scan hands it over.
    pub(crate) unread_debug_headers: Vec<(HeaderName, bool)>,
    pub(crate) recorded_headers: Vec<(HeaderName, Key)>,
    pub(crate) trace_id_header: TraceIdHeader,
    pub(crate) metrics: Option<Arc<ServerMetrics>>,
    /// Whether the sampler reads the span name ([`Sampler::reads_name`]); if not, an
    /// unsampled request without metrics never looks up its route. Set in [`TraceLayer::with`].
    pub(crate) sampler_reads_name: bool,
}

/// Traces every request through the wrapped service: continues the caller's trace from its
/// headers (W3C, Jaeger, B3), asks the sampler, records a server span that ends when the
/// response body ends, and makes the request's [`SpanContext`](trace_core::SpanContext)
/// available to the handler.
///
/// ```
/// use std::sync::Arc;
/// use axum::{Router, routing::get};
/// use trace_core::InMemoryCollector;
/// use trace_core::sampler::TraceIdRatio;
/// use trace_http::{TraceIdHeader, TraceLayer};
///
/// let collector = Arc::new(InMemoryCollector::new(10_000));
/// let app: Router = Router::new()
///     .route("/users/{id}", get(|| async { "alice" }))
///     .layer(
///         TraceLayer::new(collector.clone())
///             .service_name("users")
///             .sampler(TraceIdRatio::new(0.1))
///             .record_request_headers(["x-request-id"])
///             .trace_id_header(TraceIdHeader::ServerTiming),
///     );
/// ```
///
/// Defaults: propagation from `OTEL_PROPAGATORS` or, unset, W3C + baggage + Jaeger + B3; a
/// parent-based sampler that samples every new trace; `jaeger-debug-id` as the debug header,
/// forcing at most 10 debug traces a second; the trace id returned (in `traceresponse`) only to
/// debug-forced requests.
///
/// The type parameter says whether the layer records request metrics too: [`NoMetrics`] until
/// [`metrics`](Self::metrics) makes it a `TraceLayer<WithMetrics>`.
pub struct TraceLayer<M: MetricsSlot = NoMetrics> {
    config: Arc<TraceConfig>,
    metrics: PhantomData<fn() -> M>,
}

impl<M: MetricsSlot> Clone for TraceLayer<M> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            metrics: PhantomData,
        }
    }
}

impl TraceLayer {
    /// Traces into `collector`.
    pub fn new(collector: Arc<dyn Collector>) -> Self {
        // Finds (once per process) how the clock is best read, here rather than on a request.
        trace_core::clock::monotonic();
        // An unknown OTEL_PROPAGATORS name is a deployment mistake that must not stop the
        // service: fall back to reading every supported format.
        let propagation = CompositePropagator::from_env().unwrap_or_default();
        let root_sampler: Arc<dyn Sampler> = Arc::new(ParentBased::new(AlwaysOn));
        let layer = Self {
            metrics: PhantomData,
            config: Arc::new(TraceConfig {
                service_name: None,
                propagation,
                sampler: Arc::new(DebugForced::new(root_sampler.clone(), DEFAULT_DEBUG_CAP)),
                root_sampler,
                debug_cap: DEFAULT_DEBUG_CAP,
                collector: SpreadCollector::new(collector),
                debug_headers: vec![HeaderName::from_static(JAEGER_DEBUG_ID)],
                unread_debug_headers: Vec::new(),
                recorded_headers: Vec::new(),
                trace_id_header: TraceIdHeader::default(),
                metrics: None,
                sampler_reads_name: true,
            }),
        };
        layer.with(|_| {})
    }
}

impl<M: MetricsSlot> TraceLayer<M> {
    fn with(mut self, change: impl FnOnce(&mut TraceConfig)) -> Self {
        let config = Arc::make_mut(&mut self.config);
        change(config);
        config.sampler_reads_name = config.sampler.reads_name();
        let jaeger_reads_debug_id = config.propagation.formats().any(|f| f.name() == "jaeger");
        config.unread_debug_headers = config
            .debug_headers
            .iter()
            .filter(|name| !(jaeger_reads_debug_id && name.as_str() == JAEGER_DEBUG_ID))
            .map(|name| (name.clone(), config.propagation.hands_over(name)))
            .collect();
        self
    }

    /// Records `service.name` on every server span.
    pub fn service_name(self, name: impl Into<Arc<str>>) -> Self {
        let name: Arc<str> = name.into();
        let name = if name.len() <= InlineStr::CAPACITY {
            StringValue::copied(&name)
        } else {
            StringValue::Shared(name)
        };
        self.with(|c| c.service_name = Some(name))
    }

    /// The formats read from requests, in order of preference.
    pub fn propagation(self, propagation: CompositePropagator) -> Self {
        self.with(|c| c.propagation = propagation)
    }

    /// Decides which new traces are recorded: requests that arrive without a caller's sampling
    /// decision. A caller's decision (a sampled or unsampled parent) is followed, so a chain of
    /// services records whole traces; and a debug header forces a trace (within the debug cap)
    /// whatever this sampler says.
    pub fn sampler(self, sampler: impl Sampler) -> Self {
        let sampler: Arc<dyn Sampler> = Arc::new(ParentBased::new(sampler));
        self.with(|c| {
            c.sampler = Arc::new(DebugForced::new(sampler.clone(), c.debug_cap));
            c.root_sampler = sampler;
        })
    }

    /// At most this many debug traces a second are forced by debug headers; beyond it such
    /// requests are sampled as any other (and the refusal counted). Zero turns forcing off.
    pub fn debug_cap(self, per_second: f64) -> Self {
        self.with(|c| {
            c.debug_cap = per_second;
            c.sampler = Arc::new(DebugForced::new(c.root_sampler.clone(), per_second));
        })
    }

    /// Headers whose presence asks for a debug trace, their value recorded as the
    /// `jaeger-debug-id` attribute. Default: `jaeger-debug-id`. Names that are not valid header
    /// names are ignored. (When the Jaeger format is among the propagators, it reads
    /// `jaeger-debug-id` too.)
    pub fn debug_headers<I>(self, names: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let names = parse_names(names);
        self.with(|c| c.debug_headers = names)
    }

    /// Request headers recorded as `http.request.header.<name>` attributes (an allow-list).
    /// `authorization`, `cookie`, `set-cookie` and `proxy-authorization` are never recorded,
    /// even if listed. A repeated header's values are joined with commas; a value's bytes that
    /// are not UTF-8 are recorded as U+FFFD (so is `user_agent.original`).
    pub fn record_request_headers<I>(self, names: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let recorded = parse_names(names)
            .into_iter()
            .filter(|name| !NEVER_RECORDED.contains(name))
            .map(|name| {
                let key: Key = format!("http.request.header.{name}").into();
                (name, key)
            })
            .collect();
        self.with(|c| c.recorded_headers = recorded)
    }

    /// Which response header returns the trace id (only for traced requests: an unsampled
    /// request's trace id points at nothing).
    pub fn trace_id_header(self, header: TraceIdHeader) -> Self {
        self.with(|c| c.trace_id_header = header)
    }

    /// Also records the request metrics of `metrics` — the same histograms, labels, exemplars
    /// and options as adding that [`MetricsLayer`] as a layer of its own — from this layer's
    /// service: one layer for axum to wrap, one future, one body wrapper and one pair of clock
    /// readings shared by the span and the histograms. The cheaper way to have both.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use axum::{Router, routing::get};
    /// use prometheus_client::registry::Registry;
    /// use trace_core::NoopCollector;
    /// use trace_http::TraceLayer;
    /// use trace_http::metrics::MetricsLayer;
    ///
    /// let mut registry = Registry::default();
    /// let app: Router = Router::new()
    ///     .route("/users/{id}", get(|| async { "alice" }))
    ///     .layer(TraceLayer::new(Arc::new(NoopCollector)).metrics(MetricsLayer::new(&mut registry)));
    /// ```
    ///
    /// The layer becomes a `TraceLayer<WithMetrics>`: a layer without metrics carries no room
    /// for them in its requests (see [`MetricsSlot`]).
    pub fn metrics(self, metrics: MetricsLayer) -> TraceLayer<WithMetrics> {
        let metrics = metrics.server_metrics().clone();
        TraceLayer {
            config: self.config,
            metrics: PhantomData,
        }
        .with(|c| c.metrics = Some(metrics))
    }

    /// The debug-forcing sampler in use, for its counters (`forced`, `refused`).
    pub fn debug_sampler(&self) -> &DebugForced {
        &self.config.sampler
    }

    /// The context of a server span for a request with these headers, as this layer makes it:
    /// propagation, debug headers, sampler (`name` is what the sampler sees), collector. For
    /// `trace-grpc`, whose layer is configured by a `TraceLayer`; not a stable API.
    #[doc(hidden)]
    pub fn server_context(&self, headers: &http::HeaderMap, name: &str) -> trace_core::SpanContext {
        super::server_context(&self.config, headers, name)
    }

    /// The response header that returns the trace id of a request traced in `context`, as
    /// configured with [`trace_id_header`](Self::trace_id_header). Not a stable API.
    #[doc(hidden)]
    pub fn response_trace_header(
        &self,
        context: &trace_core::SpanContext,
    ) -> Option<(HeaderName, http::HeaderValue)> {
        if !context.is_sampled() {
            return None;
        }
        super::response_header(&self.config.trace_id_header, context)
    }

    /// The configured `service.name`. Not a stable API.
    #[doc(hidden)]
    pub fn configured_service_name(&self) -> Option<&StringValue> {
        self.config.service_name.as_ref()
    }

    /// The propagation in use, for its per-format counters of malformed headers.
    pub fn propagation_stats(&self) -> Vec<trace_core::propagation::FormatStats> {
        self.config.propagation.stats()
    }
}

fn parse_names<I>(names: I) -> Vec<HeaderName>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    names
        .into_iter()
        .filter_map(|name| HeaderName::from_bytes(name.as_ref().as_bytes()).ok())
        .collect()
}

impl<S, M: MetricsSlot> Layer<S> for TraceLayer<M> {
    type Service = TraceService<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceService::new(inner, self.config.clone())
    }
}

impl<M: MetricsSlot> std::fmt::Debug for TraceLayer<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        f.debug_struct("TraceLayer")
            .field("service_name", &c.service_name)
            .field("propagation", &c.propagation)
            .field("sampler", &c.root_sampler)
            .field("debug_cap", &c.debug_cap)
            .field("collector", c.collector.shared())
            .field("debug_headers", &c.debug_headers)
            .field("recorded_headers", &c.recorded_headers)
            .field("trace_id_header", &c.trace_id_header)
            .field("metrics", &c.metrics.is_some())
            .finish()
    }
}
