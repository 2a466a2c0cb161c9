//! The exporters' health as Prometheus metrics.

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The `exporter` label alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ExporterLabel(&'static str);

impl EncodeLabelSet for ExporterLabel {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        ("exporter", self.0).encode(encoder.encode_label())
    }
}

/// The `exporter` and `reason` labels of the dropped-spans counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct DropLabels {
    exporter: &'static str,
    reason: &'static str,
}

impl EncodeLabelSet for DropLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        ("exporter", self.exporter).encode(encoder.encode_label())?;
        ("reason", self.reason).encode(encoder.encode_label())
    }
}

type DurationFamily = Family<ExporterLabel, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    // 1 ms to about 16 s: a loopback export to a batch that hits a 10 s timeout.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The metric families every [`BatchExporter`](crate::BatchExporter) reports into, registered
/// once and shared by all exporters of a process; each exporter's series carry an
/// `exporter="<kind>"` label ([`SpanExporter::kind`](crate::SpanExporter::kind)).
///
/// | metric | type | labels |
/// |---|---|---|
/// | `trace_exporter_spans_exported_total` | counter | `exporter` |
/// | `trace_exporter_spans_dropped_total` | counter | `exporter`, `reason` ([`drop_reason`](crate::pipeline::drop_reason)) |
/// | `trace_exporter_failed_batches_total` | counter (failed export calls, retries included) | `exporter` |
/// | `trace_exporter_queue_length` | gauge (refreshed by the export task) | `exporter` |
/// | `trace_exporter_export_duration_seconds` | histogram (every export call) | `exporter` |
///
/// ```
/// use prometheus_client::registry::Registry;
/// use trace_exporters::ExporterMetrics;
///
/// let mut registry = Registry::default();
/// let metrics = ExporterMetrics::register(&mut registry);
/// // Hand `&metrics` to each exporter's builder: `BatchExporter::builder(e).metrics(&metrics)`.
/// # let _ = metrics;
/// ```
#[derive(Debug, Clone)]
pub struct ExporterMetrics {
    exported: Family<ExporterLabel, Counter>,
    dropped: Family<DropLabels, Counter>,
    failed_batches: Family<ExporterLabel, Counter>,
    queue_length: Family<ExporterLabel, Gauge>,
    export_duration: DurationFamily,
}

impl ExporterMetrics {
    /// Registers the families into `registry` (once per registry) and returns the handle the
    /// builders take.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            exported: Family::default(),
            dropped: Family::default(),
            failed_batches: Family::default(),
            queue_length: Family::default(),
            export_duration: Family::new_with_constructor(duration_histogram),
        };
        registry.register(
            "trace_exporter_spans_exported",
            "Spans the destination accepted",
            metrics.exported.clone(),
        );
        registry.register(
            "trace_exporter_spans_dropped",
            "Spans given up on, by reason",
            metrics.dropped.clone(),
        );
        registry.register(
            "trace_exporter_failed_batches",
            "Export calls that failed (each retry counts)",
            metrics.failed_batches.clone(),
        );
        registry.register(
            "trace_exporter_queue_length",
            "Spans waiting in the export queue",
            metrics.queue_length.clone(),
        );
        registry.register(
            "trace_exporter_export_duration_seconds",
            "Duration of export calls",
            metrics.export_duration.clone(),
        );
        metrics
    }

    /// The series of one exporter, looked up once so the pipeline updates them without a
    /// family lookup.
    pub(crate) fn bind(&self, exporter: &'static str) -> BoundMetrics {
        let label = ExporterLabel(exporter);
        let bound = BoundMetrics {
            exporter,
            family: self.clone(),
            exported: self.exported.get_or_create_owned(&label),
            queue_full: self.dropped.get_or_create_owned(&DropLabels {
                exporter,
                reason: super::drop_reason::QUEUE_FULL,
            }),
            closed: self.dropped.get_or_create_owned(&DropLabels {
                exporter,
                reason: super::drop_reason::CLOSED,
            }),
            failed_batches: self.failed_batches.get_or_create_owned(&label),
            queue_length: self.queue_length.get_or_create_owned(&label),
            export_duration: self.export_duration.get_or_create_owned(&label),
        };
        // The reasons an operator alerts on are visible at zero before the first drop.
        for reason in [
            super::drop_reason::RETRIES_EXHAUSTED,
            super::drop_reason::REJECTED,
        ] {
            bound.dropped(reason, 0);
        }
        bound
    }
}

/// One exporter's series.
#[derive(Debug, Clone)]
pub(crate) struct BoundMetrics {
    exporter: &'static str,
    family: ExporterMetrics,
    pub(crate) exported: Counter,
    pub(crate) queue_full: Counter,
    pub(crate) closed: Counter,
    pub(crate) failed_batches: Counter,
    pub(crate) queue_length: Gauge,
    pub(crate) export_duration: Histogram,
}

impl BoundMetrics {
    /// Counts `count` spans dropped for `reason` (off the hot path: one family lookup).
    pub(crate) fn dropped(&self, reason: &'static str, count: u64) {
        self.family
            .dropped
            .get_or_create(&DropLabels {
                exporter: self.exporter,
                reason,
            })
            .inc_by(count);
    }
}
