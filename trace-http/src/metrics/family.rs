//! Label sets, bounded families and the trace exemplar.

use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use http::StatusCode;
use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use rustc_hash::{FxHashMap, FxHashSet};
use trace_core::{SpanContext, SpanId, TraceId};

/// What an overflowing label value is replaced with.
pub const OVERFLOW: &str = "_overflow";

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
    /// The request was given up before its response was ready: the client went away, or a
    /// timeout layer outside cancelled it.
    Aborted,
    /// The inner service panicked while producing the response (a panic-catching layer outside
    /// answered instead).
    Panic,
}

/// A label value kept for the life of the program, held by one thin reference to its text (an
/// entry of `METHOD_NAMES`, a kept route template): the reference's address identifies the
/// value, and a label set holding a few of them stays small enough to be moved cheaply.
pub(crate) type KeptText = &'static &'static str;

/// The overflow label value as a [`KeptText`].
pub(crate) static OVERFLOW_TEXT: &str = OVERFLOW;

/// Labels of a server request metric.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ServerLabels {
    pub(crate) method: KeptText,
    /// A kept route template (see `crate::route`).
    pub(crate) route: Option<KeptText>,
    pub(crate) status: Option<StatusCode>,
    pub(crate) error: Option<ErrorType>,
}

/// Labels of a client request metric.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ClientLabels {
    pub(crate) method: KeptText,
    pub(crate) server_address: Option<Arc<str>>,
    pub(crate) status: Option<StatusCode>,
    pub(crate) error: Option<ErrorType>,
}

/// Label sets that have a stand-in for "too many distinct series".
pub trait Overflow {
    /// The label set that stands for every series past the cap.
    fn overflow() -> Self;
}

impl Overflow for ServerLabels {
    fn overflow() -> Self {
        Self {
            method: &OVERFLOW_TEXT,
            route: None,
            status: None,
            error: None,
        }
    }
}

impl Overflow for ClientLabels {
    fn overflow() -> Self {
        Self {
            method: &OVERFLOW_TEXT,
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
        (Some(ErrorType::Aborted), _) => ("error_type", "aborted").encode(encoder.encode_label()),
        (Some(ErrorType::Panic), _) => ("error_type", "panic").encode(encoder.encode_label()),
    }
}

impl EncodeLabelSet for ServerLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        ("http_request_method", *self.method).encode(encoder.encode_label())?;
        // Unmatched requests get an empty route, never the raw path.
        let route = self.route.map_or("", |route| *route);
        ("http_route", route).encode(encoder.encode_label())?;
        encode_status_and_error(self.status, self.error, encoder)
    }
}

impl EncodeLabelSet for ClientLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        ("http_request_method", *self.method).encode(encoder.encode_label())?;
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
pub struct TraceExemplar {
    /// The trace id's high and low halves: two words rather than a `u128`, whose 16-byte
    /// alignment would pad every observer that carries an exemplar.
    trace_id: [u64; 2],
    span_id: SpanId,
}

impl TraceExemplar {
    /// The exemplar for a request traced in `context`, if it was sampled.
    pub fn of(context: &SpanContext) -> Option<Self> {
        context.is_sampled().then(|| {
            let trace_id = context.trace_id().to_u128();
            Self {
                trace_id: [(trace_id >> 64) as u64, trace_id as u64],
                span_id: context.span_id(),
            }
        })
    }

    /// The trace id.
    fn trace_id(&self) -> Option<TraceId> {
        TraceId::from_u128((u128::from(self.trace_id[0]) << 64) | u128::from(self.trace_id[1]))
    }
}

impl EncodeLabelSet for TraceExemplar {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        if let Some(trace_id) = self.trace_id() {
            ("trace_id", &*trace_id.to_hex()).encode(encoder.encode_label())?;
        }
        ("span_id", &*self.span_id.to_hex()).encode(encoder.encode_label())
    }
}

/// Label sets that can be keyed cheaply: by the addresses of their interned strings, which
/// identify them as well as the text does (the strings live in the layer's interner or are
/// `'static`, so an address is never reused for another value).
pub trait SeriesLabels: Clone + Overflow {
    /// The cheap key.
    type Key: Hash + Eq + Copy;
    /// This label set's key.
    fn key(&self) -> Self::Key;
}

fn kept_address(value: KeptText) -> usize {
    std::ptr::from_ref(value) as usize
}

fn shared_address(value: &Option<Arc<str>>) -> usize {
    value
        .as_ref()
        .map_or(0, |v| Arc::as_ptr(v).cast::<u8>() as usize)
}

impl SeriesLabels for ServerLabels {
    type Key = (usize, usize, u16, Option<ErrorType>);
    fn key(&self) -> Self::Key {
        (
            kept_address(self.method),
            self.route.map_or(0, kept_address),
            self.status.map_or(0, |s| s.as_u16()),
            self.error,
        )
    }
}

impl SeriesLabels for ClientLabels {
    type Key = (usize, usize, u16, Option<ErrorType>);
    fn key(&self) -> Self::Key {
        (
            kept_address(self.method),
            shared_address(&self.server_address),
            self.status.map_or(0, |s| s.as_u16()),
            self.error,
        )
    }
}

/// The handles of every metric one label set records into, found with one lookup per request
/// (instead of one hash of the label text per metric), and capped in number: past the cap,
/// observations go to the overflow label set and are counted, so no label source can grow the
/// exposition without bound.
///
/// Lookups take no lock: the map is immutable and shared through an [`ArcSwap`]; adding a label
/// set (rare, bounded by the cap) copies it under a mutex only inserters take, and swaps the
/// copy in.
pub struct SeriesCache<S: SeriesLabels, V> {
    series: ArcSwap<FxHashMap<S::Key, Arc<V>>>,
    /// Serialises inserts, so none is lost between copying the map and swapping it in.
    inserting: Mutex<()>,
    make: Box<dyn Fn(&S) -> V + Send + Sync>,
    max_series: usize,
    overflowed: Counter,
}

impl<S: SeriesLabels, V> SeriesCache<S, V> {
    /// A cache that makes a label set's handles with `make`, for at most `max_series` label
    /// sets; observations past that go to the overflow label set and count in `overflowed`.
    pub fn new(
        make: impl Fn(&S) -> V + Send + Sync + 'static,
        max_series: usize,
        overflowed: Counter,
    ) -> Self {
        Self {
            series: ArcSwap::from_pointee(FxHashMap::default()),
            inserting: Mutex::new(()),
            make: Box::new(make),
            max_series,
            overflowed,
        }
    }

    /// Runs `f` on the handles for `labels` (or the overflow label set's, counting one
    /// observation past the cap).
    pub fn with(&self, labels: &S, f: impl FnOnce(&V)) {
        self.with_counted(labels, true, f);
    }

    /// [`with`](Self::with), counting an overflow only when `count_overflow` is set: a second
    /// lookup for the same request's observation (its body sizes, after its duration) does not
    /// count it twice.
    pub(crate) fn with_counted(&self, labels: &S, count_overflow: bool, f: impl FnOnce(&V)) {
        let key = labels.key();
        let series = self.series.load();
        if let Some(found) = series.get(&key) {
            return f(found);
        }
        // The map only grows, and past the cap only the overflow label set is ever added: a
        // full snapshot that lacks `key` is as good as the current map.
        if series.len() >= self.max_series
            && let Some(overflow) = series.get(&S::overflow().key())
        {
            if count_overflow {
                self.overflowed.inc();
            }
            return f(overflow);
        }
        drop(series);
        f(&self.insert(labels, key, count_overflow));
    }

    /// Adds `labels` (or, past the cap, the overflow label set) and returns its handles.
    #[cold]
    fn insert(&self, labels: &S, key: S::Key, count_overflow: bool) -> Arc<V> {
        let _inserting = self
            .inserting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.series.load_full();
        if let Some(found) = current.get(&key) {
            return found.clone();
        }
        let (key, labels) = if current.len() >= self.max_series {
            if count_overflow {
                self.overflowed.inc();
            }
            let overflow = S::overflow();
            (overflow.key(), overflow)
        } else {
            (key, labels.clone())
        };
        if let Some(found) = current.get(&key) {
            return found.clone();
        }
        let made = Arc::new((self.make)(&labels));
        let mut next = FxHashMap::clone(&current);
        next.insert(key, made.clone());
        self.series.store(Arc::new(next));
        made
    }
}

impl<S: SeriesLabels, V> std::fmt::Debug for SeriesCache<S, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeriesCache")
            .field("max_series", &self.max_series)
            .finish_non_exhaustive()
    }
}

/// Shares one `Arc<str>` per distinct value (server addresses, gRPC methods), so building a label
/// set for a known value allocates nothing; bounded like the families.
///
/// Lookups take no lock, as in [`SeriesCache`]: an immutable set behind an [`ArcSwap`], copied
/// and swapped under a mutex when a value is added.
#[derive(Debug)]
pub struct Interner {
    values: ArcSwap<FxHashSet<Arc<str>>>,
    inserting: Mutex<()>,
    max_values: usize,
    overflow: Arc<str>,
}

impl Interner {
    /// An interner holding at most `max_values` distinct values (then it hands out `_overflow`).
    pub fn new(max_values: usize) -> Self {
        Self {
            values: ArcSwap::from_pointee(FxHashSet::default()),
            inserting: Mutex::new(()),
            max_values,
            overflow: Arc::from(OVERFLOW),
        }
    }

    /// The shared copy of `value`.
    pub fn get(&self, value: &str) -> Arc<str> {
        let values = self.values.load();
        if let Some(shared) = values.get(value) {
            return shared.clone();
        }
        // The set only grows, up to the cap: a full snapshot is the final set.
        if values.len() >= self.max_values {
            return self.overflow.clone();
        }
        drop(values);
        self.insert(value)
    }

    #[cold]
    fn insert(&self, value: &str) -> Arc<str> {
        let _inserting = self
            .inserting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.values.load_full();
        if let Some(shared) = current.get(value) {
            return shared.clone();
        }
        if current.len() >= self.max_values {
            return self.overflow.clone();
        }
        let shared: Arc<str> = Arc::from(value);
        let mut next = FxHashSet::clone(&current);
        next.insert(shared.clone());
        self.values.store(Arc::new(next));
        shared
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter as PromCounter;

    use super::*;

    /// The route table's copy of `route`, as the layers label with.
    fn kept(route: &str) -> KeptText {
        &crate::route::known_route(route).expect("room").template
    }

    const GET: KeptText = &crate::semconv::METHOD_NAMES[0];

    #[test]
    fn the_cap_sends_new_series_to_overflow_and_counts_them() {
        let overflowed = PromCounter::default();
        let made = std::sync::Mutex::new(Vec::new());
        let cache = SeriesCache::new(|labels: &ServerLabels| labels.route, 2, overflowed.clone());
        let labels = |route: &str| ServerLabels {
            method: GET,
            route: Some(kept(route)),
            status: Some(StatusCode::OK),
            error: None,
        };
        for route in ["/a", "/b", "/c", "/d", "/a"] {
            cache.with(&labels(route), |series| {
                made.lock().expect("not poisoned").push(*series);
            });
        }
        assert_eq!(overflowed.get(), 2);
        let made = made.into_inner().expect("not poisoned");
        let routes: Vec<Option<&str>> = made.iter().map(|route| route.copied()).collect();
        assert_eq!(routes, [Some("/a"), Some("/b"), None, None, Some("/a")]);
    }

    #[test]
    fn the_interner_shares_and_is_bounded() {
        let interner = Interner::new(2);
        let a = interner.get("/a");
        assert!(Arc::ptr_eq(&a, &interner.get("/a")));
        let _b = interner.get("/b");
        let overflow = interner.get("/c");
        assert_eq!(&*overflow, OVERFLOW);
        assert!(
            Arc::ptr_eq(&overflow, &interner.get("/d")),
            "one overflow value"
        );
    }

    /// Inserts race with lookups and with each other on several threads: no insert is lost
    /// (each admitted label set is made once and found again), the cap holds, and every
    /// observation past it is counted once.
    #[test]
    fn concurrent_inserts_keep_every_series_and_the_cap() {
        const THREADS: usize = 4;
        const ROUTES: usize = 60;
        const CAP: usize = 100;
        let overflowed = PromCounter::default();
        let made = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let cache = SeriesCache::new(
            {
                let made = made.clone();
                move |labels: &ServerLabels| {
                    made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    labels.route
                }
            },
            CAP,
            overflowed.clone(),
        );
        let overflow_hits = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|scope| {
            for thread in 0..THREADS {
                let (cache, overflow_hits) = (&cache, &overflow_hits);
                scope.spawn(move || {
                    // Each route twice: the second lookup must find what the first made.
                    for round in 0..2 {
                        for route in 0..ROUTES {
                            let labels = ServerLabels {
                                method: GET,
                                route: Some(kept(&format!("/{thread}/{route}"))),
                                status: Some(StatusCode::OK),
                                error: None,
                            };
                            cache.with(&labels, |series| match series {
                                Some(found) => assert!(
                                    std::ptr::eq(*found, labels.route.expect("set")),
                                    "a label set's own series (round {round})"
                                ),
                                None => {
                                    overflow_hits
                                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                }
                            });
                        }
                    }
                });
            }
        });
        let made = made.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            made,
            CAP + 1,
            "the cap's label sets and the overflow one, each made once"
        );
        let overflow_hits = overflow_hits.into_inner();
        assert_eq!(overflow_hits, 2 * (THREADS * ROUTES - CAP) as u64);
        assert_eq!(overflowed.get(), overflow_hits);
    }
}
