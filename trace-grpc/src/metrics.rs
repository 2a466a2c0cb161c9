//! RPC metrics for Prometheus: call durations with trace exemplars and messages per call, on the
//! bounded label-set machinery of `trace-http`'s metrics.

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use trace_http::metrics::{
    DURATION_BUCKETS, Interner, MetricsBuilder, OVERFLOW, Overflow, SeriesCache, SeriesLabels,
    TraceExemplar,
};

use crate::semconv::OTHER_METHOD;
use crate::status::Code;

/// Labels of an RPC metric: `rpc_method` and `rpc_response_status_code`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RpcLabels {
    /// Interned; `None` is the overflow label set.
    method: Option<Arc<str>>,
    code: Code,
}

impl Overflow for RpcLabels {
    fn overflow() -> Self {
        Self {
            method: None,
            code: Code::OK,
        }
    }
}

impl SeriesLabels for RpcLabels {
    type Key = (usize, Code);
    fn key(&self) -> Self::Key {
        let address = self
            .method
            .as_ref()
            .map_or(0, |m| Arc::as_ptr(m).cast::<u8>() as usize);
        (address, self.code)
    }
}

impl EncodeLabelSet for RpcLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        let method = self.method.as_deref().unwrap_or(OVERFLOW);
        ("rpc_method", method).encode(encoder.encode_label())?;
        let code = if self.method.is_none() {
            OVERFLOW
        } else {
            self.code.name()
        };
        ("rpc_response_status_code", code).encode(encoder.encode_label())
    }
}

/// The handles one label set records into.
#[derive(Debug)]
pub(crate) struct RpcSeries {
    duration: HistogramWithExemplars<TraceExemplar>,
    requests: Option<Histogram>,
    responses: Histogram,
}

/// What a layer's RPC metrics record into.
#[derive(Debug)]
pub(crate) struct RpcMetrics {
    series: SeriesCache<RpcLabels, RpcSeries>,
    methods: Interner,
    other: Arc<str>,
}

/// One finished call, as the metrics see it.
pub(crate) struct CallRecord {
    /// Interned by [`RpcMetrics::method`]; `None` is `_OTHER`.
    pub(crate) method: Option<Arc<str>>,
    pub(crate) code: Code,
    pub(crate) seconds: f64,
    pub(crate) exemplar: Option<TraceExemplar>,
    pub(crate) requests: Option<u64>,
    pub(crate) responses: u64,
}

impl RpcMetrics {
    fn register(builder: &MetricsBuilder, registry: &mut Registry, side: &'static str) -> Self {
        let registry = builder.scoped_registry(registry);
        let overflowed = MetricsBuilder::register_overflow_counter(
            registry,
            if side == "server" {
                "rpc_server"
            } else {
                "rpc_client"
            },
        );
        let duration =
            Family::<RpcLabels, HistogramWithExemplars<TraceExemplar>, _>::new_with_constructor(
                (|| HistogramWithExemplars::new(DURATION_BUCKETS.into_iter())) as fn() -> _,
            );
        let per_rpc = || Histogram::new(exponential_buckets(1.0, 2.0, 11));
        let requests =
            Family::<RpcLabels, Histogram, _>::new_with_constructor(per_rpc as fn() -> _);
        let responses =
            Family::<RpcLabels, Histogram, _>::new_with_constructor(per_rpc as fn() -> _);
        let (what, sent, received) = if side == "server" {
            ("gRPC server calls", "received", "sent")
        } else {
            ("gRPC client calls", "sent", "received")
        };
        registry.register_with_unit(
            format!("rpc_{side}_call_duration"),
            format!("Duration of {what}, until the response stream ended"),
            Unit::Seconds,
            duration.clone(),
        );
        // A client does not count the messages it sends (its request body is the channel's
        // own type, which a layer cannot wrap).
        let count_requests = side == "server";
        if count_requests {
            registry.register(
                format!("rpc_{side}_requests_per_rpc"),
                format!("Request messages {sent} per call, for {what}"),
                requests.clone(),
            );
        }
        registry.register(
            format!("rpc_{side}_responses_per_rpc"),
            format!("Response messages {received} per call, for {what}"),
            responses.clone(),
        );
        let series = SeriesCache::new(
            move |labels: &RpcLabels| RpcSeries {
                duration: duration.get_or_create_owned(labels),
                requests: count_requests.then(|| requests.get_or_create_owned(labels)),
                responses: responses.get_or_create_owned(labels),
            },
            builder.series_cap(),
            overflowed,
        );
        Self {
            series,
            methods: Interner::new(builder.series_cap()),
            other: Arc::from(OTHER_METHOD),
        }
    }

    /// The shared copy of a method name (bounded: past the cap, `_overflow`).
    pub(crate) fn method(&self, method: &str) -> Arc<str> {
        self.methods.get(method)
    }

    pub(crate) fn record(&self, call: CallRecord) {
        let method = call.method.unwrap_or_else(|| self.other.clone());
        let labels = RpcLabels {
            method: Some(method),
            code: call.code,
        };
        self.series.with(&labels, |series| {
            series.duration.observe(call.seconds, call.exemplar, None);
            if let (Some(requests), Some(histogram)) = (call.requests, &series.requests) {
                histogram.observe(requests as f64);
            }
            series.responses.observe(call.responses as f64);
        });
    }
}

/// The server metrics, registered: hand them to
/// [`GrpcTraceLayer::metrics`](crate::GrpcTraceLayer::metrics).
///
/// `rpc_server_call_duration_seconds` (histogram with the conventions' 14 advisory buckets and
/// `trace_id`/`span_id` exemplars for sampled calls), `rpc_server_requests_per_rpc` and
/// `rpc_server_responses_per_rpc` (messages per call), labelled `rpc_method` (`_OTHER` for
/// unimplemented methods) and `rpc_response_status_code`.
#[derive(Debug, Clone)]
pub struct GrpcServerMetrics {
    pub(crate) metrics: Arc<RpcMetrics>,
}

impl GrpcServerMetrics {
    /// Registers the server metrics into `registry` with the default options.
    pub fn new(registry: &mut Registry) -> Self {
        MetricsBuilder::new().grpc_server(registry)
    }
}

/// The client metrics, registered: hand them to
/// [`GrpcClientLayer::metrics`](crate::GrpcClientLayer::metrics).
///
/// `rpc_client_call_duration_seconds` (with trace exemplars) and `rpc_client_responses_per_rpc`,
/// labelled `rpc_method` and `rpc_response_status_code`.
#[derive(Debug, Clone)]
pub struct GrpcClientMetrics {
    pub(crate) metrics: Arc<RpcMetrics>,
}

impl GrpcClientMetrics {
    /// Registers the client metrics into `registry` with the default options.
    pub fn new(registry: &mut Registry) -> Self {
        MetricsBuilder::new().grpc_client(registry)
    }
}

/// Registers RPC metrics with the options of `trace-http`'s [`MetricsBuilder`] (prefix,
/// constant labels, series cap).
///
/// ```
/// use prometheus_client::registry::Registry;
/// use trace_grpc::GrpcMetricsExt;
/// use trace_http::metrics::MetricsBuilder;
///
/// let mut registry = Registry::default();
/// let server = MetricsBuilder::new()
///     .constant_label("service", "checkout")
///     .grpc_server(&mut registry);
/// # drop(server);
/// ```
pub trait GrpcMetricsExt {
    /// Registers the gRPC server metrics (see [`GrpcServerMetrics`]).
    fn grpc_server(self, registry: &mut Registry) -> GrpcServerMetrics;
    /// Registers the gRPC client metrics (see [`GrpcClientMetrics`]).
    fn grpc_client(self, registry: &mut Registry) -> GrpcClientMetrics;
}

impl GrpcMetricsExt for MetricsBuilder {
    fn grpc_server(self, registry: &mut Registry) -> GrpcServerMetrics {
        GrpcServerMetrics {
            metrics: Arc::new(RpcMetrics::register(&self, registry, "server")),
        }
    }

    fn grpc_client(self, registry: &mut Registry) -> GrpcClientMetrics {
        GrpcClientMetrics {
            metrics: Arc::new(RpcMetrics::register(&self, registry, "client")),
        }
    }
}
