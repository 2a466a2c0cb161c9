//! The request-duration series: a histogram whose buckets take a trace exemplar at most once per
//! interval each.
//!
//! A bucket shows one exemplar, the last it took, so replacing it on every sampled request
//! spends work that a scrape mostly never sees: `prometheus_client` stores each one in a map
//! under a lock, with a hash. Taking at most one per bucket per interval (as Prometheus's own
//! Java client does) keeps every bucket's exemplar fresh, lets a rare slow request still mark
//! its bucket (buckets are limited separately), and leaves a busy bucket's requests with a bucket
//! lookup and a timestamp check.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::metrics::exemplar::HistogramWithExemplars;

use super::family::TraceExemplar;
use super::layer::DURATION_BUCKETS;

/// How often a bucket takes a new exemplar unless configured otherwise.
pub const DEFAULT_EXEMPLAR_INTERVAL: Duration = Duration::from_millis(100);

/// One label set's duration histogram, and when each of its buckets last took an exemplar.
#[derive(Debug)]
pub(crate) struct DurationSeries {
    histogram: HistogramWithExemplars<TraceExemplar>,
    /// Milliseconds between two exemplars of a bucket; 0 takes every one.
    interval_ms: u64,
    created: Instant,
    /// Per bucket (the last is `+Inf`): milliseconds since `created`, plus one, when it last
    /// took an exemplar; 0 if it never did.
    exemplar_taken: [AtomicU64; DURATION_BUCKETS.len() + 1],
}

impl DurationSeries {
    /// Records into `histogram` (registered with [`DURATION_BUCKETS`]).
    pub(crate) fn new(
        histogram: HistogramWithExemplars<TraceExemplar>,
        exemplar_interval: Duration,
    ) -> Self {
        Self {
            histogram,
            interval_ms: u64::try_from(exemplar_interval.as_millis()).unwrap_or(u64::MAX),
            created: Instant::now(),
            exemplar_taken: Default::default(),
        }
    }

    /// Records a duration that ended at `now`, with `exemplar` if its bucket is due one.
    pub(crate) fn observe(&self, seconds: f64, exemplar: Option<TraceExemplar>, now: Instant) {
        let exemplar = exemplar.filter(|_| self.exemplar_due(seconds, now));
        self.histogram.observe(seconds, exemplar, None);
    }

    /// Whether the bucket `seconds` falls in takes an exemplar now (and notes that it did).
    fn exemplar_due(&self, seconds: f64, now: Instant) -> bool {
        if self.interval_ms == 0 {
            return true;
        }
        // The bucket is the first whose upper bound is at least `seconds`, as the histogram
        // counts it.
        let bucket = DURATION_BUCKETS.partition_point(|&bound| bound < seconds);
        let Some(taken) = self.exemplar_taken.get(bucket) else {
            return true;
        };
        let elapsed = now.saturating_duration_since(self.created);
        let stamp = elapsed.as_secs() * 1000 + u64::from(elapsed.subsec_millis()) + 1;
        let last = taken.load(Ordering::Relaxed);
        if last != 0 && stamp.saturating_sub(last) < self.interval_ms {
            return false;
        }
        // Two requests racing here may both take one: the later simply wins, as it would
        // without the interval.
        taken.store(stamp, Ordering::Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    use trace_core::{SpanContext, SpanId, TraceFlags, TraceId};

    use super::*;

    fn exemplar() -> Option<TraceExemplar> {
        TraceExemplar::of(&SpanContext::new(
            TraceId::random(),
            SpanId::random(),
            TraceFlags::SAMPLED,
        ))
    }

    fn series(interval: Duration) -> DurationSeries {
        DurationSeries::new(
            HistogramWithExemplars::new(DURATION_BUCKETS.into_iter()),
            interval,
        )
    }

    #[test]
    fn a_bucket_takes_one_exemplar_per_interval() {
        let series = series(Duration::from_millis(100));
        let start = series.created;
        assert!(series.exemplar_due(0.003, start));
        assert!(!series.exemplar_due(0.004, start + Duration::from_millis(50)));
        // Another bucket is limited on its own: a rare slow request still marks its bucket.
        assert!(series.exemplar_due(0.3, start + Duration::from_millis(50)));
        assert!(series.exemplar_due(0.9, start + Duration::from_millis(50)));
        assert!(series.exemplar_due(100.0, start + Duration::from_millis(50)));
        assert!(series.exemplar_due(0.002, start + Duration::from_millis(101)));
        // A bound belongs to its own bucket (`le`), as the histogram counts it.
        assert!(!series.exemplar_due(0.005, start + Duration::from_millis(150)));
        assert!(series.exemplar_due(0.0051, start + Duration::from_millis(150)));
    }

    #[test]
    fn a_zero_interval_takes_every_exemplar() {
        let series = series(Duration::ZERO);
        let now = Instant::now();
        for _ in 0..3 {
            assert!(series.exemplar_due(0.003, now));
        }
        series.observe(0.003, exemplar(), now);
        series.observe(0.003, exemplar(), now);
    }
}
