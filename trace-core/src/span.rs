//! The finished span and its parts, as collectors and exporters receive them.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::{SpanId, TraceFlags, TraceId, TraceState};

/// An attribute or event key. Static keys (the semantic conventions) cost nothing.
pub type Key = Cow<'static, str>;

/// What role a span plays in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SpanKind {
    /// Handles a request from a remote client.
    Server,
    /// Makes a request to a remote server.
    Client,
    /// Work inside one process.
    #[default]
    Internal,
    /// Hands a message to a broker or queue.
    Producer,
    /// Receives a message from a broker or queue.
    Consumer,
}

impl SpanKind {
    /// The lower-case name used by Jaeger's `span.kind` tag and Zipkin (`server`, `client`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Client => "client",
            Self::Internal => "internal",
            Self::Producer => "producer",
            Self::Consumer => "consumer",
        }
    }
}

/// The outcome of a span's operation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Status {
    /// Nothing was said (the default; a 4xx response on a server leaves this).
    #[default]
    Unset,
    /// Explicitly successful.
    Ok,
    /// Failed, with a description.
    Error {
        /// What went wrong.
        message: Cow<'static, str>,
    },
}

impl Status {
    /// An error status with this message.
    pub fn error(message: impl Into<Cow<'static, str>>) -> Self {
        Self::Error {
            message: message.into(),
        }
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        matches!(self, Self::Error { .. })
    }
}

/// A string attribute value: borrowed for `'static`, shared, owned, or (when short) held inline;
/// no copy to make one from any of the first three. Compared and hashed by its text, whichever
/// way it is held.
#[derive(Clone)]
pub enum StringValue {
    /// A string that lives for the whole program.
    Static(&'static str),
    /// A string shared with other owners (a route name, a service name).
    Shared(Arc<str>),
    /// A string this value owns.
    Owned(Box<str>),
    /// A short string kept in the value itself: see [`StringValue::copied`].
    Inline(InlineStr),
}

impl StringValue {
    /// A copy of `text`: inline when it fits ([`InlineStr::CAPACITY`] bytes), so the short
    /// strings a request yields (its route, path, host, user agent) cost no allocation; owned
    /// otherwise.
    ///
    /// ```
    /// use trace_core::StringValue;
    ///
    /// assert!(matches!(StringValue::copied("/users/{id}"), StringValue::Inline(_)));
    /// assert!(matches!(StringValue::copied(&"x".repeat(100)), StringValue::Owned(_)));
    /// assert_eq!(StringValue::copied("/users/{id}"), StringValue::from("/users/{id}"));
    /// ```
    pub fn copied(text: &str) -> Self {
        match InlineStr::new(text) {
            Some(inline) => Self::Inline(inline),
            None => Self::Owned(text.into()),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Static(s) => s,
            Self::Shared(s) => s,
            Self::Owned(s) => s,
            Self::Inline(s) => s.as_str(),
        }
    }

    /// The text's UTF-8 bytes, for encoders that only copy them out.
    ///
    /// Cheaper than [`as_str`](Self::as_str) for an [`Inline`](Self::Inline) value: getting a
    /// `&str` back from inline bytes means checking them again (safe code cannot skip that), while
    /// the bytes are simply there. The bytes are always valid UTF-8, since every way of making a
    /// `StringValue` starts from a `str`.
    ///
    /// ```
    /// use trace_core::StringValue;
    ///
    /// assert_eq!(StringValue::copied("ünï").as_bytes(), "ünï".as_bytes());
    /// assert_eq!(StringValue::from("GET").as_bytes(), b"GET");
    /// ```
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Static(s) => s.as_bytes(),
            Self::Shared(s) => s.as_bytes(),
            Self::Owned(s) => s.as_bytes(),
            Self::Inline(s) => s.as_bytes(),
        }
    }

    /// The text's length in bytes, without checking inline bytes again.
    #[inline]
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the text is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A string of at most [`InlineStr::CAPACITY`] bytes stored in place (the size of
/// [`StringValue`] does not grow for it).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct InlineStr {
    len: u8,
    bytes: [u8; InlineStr::CAPACITY],
}

impl InlineStr {
    /// The longest string held inline, in bytes.
    pub const CAPACITY: usize = 22;

    /// `text` held inline, or `None` when it is longer than [`Self::CAPACITY`].
    pub fn new(text: &str) -> Option<Self> {
        let len = text.len();
        if len > Self::CAPACITY {
            return None;
        }
        let mut bytes = [0; Self::CAPACITY];
        bytes[..len].copy_from_slice(text.as_bytes());
        Some(Self {
            len: len as u8,
            bytes,
        })
    }

    /// The text's UTF-8 bytes (no check needed, unlike [`as_str`](Self::as_str)).
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The text's length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the text is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The text. This checks the bytes are UTF-8 on every call (safe code cannot skip it);
    /// encoders that only copy the text out should use [`as_bytes`](Self::as_bytes).
    pub fn as_str(&self) -> &str {
        // Always valid: the bytes were copied from a `&str`, whole.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Debug for InlineStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

// Compared, ordered and hashed by bytes: the same results as by text (UTF-8 orders bytewise),
// without checking an inline value's UTF-8 again.
impl PartialEq for StringValue {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for StringValue {}

impl std::hash::Hash for StringValue {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write(self.as_bytes());
        // The terminator `str` hashes with, so that "ab" + "c" and "a" + "bc" differ in a tuple.
        state.write_u8(0xff);
    }
}

impl PartialOrd for StringValue {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for StringValue {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl fmt::Debug for StringValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for StringValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&'static str> for StringValue {
    fn from(s: &'static str) -> Self {
        Self::Static(s)
    }
}

impl From<String> for StringValue {
    fn from(s: String) -> Self {
        Self::Owned(s.into_boxed_str())
    }
}

impl From<Arc<str>> for StringValue {
    fn from(s: Arc<str>) -> Self {
        Self::Shared(s)
    }
}

impl From<Cow<'static, str>> for StringValue {
    fn from(s: Cow<'static, str>) -> Self {
        match s {
            Cow::Borrowed(s) => Self::Static(s),
            Cow::Owned(s) => s.into(),
        }
    }
}

/// A homogeneous array attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Array {
    /// Booleans.
    Bool(Vec<bool>),
    /// Signed integers.
    I64(Vec<i64>),
    /// Floats.
    F64(Vec<f64>),
    /// Strings.
    String(Vec<StringValue>),
}

/// A typed attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string.
    String(StringValue),
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    I64(i64),
    /// A float.
    F64(f64),
    /// An array of one of the above.
    Array(Array),
}

macro_rules! value_from {
    ($($from:ty => $variant:ident $(as $cast:ty)?),* $(,)?) => {$(
        impl From<$from> for Value {
            fn from(value: $from) -> Self {
                Self::$variant(value $(as $cast)?)
            }
        }
    )*};
}

value_from!(
    bool => Bool,
    i64 => I64,
    i32 => I64 as i64,
    u32 => I64 as i64,
    u16 => I64 as i64,
    f64 => F64,
);

impl From<u64> for Value {
    /// Values above `i64::MAX` saturate, since the wire formats carry signed integers.
    fn from(value: u64) -> Self {
        Self::I64(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

impl From<usize> for Value {
    /// Values above `i64::MAX` saturate, since the wire formats carry signed integers.
    fn from(value: usize) -> Self {
        Self::I64(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

macro_rules! value_from_string {
    ($($from:ty),*) => {$(
        impl From<$from> for Value {
            fn from(value: $from) -> Self {
                Self::String(value.into())
            }
        }
    )*};
}

value_from_string!(&'static str, String, Arc<str>, Cow<'static, str>);

impl From<StringValue> for Value {
    fn from(value: StringValue) -> Self {
        Self::String(value)
    }
}

impl From<Array> for Value {
    fn from(value: Array) -> Self {
        Self::Array(value)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::String(s) => f.write_str(s.as_str()),
            Self::Bool(b) => write!(f, "{b}"),
            Self::I64(i) => write!(f, "{i}"),
            Self::F64(x) => write!(f, "{x}"),
            Self::Array(array) => {
                let items: Vec<String> = match array {
                    Array::Bool(v) => v.iter().map(ToString::to_string).collect(),
                    Array::I64(v) => v.iter().map(ToString::to_string).collect(),
                    Array::F64(v) => v.iter().map(ToString::to_string).collect(),
                    Array::String(v) => v.iter().map(|s| format!("{:?}", s.as_str())).collect(),
                };
                write!(f, "[{}]", items.join(","))
            }
        }
    }
}

/// A key and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyValue {
    /// The attribute name, preferably a semantic-convention constant.
    pub key: Key,
    /// The value.
    pub value: Value,
}

impl KeyValue {
    /// A pair.
    pub fn new(key: impl Into<Key>, value: impl Into<Value>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// Something that happened at a point in a span's life.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// What happened.
    pub name: Cow<'static, str>,
    /// When (wall clock, derived from the span's monotonic clock).
    pub time: SystemTime,
    /// Details.
    pub attributes: Vec<KeyValue>,
}

/// A reference to a span in another (or the same) trace that is related but not the parent.
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    /// The linked span's trace.
    pub trace_id: TraceId,
    /// The linked span.
    pub span_id: SpanId,
    /// The linked span's trace state.
    pub trace_state: TraceState,
    /// Details about the link.
    pub attributes: Vec<KeyValue>,
}

/// A finished span, as handed to a [`Collector`](crate::Collector).
///
/// It carries the ids, flags, trace state and debug id of its [`SpanContext`](crate::SpanContext)
/// rather than the context itself: a stored span that held its collector would keep that
/// collector alive through a reference cycle, and exporters need nothing else of the context.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// The operation, such as `GET /users/{id}`.
    pub name: Cow<'static, str>,
    /// The span's role.
    pub kind: SpanKind,
    /// The trace it belongs to.
    pub trace_id: TraceId,
    /// Its own id.
    pub span_id: SpanId,
    /// The span it is a child of; `None` for a trace's root.
    pub parent_span_id: Option<SpanId>,
    /// Sampling and debug flags at the time the span started.
    pub flags: TraceFlags,
    /// The W3C trace state it was started with.
    pub trace_state: TraceState,
    /// The `jaeger-debug-id` correlation id that forced this trace, if one did.
    pub debug_id: Option<Arc<str>>,
    /// When it started (wall clock).
    pub start_time: SystemTime,
    /// How long it lasted (monotonic clock, so never negative and immune to clock steps).
    pub duration: Duration,
    /// Outcome.
    pub status: Status,
    /// Typed attributes, in the order they were set.
    pub attributes: Vec<KeyValue>,
    /// Timestamped events.
    pub events: Vec<Event>,
    /// Links to related spans.
    pub links: Vec<Link>,
    /// What the recorder's limits kept out of the span (OTLP's dropped counts).
    pub dropped: DroppedCounts,
}

/// How many attributes, events and links a span's recorder dropped past its limits
/// ([`SpanRecorder::MAX_ATTRIBUTES`](crate::SpanRecorder::MAX_ATTRIBUTES) and its siblings), so
/// that exporters can say what is missing (OTLP's `dropped_*_count` fields).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DroppedCounts {
    /// Attributes with new keys past the limit.
    pub attributes: u32,
    /// Events past the limit.
    pub events: u32,
    /// Links past the limit.
    pub links: u32,
}

impl Span {
    /// When it ended (wall clock). A duration past what `SystemTime` can represent (possible only
    /// in a span built by hand: its fields are public) ends at the start plus the largest
    /// duration that can be added, rather than panicking in whichever exporter asks.
    pub fn end_time(&self) -> SystemTime {
        self.start_time
            .checked_add(self.duration)
            .unwrap_or_else(|| latest_after(self.start_time))
    }

    /// The value of the first attribute named `key`.
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| &kv.value)
    }

    /// A rough count of the heap bytes this span holds, for memory-bounded stores.
    pub fn approx_heap_size(&self) -> usize {
        fn value_size(value: &Value) -> usize {
            match value {
                Value::String(s) => s.as_str().len(),
                Value::Array(Array::String(v)) => v.iter().map(|s| s.as_str().len() + 24).sum(),
                Value::Array(Array::Bool(v)) => v.len(),
                Value::Array(Array::I64(v)) => v.len() * 8,
                Value::Array(Array::F64(v)) => v.len() * 8,
                Value::Bool(_) | Value::I64(_) | Value::F64(_) => 0,
            }
        }
        fn attrs_size(attrs: &[KeyValue]) -> usize {
            attrs
                .iter()
                .map(|kv| std::mem::size_of::<KeyValue>() + kv.key.len() + value_size(&kv.value))
                .sum()
        }
        self.name.len()
            + self.trace_state.header_value().map_or(0, str::len)
            + self.debug_id.as_deref().map_or(0, str::len)
            + attrs_size(&self.attributes)
            + self
                .events
                .iter()
                .map(|e| std::mem::size_of::<Event>() + e.name.len() + attrs_size(&e.attributes))
                .sum::<usize>()
            + self
                .links
                .iter()
                .map(|l| std::mem::size_of::<Link>() + attrs_size(&l.attributes))
                .sum::<usize>()
    }
}

/// The latest time `SystemTime` can represent after `start`, found by halving steps: the
/// platform's limit is not a constant.
fn latest_after(start: SystemTime) -> SystemTime {
    let mut latest = start;
    let mut step = Duration::MAX;
    while !step.is_zero() {
        if let Some(later) = latest.checked_add(step) {
            latest = later;
        } else {
            step /= 2;
        }
    }
    latest
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_duration_too_long_to_add_ends_at_the_latest_time_rather_than_panicking() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let latest = latest_after(start);
        assert!(latest > start + Duration::from_secs(1 << 40));
        assert!(latest.checked_add(Duration::from_nanos(1)).is_none());
    }

    use super::*;

    #[test]
    fn string_values_compare_by_text() {
        let shared: Arc<str> = "x".into();
        assert_eq!(Value::from("x"), Value::from("x".to_owned()));
        assert_eq!(StringValue::from(shared), StringValue::from("x"));
        assert!(StringValue::from("a") < StringValue::from("b".to_owned()));
        assert_eq!(StringValue::copied("x"), StringValue::from("x"));
    }

    #[test]
    fn short_copies_stay_inline_without_growing_the_value() {
        assert_eq!(std::mem::size_of::<StringValue>(), 24);
        let fits = "a".repeat(InlineStr::CAPACITY);
        assert!(matches!(StringValue::copied(&fits), StringValue::Inline(_)));
        assert_eq!(StringValue::copied(&fits).as_str(), fits);
        let longer = "é".repeat(InlineStr::CAPACITY);
        assert!(matches!(
            StringValue::copied(&longer),
            StringValue::Owned(_)
        ));
        assert_eq!(StringValue::copied(&longer).as_str(), longer);
        assert_eq!(StringValue::copied("").as_str(), "");
        assert_eq!(StringValue::copied("ünï").as_str(), "ünï");
    }

    #[test]
    fn bytes_match_the_text_whichever_way_it_is_held() {
        let text = "GET /ünï/{id} ✓";
        let shared: Arc<str> = text.into();
        let values = [
            StringValue::from(text),
            StringValue::from(shared),
            StringValue::from(text.to_owned()),
            StringValue::copied(text),
            StringValue::copied(&text.repeat(4)),
        ];
        assert!(matches!(values[3], StringValue::Inline(_)));
        assert!(matches!(values[4], StringValue::Owned(_)));
        for value in &values {
            assert_eq!(value.as_bytes(), value.as_str().as_bytes());
            assert_eq!(value.len(), value.as_str().len());
            assert!(!value.is_empty());
            assert_eq!(std::str::from_utf8(value.as_bytes()), Ok(value.as_str()));
        }
        let empty = StringValue::copied("");
        assert_eq!(empty.as_bytes(), b"");
        assert!(empty.is_empty());
        let inline = InlineStr::new("ünï").expect("fits");
        assert_eq!(inline.as_bytes(), "ünï".as_bytes());
        assert_eq!(inline.len(), "ünï".len());
    }
}
