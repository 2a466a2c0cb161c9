//! Helpers the header formats share: reading a header that must appear once, writing a value
//! into a stack buffer, the character classes of the baggage grammars, and counting dropped
//! baggage entries.

use http::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, CONTROLS};

use super::ExtractError;
use crate::BaggageError;
use crate::trace_state::trim_ows;

/// Longest value read for a header that carries ids (`traceparent`, `b3`, `uber-trace-id`, each
/// `x-b3-*`). The longest valid values are well under 100 bytes; the margin leaves room for future
/// `traceparent` versions while a peer still cannot make us scan kilobytes.
pub(super) const MAX_ID_HEADER_LEN: usize = 512;

/// Bytes written percent-encoded in a baggage value: everything outside W3C's `baggage-octet`
/// (controls, space, `"`, `,`, `;`, `\` and non-ASCII), plus `%` so that decoding gives the value
/// back. Jaeger's `uberctx-*` values start from the same set.
pub(super) const BAGGAGE_VALUE_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%');

/// The header names the built-in formats read, found in one pass by [`HeaderScan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Known {
    Traceparent,
    Tracestate,
    Baggage,
    UberTraceId,
    JaegerDebugId,
    JaegerBaggage,
    B3,
    XB3TraceId,
    XB3SpanId,
    XB3ParentSpanId,
    XB3Sampled,
    XB3Flags,
}

const KNOWN_COUNT: usize = 12;

static KNOWN_NAMES: [HeaderName; KNOWN_COUNT] = [
    HeaderName::from_static("traceparent"),
    HeaderName::from_static("tracestate"),
    HeaderName::from_static("baggage"),
    HeaderName::from_static("uber-trace-id"),
    HeaderName::from_static("jaeger-debug-id"),
    HeaderName::from_static("jaeger-baggage"),
    HeaderName::from_static("b3"),
    HeaderName::from_static("x-b3-traceid"),
    HeaderName::from_static("x-b3-spanid"),
    HeaderName::from_static("x-b3-parentspanid"),
    HeaderName::from_static("x-b3-sampled"),
    HeaderName::from_static("x-b3-flags"),
];

/// The headers a built-in format reads from a [`HeaderScan`], as a set: a composite asks a
/// format only when the scan found one of them. Only this crate's formats can name one (the
/// default, for any other format, is to be asked always). Not a stable API.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScannedHeaders(u16);

impl ScannedHeaders {
    /// Every header: the set of a format that may read anything.
    pub(super) const ALL: Self = Self(u16::MAX);

    /// Every header a built-in format reads.
    pub(super) const BUILT_IN: Self = Self((1 << (KNOWN_COUNT + 1)) - 1);

    /// Whether a header named `name` is in this set.
    pub(super) fn contains_name(self, name: &str) -> bool {
        match Known::classify(name) {
            Some(known) => self.0 & (1 << known as u16) != 0,
            None => name.starts_with(UBERCTX_PREFIX) && self.0 & UBERCTX_BIT != 0,
        }
    }

    /// The built-in formats' headers that none of the formats reading `read` reads (formats
    /// of [`ALL`](Self::ALL) read through the map, not the scan, and are left out).
    pub(super) fn unread_by(read: impl IntoIterator<Item = Self>) -> Self {
        let read = read
            .into_iter()
            .filter(|headers| *headers != Self::ALL)
            .fold(0, |bits, headers| bits | headers.0);
        Self(Self::BUILT_IN.0 & !read)
    }

    /// The set of these headers (and, with `uberctx`, Jaeger's `uberctx-*` headers).
    pub(super) const fn of(known: &[Known], uberctx: bool) -> Self {
        let mut bits = if uberctx { UBERCTX_BIT } else { 0 };
        let mut i = 0;
        while i < known.len() {
            bits |= 1 << known[i] as u16;
            i += 1;
        }
        Self(bits)
    }
}

/// The bit of [`ScannedHeaders`] for `uberctx-*` headers, after the [`Known`] ones.
const UBERCTX_BIT: u16 = 1 << KNOWN_COUNT;

/// Prefix of Jaeger's per-entry baggage headers.
pub(super) const UBERCTX_PREFIX: &str = "uberctx-";

impl Known {
    /// The header's name.
    pub(super) fn header_name(self) -> &'static HeaderName {
        &KNOWN_NAMES[self as usize]
    }

    fn classify(name: &str) -> Option<Self> {
        Some(match name {
            "traceparent" => Self::Traceparent,
            "tracestate" => Self::Tracestate,
            "baggage" => Self::Baggage,
            "uber-trace-id" => Self::UberTraceId,
            "jaeger-debug-id" => Self::JaegerDebugId,
            "jaeger-baggage" => Self::JaegerBaggage,
            "b3" => Self::B3,
            "x-b3-traceid" => Self::XB3TraceId,
            "x-b3-spanid" => Self::XB3SpanId,
            "x-b3-parentspanid" => Self::XB3ParentSpanId,
            "x-b3-sampled" => Self::XB3Sampled,
            "x-b3-flags" => Self::XB3Flags,
            _ => return None,
        })
    }
}

/// Whether a header name starts like one a built-in format reads: `tr…`, `ba…`, `b3…`, `ub…`,
/// `ja…` or `x-b3…`. Nearly every other header (`user-agent`, `x-forwarded-for`) is passed
/// over by this test alone, without comparing it to each known name. The first byte is looked
/// up in a table (a branch on it would be a jump through a table, mispredicted as header names
/// vary).
#[inline]
fn may_be_known(name: &[u8]) -> bool {
    let Some(&first) = name.first() else {
        return false;
    };
    if !KNOWN_FIRST_BYTES[usize::from(first)] {
        return false;
    }
    matches!(
        name,
        [b't', b'r', ..]
            | [b'b', b'a' | b'3', ..]
            | [b'u', b'b', ..]
            | [b'j', b'a', ..]
            | [b'x', b'-', b'b', b'3', ..]
    )
}

/// The first bytes of the names the built-in formats read.
static KNOWN_FIRST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    table[b't' as usize] = true;
    table[b'b' as usize] = true;
    table[b'u' as usize] = true;
    table[b'j' as usize] = true;
    table[b'x' as usize] = true;
    table
};

/// A request's trace headers, found in one pass over its header map.
///
/// Each format looking its headers up by name would cost a hash per name and format (a dozen for
/// the default set); one pass over the map costs a byte comparison per header, and a request
/// without trace headers is recognised with no lookup at all. [`CompositePropagator`] scans once
/// and hands the scan to every format through [`Propagator::extract_scanned`].
///
/// [`CompositePropagator`]: super::CompositePropagator
/// [`Propagator::extract_scanned`]: super::Propagator::extract_scanned
#[derive(Debug, Clone, Copy)]
pub struct HeaderScan<'a> {
    map: &'a HeaderMap,
    first_values: [Option<&'a HeaderValue>; KNOWN_COUNT],
    /// The headers found, as [`ScannedHeaders`] bits.
    present: u16,
    repeated: u16,
    has_uberctx: bool,
}

impl<'a> HeaderScan<'a> {
    /// Scans `map` once.
    pub fn new(map: &'a HeaderMap) -> Self {
        Self::new_with(map, |_, _| {})
    }

    /// Scans `map` once, handing every header that no built-in format reads to `other`, in
    /// order: for a caller that wants a few more headers without a second pass.
    #[inline]
    pub fn new_with(
        map: &'a HeaderMap,
        other: impl FnMut(&'a HeaderName, &'a HeaderValue),
    ) -> Self {
        Self::handing_over(map, ScannedHeaders(0), other)
    }

    /// [`new_with`](Self::new_with), also handing over the built-in formats' headers in
    /// `unread` (those no format in use reads, such as `jaeger-debug-id` without Jaeger).
    #[inline]
    pub(super) fn handing_over(
        map: &'a HeaderMap,
        unread: ScannedHeaders,
        mut other: impl FnMut(&'a HeaderName, &'a HeaderValue),
    ) -> Self {
        let mut scan = Self {
            map,
            first_values: [None; KNOWN_COUNT],
            present: 0,
            repeated: 0,
            has_uberctx: false,
        };
        for (header, value) in map {
            let name = header.as_str();
            if !may_be_known(name.as_bytes()) {
                other(header, value);
                continue;
            }
            match Known::classify(name) {
                Some(known) => {
                    match &mut scan.first_values[known as usize] {
                        Some(_) => scan.repeated |= 1 << known as u16,
                        slot => {
                            *slot = Some(value);
                            scan.present |= 1 << known as u16;
                        }
                    }
                    if unread.0 & (1 << known as u16) != 0 {
                        other(header, value);
                    }
                }
                None if name.starts_with(UBERCTX_PREFIX) => {
                    scan.has_uberctx = true;
                    scan.present |= UBERCTX_BIT;
                    if unread.0 & UBERCTX_BIT != 0 {
                        other(header, value);
                    }
                }
                None => other(header, value),
            }
        }
        scan
    }

    /// The scanned header map.
    pub fn headers(&self) -> &'a HeaderMap {
        self.map
    }

    /// Whether the request carries any header a built-in format reads.
    pub fn has_trace_headers(&self) -> bool {
        self.present != 0
    }

    /// Whether a format reading `headers` may find something: it reads [`ScannedHeaders::ALL`]
    /// (anything, as far as the scan knows), or the request carries one of them.
    pub(super) fn has_any(&self, headers: ScannedHeaders) -> bool {
        headers == ScannedHeaders::ALL || self.present & headers.0 != 0
    }

    /// Whether the header is present.
    pub(super) fn contains(&self, known: Known) -> bool {
        self.first_values[known as usize].is_some()
    }

    /// Whether any `uberctx-*` header is present.
    pub(super) fn has_uberctx(&self) -> bool {
        self.has_uberctx
    }

    /// Every line of the header, in order.
    pub(super) fn all(&self, known: Known) -> impl Iterator<Item = &'a HeaderValue> + use<'a> {
        let rest = (self.repeated & (1 << known as u16) != 0)
            .then(|| self.map.get_all(known.header_name()).into_iter().skip(1));
        self.first_values[known as usize]
            .into_iter()
            .chain(rest.into_iter().flatten())
    }

    /// The value of a header that may appear at most once, with optional white space trimmed.
    ///
    /// Several lines are rejected rather than one picked: two parents in one request mean a
    /// broken or hostile peer, and which line a proxy puts first is not something to rely on.
    /// The length limit is checked before anything else is looked at.
    pub(super) fn single(
        &self,
        known: Known,
        limit: usize,
    ) -> Result<Option<&'a [u8]>, ExtractError> {
        let Some(first) = self.first_values[known as usize] else {
            return Ok(None);
        };
        let header = known.header_name().as_str();
        if self.repeated & (1 << known as u16) != 0 {
            return Err(ExtractError::Malformed {
                header,
                reason: "header sent more than once",
            });
        }
        let bytes = first.as_bytes();
        if bytes.len() > limit {
            return Err(ExtractError::Oversized { header, limit });
        }
        Ok(Some(trim_ows(bytes)))
    }
}

/// A short header value assembled (or decoded) on the stack, so ids are written and read without
/// an intermediate `String`.
#[derive(Debug)]
pub(super) struct StackValue<const N: usize> {
    buf: [u8; N],
    len: usize,
    overflowed: bool,
}

impl<const N: usize> StackValue<N> {
    pub(super) const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
            overflowed: false,
        }
    }

    pub(super) fn push(&mut self, bytes: &[u8]) {
        let end = self.len.saturating_add(bytes.len());
        match self.buf.get_mut(self.len..end) {
            Some(slot) => {
                slot.copy_from_slice(bytes);
                self.len = end;
            }
            // A buffer sized too small is a bug in this crate; sending a truncated id would be
            // worse than sending none, so the value is refused at the end.
            None => self.overflowed = true,
        }
    }

    pub(super) fn push_byte(&mut self, byte: u8) {
        self.push(&[byte]);
    }

    /// Writes `byte` as two lower-case hex digits.
    pub(super) fn push_hex_byte(&mut self, byte: u8) {
        self.push(&hex_byte(byte));
    }

    /// Whether everything pushed so far fit.
    pub(super) fn fits(&self) -> bool {
        !self.overflowed
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    /// The finished header value; `None` if anything did not fit or is not a valid value.
    pub(super) fn to_header_value(&self) -> Option<HeaderValue> {
        if self.overflowed {
            return None;
        }
        HeaderValue::from_bytes(self.as_bytes()).ok()
    }
}

/// Sets `name` to `value` alone, or removes it when there is no value, so that no header of a
/// format is left over from an earlier hop.
pub(super) fn replace(
    headers: &mut HeaderMap,
    name: &'static HeaderName,
    value: Option<HeaderValue>,
) {
    match value {
        Some(value) => {
            headers.insert(name, value);
        }
        None => {
            headers.remove(name);
        }
    }
}

/// The lower-case hex digit for the low four bits of `nibble`.
/// A byte as two lower-case hex digits.
pub(super) const fn hex_byte(byte: u8) -> [u8; 2] {
    [hex_digit(byte >> 4), hex_digit(byte)]
}

const fn hex_digit(nibble: u8) -> u8 {
    match nibble & 0xf {
        digit @ 0..=9 => b'0' + digit,
        digit => b'a' + digit - 10,
    }
}

/// Whether `bytes` is an RFC 7230 `token` (the grammar of header names and baggage keys).
pub(super) fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|&b| is_tchar(b))
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// W3C `baggage-octet`: printable ASCII except `"`, `,`, `;` and `\`.
pub(super) fn is_baggage_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

/// Counts dropped baggage entries and remembers why the first went, for [`ExtractError::Baggage`].
#[derive(Debug, Default)]
pub(super) struct Dropped {
    count: usize,
    reason: Option<&'static str>,
}

impl Dropped {
    pub(super) fn add(&mut self, reason: &'static str) {
        self.add_many(1, reason);
    }

    pub(super) fn add_many(&mut self, count: usize, reason: &'static str) {
        if count > 0 {
            self.count += count;
            self.reason.get_or_insert(reason);
        }
    }

    /// The error to report, if anything was dropped.
    pub(super) fn error(&self) -> Option<ExtractError> {
        self.reason.map(|reason| ExtractError::Baggage {
            dropped: self.count,
            reason,
        })
    }
}

/// A short reason for an entry the baggage limits refused.
pub(super) fn limit_reason(error: BaggageError) -> &'static str {
    match error {
        BaggageError::EmptyKey => "empty key",
        BaggageError::EntryTooLong => "entry too long",
        BaggageError::TooManyEntries => "too many entries",
        BaggageError::TooLong => "baggage too long",
    }
}

/// A header map of these lines, for the formats' unit tests.
#[cfg(test)]
pub(super) fn test_header_map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).expect("test header name"),
            HeaderValue::from_bytes(value.as_bytes()).expect("test header value"),
        );
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefilter_passes_every_known_name_and_few_others() {
        for name in &KNOWN_NAMES {
            assert!(may_be_known(name.as_str().as_bytes()), "{name}");
            assert_eq!(
                Known::classify(name.as_str()).map(Known::header_name),
                Some(name)
            );
        }
        assert!(may_be_known(b"uberctx-user"));
        for other in [
            "user-agent",
            "x-forwarded-for",
            "x-request-id",
            "accept",
            "host",
            "b",
            "x-b",
            "",
        ] {
            assert!(!may_be_known(other.as_bytes()), "{other}");
        }
        let headers = test_header_map(&[
            ("user-agent", "curl"),
            ("uberctx-user", "alice"),
            ("x-b3-sampled", "1"),
            ("traceparent", "00-x"),
        ]);
        let scan = HeaderScan::new(&headers);
        assert!(scan.has_uberctx());
        assert!(scan.contains(Known::XB3Sampled) && scan.contains(Known::Traceparent));
    }

    #[test]
    fn single_trims_and_rejects_repeats_and_oversize() {
        let mut headers = HeaderMap::new();
        assert_eq!(HeaderScan::new(&headers).single(Known::B3, 8), Ok(None));
        headers.insert("b3", HeaderValue::from_static(" \tabc "));
        let scan = HeaderScan::new(&headers);
        assert_eq!(scan.single(Known::B3, 8), Ok(Some(&b"abc"[..])));
        assert_eq!(
            scan.single(Known::B3, 5),
            Err(ExtractError::Oversized {
                header: "b3",
                limit: 5
            })
        );
        headers.append("b3", HeaderValue::from_static("abc"));
        assert_eq!(
            HeaderScan::new(&headers).single(Known::B3, 8),
            Err(ExtractError::Malformed {
                header: "b3",
                reason: "header sent more than once"
            })
        );
    }

    #[test]
    fn the_other_headers_are_handed_over_in_the_same_pass() {
        let headers = test_header_map(&[
            ("host", "example.com"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("user-agent", "curl"),
            ("uberctx-k", "v"),
            ("x-request-id", "7"),
            ("content-length", "12"),
            ("baggage", "k=v"),
        ]);
        let mut others = Vec::new();
        let scan = HeaderScan::new_with(&headers, |name, value| {
            others.push((name.as_str(), value.to_str().expect("ascii")));
        });
        others.sort_unstable();
        assert_eq!(
            others,
            [
                ("content-length", "12"),
                ("host", "example.com"),
                ("user-agent", "curl"),
                ("x-request-id", "7"),
            ],
            "every header but those the formats read"
        );
        assert!(scan.contains(Known::Traceparent) && scan.contains(Known::Baggage));
        assert!(scan.has_uberctx());
    }

    #[test]
    fn headers_no_format_reads_are_handed_over_too() {
        let headers = test_header_map(&[
            ("jaeger-debug-id", "debug-1"),
            ("uberctx-k", "v"),
            ("b3", "1"),
            ("host", "example.com"),
        ]);
        let w3c = ScannedHeaders::of(&[Known::Traceparent, Known::Tracestate], false);
        let unread = ScannedHeaders::unread_by([w3c, ScannedHeaders::ALL]);
        assert!(unread.contains_name("jaeger-debug-id") && unread.contains_name("uberctx-k"));
        assert!(!unread.contains_name("traceparent") && !unread.contains_name("host"));
        let mut others = Vec::new();
        let scan = HeaderScan::handing_over(&headers, unread, |name, _| others.push(name.as_str()));
        others.sort_unstable();
        assert_eq!(others, ["b3", "host", "jaeger-debug-id", "uberctx-k"]);
        assert!(scan.contains(Known::JaegerDebugId), "still scanned");

        let jaeger = ScannedHeaders::of(
            &[
                Known::UberTraceId,
                Known::JaegerDebugId,
                Known::JaegerBaggage,
            ],
            true,
        );
        let mut others = Vec::new();
        HeaderScan::handing_over(&headers, ScannedHeaders::unread_by([jaeger]), |name, _| {
            others.push(name.as_str());
        });
        others.sort_unstable();
        assert_eq!(others, ["b3", "host"], "Jaeger reads its own headers");
    }

    #[test]
    fn scan_finds_every_known_name_and_every_line() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("example.com"));
        headers.insert("user-agent", HeaderValue::from_static("curl"));
        assert!(!HeaderScan::new(&headers).has_trace_headers());
        for name in &KNOWN_NAMES {
            headers.append(name, HeaderValue::from_static("1"));
        }
        headers.append("tracestate", HeaderValue::from_static("2"));
        headers.append("tracestate", HeaderValue::from_static("3"));
        let scan = HeaderScan::new(&headers);
        assert!(scan.has_trace_headers());
        for (index, name) in KNOWN_NAMES.iter().enumerate() {
            let known = Known::classify(name.as_str()).expect("known");
            assert_eq!(known as usize, index);
            assert_eq!(known.header_name(), name);
            assert!(scan.contains(known));
        }
        let lines: Vec<&[u8]> = scan
            .all(Known::Tracestate)
            .map(HeaderValue::as_bytes)
            .collect();
        assert_eq!(lines, [&b"1"[..], b"2", b"3"]);
        assert_eq!(scan.all(Known::B3).count(), 1);
        assert!(!scan.has_uberctx());
        headers.insert("uberctx-k", HeaderValue::from_static("v"));
        assert!(HeaderScan::new(&headers).has_uberctx());
    }

    #[test]
    fn stack_value_writes_hex_and_refuses_overflow() {
        let mut value = StackValue::<4>::new();
        value.push_hex_byte(0x0a);
        value.push_byte(b'-');
        assert_eq!(value.as_bytes(), b"0a-");
        assert_eq!(
            value.to_header_value(),
            Some(HeaderValue::from_static("0a-"))
        );
        value.push(b"xy");
        assert_eq!(value.to_header_value(), None);
    }

    #[test]
    fn character_classes_follow_the_grammars() {
        assert!(is_token(b"user-Id_1.x~"));
        assert!(!is_token(b""));
        assert!(!is_token(b"a b"));
        assert!(!is_token(b"a=b"));
        assert!(!is_token("é".as_bytes()));
        assert!(is_baggage_octet(b'%') && is_baggage_octet(b'='));
        assert!(!is_baggage_octet(b' ') && !is_baggage_octet(b','));
        assert!(!is_baggage_octet(b';') && !is_baggage_octet(b'\\'));
        assert!(!is_baggage_octet(b'"') && !is_baggage_octet(0x7f) && !is_baggage_octet(0xc3));
    }
}
