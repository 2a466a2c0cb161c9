//! Reading trace context from incoming headers and writing it into outgoing ones.
//!
//! One type per wire format, each a [`Propagator`]:
//!
//! | type | headers | `OTEL_PROPAGATORS` name |
//! |---|---|---|
//! | [`TraceContextPropagator`] | W3C `traceparent`, `tracestate` | `tracecontext` |
//! | [`BaggagePropagator`] | W3C `baggage` | `baggage` |
//! | [`JaegerPropagator`] | `uber-trace-id`, `jaeger-debug-id`, `uberctx-*` | `jaeger` |
//! | [`B3Propagator`] | `b3` (single) or `x-b3-*` (multi) | `b3`, `b3multi` |
//!
//! A [`CompositePropagator`] combines them in an order of preference: on extraction the first
//! format that carries a valid parent wins (baggage is merged from every format); on injection
//! every format writes its headers. One exception to "the first wins": when a later format
//! carries the same span (trace id and span id) with its debug flag, the parent becomes debug
//! (and sampled, when that format's flags say sampled too) since W3C, preferred by default, has
//! no debug bit to carry it (see [`Propagator::extract`]).
//!
//! `OTEL_PROPAGATORS=b3,b3multi` (either order) builds one [`B3Propagator`] writing both B3
//! encodings ([`B3Encoding::SingleAndMultipleHeaders`], named `b3,b3multi`), rather than two
//! that would each remove the other's headers.
//!
//! Malformed or oversized input never panics and never fails a request: the format reports an
//! [`ExtractError`], the request continues with "no parent" from that format, and the composite
//! counts the rejection per format ([`CompositePropagator::stats`]).

use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::sampler::{Sampler, SamplingDecision, SamplingRequest};
use crate::spread::SpreadCount;
use crate::{Baggage, SpanContext, SpanId, TraceFlags, TraceId, TraceState, TraceStateError};

mod b3;
mod baggage;
mod header;
mod jaeger;
mod w3c;

pub use b3::{B3Encoding, B3Propagator};
pub use baggage::BaggagePropagator;
pub use header::{HeaderScan, ScannedHeaders};
pub use jaeger::JaegerPropagator;
pub use w3c::TraceContextPropagator;

/// The span a peer sent us: the remote parent of the span we are about to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteContext {
    /// The trace to continue.
    pub trace_id: TraceId,
    /// The peer's span, our parent.
    pub span_id: SpanId,
    /// The peer span's own parent, where the format carries it (Jaeger, B3).
    pub parent_span_id: Option<SpanId>,
    /// The peer's flags, mapped to tracewire's bits.
    pub flags: TraceFlags,
    /// The W3C trace state (empty for other formats).
    pub trace_state: TraceState,
    /// The peer left the sampling decision to us (B3 ids without `X-B3-Sampled`): the sampler
    /// decides as for a new trace, instead of following `flags`.
    pub sampling_deferred: bool,
}

/// Everything read from a request's headers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extracted {
    /// The remote parent, if a format found a valid one.
    pub parent: Option<RemoteContext>,
    /// Baggage from every format that carries it.
    pub baggage: Baggage,
    /// A debug correlation id (`jaeger-debug-id`): asks for this request to be traced.
    pub debug_id: Option<Arc<str>>,
    /// A sampling decision sent without ids (B3's `b3: 0`, `b3: d`, or `X-B3-Sampled` alone):
    /// a new trace is started, and the sampler treats these flags as its parent's.
    pub sampling_only: Option<TraceFlags>,
}

impl Extracted {
    /// Whether a debug trace is asked for: by a debug id, or by the parent's debug flag.
    pub fn is_debug_requested(&self) -> bool {
        self.debug_id.is_some()
            || self.parent.as_ref().is_some_and(|p| p.flags.is_debug())
            || self.sampling_only.is_some_and(TraceFlags::is_debug)
    }

    /// The context of a new span (a server span, say) that continues what was extracted: the
    /// parent's trace (or a new one), a new span id, the sampler's decision, the parent's trace
    /// state, the baggage, and the debug id when the trace was forced by it.
    ///
    /// Of the parent's flags only [`TraceFlags::RANDOM`] (a property of the trace id) and
    /// [`TraceFlags::FIREHOSE`] carry over; sampled and debug are the sampler's to set.
    pub fn into_span_context(self, sampler: &dyn Sampler, name: &str) -> SpanContext {
        let debug_requested = self.is_debug_requested();
        let (trace_id, parent_span_id, base_flags, trace_state, parent_flags) = match self.parent {
            Some(parent) => (
                parent.trace_id,
                Some(parent.span_id),
                TraceFlags::EMPTY
                    .with(TraceFlags::RANDOM, parent.flags.is_random())
                    .with(TraceFlags::FIREHOSE, parent.flags.is_firehose()),
                parent.trace_state,
                (!parent.sampling_deferred).then_some(parent.flags),
            ),
            None => (
                TraceId::random(),
                None,
                TraceFlags::RANDOM,
                TraceState::EMPTY,
                self.sampling_only,
            ),
        };
        let request = SamplingRequest {
            trace_id,
            parent: parent_flags,
            debug_requested,
            name,
        };
        let decision = sampler.should_sample(&request);
        let debug_id = match decision {
            SamplingDecision::SampleDebug => self.debug_id,
            _ => None,
        };
        // Built whole: a chain of `with_*` calls moves the context once per call.
        SpanContext::from_parts(
            trace_id,
            SpanId::random(),
            parent_span_id,
            decision.apply_to(base_flags),
            trace_state,
            self.baggage,
            debug_id,
        )
    }
}

/// Adds `later`'s debug decision to `chosen` when both name the same span (trace id and span
/// id) and `later` is debug; reports whether it did.
///
/// Several formats in one request are normally one peer writing one context in each; W3C has no
/// debug bit, so without this a debug trace would stop being debug at the first hop whose
/// preferred format is W3C. `later`'s sampled bit comes along with its debug bit (B3's debug
/// implies sampled, and so does Jaeger's `03`), and a decision `chosen` deferred (B3 ids without
/// a sampling state) is then deferred no longer. A debug bit without the sampled one (Jaeger's
/// `02`) adds only the debug request, as when that format is read alone: the sampler decides,
/// within its debug cap, so a peer cannot force a trace past the cap by sending it twice. A
/// different span is a different context, whose flags say nothing about `chosen`.
pub(super) fn take_debug_of_same_span(chosen: &mut RemoteContext, later: &RemoteContext) -> bool {
    if !later.flags.is_debug()
        || later.span_id != chosen.span_id
        || later.trace_id != chosen.trace_id
    {
        return false;
    }
    chosen.flags = chosen.flags.with(TraceFlags::DEBUG, true);
    if later.flags.is_sampled() {
        chosen.flags = chosen.flags.with(TraceFlags::SAMPLED, true);
        chosen.sampling_deferred = false;
    }
    true
}

/// Whether a format's headers were there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// None of the format's headers were present (or a preferred format already won).
    Absent,
    /// The format's headers were read.
    Found,
}

/// Why (part of) a format's headers were rejected.
///
/// Parts that are valid on their own are still used: a good `traceparent` beside a bad
/// `tracestate` still yields the parent, without the trace state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// A header does not follow its format.
    #[error("malformed {header} header: {reason}")]
    Malformed {
        /// The header's name.
        header: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A header is longer than this crate reads.
    #[error("{header} header longer than {limit} bytes")]
    Oversized {
        /// The header's name.
        header: &'static str,
        /// The limit.
        limit: usize,
    },
    /// The `tracestate` header was dropped.
    #[error("invalid tracestate: {0}")]
    TraceState(#[from] TraceStateError),
    /// Some baggage entries were dropped.
    #[error("{dropped} baggage entries dropped ({reason})")]
    Baggage {
        /// How many.
        dropped: usize,
        /// Why the first was dropped.
        reason: &'static str,
    },
}

/// One wire format for trace context (and/or baggage) in HTTP headers.
pub trait Propagator: Send + Sync + fmt::Debug {
    /// The format's `OTEL_PROPAGATORS` name (`tracecontext`, `baggage`, `jaeger`, `b3`,
    /// `b3multi`, or `b3,b3multi` for B3 writing both encodings), used to label counters.
    fn name(&self) -> &'static str;

    /// Reads this format's headers into `into`.
    ///
    /// When `into.parent` is already set (a preferred format found one first), a format that
    /// carries a parent keeps it, with one exception: if its own parent has the same trace id
    /// and span id and is debug, while the chosen one is not, it adds [`TraceFlags::DEBUG`] to
    /// the chosen parent's flags, and, when its own parent is sampled too (B3's debug state
    /// always is; Jaeger's `02` is not), [`TraceFlags::SAMPLED`], clearing the chosen parent's
    /// [`sampling_deferred`](RemoteContext::sampling_deferred). That counts as
    /// [`Presence::Found`]. A debug flag without sampled is a request the sampler decides within
    /// its debug cap, merged or read alone. Nothing else of the chosen parent changes, and a
    /// parent that names another span or trace changes nothing. The built-in formats then read
    /// their parent header only to find that flag: it is not read when the chosen parent is
    /// already debug, and if it is malformed no error is returned for it. Baggage and the debug
    /// id are added either way.
    ///
    /// Never panics, whatever the headers hold.
    fn extract(&self, headers: &HeaderMap, into: &mut Extracted) -> Result<Presence, ExtractError>;

    /// Like [`extract`](Propagator::extract), with the request's trace headers already found by
    /// one pass over the map, as [`CompositePropagator`] does so that several formats cost one
    /// pass rather than a lookup per header name each. The built-in formats read the scan; the
    /// default reads the map again through `extract`.
    fn extract_scanned(
        &self,
        headers: &HeaderScan<'_>,
        into: &mut Extracted,
    ) -> Result<Presence, ExtractError> {
        self.extract(headers.headers(), into)
    }

    /// Writes `context` in this format, replacing any headers of the format already present.
    fn inject(&self, context: &SpanContext, headers: &mut HeaderMap);

    /// The headers [`extract_scanned`](Propagator::extract_scanned) reads, so that a composite
    /// skips the format on a request that has none of them (most requests carry one format's
    /// headers, or none). Only the built-in formats can name a set; any other is always asked.
    #[doc(hidden)]
    fn scanned_headers(&self) -> ScannedHeaders {
        ScannedHeaders::ALL
    }
}

/// Counters for one format of a [`CompositePropagator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatStats {
    /// The format's name.
    pub name: &'static str,
    /// Requests whose headers this format read successfully.
    pub found: u64,
    /// Requests whose headers (or part of them) this format rejected.
    pub rejected: u64,
}

#[derive(Debug)]
struct Counters {
    /// Bumped on most requests, from every thread that serves them: spread over cache lines.
    found: SpreadCount,
    rejected: SpreadCount,
    /// The format's [`Propagator::scanned_headers`], asked once.
    reads: ScannedHeaders,
}

/// Several formats in an order of preference.
///
/// ```
/// use http::HeaderMap;
/// use trace_core::propagation::CompositePropagator;
///
/// let propagation = CompositePropagator::from_otel_propagators("tracecontext,baggage,b3")?;
/// let mut headers = HeaderMap::new();
/// headers.insert("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1".parse()?);
/// let extracted = propagation.extract(&headers);
/// let parent = extracted.parent.expect("b3 parent");
/// assert_eq!(parent.trace_id.to_string(), "80f198ee56343ba864fe8b2a57d3eff7");
/// assert!(parent.flags.is_sampled());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct CompositePropagator {
    formats: Arc<[Box<dyn Propagator>]>,
    counters: Arc<[Counters]>,
    /// The built-in formats' headers that none of `formats` reads: [`extract_with`] hands them
    /// over with the others (a debug header without Jaeger, say).
    ///
    /// [`extract_with`]: Self::extract_with
    unread: ScannedHeaders,
}

/// An `OTEL_PROPAGATORS` entry this crate does not implement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown propagator {0:?} (known: tracecontext, baggage, b3, b3multi, jaeger, none)")]
pub struct UnknownPropagator(pub String);

impl CompositePropagator {
    /// The formats in this order of preference.
    pub fn new(formats: Vec<Box<dyn Propagator>>) -> Self {
        let counters: Arc<[Counters]> = formats
            .iter()
            .map(|format| Counters {
                found: SpreadCount::default(),
                rejected: SpreadCount::default(),
                reads: format.scanned_headers(),
            })
            .collect();
        let unread = ScannedHeaders::unread_by(counters.iter().map(|counters| counters.reads));
        Self {
            formats: formats.into(),
            counters,
            unread,
        }
    }

    /// Builds the composite from an `OTEL_PROPAGATORS` value: comma-separated names out of
    /// `tracecontext`, `baggage`, `b3` (single-header injection), `b3multi`, `jaeger` and `none`,
    /// in order of preference: when several formats carry a parent, the first listed wins
    /// (OpenTelemetry SDKs let the last one win; an order of preference reads more naturally, and
    /// it only matters when a caller sends conflicting formats). Case and white space around
    /// names are ignored, and so is a name listed again; `none` contributes nothing, so `none`
    /// alone turns propagation off. An unknown name is an error rather than silently ignored, so
    /// a typo is seen at start-up.
    ///
    /// `b3` and `b3multi` together (in either order, not necessarily next to each other) become
    /// one [`B3Propagator`] writing both encodings ([`B3Encoding::SingleAndMultipleHeaders`],
    /// named `b3,b3multi`), at the place of the first of them listed: two B3 formats would each
    /// remove the other's headers on injection, and read the same headers twice.
    ///
    /// ```
    /// use trace_core::propagation::CompositePropagator;
    ///
    /// let propagation = CompositePropagator::from_otel_propagators("b3multi,tracecontext,b3")?;
    /// let names: Vec<&str> = propagation.formats().map(|f| f.name()).collect();
    /// assert_eq!(names, ["b3,b3multi", "tracecontext"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_otel_propagators(list: &str) -> Result<Self, UnknownPropagator> {
        let mut formats: Vec<Box<dyn Propagator>> = Vec::new();
        // Where the B3 format is, and what it writes so far.
        let mut b3: Option<(usize, B3Encoding)> = None;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let format: Box<dyn Propagator> = match name.to_ascii_lowercase().as_str() {
                "tracecontext" => Box::new(TraceContextPropagator::new()),
                "baggage" => Box::new(BaggagePropagator::new()),
                "b3" => {
                    Self::add_b3(&mut formats, &mut b3, B3Encoding::SingleHeader);
                    continue;
                }
                "b3multi" => {
                    Self::add_b3(&mut formats, &mut b3, B3Encoding::MultipleHeaders);
                    continue;
                }
                "jaeger" => Box::new(JaegerPropagator::new()),
                "none" => continue,
                _ => return Err(UnknownPropagator(name.to_owned())),
            };
            if !formats.iter().any(|f| f.name() == format.name()) {
                formats.push(format);
            }
        }
        Ok(Self::new(formats))
    }

    /// Adds B3 writing `encoding` to `formats`, or widens the B3 format already there (at the
    /// index in `b3`) to write both encodings.
    fn add_b3(
        formats: &mut Vec<Box<dyn Propagator>>,
        b3: &mut Option<(usize, B3Encoding)>,
        encoding: B3Encoding,
    ) {
        match *b3 {
            None => {
                *b3 = Some((formats.len(), encoding));
                formats.push(Box::new(B3Propagator::new(encoding)));
            }
            Some((at, written))
                if written != encoding && written != B3Encoding::SingleAndMultipleHeaders =>
            {
                let both = B3Encoding::SingleAndMultipleHeaders;
                *b3 = Some((at, both));
                if let Some(slot) = formats.get_mut(at) {
                    *slot = Box::new(B3Propagator::new(both));
                }
            }
            Some(_) => {}
        }
    }

    /// Builds the composite from the `OTEL_PROPAGATORS` environment variable, or
    /// [`CompositePropagator::default`] when it is unset or empty.
    pub fn from_env() -> Result<Self, UnknownPropagator> {
        match std::env::var("OTEL_PROPAGATORS") {
            Ok(list) if !list.trim().is_empty() => Self::from_otel_propagators(&list),
            _ => Ok(Self::default()),
        }
    }

    /// Reads the headers with every format, the preferred first. Rejections are counted.
    pub fn extract(&self, headers: &HeaderMap) -> Extracted {
        self.extract_with(headers, |_, _| {})
    }

    /// [`extract`](Self::extract), handing every header that none of these formats reads to
    /// `other` in the same pass over the map: a server that also wants `Host`, `User-Agent`,
    /// `Content-Length` or a debug header reads them without a second pass or a lookup each.
    /// (A built-in format's header counts as read only when that format is one of these: with
    /// W3C alone, `jaeger-debug-id` is handed over.)
    #[inline]
    pub fn extract_with<'h>(
        &self,
        headers: &'h HeaderMap,
        other: impl FnMut(&'h HeaderName, &'h HeaderValue),
    ) -> Extracted {
        let mut extracted = Extracted::default();
        let scan = HeaderScan::handing_over(headers, self.unread, other);
        for (format, counters) in self.formats.iter().zip(self.counters.iter()) {
            // Nothing to read: the format would find its headers absent.
            if !scan.has_any(counters.reads) {
                continue;
            }
            match format.extract_scanned(&scan, &mut extracted) {
                Ok(Presence::Found) => {
                    counters.found.increment();
                }
                Ok(Presence::Absent) => {}
                Err(_) => {
                    counters.rejected.increment();
                }
            }
        }
        extracted
    }

    /// Whether [`extract_with`](Self::extract_with) hands a header named `name` to its `other`
    /// callback: it does unless one of these formats reads it.
    pub fn hands_over(&self, name: &HeaderName) -> bool {
        let name = name.as_str();
        !ScannedHeaders::BUILT_IN.contains_name(name) || self.unread.contains_name(name)
    }

    /// Writes `context` in every format.
    pub fn inject(&self, context: &SpanContext, headers: &mut HeaderMap) {
        for format in self.formats.iter() {
            format.inject(context, headers);
        }
    }

    /// The formats, in order of preference.
    pub fn formats(&self) -> impl Iterator<Item = &dyn Propagator> {
        self.formats.iter().map(|f| &**f)
    }

    /// Per-format counts of headers read and rejected since creation (shared by clones).
    pub fn stats(&self) -> Vec<FormatStats> {
        self.formats
            .iter()
            .zip(self.counters.iter())
            .map(|(format, counters)| FormatStats {
                name: format.name(),
                found: counters.found.total(),
                rejected: counters.rejected.total(),
            })
            .collect()
    }
}

impl Default for CompositePropagator {
    /// Reads W3C trace context, W3C baggage, Jaeger and B3 (single or multi), preferred in that
    /// order, and writes all of them (B3 as the single header), so a service joins traces from
    /// any of these ecosystems without configuration.
    fn default() -> Self {
        Self::new(vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(BaggagePropagator::new()),
            Box::new(JaegerPropagator::new()),
            Box::new(B3Propagator::new(B3Encoding::SingleHeader)),
        ])
    }
}

impl fmt::Debug for CompositePropagator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.formats.iter().map(|format| format.name()))
            .finish()
    }
}
