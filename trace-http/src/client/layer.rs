use std::sync::Arc;

use tower_layer::Layer;
use trace_core::propagation::{BaggagePropagator, CompositePropagator, TraceContextPropagator};
use trace_core::sampler::{AlwaysOff, Sampler, SamplingRequest};
use trace_core::{Collector, NoopCollector, SpanContext, SpanId, TraceFlags, TraceId};

use crate::context::current_context;

use super::ClientTraceService;

#[derive(Clone)]
pub(crate) struct ClientConfig {
    pub(crate) propagation: CompositePropagator,
    pub(crate) root_sampler: Arc<dyn Sampler>,
    pub(crate) root_collector: Arc<dyn Collector>,
    pub(crate) record_query: bool,
}

impl ClientConfig {
    /// The context of an outgoing request's client span: a child of the context in the request's
    /// extensions or of the current one; without either, a new trace if the root sampler says so.
    pub(crate) fn outgoing_context(
        &self,
        extensions: &http::Extensions,
        name: &str,
    ) -> Option<SpanContext> {
        let parent = extensions
            .get::<SpanContext>()
            .cloned()
            .or_else(current_context);
        match parent {
            Some(parent) => Some(parent.new_child()),
            None => {
                let trace_id = TraceId::random();
                let decision = self
                    .root_sampler
                    .should_sample(&SamplingRequest::new(trace_id, name));
                // The trace must carry the id the sampler judged: a ratio sampler decides on
                // its bits, and every service down the chain decides the same way from them.
                decision.is_sampled().then(|| {
                    SpanContext::new(
                        trace_id,
                        SpanId::random(),
                        decision.apply_to(TraceFlags::RANDOM),
                    )
                    .with_collector(self.root_collector.clone())
                })
            }
        }
    }
}

/// Traces outgoing requests made through the wrapped client service (hyper-util's client, or
/// any `Service<http::Request<B>>`).
///
/// Each request gets a client span named `{METHOD}`, a child of the context found in the
/// request's extensions or, failing that, of the [current context](crate::context) (the server
/// request being handled), and that child's context is injected into the request headers so the
/// next service continues the same trace. An unsampled parent is still propagated (as not
/// sampled). Without any parent, a new trace is started only if the root sampler says so
/// (by default it never does); otherwise nothing is injected. A new trace carries the very trace
/// id the root sampler judged, so ratio sampling agrees with every service down the chain.
///
/// The span records `server.address` (an IPv6 address without brackets) and `server.port`, taken
/// together from the URI's authority or, for an origin-form request (`/path`, as hyper's
/// connection-level `SendRequest` sends it), from the `Host` header; the port falls back to the
/// scheme's default. `url.full` is rebuilt from those parts: never the credentials, and the query
/// only with [`record_query`](Self::record_query), and not at all for a request that names no
/// host anywhere. 4xx and 5xx responses make the span an error.
///
/// ```
/// use std::sync::Arc;
/// use trace_core::propagation::CompositePropagator;
/// use trace_http::ClientTraceLayer;
///
/// let layer = ClientTraceLayer::new()
///     .propagation(CompositePropagator::from_otel_propagators("tracecontext,baggage,jaeger,b3")?);
/// // let client = tower::ServiceBuilder::new().layer(layer).service(hyper_client);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ClientTraceLayer {
    config: Arc<ClientConfig>,
}

impl ClientTraceLayer {
    /// Injects W3C `traceparent`, `tracestate` and `baggage`; starts no trace of its own.
    pub fn new() -> Self {
        Self {
            config: Arc::new(ClientConfig {
                propagation: CompositePropagator::new(vec![
                    Box::new(TraceContextPropagator::new()),
                    Box::new(BaggagePropagator::new()),
                ]),
                root_sampler: Arc::new(AlwaysOff),
                root_collector: Arc::new(NoopCollector),
                record_query: false,
            }),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut ClientConfig)) -> Self {
        change(Arc::make_mut(&mut self.config));
        self
    }

    /// The formats injected into outgoing requests (Jaeger and B3 on request).
    pub fn propagation(self, propagation: CompositePropagator) -> Self {
        self.with(|c| c.propagation = propagation)
    }

    /// Starts a new trace for requests made outside any traced request when `sampler` says so,
    /// recording into `collector`.
    pub fn root_traces(self, sampler: impl Sampler, collector: Arc<dyn Collector>) -> Self {
        let sampler: Arc<dyn Sampler> = Arc::new(sampler);
        self.with(|c| {
            c.root_sampler = sampler;
            c.root_collector = collector;
        })
    }

    /// Also records the query string in `url.full` (off by default: queries often carry tokens).
    pub fn record_query(self, record: bool) -> Self {
        self.with(|c| c.record_query = record)
    }
}

impl ClientTraceLayer {
    /// The context of an outgoing request's client span, as this layer makes it (`name` is what
    /// the root sampler sees). For `trace-grpc`, whose client layer is configured by a
    /// `ClientTraceLayer`; not a stable API.
    #[doc(hidden)]
    pub fn outgoing_context(
        &self,
        extensions: &http::Extensions,
        name: &str,
    ) -> Option<SpanContext> {
        self.config.outgoing_context(extensions, name)
    }

    /// Writes `context` into outgoing headers in the configured formats. Not a stable API.
    #[doc(hidden)]
    pub fn inject(&self, context: &SpanContext, headers: &mut http::HeaderMap) {
        self.config.propagation.inject(context, headers);
    }
}

impl Default for ClientTraceLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for ClientTraceLayer {
    type Service = ClientTraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientTraceService::new(inner, self.config.clone())
    }
}

impl std::fmt::Debug for ClientTraceLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTraceLayer")
            .field("propagation", &self.config.propagation)
            .field("root_sampler", &self.config.root_sampler)
            .field("record_query", &self.config.record_query)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use trace_core::sampler::{Sampler, SamplingRequest, TraceIdRatio};

    use super::ClientTraceLayer;

    #[test]
    fn a_root_trace_keeps_the_trace_id_its_ratio_sampler_judged() {
        let ratio = TraceIdRatio::new(0.5);
        let layer = ClientTraceLayer::new()
            .root_traces(ratio, std::sync::Arc::new(trace_core::NoopCollector));
        let extensions = http::Extensions::new();
        let mut started = 0;
        for _ in 0..400 {
            let Some(context) = layer.outgoing_context(&extensions, "GET") else {
                continue;
            };
            started += 1;
            // Judged again on the id the trace carries, the same sampler must agree.
            let decision = ratio.should_sample(&SamplingRequest::new(context.trace_id(), "GET"));
            assert!(decision.is_sampled(), "{context:?}");
            assert!(context.is_sampled());
            assert!(context.flags().is_random(), "{context:?}");
            assert_eq!(context.parent_span_id(), None);
        }
        // 400 fair draws: fewer than 100 or more than 300 sampled is vanishingly unlikely.
        assert!((100..=300).contains(&started), "{started} of 400 sampled");
    }
}
