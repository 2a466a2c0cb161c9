//! Label sets, bounded families and the trace exemplar.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use http::StatusCode;
use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use trace_core::{SpanContext, SpanId, TraceId};

/// What an overflowing label value is replaced with.
pub(crate) const OVERFLOW: &str = "_overflow";

/// Why a request failed, as the `error_type` label (absent when it did not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ErrorType {
    /// The response status is the error (5xx on servers, 4xx and 5xx on clients): the label is
    /// the status code, as the conventions ask.
    Status,
    /// The inner service returned an error instead of a response.
    Other,
    /// The response body failed while being sent.
    ResponseBody,
}

/// Labels of a server request metric.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ServerLabels {
    pub(crate) method: &'static str,
    pub(crate) route: Option<Arc<str>>,
    pub(crate) status: Option<StatusCode>,
    pub(crate) error: Option<ErrorType>,
}

/// Labels of a client request metric.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ClientLabels {
    pub(crate) method: &'static str,
    pub(crate) server_address: Option<Arc<str>>,
    pub(crate) status: Option<StatusCode>,
    pub(crate) error: Option<ErrorType>,
}

/// Label sets that have a stand-in for "too many distinct series".
pub(crate) trait Overflow {
    fn overflow() -> Self;
}

impl Overflow for ServerLabels {
    fn overflow() -> Self {
        Self {
            method: OVERFLOW,
            route: None,
            status: None,
            error: None,
        }
    }
}

impl Overflow for ClientLabels {
    fn overflow() -> Self {
        Self {
            method: OVERFLOW,
            server_address: None,
            status: None,
            error: None,
        }
    }
}

fn encode_status_and_error(
    status: Option<StatusCode>,
    error: Option<ErrorType>,
    encoder: &mut LabelSetEncoder<'_>,
) -> Result<(), std::fmt::Error> {
    if let Some(status) = status {
        ("http_response_status_code", status.as_str()).encode(encoder.encode_label())?;
    }
    match (error, status) {
        (None, _) => Ok(()),
        (Some(ErrorType::Status), Some(status)) => {
            ("error_type", status.as_str()).encode(encoder.encode_label())
        }
        (Some(ErrorType::Status | ErrorType::Other), _) => {
            ("error_type", "_OTHER").encode(encoder.encode_label())
        }
        (Some(ErrorType::ResponseBody), _) => {
            ("error_type", "response_body").encode(encoder.encode_label())
        }
    }
}

impl EncodeLabelSet for ServerLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        ("http_request_method", self.method).encode(encoder.encode_label())?;
        // Unmatched requests get an empty route, never the raw path.
        let route = self.route.as_deref().unwrap_or("");
        ("http_route", route).encode(encoder.encode_label())?;
        encode_status_and_error(self.status, self.error, encoder)
    }
}

impl EncodeLabelSet for ClientLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        ("http_request_method", self.method).encode(encoder.encode_label())?;
        let address = self.server_address.as_deref().unwrap_or("");
        ("server_address", address).encode(encoder.encode_label())?;
        encode_status_and_error(self.status, self.error, encoder)
    }
}

/// The `http_request_method` label alone (the active-requests gauge).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct MethodLabel(pub(crate) &'static str);

impl EncodeLabelSet for MethodLabel {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        ("http_request_method", self.0).encode(encoder.encode_label())
    }
}

/// The exemplar that links a histogram bucket to a trace: `trace_id` and `span_id`, written
/// from the ids at scrape time (nothing is formatted per request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TraceExemplar {
    trace_id: TraceId,
    span_id: SpanId,
}

impl TraceExemplar {
    /// The exemplar for a request traced in `context`, if it was sampled.
    pub(crate) fn of(context: &SpanContext) -> Option<Self> {
        context.is_sampled().then(|| Self {
            trace_id: context.trace_id(),
            span_id: context.span_id(),
        })
    }
}

impl EncodeLabelSet for TraceExemplar {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        ("trace_id", &*self.trace_id.to_hex()).encode(encoder.encode_label())?;
        ("span_id", &*self.span_id.to_hex()).encode(encoder.encode_label())
    }
}

/// A metric family with a cap on distinct label sets: past it, observations go to one overflow
/// series and are counted, so no label source can grow the exposition without bound.
#[derive(Debug)]
pub(crate) struct CappedFamily<S, M, C> {
    family: Family<S, M, C>,
    max_series: usize,
    /// Series created so far (the family does not say; concurrent first observations of one
    /// label set may count it twice, which only reaches the cap a little early).
    series: AtomicUsize,
    overflowed: Counter,
}

impl<S, M, C> CappedFamily<S, M, C>
where
    S: Clone + Hash + Eq + Overflow,
    C: MetricConstructor<M>,
{
    pub(crate) fn new(family: Family<S, M, C>, max_series: usize, overflowed: Counter) -> Self {
        Self {
            family,
            max_series,
            series: AtomicUsize::new(0),
            overflowed,
        }
    }

    /// Runs `f` on the series for `labels` (or the overflow series).
    pub(crate) fn with(&self, labels: &S, f: impl FnOnce(&M)) {
        if let Some(metric) = self.family.get(labels) {
            return f(&metric);
        }
        if self.series.load(Ordering::Relaxed) >= self.max_series {
            self.overflowed.inc();
            return f(&self.family.get_or_create(&S::overflow()));
        }
        self.series.fetch_add(1, Ordering::Relaxed);
        f(&self.family.get_or_create(labels));
    }
}

/// Shares one `Arc<str>` per distinct value (routes, server addresses), so building a label set
/// for a known value allocates nothing; bounded like the families.
#[derive(Debug)]
pub(crate) struct Interner {
    values: RwLock<HashSet<Arc<str>>>,
    max_values: usize,
}

impl Interner {
    pub(crate) fn new(max_values: usize) -> Self {
        Self {
            values: RwLock::new(HashSet::new()),
            max_values,
        }
    }

    pub(crate) fn get(&self, value: &str) -> Arc<str> {
        if let Some(shared) = self
            .values
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(value)
        {
            return shared.clone();
        }
        let mut values = self.values.write().unwrap_or_else(PoisonError::into_inner);
        if values.len() >= self.max_values {
            return Arc::from(OVERFLOW);
        }
        let shared: Arc<str> = Arc::from(value);
        values.insert(shared.clone());
        shared
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter as PromCounter;

    use super::*;

    #[test]
    fn the_cap_sends_new_series_to_overflow_and_counts_them() {
        let overflowed = PromCounter::default();
        let family = CappedFamily::new(
            Family::<ServerLabels, PromCounter>::default(),
            2,
            overflowed.clone(),
        );
        let labels = |route: &str| ServerLabels {
            method: "GET",
            route: Some(Arc::from(route)),
            status: Some(StatusCode::OK),
            error: None,
        };
        for route in ["/a", "/b", "/c", "/d", "/a"] {
            family.with(&labels(route), |c| {
                c.inc();
            });
        }
        assert_eq!(overflowed.get(), 2);
        assert_eq!(family.series.load(Ordering::Relaxed), 2);
        assert_eq!(
            family
                .family
                .get(&ServerLabels::overflow())
                .map(|c| c.get()),
            Some(2)
        );
        assert_eq!(family.family.get(&labels("/a")).map(|c| c.get()), Some(2));
    }

    #[test]
    fn the_interner_shares_and_is_bounded() {
        let interner = Interner::new(2);
        let a = interner.get("/a");
        assert!(Arc::ptr_eq(&a, &interner.get("/a")));
        let _b = interner.get("/b");
        assert_eq!(&*interner.get("/c"), OVERFLOW);
    }
}
