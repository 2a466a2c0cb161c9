//! Deciding which traces are recorded.
//!
//! Samplers compose: the usual production set-up is
//!
//! ```
//! use trace_core::sampler::{DebugForced, ParentBased, RateLimited, Sampler, SamplingDecision, SamplingRequest};
//! use trace_core::{TraceFlags, TraceId};
//!
//! // Follow the caller's decision; start at most 10 new traces a second; let a debug header
//! // force a trace, but at most 1 a second.
//! let sampler = DebugForced::new(ParentBased::new(RateLimited::new(10.0)), 1.0);
//!
//! let trace_id = TraceId::random();
//! let unsampled_parent = SamplingRequest::new(trace_id, "GET /").with_parent(TraceFlags::EMPTY);
//! assert_eq!(sampler.should_sample(&unsampled_parent), SamplingDecision::Drop);
//! let debug = unsampled_parent.with_debug_requested(true);
//! assert_eq!(sampler.should_sample(&debug), SamplingDecision::SampleDebug);
//! ```
//!
//! Every sampler here decides without allocating or locking.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::{TraceFlags, TraceId};

/// What a sampler is asked about: a span that is about to start a trace or continue one.
#[derive(Debug, Clone, Copy)]
pub struct SamplingRequest<'a> {
    /// The trace the span belongs to (new or continued).
    pub trace_id: TraceId,
    /// The parent's flags, when the span has a parent (remote or local).
    pub parent: Option<TraceFlags>,
    /// Whether a debug trace is asked for (a `jaeger-debug-id` header, a debug flag).
    pub debug_requested: bool,
    /// The span's name.
    pub name: &'a str,
}

impl<'a> SamplingRequest<'a> {
    /// A request for a root span: no parent, no debug request.
    pub fn new(trace_id: TraceId, name: &'a str) -> Self {
        Self {
            trace_id,
            parent: None,
            debug_requested: false,
            name,
        }
    }

    /// With a parent carrying these flags.
    #[must_use]
    pub fn with_parent(mut self, flags: TraceFlags) -> Self {
        self.parent = Some(flags);
        self
    }

    /// With a debug request (or without).
    #[must_use]
    pub fn with_debug_requested(mut self, debug: bool) -> Self {
        self.debug_requested = debug;
        self
    }
}

/// A sampler's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SamplingDecision {
    /// Do not record; propagate "not sampled".
    Drop,
    /// Record and export; propagate "sampled".
    Sample,
    /// Record as a debug trace: propagate "sampled" and the debug flag, so downstream services
    /// keep it too.
    SampleDebug,
}

impl SamplingDecision {
    /// Whether spans are recorded.
    pub const fn is_sampled(self) -> bool {
        !matches!(self, Self::Drop)
    }

    /// The flags a new span gets: the decision's sampled and debug bits; other bits (such as
    /// [`TraceFlags::RANDOM`]) kept from `base`.
    pub const fn apply_to(self, base: TraceFlags) -> TraceFlags {
        base.with(TraceFlags::SAMPLED, self.is_sampled())
            .with(TraceFlags::DEBUG, matches!(self, Self::SampleDebug))
    }
}

/// Decides whether a trace is recorded. Called once per request (or per root span), on the
/// request path: implementations must be fast and must not block.
pub trait Sampler: Send + Sync + fmt::Debug + 'static {
    /// The decision for this span.
    fn should_sample(&self, request: &SamplingRequest<'_>) -> SamplingDecision;

    /// Whether [`should_sample`](Sampler::should_sample) ever reads
    /// [`SamplingRequest::name`]. A caller may skip working out a name nobody reads and pass
    /// a stand-in (the server layer then looks up the request's route only for the requests
    /// it records). Every sampler in this module says `false` (or asks the samplers it
    /// delegates to); the default, `true`, is right for any sampler that decides by name.
    fn reads_name(&self) -> bool {
        true
    }
}

impl<S: Sampler + ?Sized> Sampler for Arc<S> {
    fn should_sample(&self, request: &SamplingRequest<'_>) -> SamplingDecision {
        (**self).should_sample(request)
    }

    fn reads_name(&self) -> bool {
        (**self).reads_name()
    }
}

impl<S: Sampler + ?Sized> Sampler for Box<S> {
    fn should_sample(&self, request: &SamplingRequest<'_>) -> SamplingDecision {
        (**self).should_sample(request)
    }

    fn reads_name(&self) -> bool {
        (**self).reads_name()
    }
}

/// Samples everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysOn;

impl Sampler for AlwaysOn {
    fn should_sample(&self, _request: &SamplingRequest<'_>) -> SamplingDecision {
        SamplingDecision::Sample
    }

    fn reads_name(&self) -> bool {
        false
    }
}

/// Samples nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysOff;

impl Sampler for AlwaysOff {
    fn should_sample(&self, _request: &SamplingRequest<'_>) -> SamplingDecision {
        SamplingDecision::Drop
    }

    fn reads_name(&self) -> bool {
        false
    }
}

/// Samples a fixed fraction of traces, decided by the trace id alone so that every service with
/// the same ratio makes the same choice for the same trace.
///
/// Follows the OpenTelemetry rule for consistent probability sampling: the trace id's 56 least
/// significant bits (random under W3C Level 2, and in 64-bit Jaeger and B3 ids) are compared with
/// a threshold, and the trace is sampled when they are at least `(1 - ratio) * 2^56`.
#[derive(Debug, Clone, Copy)]
pub struct TraceIdRatio {
    ratio: f64,
    threshold: u64,
}

impl TraceIdRatio {
    const RANDOM_BITS: u32 = 56;

    /// Samples `ratio` of traces; values outside `0.0..=1.0` (and NaN) are clamped into it.
    pub fn new(ratio: f64) -> Self {
        let ratio = if ratio.is_nan() {
            0.0
        } else {
            ratio.clamp(0.0, 1.0)
        };
        let range = (1u64 << Self::RANDOM_BITS) as f64;
        // A ratio of 0 puts the threshold past every 56-bit value.
        let threshold = ((1.0 - ratio) * range).round() as u64;
        Self { ratio, threshold }
    }

    /// The configured ratio.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }
}

impl Sampler for TraceIdRatio {
    fn should_sample(&self, request: &SamplingRequest<'_>) -> SamplingDecision {
        let randomness = request.trace_id.low_u64() & ((1u64 << Self::RANDOM_BITS) - 1);
        if randomness >= self.threshold {
            SamplingDecision::Sample
        } else {
            SamplingDecision::Drop
        }
    }

    fn reads_name(&self) -> bool {
        false
    }
}

/// Follows the parent's decision when there is a parent; asks `root` otherwise.
#[derive(Debug, Clone)]
pub struct ParentBased {
    root: Arc<dyn Sampler>,
}

impl ParentBased {
    /// Delegates root spans to `root`.
    pub fn new(root: impl Sampler) -> Self {
        Self {
            root: Arc::new(root),
        }
    }
}

impl Sampler for ParentBased {
    fn should_sample(&self, request: &SamplingRequest<'_>) -> SamplingDecision {
        match request.parent {
            Some(flags) if flags.is_sampled() => SamplingDecision::Sample,
            Some(_) => SamplingDecision::Drop,
            None => self.root.should_sample(request),
        }
    }

    fn reads_name(&self) -> bool {
        self.root.reads_name()
    }
}

/// A lock-free token bucket: at most `rate` acquisitions a second on average, with bursts of up
/// to `burst`.
///
/// Implemented as the generic cell rate algorithm: one atomic holds the time at which the bucket
/// will be full again, so an acquisition is one clock read and one compare-and-swap. (A rate
/// limiting crate would bring its own clock and several dependencies into the crate every other
/// crate depends on, for these few lines.)
#[derive(Debug)]
pub struct RateLimiter {
    epoch: Instant,
    interval_nanos: u64,
    tolerance_nanos: u64,
    theoretical_arrival: AtomicU64,
}

impl RateLimiter {
    /// `rate` per second, with a burst of one second's worth (at least 1).
    pub fn new(rate: f64) -> Self {
        let burst = if rate.is_finite() && rate > 1.0 {
            rate.ceil() as u64
        } else {
            1
        };
        Self::with_burst(rate, burst)
    }

    /// `rate` per second, with bursts of up to `burst` (at least 1). A rate of zero, negative or
    /// NaN never grants; an infinite rate always does.
    pub fn with_burst(rate: f64, burst: u64) -> Self {
        let interval_nanos = if rate.is_nan() || rate <= 0.0 {
            u64::MAX
        } else {
            (1e9 / rate).round().min(u64::MAX as f64) as u64
        };
        let burst = burst.max(1);
        Self {
            epoch: Instant::now(),
            interval_nanos,
            tolerance_nanos: interval_nanos.saturating_mul(burst - 1),
            theoretical_arrival: AtomicU64::new(0),
        }
    }

    /// Takes a token if one is available.
    pub fn try_acquire(&self) -> bool {
        if self.interval_nanos == u64::MAX {
            return false;
        }
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut arrival = self.theoretical_arrival.load(Ordering::Relaxed);
        loop {
            let start = arrival.max(now);
            if start - now > self.tolerance_nanos {
                return false;
            }
            let next = start.saturating_add(self.interval_nanos);
            match self.theoretical_arrival.compare_exchange_weak(
                arrival,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => arrival = actual,
            }
        }
    }
}

/// Samples at most `rate` new traces a second (token bucket), and nothing beyond.
///
/// Usually wrapped in [`ParentBased`], so that it limits only the traces this service starts.
#[derive(Debug)]
pub struct RateLimited {
    limiter: RateLimiter,
    refused: AtomicU64,
}

impl RateLimited {
    /// At most `rate` traces a second, in bursts of up to one second's worth.
    pub fn new(rate: f64) -> Self {
        Self {
            limiter: RateLimiter::new(rate),
            refused: AtomicU64::new(0),
        }
    }

    /// Traces not sampled because the rate was used up.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl Sampler for RateLimited {
    fn should_sample(&self, _request: &SamplingRequest<'_>) -> SamplingDecision {
        if self.limiter.try_acquire() {
            SamplingDecision::Sample
        } else {
            self.refused.fetch_add(1, Ordering::Relaxed);
            SamplingDecision::Drop
        }
    }

    fn reads_name(&self) -> bool {
        false
    }
}

/// Forces a debug trace when one is asked for (a `jaeger-debug-id` header, a debug flag),
/// within its own cap; everything else goes to `inner`.
///
/// The cap exists because the request comes from the network: a client sending a debug header on
/// every request must not be able to flood the tracing backend. Over the cap the request is
/// sampled as `inner` would sample it (without the debug flag), and the refusal is counted.
#[derive(Debug)]
pub struct DebugForced {
    inner: Arc<dyn Sampler>,
    limiter: RateLimiter,
    forced: AtomicU64,
    refused: AtomicU64,
}

impl DebugForced {
    /// Forces at most `max_per_second` debug traces a second; asks `inner` otherwise.
    pub fn new(inner: impl Sampler, max_per_second: f64) -> Self {
        Self {
            inner: Arc::new(inner),
            limiter: RateLimiter::new(max_per_second),
            forced: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Debug traces forced so far.
    pub fn forced(&self) -> u64 {
        self.forced.load(Ordering::Relaxed)
    }

    /// Debug requests refused for being over the cap.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl Sampler for DebugForced {
    fn should_sample(&self, request: &SamplingRequest<'_>) -> SamplingDecision {
        if request.debug_requested {
            if self.limiter.try_acquire() {
                self.forced.fetch_add(1, Ordering::Relaxed);
                return SamplingDecision::SampleDebug;
            }
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        match self.inner.should_sample(request) {
            SamplingDecision::SampleDebug => SamplingDecision::Sample,
            decision => decision,
        }
    }

    fn reads_name(&self) -> bool {
        self.inner.reads_name()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[derive(Debug)]
    struct ByName;

    impl Sampler for ByName {
        fn should_sample(&self, request: &SamplingRequest<'_>) -> SamplingDecision {
            if request.name == "keep" {
                SamplingDecision::Sample
            } else {
                SamplingDecision::Drop
            }
        }
    }

    #[test]
    fn only_samplers_that_may_decide_by_name_say_they_read_it() {
        assert!(!AlwaysOn.reads_name());
        assert!(!AlwaysOff.reads_name());
        assert!(!TraceIdRatio::new(0.5).reads_name());
        assert!(!RateLimited::new(1.0).reads_name());
        assert!(!ParentBased::new(TraceIdRatio::new(0.5)).reads_name());
        assert!(!DebugForced::new(ParentBased::new(AlwaysOn), 1.0).reads_name());
        assert!(ByName.reads_name(), "the default");
        assert!(ParentBased::new(ByName).reads_name());
        assert!(DebugForced::new(ParentBased::new(ByName), 1.0).reads_name());
        assert!(Arc::new(ByName).reads_name());
        assert!(!(Box::new(AlwaysOn) as Box<dyn Sampler>).reads_name());
    }

    fn request_with_low_bits(low: u64) -> SamplingRequest<'static> {
        let trace_id = TraceId::from_halves(0xdead, low).expect("non-zero");
        SamplingRequest::new(trace_id, "x")
    }

    #[test]
    fn ratio_is_deterministic_on_the_trace_id() {
        let half = TraceIdRatio::new(0.5);
        assert_eq!(
            half.should_sample(&request_with_low_bits(0x00ff_ffff_ffff_ffff)),
            SamplingDecision::Sample
        );
        assert_eq!(
            half.should_sample(&request_with_low_bits(0x0080_0000_0000_0000)),
            SamplingDecision::Sample
        );
        assert_eq!(
            half.should_sample(&request_with_low_bits(0x007f_ffff_ffff_ffff)),
            SamplingDecision::Drop
        );
        // The top byte is not part of the randomness.
        assert_eq!(
            half.should_sample(&request_with_low_bits(0xff7f_ffff_ffff_ffff)),
            SamplingDecision::Drop
        );
        let never = TraceIdRatio::new(0.0);
        let always = TraceIdRatio::new(1.0);
        for low in [1, 0x00ff_ffff_ffff_ffff, 0x0080_0000_0000_0000] {
            assert_eq!(
                never.should_sample(&request_with_low_bits(low)),
                SamplingDecision::Drop
            );
            assert_eq!(
                always.should_sample(&request_with_low_bits(low)),
                SamplingDecision::Sample
            );
        }
        assert_eq!(TraceIdRatio::new(f64::NAN).ratio(), 0.0);
        assert_eq!(TraceIdRatio::new(7.0).ratio(), 1.0);
    }

    #[test]
    fn ratio_samples_about_the_ratio() {
        let sampler = TraceIdRatio::new(0.25);
        let sampled = (0..20_000)
            .filter(|_| {
                sampler
                    .should_sample(&SamplingRequest::new(TraceId::random(), "x"))
                    .is_sampled()
            })
            .count();
        assert!((4_400..5_600).contains(&sampled), "{sampled}");
    }

    #[test]
    fn parent_based_follows_the_parent() {
        let sampler = ParentBased::new(AlwaysOff);
        let request = SamplingRequest::new(TraceId::random(), "x");
        assert_eq!(sampler.should_sample(&request), SamplingDecision::Drop);
        assert_eq!(
            sampler.should_sample(&request.with_parent(TraceFlags::SAMPLED)),
            SamplingDecision::Sample
        );
        let sampler = ParentBased::new(AlwaysOn);
        assert_eq!(sampler.should_sample(&request), SamplingDecision::Sample);
        assert_eq!(
            sampler.should_sample(&request.with_parent(TraceFlags::RANDOM)),
            SamplingDecision::Drop
        );
    }

    #[test]
    fn rate_limited_caps_bursts_and_refills() {
        let sampler = RateLimited::new(5.0);
        let request = SamplingRequest::new(TraceId::random(), "x");
        let first: usize = (0..100)
            .filter(|_| sampler.should_sample(&request).is_sampled())
            .count();
        assert_eq!(first, 5, "burst of one second's worth");
        assert_eq!(sampler.refused(), 95);
        let pause = Instant::now();
        std::thread::sleep(Duration::from_millis(450));
        let later = (0..100)
            .filter(|_| sampler.should_sample(&request).is_sampled())
            .count();
        // At 5/s, 0.45 s refills two tokens; a slow machine may sleep longer, never past the
        // one-second burst.
        let refilled = (pause.elapsed().as_secs_f64() * 5.0).floor() as usize;
        assert!(
            (2..=refilled.clamp(2, 5)).contains(&later),
            "{later} after {:?} at 5/s",
            pause.elapsed()
        );
    }

    #[test]
    fn limiter_edge_rates() {
        assert!(!RateLimiter::new(0.0).try_acquire());
        assert!(!RateLimiter::new(-1.0).try_acquire());
        assert!(!RateLimiter::new(f64::NAN).try_acquire());
        let unlimited = RateLimiter::new(f64::INFINITY);
        assert!((0..1000).all(|_| unlimited.try_acquire()));
        let slow = RateLimiter::new(0.5);
        assert!(slow.try_acquire());
        assert!(!slow.try_acquire());
    }

    #[test]
    fn debug_is_forced_within_its_cap_then_traced_normally() {
        let sampler = DebugForced::new(ParentBased::new(AlwaysOff), 2.0);
        let debug = SamplingRequest::new(TraceId::random(), "x").with_debug_requested(true);
        let decisions: Vec<_> = (0..5).map(|_| sampler.should_sample(&debug)).collect();
        assert_eq!(
            decisions,
            [
                SamplingDecision::SampleDebug,
                SamplingDecision::SampleDebug,
                SamplingDecision::Drop,
                SamplingDecision::Drop,
                SamplingDecision::Drop
            ]
        );
        assert_eq!((sampler.forced(), sampler.refused()), (2, 3));
        // Over the cap, a sampled debug parent is still followed, without the debug flag.
        let sampled_parent = debug.with_parent(TraceFlags::SAMPLED | TraceFlags::DEBUG);
        assert_eq!(
            sampler.should_sample(&sampled_parent),
            SamplingDecision::Sample
        );
        // No debug request: the cap is not touched.
        let plain = SamplingRequest::new(TraceId::random(), "x");
        assert_eq!(sampler.should_sample(&plain), SamplingDecision::Drop);
        assert_eq!(sampler.refused(), 4);
    }

    #[test]
    fn decisions_map_to_flags() {
        let base = TraceFlags::RANDOM | TraceFlags::DEBUG;
        assert_eq!(SamplingDecision::Drop.apply_to(base), TraceFlags::RANDOM);
        assert_eq!(
            SamplingDecision::Sample.apply_to(base),
            TraceFlags::RANDOM | TraceFlags::SAMPLED
        );
        assert_eq!(
            SamplingDecision::SampleDebug.apply_to(TraceFlags::EMPTY),
            TraceFlags::SAMPLED | TraceFlags::DEBUG
        );
    }
}
