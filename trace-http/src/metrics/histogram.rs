//! A histogram that records without a lock.
//!
//! `prometheus_client`'s [`Histogram`](prometheus_client::metrics::histogram::Histogram) takes a
//! mutex on every observation; this one keeps its bucket counts and sum in atomics, so a request
//! records its sizes with a few uncontended atomic operations and never waits for another
//! request or for a scrape. It encodes exactly as `prometheus_client`'s classic histogram does
//! (the same `_sum`, `_count` and cumulative `_bucket` lines), so the exposition is unchanged.

use std::collections::HashMap;
use std::iter::once;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::{MetricType, TypedMetric};

/// A classic histogram with fixed buckets whose observations are lock-free.
///
/// Clones share the same counts (as `prometheus_client`'s metrics do, so it can live in a
/// [`Family`](prometheus_client::metrics::family::Family)).
///
/// ```
/// use trace_http::metrics::AtomicHistogram;
///
/// let histogram = AtomicHistogram::new([1.0, 10.0]);
/// histogram.observe(4.0);
/// histogram.observe(40.0);
/// assert_eq!(histogram.count(), 2);
/// assert_eq!(histogram.sum(), 44.0);
/// assert_eq!(histogram.bucket_counts(), [(1.0, 0), (10.0, 1), (f64::INFINITY, 1)]);
/// ```
#[derive(Debug, Clone)]
pub struct AtomicHistogram {
    inner: Arc<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    /// Upper bounds, ascending, the last one `+Inf`.
    bounds: Box<[f64]>,
    /// Observations per bucket (not cumulative); the total count is their sum, so a scrape
    /// always reports a `_count` equal to the `+Inf` bucket.
    counts: Box<[AtomicU64]>,
    /// The sum of the observations, as `f64` bits.
    sum: AtomicU64,
}

impl AtomicHistogram {
    /// A histogram with these upper bounds (ascending) and the implicit `+Inf` bucket.
    ///
    /// Non-finite bounds are dropped, as `prometheus_client` does, so there is one `+Inf`
    /// bucket however the bounds are given.
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> Self {
        let bounds: Box<[f64]> = bounds
            .into_iter()
            .filter(|bound| bound.is_finite())
            .chain(once(f64::INFINITY))
            .collect();
        let counts = bounds.iter().map(|_| AtomicU64::new(0)).collect();
        Self {
            inner: Arc::new(Buckets {
                bounds,
                counts,
                sum: AtomicU64::new(0.0_f64.to_bits()),
            }),
        }
    }

    /// Records `value`.
    pub fn observe(&self, value: f64) {
        let inner = &*self.inner;
        // The first bucket whose bound is at least `value`; NaN compares false everywhere and
        // lands in `+Inf`, as in `prometheus_client`.
        let bucket = inner
            .bounds
            .iter()
            .position(|bound| *bound >= value)
            .unwrap_or(inner.bounds.len() - 1);
        if let Some(count) = inner.counts.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        // A failed exchange only means another observation landed first: retry with its sum.
        let mut current = inner.sum.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(current) + value).to_bits();
            match inner.sum.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
    }

    /// The sum of every observation so far.
    pub fn sum(&self) -> f64 {
        f64::from_bits(self.inner.sum.load(Ordering::Relaxed))
    }

    /// The number of observations so far.
    pub fn count(&self) -> u64 {
        self.inner
            .counts
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .sum()
    }

    /// Each bucket's upper bound and its own count (not cumulative), `+Inf` last.
    pub fn bucket_counts(&self) -> Vec<(f64, u64)> {
        self.inner
            .bounds
            .iter()
            .zip(self.inner.counts.iter())
            .map(|(bound, count)| (*bound, count.load(Ordering::Relaxed)))
            .collect()
    }
}

impl TypedMetric for AtomicHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        // Buckets first, then the sum: each count is read once, and `_count` is their total,
        // so the `+Inf` bucket and `_count` always agree within one scrape.
        let buckets = self.bucket_counts();
        let count = buckets.iter().map(|(_, count)| count).sum();
        encoder.encode_histogram::<NoLabelSet>(
            self.sum(),
            count,
            &buckets,
            None::<&HashMap<usize, Exemplar<NoLabelSet, f64>>>,
        )
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::{Metric, Registry, Unit};

    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_at_or_above_them() {
        let histogram = AtomicHistogram::new([1.0, 2.0, f64::INFINITY, f64::NAN]);
        for value in [0.5, 1.0, 1.5, 2.0, 3.0, f64::INFINITY] {
            histogram.observe(value);
        }
        assert_eq!(
            histogram.bucket_counts(),
            [(1.0, 2), (2.0, 2), (f64::INFINITY, 2)],
            "one +Inf bucket, bounds inclusive"
        );
        assert_eq!(histogram.count(), 6);
        assert_eq!(histogram.sum(), f64::INFINITY);
    }

    #[test]
    fn sum_and_count_add_up() {
        let histogram = AtomicHistogram::new([10.0, 100.0]);
        for value in [3.0, 30.0, 300.0, 0.25] {
            histogram.observe(value);
        }
        assert_eq!(histogram.count(), 4);
        assert_eq!(histogram.sum(), 333.25);
        histogram.observe(f64::NAN);
        assert_eq!(
            histogram.bucket_counts().last(),
            Some(&(f64::INFINITY, 2)),
            "NaN counts in +Inf"
        );
    }

    #[test]
    fn clones_share_their_counts() {
        let histogram = AtomicHistogram::new([1.0]);
        histogram.clone().observe(0.5);
        assert_eq!(histogram.count(), 1);
    }

    #[test]
    fn concurrent_observations_are_all_counted() {
        const THREADS: u64 = 4;
        const PER_THREAD: u64 = 10_000;
        let histogram = AtomicHistogram::new([1.0, 2.0, 4.0]);
        std::thread::scope(|scope| {
            for thread in 0..THREADS {
                let histogram = histogram.clone();
                scope.spawn(move || {
                    for i in 0..PER_THREAD {
                        // Small integers: every partial sum is exact in f64, so the total is
                        // the same in any interleaving.
                        histogram.observe(((thread + i) % 5) as f64);
                    }
                });
            }
        });
        assert_eq!(histogram.count(), THREADS * PER_THREAD);
        // Each thread observes 0, 1, 2, 3, 4 equally often (10,000 is a multiple of 5).
        let per_value = THREADS * PER_THREAD / 5;
        assert_eq!(
            histogram.bucket_counts(),
            [
                (1.0, 2 * per_value),
                (2.0, per_value),
                (4.0, 2 * per_value),
                (f64::INFINITY, 0)
            ]
        );
        assert_eq!(histogram.sum(), (per_value * (1 + 2 + 3 + 4)) as f64);
    }

    fn exposition(metric: impl Metric) -> String {
        let mut registry = Registry::default();
        registry.register_with_unit("body_size", "Sizes", Unit::Bytes, metric);
        let mut text = String::new();
        encode(&mut text, &registry).expect("encodes");
        text
    }

    /// The exposition is the one `prometheus_client`'s own histogram gives for the same
    /// observations (the format the `/metrics` tests check with Prometheus' parsers).
    #[test]
    fn encodes_like_the_prometheus_client_histogram() {
        let bounds = [64.0, 256.0, 1024.0];
        let ours = AtomicHistogram::new(bounds);
        let theirs = Histogram::new(bounds);
        for value in [10.0, 64.0, 65.5, 5000.0, 300.0] {
            ours.observe(value);
            theirs.observe(value);
        }
        let ours = exposition(ours);
        assert_eq!(ours, exposition(theirs));
        assert!(
            ours.contains("body_size_bytes_bucket{le=\"+Inf\"} 5\n"),
            "{ours}"
        );
    }
}
