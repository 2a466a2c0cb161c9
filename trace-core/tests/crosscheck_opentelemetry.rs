//! Cross-checks tracewire's W3C Trace Context, W3C baggage and B3 propagation against the
//! independent implementations of the `opentelemetry` crates (`opentelemetry_sdk`'s
//! `TraceContextPropagator` and `BaggagePropagator`, `opentelemetry-zipkin`'s B3 `Propagator`).
//!
//! For valid headers both sides must read the same ids and sampling decision, and what one side
//! injects the other must extract unchanged. Where an `opentelemetry` crate departs from its spec
//! the spec wins: each such departure has a test of its own, named after it, that pins down what
//! ours does (the spec) and what theirs does, so a fix on either side shows up here.

#![allow(clippy::unwrap_used)]
// opentelemetry-zipkin 0.33 marks its whole crate deprecated (in favour of OTLP export); its B3
// propagator is still the independent implementation to compare with.
#![allow(deprecated)]

use std::collections::{BTreeMap, HashMap};

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    SpanContext as OtelSpanContext, SpanId as OtelSpanId, TraceContextExt,
    TraceFlags as OtelTraceFlags, TraceId as OtelTraceId, TraceState as OtelTraceState,
};
use opentelemetry_sdk::propagation::{
    BaggagePropagator as OtelBaggagePropagator, TraceContextPropagator as OtelTraceContext,
};
use opentelemetry_zipkin::{B3Encoding as ZipkinEncoding, Propagator as ZipkinB3};
use trace_core::propagation::{
    B3Encoding, B3Propagator, BaggagePropagator, ExtractError, Extracted, Presence, Propagator,
    RemoteContext, TraceContextPropagator,
};
use trace_core::{Baggage, SpanContext, SpanId, TraceFlags, TraceId, TraceState};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A header map with one line per pair, in order (a name given twice becomes two lines).
fn header_map<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_ref().as_bytes()).expect("test header name");
        let value = HeaderValue::from_bytes(value.as_ref().as_bytes()).expect("test header value");
        headers.append(name, value);
    }
    headers
}

/// The carrier the `opentelemetry` propagators read: lower-case names, and lines of the same
/// name combined with `,` as RFC 9110 §5.3 allows (a `HashMap` cannot hold two lines).
fn otel_carrier<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> HashMap<String, String> {
    let mut carrier: HashMap<String, String> = HashMap::new();
    for (name, value) in pairs {
        carrier
            .entry(name.as_ref().to_ascii_lowercase())
            .and_modify(|existing| {
                existing.push(',');
                existing.push_str(value.as_ref());
            })
            .or_insert_with(|| value.as_ref().to_owned());
    }
    carrier
}

/// Runs one of our propagators on fresh state.
fn ours_extract(
    propagator: &dyn Propagator,
    headers: &HeaderMap,
) -> (Result<Presence, ExtractError>, Extracted) {
    let mut extracted = Extracted::default();
    let result = propagator.extract(headers, &mut extracted);
    (result, extracted)
}

/// Our remote parent for these header lines, or `None`.
fn ours_parent<K: AsRef<str>, V: AsRef<str>>(
    propagator: &dyn Propagator,
    pairs: &[(K, V)],
) -> Option<RemoteContext> {
    ours_extract(propagator, &header_map(pairs)).1.parent
}

/// The context an `opentelemetry` propagator extracts from these header lines.
fn otel_extract<K: AsRef<str>, V: AsRef<str>>(
    propagator: &dyn TextMapPropagator,
    pairs: &[(K, V)],
) -> Context {
    propagator.extract_with_context(&Context::new(), &otel_carrier(pairs))
}

/// The remote span context an `opentelemetry` propagator extracts, if it found a valid one.
fn otel_span<K: AsRef<str>, V: AsRef<str>>(
    propagator: &dyn TextMapPropagator,
    pairs: &[(K, V)],
) -> Option<OtelSpanContext> {
    let context = otel_extract(propagator, pairs);
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then_some(span_context)
}

/// What one of our propagators writes for `context`, as (name, value) pairs.
fn ours_inject(propagator: &dyn Propagator, context: &SpanContext) -> Vec<(String, String)> {
    let mut headers = HeaderMap::new();
    propagator.inject(context, &mut headers);
    let mut pairs = Vec::new();
    for name in headers.keys() {
        let values: Vec<&HeaderValue> = headers.get_all(name).iter().collect();
        assert_eq!(
            values.len(),
            1,
            "one line per injected header, got {values:?}"
        );
        let value = values[0].to_str().expect("injected headers are ASCII");
        pairs.push((name.as_str().to_owned(), value.to_owned()));
    }
    pairs
}

/// What an `opentelemetry` propagator writes for `context`, as (name, value) pairs.
fn otel_inject(propagator: &dyn TextMapPropagator, context: &Context) -> Vec<(String, String)> {
    let mut carrier: HashMap<String, String> = HashMap::new();
    propagator.inject_context(context, &mut carrier);
    let mut pairs: Vec<(String, String)> = carrier.into_iter().collect();
    pairs.sort();
    pairs
}

fn otel_remote(trace: TraceId, span: SpanId, flags: u8, state: OtelTraceState) -> Context {
    let span_context = OtelSpanContext::new(
        OtelTraceId::from_bytes(trace.to_bytes()),
        OtelSpanId::from_bytes(span.to_bytes()),
        OtelTraceFlags::new(flags),
        true,
        state,
    );
    Context::new().with_remote_span_context(span_context)
}

fn value_of<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Asserts that ours and theirs read the same ids and sampling decision.
fn assert_same_ids(ours: &RemoteContext, theirs: &OtelSpanContext, input: &str) {
    assert_eq!(
        ours.trace_id.to_bytes(),
        theirs.trace_id().to_bytes(),
        "trace id of {input:?}"
    );
    assert_eq!(
        ours.span_id.to_bytes(),
        theirs.span_id().to_bytes(),
        "span id of {input:?}"
    );
    assert_eq!(
        ours.flags.is_sampled(),
        theirs.is_sampled(),
        "sampled flag of {input:?}"
    );
}

fn ours_baggage(baggage: &Baggage) -> BTreeMap<String, String> {
    baggage
        .iter()
        .map(|entry| (entry.key.clone(), entry.value.clone()))
        .collect()
}

fn otel_baggage(context: &Context) -> BTreeMap<String, String> {
    context
        .baggage()
        .iter()
        .map(|(key, (value, _))| (key.as_str().to_owned(), value.as_str().to_owned()))
        .collect()
}

fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn w3c() -> TraceContextPropagator {
    TraceContextPropagator::new()
}

fn b3_single() -> B3Propagator {
    B3Propagator::new(B3Encoding::SingleHeader)
}

fn b3_multi() -> B3Propagator {
    B3Propagator::new(B3Encoding::MultipleHeaders)
}

fn zipkin_single() -> ZipkinB3 {
    ZipkinB3::with_encoding(ZipkinEncoding::SingleHeader)
}

fn zipkin_multi() -> ZipkinB3 {
    ZipkinB3::with_encoding(ZipkinEncoding::MultipleHeader)
}

/// A seeded generator, so a failing iteration can be replayed.
fn rng(seed: u64) -> fastrand::Rng {
    fastrand::Rng::with_seed(seed)
}

fn random_trace_id(rng: &mut fastrand::Rng) -> TraceId {
    TraceId::from_u128(rng.u128(1..)).expect("non-zero")
}

fn random_64_bit_trace_id(rng: &mut fastrand::Rng) -> TraceId {
    TraceId::from_u128(u128::from(rng.u64(1..))).expect("non-zero")
}

fn random_span_id(rng: &mut fastrand::Rng) -> SpanId {
    SpanId::from_u64(rng.u64(1..)).expect("non-zero")
}

/// A valid trace state of 0 to 4 members with random keys and values.
fn random_trace_state(rng: &mut fastrand::Rng) -> TraceState {
    const VALUE_CHARS: &[u8] = b"abcXYZ0189!#$%&'()*+-./:;<>?@[]^_`{|}~";
    let members: Vec<String> = (0..rng.usize(0..=4))
        .map(|index| {
            let key: String = (0..rng.usize(1..8)).map(|_| rng.lowercase()).collect();
            let key = if rng.bool() {
                format!("{key}{index}@{}", rng.lowercase())
            } else {
                format!("{key}{index}")
            };
            let mut value: Vec<u8> = (0..rng.usize(0..12))
                .map(|_| {
                    if rng.u8(..8) == 0 {
                        b' '
                    } else {
                        VALUE_CHARS[rng.usize(..VALUE_CHARS.len())]
                    }
                })
                .collect();
            value.push(VALUE_CHARS[rng.usize(..VALUE_CHARS.len())]);
            format!("{key}={}", String::from_utf8(value).expect("ASCII"))
        })
        .collect();
    members
        .join(",")
        .parse()
        .expect("generated trace state is valid")
}

// ---------------------------------------------------------------------------------------------
// W3C Trace Context: agreement
// ---------------------------------------------------------------------------------------------

const TRACE: &str = "12345678901234567890123456789012";
const SPAN: &str = "1234567890123456";

#[test]
fn w3c_spec_and_test_suite_examples_are_read_alike() {
    // (traceparent, tracestate, trace id, span id, sampled, normalised tracestate). The first
    // three are examples of the W3C Trace Context spec, the fourth the example of its early draft
    // (w3c/trace-context trace_context/HTTP_HEADER_FORMAT.md), the rest valid inputs of its test
    // suite (w3c/trace-context test/test.py), including a future version and optional white space.
    let future = format!("cc-{TRACE}-{SPAN}-01-what-the-future-will-be-like");
    type Example = (
        String,
        Option<&'static str>,
        &'static str,
        &'static str,
        bool,
        &'static str,
    );
    let cases: Vec<Example> = vec![
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "00f067aa0ba902b7",
            true,
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00".into(),
            None,
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "00f067aa0ba902b7",
            false,
            "",
        ),
        (
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            Some("congo=t61rcWkgMzE"),
            "0af7651916cd43dd8448eb211c80319c",
            "b7ad6b7169203331",
            true,
            "congo=t61rcWkgMzE",
        ),
        // The draft's base64 value ends in '=', which the final value grammar forbids: both drop
        // the trace state and keep the parent.
        (
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
            Some("congo=BleGNlZWRzIHRohbCBwbGVhc3VyZS4="),
            "0af7651916cd43dd8448eb211c80319c",
            "b7ad6b7169203331",
            true,
            "",
        ),
        (
            format!("00-{TRACE}-{SPAN}-00"),
            Some("foo=1,bar=2"),
            TRACE,
            SPAN,
            false,
            "foo=1,bar=2",
        ),
        (
            format!("00-{TRACE}-{SPAN}-00"),
            Some("foo=1 \t , \t bar=2, \t baz=3"),
            TRACE,
            SPAN,
            false,
            "foo=1,bar=2,baz=3",
        ),
        (
            format!("00-{TRACE}-{SPAN}-00"),
            Some("\t foo=1 \t"),
            TRACE,
            SPAN,
            false,
            "foo=1",
        ),
        (format!("cc-{TRACE}-{SPAN}-01"), None, TRACE, SPAN, true, ""),
        (future, None, TRACE, SPAN, true, ""),
        (
            format!(" 00-{TRACE}-{SPAN}-01"),
            None,
            TRACE,
            SPAN,
            true,
            "",
        ),
        (
            format!("00-{TRACE}-{SPAN}-01\t"),
            None,
            TRACE,
            SPAN,
            true,
            "",
        ),
        (
            format!("\t 00-{TRACE}-{SPAN}-01 \t"),
            None,
            TRACE,
            SPAN,
            true,
            "",
        ),
        // Unknown flag bits are ignored by both.
        (format!("00-{TRACE}-{SPAN}-09"), None, TRACE, SPAN, true, ""),
        (
            format!("00-{TRACE}-{SPAN}-f0"),
            None,
            TRACE,
            SPAN,
            false,
            "",
        ),
    ];
    for (traceparent, tracestate, trace, span, sampled, state) in cases {
        let mut pairs = vec![("traceparent", traceparent.as_str())];
        if let Some(tracestate) = tracestate {
            pairs.push(("tracestate", tracestate));
        }
        let ours = ours_parent(&w3c(), &pairs)
            .unwrap_or_else(|| panic!("ours rejected valid {traceparent:?}"));
        let theirs = otel_span(&OtelTraceContext::new(), &pairs)
            .unwrap_or_else(|| panic!("opentelemetry rejected valid {traceparent:?}"));
        assert_same_ids(&ours, &theirs, &traceparent);
        assert_eq!(ours.trace_id.to_string(), trace);
        assert_eq!(ours.span_id.to_string(), span);
        assert_eq!(ours.flags.is_sampled(), sampled, "{traceparent:?}");
        assert_eq!(ours.parent_span_id, None);
        assert!(!ours.sampling_deferred);
        assert_eq!(ours.trace_state.header_value().unwrap_or(""), state);
        assert_eq!(theirs.trace_state().header(), state, "{traceparent:?}");
    }
}

#[test]
fn w3c_test_suite_tracestate_with_every_allowed_character_is_kept_by_both() {
    // test_tracestate_all_allowed_characters: every key character, with and without a vendor
    // part, and a value of every allowed character (it starts with a space, which is allowed).
    let key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
    let key_with_vendor = format!("{key}@a-z0-9_-*/");
    let value: String = (0x20u8..=0x7e)
        .filter(|&b| b != b',' && b != b'=')
        .map(char::from)
        .collect();
    for key in [key.to_owned(), key_with_vendor] {
        let tracestate = format!("{key}={value}");
        let pairs = [
            ("traceparent", format!("00-{TRACE}-{SPAN}-00")),
            ("tracestate", tracestate.clone()),
        ];
        let ours = ours_parent(&w3c(), &pairs).expect("ours keeps the parent");
        let theirs = otel_span(&OtelTraceContext::new(), &pairs).expect("theirs keeps it");
        assert_eq!(ours.trace_state.get(&key), Some(value.as_str()));
        assert_eq!(theirs.trace_state().get(&key), Some(value.as_str()));
        assert_eq!(ours.trace_state.header_value(), Some(tracestate.as_str()));
    }
}

#[test]
fn w3c_test_suite_tracestate_lines_are_combined_in_order_like_one_joined_line() {
    // test_tracestate_multiple_headers_different_keys and the 32-member limit spread over lines.
    // The HashMap carrier of opentelemetry holds one line, so theirs reads the lines joined by ','.
    let lines: Vec<(&str, String)> = vec![
        ("traceparent", format!("00-{TRACE}-{SPAN}-00")),
        ("tracestate", "foo=1,bar=2".into()),
        ("tracestate", "rojo=1,congo=2".into()),
        ("tracestate", "baz=3".into()),
    ];
    let ours = ours_parent(&w3c(), &lines).expect("parent");
    let theirs = otel_span(&OtelTraceContext::new(), &lines).expect("parent");
    assert_eq!(
        ours.trace_state.header_value(),
        Some("foo=1,bar=2,rojo=1,congo=2,baz=3")
    );
    assert_eq!(
        theirs.trace_state().header(),
        "foo=1,bar=2,rojo=1,congo=2,baz=3"
    );

    let mut lines: Vec<(&str, String)> = vec![("traceparent", format!("00-{TRACE}-{SPAN}-00"))];
    for chunk in (1..=32).collect::<Vec<u32>>().chunks(10) {
        let line: Vec<String> = chunk.iter().map(|i| format!("bar{i:02}={i:02}")).collect();
        lines.push(("tracestate", line.join(",")));
    }
    let ours = ours_parent(&w3c(), &lines).expect("parent");
    let theirs = otel_span(&OtelTraceContext::new(), &lines).expect("parent");
    assert_eq!(ours.trace_state.len(), 32);
    assert_eq!(ours.trace_state.get("bar01"), Some("01"));
    assert_eq!(ours.trace_state.get("bar32"), Some("32"));
    assert_eq!(
        ours.trace_state.header_value(),
        Some(theirs.trace_state().header().as_str())
    );
}

#[test]
fn w3c_test_suite_empty_tracestate_lines_are_ignored_by_both() {
    // test_tracestate_empty_header.
    for lines in [
        vec![("tracestate", "")],
        vec![("tracestate", "foo=1"), ("tracestate", "")],
        vec![("tracestate", ""), ("tracestate", "foo=1")],
    ] {
        let traceparent = format!("00-{TRACE}-{SPAN}-00");
        let mut pairs = vec![("traceparent", traceparent.as_str())];
        pairs.extend(lines.iter().copied());
        let expected = if lines.iter().any(|(_, v)| !v.is_empty()) {
            Some("foo=1")
        } else {
            None
        };
        let (result, extracted) = ours_extract(&w3c(), &header_map(&pairs));
        assert_eq!(result, Ok(Presence::Found), "{lines:?}");
        let ours = extracted.parent.expect("parent");
        assert_eq!(ours.trace_state.header_value(), expected);
        let theirs = otel_span(&OtelTraceContext::new(), &pairs).expect("parent");
        assert_eq!(theirs.trace_state().get("foo"), expected.map(|_| "1"));
    }
}

#[test]
fn w3c_contexts_injected_by_ours_are_extracted_alike_by_opentelemetry() {
    let mut rng = rng(0x00c0_ffee);
    for iteration in 0..300 {
        let trace = if iteration % 5 == 0 {
            random_64_bit_trace_id(&mut rng)
        } else {
            random_trace_id(&mut rng)
        };
        let span = random_span_id(&mut rng);
        let sampled = rng.bool();
        let state = random_trace_state(&mut rng);
        let context = SpanContext::new(
            trace,
            span,
            TraceFlags::EMPTY.with(TraceFlags::SAMPLED, sampled),
        )
        .with_parent_span_id(rng.bool().then(|| random_span_id(&mut rng)))
        .with_trace_state(state.clone());
        let pairs = ours_inject(&w3c(), &context);
        let traceparent = value_of(&pairs, "traceparent").expect("traceparent written");
        assert_eq!(traceparent.len(), 55, "{traceparent:?}");
        assert_eq!(value_of(&pairs, "tracestate"), state.header_value());

        let theirs = otel_span(&OtelTraceContext::new(), &pairs)
            .unwrap_or_else(|| panic!("opentelemetry rejected {pairs:?}"));
        assert_eq!(theirs.trace_id().to_bytes(), trace.to_bytes());
        assert_eq!(theirs.span_id().to_bytes(), span.to_bytes());
        assert_eq!(theirs.trace_flags().to_u8(), u8::from(sampled));
        assert_eq!(
            theirs.trace_state().header(),
            state.header_value().unwrap_or("")
        );
    }
}

#[test]
fn w3c_contexts_injected_by_opentelemetry_are_extracted_alike_by_ours() {
    let mut rng = rng(0x0bad_5eed);
    for _ in 0..300 {
        let trace = random_trace_id(&mut rng);
        let span = random_span_id(&mut rng);
        let sampled = rng.bool();
        let state = random_trace_state(&mut rng);
        let otel_state: OtelTraceState = state
            .header_value()
            .unwrap_or("")
            .parse()
            .expect("valid for opentelemetry too");
        let context = otel_remote(trace, span, u8::from(sampled), otel_state);
        let pairs = otel_inject(&OtelTraceContext::new(), &context);

        let (result, extracted) = ours_extract(&w3c(), &header_map(&pairs));
        assert_eq!(result, Ok(Presence::Found), "{pairs:?}");
        let ours = extracted.parent.expect("parent");
        assert_eq!(ours.trace_id, trace);
        assert_eq!(ours.span_id, span);
        assert_eq!(
            ours.flags,
            TraceFlags::EMPTY.with(TraceFlags::SAMPLED, sampled)
        );
        assert_eq!(ours.trace_state, state);
        assert_eq!(ours.parent_span_id, None);
        assert!(!ours.sampling_deferred);
    }
}

#[test]
fn w3c_test_suite_malformed_traceparents_are_rejected_by_both() {
    // The invalid traceparent inputs of the W3C test suite (w3c/trace-context test/test.py) that
    // opentelemetry also rejects; those it accepts have tests of their own below.
    let cases: Vec<(String, &str)> = vec![
        (
            format!("00-{TRACE}-{SPAN}-01."),
            "version 00 with trailing characters",
        ),
        (
            format!("00-{TRACE}-{SPAN}-01-what-the-future-will-be-like"),
            "version 00 with extra fields",
        ),
        (
            format!("cc-{TRACE}-{SPAN}-01.what-the-future-will-be-like"),
            "future version whose extra fields do not follow a '-'",
        ),
        (format!("ff-{TRACE}-{SPAN}-01"), "version ff"),
        (
            format!(".0-{TRACE}-{SPAN}-01"),
            "illegal character in version",
        ),
        (
            format!("0.-{TRACE}-{SPAN}-01"),
            "illegal character in version",
        ),
        (
            format!("00-{}-{SPAN}-01", "0".repeat(32)),
            "all-zero trace id",
        ),
        (
            format!("00-.2345678901234567890123456789012-{SPAN}-01"),
            "illegal character in trace id",
        ),
        (
            format!("00-1234567890123456789012345678901.-{SPAN}-01"),
            "illegal character in trace id",
        ),
        (
            format!("00-123456789012345678901234567890123-{SPAN}-01"),
            "trace id of 33 digits",
        ),
        (
            format!("00-{TRACE}-0000000000000000-01"),
            "all-zero parent id",
        ),
        (
            format!("00-{TRACE}-.234567890123456-01"),
            "illegal character in parent id",
        ),
        (
            format!("00-{TRACE}-123456789012345.-01"),
            "illegal character in parent id",
        ),
        (
            format!("00-{TRACE}-12345678901234567-01"),
            "parent id of 17 digits",
        ),
        (
            format!("00-{TRACE}-{SPAN}-.0"),
            "illegal character in flags",
        ),
        (
            format!("00-{TRACE}-{SPAN}-0."),
            "illegal character in flags",
        ),
        // From the spec's grammar (lower-case hex only) and opentelemetry's own invalid cases.
        (
            format!("00-{}-{SPAN}-01", TRACE.replace('1', "A")),
            "upper-case trace id",
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01".into(),
            "upper-case parent id",
        ),
        (format!("00-{TRACE}-{SPAN}-A1"), "upper-case flags"),
        (format!("00-{TRACE}-{SPAN}"), "missing flags"),
        (format!("00-{TRACE}-{SPAN}-"), "empty flags"),
        (format!("00-{TRACE}--{SPAN}-01"), "empty field"),
        (format!("00_{TRACE}_{SPAN}_01"), "wrong separator"),
        ("".into(), "empty header"),
    ];
    for (traceparent, why) in cases {
        let pairs = [("traceparent", traceparent.as_str())];
        let (result, extracted) = ours_extract(&w3c(), &header_map(&pairs));
        assert!(
            matches!(result, Err(ExtractError::Malformed { .. })),
            "ours must reject {traceparent:?} ({why}), got {result:?}"
        );
        assert_eq!(extracted.parent, None, "{traceparent:?} ({why})");
        assert_eq!(
            otel_span(&OtelTraceContext::new(), &pairs),
            None,
            "opentelemetry accepted {traceparent:?} ({why})"
        );
    }
}

#[test]
fn w3c_test_suite_duplicated_traceparent_is_rejected_by_ours() {
    // test_traceparent_duplicated: two traceparent lines mean no parent. (opentelemetry's HashMap
    // carrier cannot hold two lines, so there is nothing of theirs to compare.)
    let pairs = [
        ("traceparent", format!("00-{}1-{SPAN}-01", &TRACE[..31])),
        ("traceparent", format!("00-{TRACE}-{SPAN}-01")),
    ];
    let (result, extracted) = ours_extract(&w3c(), &header_map(&pairs));
    assert!(
        matches!(result, Err(ExtractError::Malformed { .. })),
        "{result:?}"
    );
    assert_eq!(extracted.parent, None);
}

#[test]
fn w3c_test_suite_invalid_tracestates_are_dropped_by_both_and_the_parent_kept() {
    // test_tracestate_key_illegal_characters, _key_illegal_vendor_format, _key_length_limit and
    // _value_illegal_characters: the cases where opentelemetry drops the trace state as well.
    let cases: Vec<(String, &str)> = vec![
        ("foo=bar=baz".into(), "'=' in a value"),
        ("foo =1".into(), "space in a key"),
        ("FOO=1".into(), "upper-case key"),
        ("foo.bar=1".into(), "'.' in a key"),
        ("@foo=1,bar=2".into(), "empty tenant"),
        ("foo@@bar=1,bar=2".into(), "two '@'"),
        ("foo@bar@baz=1,bar=2".into(), "two '@'"),
        (
            format!("foo=1,{}=1", "z".repeat(257)),
            "key of 257 characters",
        ),
        (
            format!("foo=1,t@{}=1", "v".repeat(15)),
            "vendor of 15 characters",
        ),
        ("novalue".into(), "member without '='"),
    ];
    for (tracestate, why) in cases {
        let pairs = [
            ("traceparent", format!("00-{TRACE}-{SPAN}-01")),
            ("tracestate", tracestate.clone()),
        ];
        let (result, extracted) = ours_extract(&w3c(), &header_map(&pairs));
        assert!(
            matches!(result, Err(ExtractError::TraceState(_))),
            "ours must report {tracestate:?} ({why}), got {result:?}"
        );
        let ours = extracted
            .parent
            .expect("the parent survives a bad tracestate");
        assert_eq!(ours.trace_id.to_string(), TRACE);
        assert_eq!(
            ours.trace_state,
            TraceState::EMPTY,
            "{tracestate:?} ({why})"
        );
        let theirs = otel_span(&OtelTraceContext::new(), &pairs).expect("parent kept");
        assert_eq!(theirs.trace_state().header(), "", "{tracestate:?} ({why})");
    }
}

// ---------------------------------------------------------------------------------------------
// W3C Trace Context: where opentelemetry_sdk departs from the spec
// ---------------------------------------------------------------------------------------------

#[test]
fn otel_sdk_drops_the_random_flag_ours_keeps_it() {
    // Trace Context Level 2 defines flag 0x02 ("random trace id"). opentelemetry_sdk masks every
    // flag but sampled, on extraction and on injection.
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03";
    let pairs = [("traceparent", traceparent)];
    let ours = ours_parent(&w3c(), &pairs).expect("parent");
    assert_eq!(ours.flags, TraceFlags::SAMPLED | TraceFlags::RANDOM);
    let theirs = otel_span(&OtelTraceContext::new(), &pairs).expect("parent");
    assert_eq!(theirs.trace_flags().to_u8(), 0x01);

    let trace: TraceId = "4bf92f3577b34da6a3ce929d0e0e4736".parse().expect("id");
    let span: SpanId = "00f067aa0ba902b7".parse().expect("id");
    let context = SpanContext::new(trace, span, TraceFlags::SAMPLED | TraceFlags::RANDOM);
    let written = ours_inject(&w3c(), &context);
    assert_eq!(value_of(&written, "traceparent"), Some(traceparent));
    let random_only = SpanContext::new(trace, span, TraceFlags::RANDOM);
    assert_eq!(
        value_of(&ours_inject(&w3c(), &random_only), "traceparent"),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02")
    );

    let written = otel_inject(
        &OtelTraceContext::new(),
        &otel_remote(trace, span, 0x03, OtelTraceState::default()),
    );
    assert_eq!(
        value_of(&written, "traceparent"),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );
}

#[test]
fn w3c_never_carries_debug_or_firehose_ours_writes_only_the_w3c_bits() {
    // Our DEBUG and FIREHOSE bits have no W3C flag; they must not leak into the flags byte
    // (DEBUG is bit 2 of tracewire's flags, which is not W3C's 0x04).
    let trace: TraceId = "4bf92f3577b34da6a3ce929d0e0e4736".parse().expect("id");
    let span: SpanId = "00f067aa0ba902b7".parse().expect("id");
    let every_flag =
        TraceFlags::SAMPLED | TraceFlags::RANDOM | TraceFlags::DEBUG | TraceFlags::FIREHOSE;
    let written = ours_inject(&w3c(), &SpanContext::new(trace, span, every_flag));
    let traceparent = value_of(&written, "traceparent").expect("written");
    assert!(traceparent.ends_with("-03"), "{traceparent:?}");
    let theirs = otel_span(&OtelTraceContext::new(), &written).expect("parent");
    assert_eq!(theirs.trace_flags().to_u8(), 0x01);
    // W3C bits above 0x02 are read by nobody.
    let ours =
        ours_parent(&w3c(), &[("traceparent", format!("00-{TRACE}-{SPAN}-ff"))]).expect("parent");
    assert_eq!(ours.flags, TraceFlags::SAMPLED | TraceFlags::RANDOM);
}

#[test]
fn otel_sdk_accepts_version_and_flags_of_the_wrong_length_ours_rejects_them() {
    // W3C test suite: test_traceparent_version_too_short, _version_too_long,
    // _trace_flags_too_short and _trace_flags_too_long. The grammar is exactly two hex digits
    // each; opentelemetry_sdk parses them with u8::from_str_radix, which takes any length.
    for traceparent in [
        format!("0-{TRACE}-{SPAN}-01"),
        format!("000-{TRACE}-{SPAN}-01"),
        format!("0000-{TRACE}-{SPAN}-01"),
        format!("00-{TRACE}-{SPAN}-1"),
        format!("00-{TRACE}-{SPAN}-001"),
    ] {
        let pairs = [("traceparent", traceparent.as_str())];
        let (result, extracted) = ours_extract(&w3c(), &header_map(&pairs));
        assert!(result.is_err(), "ours must reject {traceparent:?}");
        assert_eq!(extracted.parent, None, "{traceparent:?}");
        let theirs = otel_span(&OtelTraceContext::new(), &pairs)
            .unwrap_or_else(|| panic!("opentelemetry now rejects {traceparent:?}: update test"));
        assert_eq!(theirs.trace_id().to_string(), TRACE);
        assert!(theirs.is_sampled());
    }
}

#[test]
fn otel_sdk_accepts_an_upper_case_version_ours_rejects_it() {
    // version = 2HEXDIGLC. opentelemetry_sdk checks the case of ids and flags, not of the version.
    let traceparent = format!("A0-{TRACE}-{SPAN}-01");
    let pairs = [("traceparent", traceparent.as_str())];
    let (result, extracted) = ours_extract(&w3c(), &header_map(&pairs));
    assert!(
        matches!(result, Err(ExtractError::Malformed { .. })),
        "{result:?}"
    );
    assert_eq!(extracted.parent, None);
    let theirs = otel_span(&OtelTraceContext::new(), &pairs).expect("opentelemetry accepts it");
    assert_eq!(theirs.trace_id().to_string(), TRACE);
}

#[test]
fn otel_sdk_accepts_ids_of_the_wrong_length_ours_rejects_them() {
    // W3C test suite: test_traceparent_trace_id_too_short and _parent_id_too_short; the too-long
    // cases of the suite overflow and are rejected by both, but with a leading zero they fit in
    // the integer opentelemetry_sdk parses into and are accepted. Ids are exactly 32 and 16 digits.
    let cases = [
        (
            format!("00-{}-{SPAN}-01", &TRACE[..31]),
            "01234567890123456789012345678901",
            SPAN,
        ),
        (format!("00-0{TRACE}-{SPAN}-01"), TRACE, SPAN),
        (
            format!("00-{TRACE}-{}-01", &SPAN[..15]),
            TRACE,
            "0123456789012345",
        ),
        (format!("00-{TRACE}-0{SPAN}-01"), TRACE, SPAN),
    ];
    for (traceparent, their_trace, their_span) in cases {
        let pairs = [("traceparent", traceparent.as_str())];
        let (result, extracted) = ours_extract(&w3c(), &header_map(&pairs));
        assert!(result.is_err(), "ours must reject {traceparent:?}");
        assert_eq!(extracted.parent, None, "{traceparent:?}");
        let theirs = otel_span(&OtelTraceContext::new(), &pairs)
            .unwrap_or_else(|| panic!("opentelemetry now rejects {traceparent:?}: update test"));
        assert_eq!(theirs.trace_id().to_string(), their_trace);
        assert_eq!(theirs.span_id().to_string(), their_span);
    }
}

#[test]
fn otel_sdk_accepts_a_trailing_dash_after_version_00_ours_rejects_it() {
    // Version 00 is exactly 55 characters. opentelemetry_sdk splits with split_terminator('-'),
    // which swallows one trailing '-' (its own tests list this input as valid).
    let traceparent = format!("00-{TRACE}-{SPAN}-01-");
    let pairs = [("traceparent", traceparent.as_str())];
    let (result, extracted) = ours_extract(&w3c(), &header_map(&pairs));
    assert!(
        matches!(result, Err(ExtractError::Malformed { .. })),
        "{result:?}"
    );
    assert_eq!(extracted.parent, None);
    let theirs = otel_span(&OtelTraceContext::new(), &pairs).expect("opentelemetry accepts it");
    assert_eq!(theirs.trace_id().to_string(), TRACE);
}

#[test]
fn otel_sdk_accepts_a_plus_sign_in_hex_fields_ours_rejects_it() {
    // Rust's from_str_radix takes a leading '+', so opentelemetry_sdk reads "+234…" as hex.
    let cases = [
        (
            format!("00-+{}-{SPAN}-01", &TRACE[1..]),
            "02345678901234567890123456789012",
            SPAN,
        ),
        (
            format!("00-{TRACE}-+{}-01", &SPAN[1..]),
            TRACE,
            "0234567890123456",
        ),
        (format!("+0-{TRACE}-{SPAN}-01"), TRACE, SPAN),
        (format!("00-{TRACE}-{SPAN}-+1"), TRACE, SPAN),
    ];
    for (traceparent, their_trace, their_span) in cases {
        let pairs = [("traceparent", traceparent.as_str())];
        let (result, extracted) = ours_extract(&w3c(), &header_map(&pairs));
        assert!(result.is_err(), "ours must reject {traceparent:?}");
        assert_eq!(extracted.parent, None, "{traceparent:?}");
        let theirs = otel_span(&OtelTraceContext::new(), &pairs)
            .unwrap_or_else(|| panic!("opentelemetry now rejects {traceparent:?}: update test"));
        assert_eq!(theirs.trace_id().to_string(), their_trace);
        assert_eq!(theirs.span_id().to_string(), their_span);
    }
}

#[test]
fn otel_sdk_keeps_tracestates_the_spec_invalidates_ours_drops_them_and_keeps_the_parent() {
    // W3C test suite (STRICT_LEVEL 2): duplicated keys, an empty value, an empty vendor and the
    // 33-member limit must discard the whole trace state; a tenant of 242 characters is too long;
    // a value may only hold printable ASCII. opentelemetry_sdk keeps them (or, past 32 members,
    // silently truncates).
    let thirty_three: Vec<String> = (1..=33).map(|i| format!("bar{i:02}={i:02}")).collect();
    let cases: Vec<(Vec<String>, &str, String)> = vec![
        (
            vec!["foo=1,foo=1".into()],
            "duplicated key",
            "foo=1,foo=1".into(),
        ),
        (
            vec!["foo=1".into(), "foo=2".into()],
            "duplicated key over two lines",
            "foo=1,foo=2".into(),
        ),
        (
            vec!["foo=,bar=3".into()],
            "empty value",
            "foo=,bar=3".into(),
        ),
        (
            vec!["foo@=1,bar=2".into()],
            "empty vendor",
            "foo@=1,bar=2".into(),
        ),
        (
            vec![thirty_three.join(",")],
            "33 members",
            thirty_three[..32].join(","),
        ),
        (
            vec![format!("foo=1,{}@v=1", "t".repeat(242))],
            "tenant of 242 characters",
            format!("foo=1,{}@v=1", "t".repeat(242)),
        ),
        (
            vec!["a=caf\u{e9}".into()],
            "non-ASCII value",
            "a=caf\u{e9}".into(),
        ),
    ];
    for (lines, why, theirs_kept) in cases {
        let mut pairs = vec![("traceparent".to_owned(), format!("00-{TRACE}-{SPAN}-01"))];
        pairs.extend(
            lines
                .iter()
                .map(|line| ("tracestate".to_owned(), line.clone())),
        );
        let (result, extracted) = ours_extract(&w3c(), &header_map(&pairs));
        assert!(
            matches!(result, Err(ExtractError::TraceState(_))),
            "ours must drop {lines:?} ({why}), got {result:?}"
        );
        let ours = extracted.parent.expect("parent kept");
        assert_eq!(ours.trace_state, TraceState::EMPTY, "{why}");
        let theirs = otel_span(&OtelTraceContext::new(), &pairs).expect("parent kept");
        assert_eq!(theirs.trace_state().header(), theirs_kept, "{why}");
    }
}

// ---------------------------------------------------------------------------------------------
// W3C baggage
// ---------------------------------------------------------------------------------------------

/// Our baggage extraction from these lines.
fn ours_baggage_of(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    let (result, extracted) = ours_extract(&BaggagePropagator::new(), &header_map(pairs));
    assert!(result.is_ok(), "{pairs:?}: {result:?}");
    assert_eq!(extracted.parent, None);
    ours_baggage(&extracted.baggage)
}

#[test]
fn w3c_baggage_spec_examples_are_read_alike() {
    let alice = map(&[
        ("userId", "alice"),
        ("serverNode", "DF 28"),
        ("isProduction", "false"),
    ]);
    type Example = (Vec<(&'static str, &'static str)>, BTreeMap<String, String>);
    let cases: Vec<Example> = vec![
        (
            vec![(
                "baggage",
                "userId=alice,serverNode=DF%2028,isProduction=false",
            )],
            alice.clone(),
        ),
        (
            vec![
                ("baggage", "userId=alice"),
                ("baggage", "serverNode=DF%2028,isProduction=false"),
            ],
            alice.clone(),
        ),
        (
            vec![
                ("baggage", "userId =   alice"),
                ("baggage", "serverNode = DF%2028, isProduction = false"),
            ],
            alice,
        ),
        (
            vec![(
                "baggage",
                "key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue",
            )],
            map(&[("key1", "value1"), ("key2", "value2"), ("key3", "value3")]),
        ),
        (
            vec![("baggage", "userId=Am%C3%A9lie,serverNode=DF%2028")],
            map(&[("userId", "Am\u{e9}lie"), ("serverNode", "DF 28")]),
        ),
    ];
    for (pairs, expected) in cases {
        assert_eq!(ours_baggage_of(&pairs), expected, "ours, {pairs:?}");
        let theirs = otel_extract(&OtelBaggagePropagator::new(), &pairs);
        assert_eq!(otel_baggage(&theirs), expected, "opentelemetry, {pairs:?}");
    }
}

/// Random baggage values built from characters that both sides encode and decode faithfully:
/// no '=' (opentelemetry cuts values there), no '%' or '\' (it does not encode them) and no
/// white space at the ends (it trims after decoding); see the deviation tests below.
fn random_portable_value(rng: &mut fastrand::Rng) -> String {
    const PIECES: &[&str] = &[
        "a",
        "Z",
        "0",
        "9",
        "-",
        "_",
        ".",
        "~",
        " ",
        ",",
        ";",
        "\"",
        "/",
        "?",
        "&",
        "+",
        ":",
        "!",
        "#",
        "'",
        "(",
        ")",
        "*",
        "@",
        "[",
        "]",
        "{",
        "}",
        "\u{e9}",
        "\u{65e5}",
        "\u{1f600}",
    ];
    let inner: String = (0..rng.usize(0..12))
        .map(|_| PIECES[rng.usize(..PIECES.len())])
        .collect();
    format!("x{inner}y")
}

fn random_key(rng: &mut fastrand::Rng, index: usize) -> String {
    const KEY_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.";
    let key: String = (0..rng.usize(1..10))
        .map(|_| char::from(KEY_CHARS[rng.usize(..KEY_CHARS.len())]))
        .collect();
    format!("{key}{index}")
}

#[test]
fn baggage_injected_by_ours_is_extracted_alike_by_opentelemetry() {
    let mut rng = rng(0xba66_a6e0);
    for _ in 0..200 {
        let mut baggage = Baggage::EMPTY;
        let mut expected = BTreeMap::new();
        for index in 0..rng.usize(1..8) {
            let key = random_key(&mut rng, index);
            // Ours encodes '%' and '\', so those survive the trip to opentelemetry.
            let value = format!("{}%41\\", random_portable_value(&mut rng));
            baggage = baggage
                .with_entry(key.clone(), value.clone())
                .expect("fits");
            expected.insert(key, value);
        }
        let trace: TraceId = TRACE.parse().expect("id");
        let span: SpanId = SPAN.parse().expect("id");
        let context = SpanContext::new(trace, span, TraceFlags::SAMPLED).with_baggage(baggage);
        let written = ours_inject(&BaggagePropagator::new(), &context);
        assert_eq!(written.len(), 1, "{written:?}");
        let theirs = otel_extract(&OtelBaggagePropagator::new(), &written);
        assert_eq!(otel_baggage(&theirs), expected, "{written:?}");
    }
}

#[test]
fn baggage_injected_by_opentelemetry_is_extracted_alike_by_ours() {
    let mut rng = rng(0x0e11_a6e0);
    for _ in 0..200 {
        let mut expected = BTreeMap::new();
        for index in 0..rng.usize(1..8) {
            let key = random_key(&mut rng, index);
            // '=' is fine in this direction: opentelemetry encodes it as %3D.
            let value = format!("{}={}", random_portable_value(&mut rng), index);
            expected.insert(key, value);
        }
        let context = Context::new().with_baggage(
            expected
                .iter()
                .map(|(k, v)| opentelemetry::KeyValue::new(k.clone(), v.clone()))
                .collect::<Vec<_>>(),
        );
        let written = otel_inject(&OtelBaggagePropagator::new(), &context);
        let pairs: Vec<(&str, &str)> = written
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(ours_baggage_of(&pairs), expected, "{written:?}");
    }
}

#[test]
fn otel_baggage_cuts_a_value_at_an_equals_sign_ours_keeps_the_whole_value() {
    // W3C baggage: "value MAY contain any number of the equal sign (`=`) characters. Parsers
    // MUST NOT assume that the equal sign is only used to separate key and value."
    let pairs = [("baggage", "k=a=b,formula=x==y")];
    assert_eq!(
        ours_baggage_of(&pairs),
        map(&[("k", "a=b"), ("formula", "x==y")])
    );
    let theirs = otel_extract(&OtelBaggagePropagator::new(), &pairs);
    assert_eq!(otel_baggage(&theirs), map(&[("k", "a"), ("formula", "x")]));

    // So what ours writes ('=' is a baggage-octet and travels as is) loses its tail over there.
    let context = SpanContext::new(
        TRACE.parse().expect("id"),
        SPAN.parse().expect("id"),
        TraceFlags::SAMPLED,
    )
    .with_baggage(Baggage::EMPTY.with_entry("k", "a=b").expect("fits"));
    let written = ours_inject(&BaggagePropagator::new(), &context);
    let theirs = otel_extract(&OtelBaggagePropagator::new(), &written);
    assert_eq!(otel_baggage(&theirs), map(&[("k", "a")]));
}

#[test]
fn otel_baggage_leaves_percent_and_backslash_unencoded_ours_encodes_them() {
    // A baggage value is "a URL encoded UTF-8 string" of baggage-octets, which exclude '\'; a
    // literal '%' must therefore travel as %25. opentelemetry_sdk encodes neither, so "a%41"
    // comes back from its own round trip as "aA", and its header holds a raw '\'.
    let value = "a%41\\b";
    let context = Context::new().with_baggage([opentelemetry::KeyValue::new("k", value)]);
    let theirs_written = otel_inject(&OtelBaggagePropagator::new(), &context);
    assert_eq!(value_of(&theirs_written, "baggage"), Some("k=a%41\\b"));
    let theirs_round_trip = otel_extract(&OtelBaggagePropagator::new(), &theirs_written);
    assert_eq!(otel_baggage(&theirs_round_trip), map(&[("k", "aA\\b")]));

    let ours_context = SpanContext::new(
        TRACE.parse().expect("id"),
        SPAN.parse().expect("id"),
        TraceFlags::SAMPLED,
    )
    .with_baggage(Baggage::EMPTY.with_entry("k", value).expect("fits"));
    let ours_written = ours_inject(&BaggagePropagator::new(), &ours_context);
    let header = value_of(&ours_written, "baggage").expect("written");
    assert!(
        header.bytes().all(|b| b != b'\\') && header.contains("%25"),
        "{header:?}"
    );
    let pairs = [("baggage", header)];
    assert_eq!(ours_baggage_of(&pairs), map(&[("k", value)]));
    let theirs = otel_extract(&OtelBaggagePropagator::new(), &pairs);
    assert_eq!(otel_baggage(&theirs), map(&[("k", value)]));
}

#[test]
fn otel_baggage_trims_encoded_spaces_at_the_ends_of_a_value_ours_keeps_them() {
    // Only optional white space around the encoded value is not part of it; %20 is. opentelemetry
    // trims the value after decoding, and trims it before encoding when it injects.
    let pairs = [("baggage", "k=%20padded%20, j = %09tab")];
    assert_eq!(
        ours_baggage_of(&pairs),
        map(&[("k", " padded "), ("j", "\ttab")])
    );
    let theirs = otel_extract(&OtelBaggagePropagator::new(), &pairs);
    assert_eq!(otel_baggage(&theirs), map(&[("k", "padded"), ("j", "tab")]));

    let context = Context::new().with_baggage([opentelemetry::KeyValue::new("k", " padded ")]);
    let written = otel_inject(&OtelBaggagePropagator::new(), &context);
    assert_eq!(value_of(&written, "baggage"), Some("k=padded"));

    let ours_context = SpanContext::new(
        TRACE.parse().expect("id"),
        SPAN.parse().expect("id"),
        TraceFlags::SAMPLED,
    )
    .with_baggage(Baggage::EMPTY.with_entry("k", " padded ").expect("fits"));
    let written = ours_inject(&BaggagePropagator::new(), &ours_context);
    let header = value_of(&written, "baggage").expect("written");
    assert_eq!(
        ours_baggage_of(&[("baggage", header)]),
        map(&[("k", " padded ")])
    );
}

#[test]
fn malformed_baggage_members_are_dropped_by_both_and_the_others_kept() {
    // A member without '=', an empty key, a key that is not a token, and a value that does not
    // decode to UTF-8.
    for member in ["novalue", "=v", "bad key=v", "k=%C3"] {
        let header = format!("ok=1,{member},also=2");
        let pairs = [("baggage", header.as_str())];
        let (result, extracted) = ours_extract(&BaggagePropagator::new(), &header_map(&pairs));
        assert!(
            matches!(result, Err(ExtractError::Baggage { dropped: 1, .. })),
            "{member:?}: {result:?}"
        );
        let expected = map(&[("ok", "1"), ("also", "2")]);
        assert_eq!(ours_baggage(&extracted.baggage), expected, "{member:?}");
        let theirs = otel_extract(&OtelBaggagePropagator::new(), &pairs);
        assert_eq!(otel_baggage(&theirs), expected, "{member:?}");
    }
}

#[test]
fn otel_baggage_keeps_values_outside_the_baggage_octet_grammar_ours_drops_them() {
    // value = *baggage-octet, which excludes white space, '"', ',', ';' and '' (they must be
    // percent-encoded). opentelemetry_sdk keeps a raw space or quote inside a value.
    for (member, theirs_value) in [("k=v w", "v w"), ("k=\"x\"", "\"x\"")] {
        let header = format!("ok=1,{member}");
        let pairs = [("baggage", header.as_str())];
        let (result, extracted) = ours_extract(&BaggagePropagator::new(), &header_map(&pairs));
        assert!(
            matches!(result, Err(ExtractError::Baggage { dropped: 1, .. })),
            "{member:?}: {result:?}"
        );
        assert_eq!(ours_baggage(&extracted.baggage), map(&[("ok", "1")]));
        let theirs = otel_extract(&OtelBaggagePropagator::new(), &pairs);
        assert_eq!(
            otel_baggage(&theirs),
            map(&[("ok", "1"), ("k", theirs_value)]),
            "{member:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// B3
// ---------------------------------------------------------------------------------------------

#[test]
fn b3_readme_examples_are_read_alike() {
    // The examples of the B3 specification (openzipkin/b3-propagation README), single and
    // multiple headers, with and without a parent, 128- and 64-bit trace ids. Each tuple:
    // (headers, trace id, span id, parent span id, sampled).
    type Case = (
        Vec<(&'static str, &'static str)>,
        &'static str,
        &'static str,
        Option<&'static str>,
        bool,
    );
    let single: Vec<Case> = vec![
        (
            vec![(
                "b3",
                "80f198ee56343ba864fe8b2a57d3eff7-05e3ac9a4f6e3b90-1-e457b5a2e4d86bd1",
            )],
            "80f198ee56343ba864fe8b2a57d3eff7",
            "05e3ac9a4f6e3b90",
            Some("e457b5a2e4d86bd1"),
            true,
        ),
        (
            vec![("b3", "80f198ee56343ba864fe8b2a57d3eff7-05e3ac9a4f6e3b90-1")],
            "80f198ee56343ba864fe8b2a57d3eff7",
            "05e3ac9a4f6e3b90",
            None,
            true,
        ),
        (
            vec![("b3", "80f198ee56343ba864fe8b2a57d3eff7-05e3ac9a4f6e3b90-0")],
            "80f198ee56343ba864fe8b2a57d3eff7",
            "05e3ac9a4f6e3b90",
            None,
            false,
        ),
        (
            vec![("b3", "64fe8b2a57d3eff7-05e3ac9a4f6e3b90-1-e457b5a2e4d86bd1")],
            "000000000000000064fe8b2a57d3eff7",
            "05e3ac9a4f6e3b90",
            Some("e457b5a2e4d86bd1"),
            true,
        ),
    ];
    let multi: Vec<Case> = vec![
        (
            vec![
                ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
                ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
                ("x-b3-spanid", "e457b5a2e4d86bd1"),
                ("x-b3-sampled", "1"),
            ],
            "80f198ee56343ba864fe8b2a57d3eff7",
            "e457b5a2e4d86bd1",
            Some("05e3ac9a4f6e3b90"),
            true,
        ),
        (
            vec![
                ("X-B3-TraceId", "463ac35c9f6413ad48485a3953bb6124"),
                ("X-B3-SpanId", "a2fb4a1d1a96d312"),
                ("X-B3-ParentSpanId", "0020000000000001"),
                ("X-B3-Sampled", "1"),
            ],
            "463ac35c9f6413ad48485a3953bb6124",
            "a2fb4a1d1a96d312",
            Some("0020000000000001"),
            true,
        ),
        (
            vec![
                ("x-b3-traceid", "463ac35c9f6413ad"),
                ("x-b3-spanid", "a2fb4a1d1a96d312"),
                ("x-b3-sampled", "0"),
            ],
            "0000000000000000463ac35c9f6413ad",
            "a2fb4a1d1a96d312",
            None,
            false,
        ),
    ];
    for (ours, theirs, cases) in [
        (b3_single(), zipkin_single(), single),
        (b3_multi(), zipkin_multi(), multi),
    ] {
        for (pairs, trace, span, parent, sampled) in cases {
            let (result, extracted) = ours_extract(&ours, &header_map(&pairs));
            assert_eq!(result, Ok(Presence::Found), "{pairs:?}");
            let ours_parent = extracted.parent.expect("parent");
            let theirs_span = otel_span(&theirs, &pairs).expect("zipkin reads it");
            assert_same_ids(&ours_parent, &theirs_span, &format!("{pairs:?}"));
            assert_eq!(ours_parent.trace_id.to_string(), trace);
            assert_eq!(ours_parent.span_id.to_string(), span);
            assert_eq!(
                ours_parent
                    .parent_span_id
                    .map(|id| id.to_string())
                    .as_deref(),
                parent
            );
            assert_eq!(ours_parent.flags.is_sampled(), sampled);
            assert!(!ours_parent.flags.is_debug());
            assert!(!ours_parent.sampling_deferred);
            assert_eq!(ours_parent.trace_state, TraceState::EMPTY);
        }
    }
}

#[test]
fn b3_debug_in_multiple_headers_is_read_alike_as_debug_and_sampled() {
    // "Debug is encoded as X-B3-Flags: 1. Debug implies an accept decision."
    for sampled in [None, Some("0"), Some("1")] {
        let mut pairs = vec![
            ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ("x-b3-flags", "1"),
        ];
        if let Some(sampled) = sampled {
            pairs.push(("x-b3-sampled", sampled));
        }
        let ours = ours_parent(&b3_multi(), &pairs).expect("parent");
        assert_eq!(
            ours.flags,
            TraceFlags::DEBUG | TraceFlags::SAMPLED,
            "{pairs:?}"
        );
        assert!(!ours.sampling_deferred);
        let theirs = otel_span(&zipkin_multi(), &pairs).expect("parent");
        assert!(theirs.is_sampled(), "{pairs:?}");
        assert_eq!(
            theirs.trace_flags().to_u8(),
            0x05,
            "zipkin: debug 0x04 | sampled"
        );
    }
}

#[test]
fn b3_contexts_injected_by_ours_are_extracted_alike_by_zipkin() {
    let mut rng = rng(0x00b3_00b3);
    for (ours, theirs) in [(b3_single(), zipkin_single()), (b3_multi(), zipkin_multi())] {
        for iteration in 0..200 {
            let trace = if iteration % 2 == 0 {
                random_64_bit_trace_id(&mut rng)
            } else {
                random_trace_id(&mut rng)
            };
            let span = random_span_id(&mut rng);
            let sampled = rng.bool();
            let context = SpanContext::new(
                trace,
                span,
                TraceFlags::EMPTY.with(TraceFlags::SAMPLED, sampled),
            )
            .with_parent_span_id(rng.bool().then(|| random_span_id(&mut rng)));
            let written = ours_inject(&ours, &context);
            let theirs_span = otel_span(&theirs, &written)
                .unwrap_or_else(|| panic!("zipkin rejected {written:?}"));
            assert_eq!(
                theirs_span.trace_id().to_bytes(),
                trace.to_bytes(),
                "{written:?}"
            );
            assert_eq!(theirs_span.span_id().to_bytes(), span.to_bytes());
            assert_eq!(
                theirs_span.trace_flags().to_u8(),
                u8::from(sampled),
                "{written:?}"
            );
            // And ours reads back its own, parent included.
            let back = ours_parent(&ours, &written).expect("parent");
            assert_eq!(back.trace_id, trace);
            assert_eq!(back.span_id, span);
            assert_eq!(back.parent_span_id, context.parent_span_id());
            assert_eq!(back.flags.is_sampled(), sampled);
        }
    }
}

#[test]
fn b3_contexts_injected_by_zipkin_are_extracted_alike_by_ours() {
    let mut rng = rng(0x3b3b_3b3b);
    for (ours, theirs) in [(b3_single(), zipkin_single()), (b3_multi(), zipkin_multi())] {
        for iteration in 0..200 {
            let trace = if iteration % 2 == 0 {
                random_64_bit_trace_id(&mut rng)
            } else {
                random_trace_id(&mut rng)
            };
            let span = random_span_id(&mut rng);
            let sampled = rng.bool();
            let written = otel_inject(
                &theirs,
                &otel_remote(trace, span, u8::from(sampled), OtelTraceState::default()),
            );
            let (result, extracted) = ours_extract(&ours, &header_map(&written));
            assert_eq!(result, Ok(Presence::Found), "{written:?}");
            let parent = extracted.parent.expect("parent");
            assert_eq!(parent.trace_id, trace, "{written:?}");
            assert_eq!(parent.span_id, span);
            assert_eq!(
                parent.flags,
                TraceFlags::EMPTY.with(TraceFlags::SAMPLED, sampled)
            );
            assert_eq!(parent.parent_span_id, None);
            assert!(!parent.sampling_deferred);
        }
    }
}

#[test]
fn b3_deferred_sampling_is_read_alike_but_zipkin_stores_it_in_the_w3c_random_bit() {
    // "Absent means defer the decision to the receiver." Ours marks the parent deferred and leaves
    // it unsampled; zipkin sets flag 0x02, which in opentelemetry's W3C flags byte means
    // "random trace id" (and which it then reads back as "deferred", see the next test).
    for (pairs, ours, theirs) in [
        (
            vec![("b3", "80f198ee56343ba864fe8b2a57d3eff7-05e3ac9a4f6e3b90")],
            b3_single(),
            zipkin_single(),
        ),
        (
            vec![
                ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
                ("x-b3-spanid", "05e3ac9a4f6e3b90"),
            ],
            b3_multi(),
            zipkin_multi(),
        ),
    ] {
        let parent = ours_parent(&ours, &pairs).expect("parent");
        assert!(parent.sampling_deferred, "{pairs:?}");
        assert_eq!(parent.flags, TraceFlags::EMPTY);
        let theirs = otel_span(&theirs, &pairs).expect("parent");
        assert_same_ids(&parent, &theirs, &format!("{pairs:?}"));
        assert_eq!(theirs.trace_flags().to_u8(), 0x02);
    }
}

#[test]
fn zipkin_b3_reads_the_w3c_random_bit_as_deferred_and_drops_the_sampled_decision_ours_keeps_it() {
    // A sampled context whose trace id is random (W3C flags 0x03) goes out of zipkin without any
    // sampling state, so the next hop decides again; ours sends the decision.
    let trace: TraceId = "80f198ee56343ba864fe8b2a57d3eff7".parse().expect("id");
    let span: SpanId = "05e3ac9a4f6e3b90".parse().expect("id");
    let theirs = otel_inject(
        &zipkin_single(),
        &otel_remote(trace, span, 0x03, OtelTraceState::default()),
    );
    assert_eq!(
        value_of(&theirs, "b3"),
        Some("80f198ee56343ba864fe8b2a57d3eff7-05e3ac9a4f6e3b90")
    );
    let ours = ours_inject(
        &b3_single(),
        &SpanContext::new(trace, span, TraceFlags::SAMPLED | TraceFlags::RANDOM),
    );
    assert_eq!(
        value_of(&ours, "b3"),
        Some("80f198ee56343ba864fe8b2a57d3eff7-05e3ac9a4f6e3b90-1")
    );
}

#[test]
fn zipkin_b3_reads_the_single_header_debug_state_as_not_sampled_ours_as_debug_and_sampled() {
    // "Debug is an emphasized accept decision that implies accept." zipkin (single-header
    // encoding) maps 'd' to its debug bit 0x04 alone, so the context reads as not sampled.
    let pairs = [("b3", "80f198ee56343ba864fe8b2a57d3eff7-05e3ac9a4f6e3b90-d")];
    let ours = ours_parent(&b3_single(), &pairs).expect("parent");
    assert_eq!(ours.flags, TraceFlags::DEBUG | TraceFlags::SAMPLED);
    let theirs = otel_span(&zipkin_single(), &pairs).expect("parent");
    assert_eq!(theirs.trace_flags().to_u8(), 0x04);
    assert!(!theirs.is_sampled());

    // Both write a debug context as 'd'.
    let trace: TraceId = "80f198ee56343ba864fe8b2a57d3eff7".parse().expect("id");
    let span: SpanId = "05e3ac9a4f6e3b90".parse().expect("id");
    let written = ours_inject(
        &b3_single(),
        &SpanContext::new(trace, span, TraceFlags::DEBUG | TraceFlags::SAMPLED),
    );
    assert_eq!(value_of(&written, "b3"), Some(pairs[0].1));
    let written = ours_inject(
        &b3_multi(),
        &SpanContext::new(trace, span, TraceFlags::DEBUG | TraceFlags::SAMPLED),
    );
    assert_eq!(value_of(&written, "x-b3-flags"), Some("1"));
    assert_eq!(
        value_of(&written, "x-b3-sampled"),
        None,
        "debug implies accept"
    );
    let theirs = otel_span(&zipkin_multi(), &written).expect("parent");
    assert_eq!(theirs.trace_flags().to_u8(), 0x05);
}

#[test]
fn zipkin_b3_with_multi_header_encoding_rejects_a_single_header_debug_state_ours_accepts_it() {
    // zipkin only accepts 'd' when its *injection* encoding includes the single header.
    let pairs = [("b3", "80f198ee56343ba864fe8b2a57d3eff7-05e3ac9a4f6e3b90-d")];
    assert_eq!(otel_span(&zipkin_multi(), &pairs), None);
    for ours in [b3_single(), b3_multi()] {
        let parent = ours_parent(&ours, &pairs).expect("parent");
        assert_eq!(parent.flags, TraceFlags::DEBUG | TraceFlags::SAMPLED);
    }
}

#[test]
fn zipkin_b3_with_multi_header_encoding_accepts_true_as_single_header_state_ours_rejects_it() {
    // The single header's sampling state is one of 1, 0, d; the lenient "true"/"false" of the spec
    // is about X-B3-Sampled. zipkin accepts "true" in `b3` when its encoding is multi-header.
    let pairs = [(
        "b3",
        "80f198ee56343ba864fe8b2a57d3eff7-05e3ac9a4f6e3b90-true",
    )];
    let (result, extracted) = ours_extract(&b3_single(), &header_map(&pairs));
    assert!(result.is_err(), "{result:?}");
    assert_eq!(extracted.parent, None);
    let theirs = otel_span(&zipkin_multi(), &pairs).expect("zipkin accepts it");
    assert!(theirs.is_sampled());
    assert_eq!(otel_span(&zipkin_single(), &pairs), None);
}

#[test]
fn zipkin_b3_reads_x_b3_sampled_true_only_with_multi_header_encoding_ours_with_either() {
    // "some tracers propagated X-B3-Sampled as true or false … a lenient implementation may
    // accept them." Not a departure from the spec, but zipkin's leniency depends on the encoding
    // it was built to *write*; ours reads the same whatever it writes.
    let pairs = [
        ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"),
        ("x-b3-spanid", "a2fb4a1d1a96d312"),
        ("x-b3-sampled", "true"),
    ];
    for ours in [b3_single(), b3_multi()] {
        let parent = ours_parent(&ours, &pairs).expect("parent");
        assert_eq!(parent.flags, TraceFlags::SAMPLED);
    }
    assert!(
        otel_span(&zipkin_multi(), &pairs)
            .expect("parent")
            .is_sampled()
    );
    assert_eq!(otel_span(&zipkin_single(), &pairs), None);
}

#[test]
fn zipkin_b3_single_header_encoding_also_writes_the_multi_headers_ours_writes_only_b3() {
    // Not a departure from the spec either: zipkin's single-header encoding checks its
    // "unspecified" bit with a mask of 0, which always matches, so every encoding also writes the
    // x-b3-* set. Ours writes the encoding it was asked for.
    let trace: TraceId = "80f198ee56343ba864fe8b2a57d3eff7".parse().expect("id");
    let span: SpanId = "05e3ac9a4f6e3b90".parse().expect("id");
    let theirs = otel_inject(
        &zipkin_single(),
        &otel_remote(trace, span, 0x01, OtelTraceState::default()),
    );
    let names: Vec<&str> = theirs.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["b3", "x-b3-sampled", "x-b3-spanid", "x-b3-traceid"]);
    let ours = ours_inject(
        &b3_single(),
        &SpanContext::new(trace, span, TraceFlags::SAMPLED),
    );
    assert_eq!(
        ours,
        [(
            "b3".to_owned(),
            "80f198ee56343ba864fe8b2a57d3eff7-05e3ac9a4f6e3b90-1".to_owned()
        )]
    );
}

#[test]
fn b3_both_encodings_write_the_same_headers_as_zipkins_single_and_multi_header_encoding() {
    // `OTEL_PROPAGATORS=b3,b3multi` here, `B3Encoding::SingleAndMultiHeader` there.
    let ours = B3Propagator::new(B3Encoding::SingleAndMultipleHeaders);
    let theirs = ZipkinB3::with_encoding(ZipkinEncoding::SingleAndMultiHeader);
    let mut rng = rng(0x00b3_b3b3);
    for iteration in 0..200 {
        let trace = if iteration % 2 == 0 {
            random_64_bit_trace_id(&mut rng)
        } else {
            random_trace_id(&mut rng)
        };
        let span = random_span_id(&mut rng);
        let sampled = rng.bool();
        let mut written = ours_inject(
            &ours,
            &SpanContext::new(
                trace,
                span,
                TraceFlags::EMPTY.with(TraceFlags::SAMPLED, sampled),
            ),
        );
        written.sort();
        let expected = otel_inject(
            &theirs,
            &otel_remote(trace, span, u8::from(sampled), OtelTraceState::default()),
        );
        assert_eq!(written, expected);
        let names: Vec<&str> = written.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["b3", "x-b3-sampled", "x-b3-spanid", "x-b3-traceid"]);
        let back = otel_span(&theirs, &written).expect("zipkin reads ours");
        assert_eq!(
            (back.trace_id().to_bytes(), back.span_id().to_bytes()),
            (trace.to_bytes(), span.to_bytes())
        );
    }
}

#[test]
fn zipkin_b3_accepts_a_trailing_dash_ours_rejects_it() {
    // `b3={TraceId}-{SpanId}-{SamplingState}-{ParentSpanId}`: an empty last field is malformed;
    // zipkin's split_terminator('-') swallows it.
    let pairs = [("b3", "80f198ee56343ba864fe8b2a57d3eff7-05e3ac9a4f6e3b90-1-")];
    let (result, extracted) = ours_extract(&b3_single(), &header_map(&pairs));
    assert!(result.is_err(), "{result:?}");
    assert_eq!(extracted.parent, None);
    let theirs = otel_span(&zipkin_single(), &pairs).expect("zipkin accepts it");
    assert_eq!(
        theirs.trace_id().to_string(),
        "80f198ee56343ba864fe8b2a57d3eff7"
    );
}

#[test]
fn zipkin_b3_accepts_a_plus_sign_in_an_id_ours_rejects_it() {
    // Ids are 16 or 32 lower-hex characters; from_str_radix takes a leading '+'.
    let pairs = [("b3", "+0f198ee56343ba864fe8b2a57d3eff7-05e3ac9a4f6e3b90-1")];
    let (result, extracted) = ours_extract(&b3_single(), &header_map(&pairs));
    assert!(result.is_err(), "{result:?}");
    assert_eq!(extracted.parent, None);
    let theirs = otel_span(&zipkin_single(), &pairs).expect("zipkin accepts it");
    assert_eq!(
        theirs.trace_id().to_string(),
        "00f198ee56343ba864fe8b2a57d3eff7"
    );
}

#[test]
fn zipkin_b3_ignores_a_malformed_parent_span_id_ours_rejects_the_context() {
    // "X-B3-ParentSpanId … is encoded as 16 lower-hex characters." zipkin validates it and then
    // throws the result away (`let _ = …`), keeping the context.
    let pairs = [
        ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"),
        ("x-b3-spanid", "a2fb4a1d1a96d312"),
        ("x-b3-parentspanid", "not-a-span-id"),
        ("x-b3-sampled", "1"),
    ];
    let (result, extracted) = ours_extract(&b3_multi(), &header_map(&pairs));
    assert!(result.is_err(), "{result:?}");
    assert_eq!(extracted.parent, None);
    let theirs = otel_span(&zipkin_multi(), &pairs).expect("zipkin accepts it");
    assert_eq!(theirs.span_id().to_string(), "a2fb4a1d1a96d312");
}

#[test]
fn zipkin_b3_drops_a_sampling_decision_sent_without_ids_ours_keeps_it() {
    // "When only propagating a sampling decision, the header is still named b3, but only
    // contains the sampling state": `b3: 0`. An opentelemetry context cannot hold a decision
    // without ids, so zipkin returns nothing.
    let cases = [
        (vec![("b3", "0")], b3_single(), TraceFlags::EMPTY),
        (
            vec![("b3", "d")],
            b3_single(),
            TraceFlags::DEBUG | TraceFlags::SAMPLED,
        ),
        (vec![("x-b3-sampled", "0")], b3_multi(), TraceFlags::EMPTY),
    ];
    for (pairs, ours, flags) in cases {
        let (result, extracted) = ours_extract(&ours, &header_map(&pairs));
        assert!(result.is_ok(), "{pairs:?}: {result:?}");
        assert_eq!(extracted.parent, None, "{pairs:?}");
        assert_eq!(extracted.sampling_only, Some(flags), "{pairs:?}");
        assert_eq!(otel_span(&zipkin_single(), &pairs), None);
        assert_eq!(otel_span(&zipkin_multi(), &pairs), None);
    }
}

#[test]
fn malformed_b3_headers_are_rejected_by_both() {
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("b3", "80F198EE56343BA864FE8B2A57D3EFF7-05e3ac9a4f6e3b90-1")],
            "upper-case trace id",
        ),
        (
            vec![("b3", "80f198ee56343ba864fe8b2a57d3eff-05e3ac9a4f6e3b90-1")],
            "trace id of 31 digits",
        ),
        (
            vec![("b3", "80f198ee56343ba864fe8b2a57d3eff7-05e3ac9a4f6e3b9-1")],
            "span id of 15 digits",
        ),
        (
            vec![("b3", "00000000000000000000000000000000-05e3ac9a4f6e3b90-1")],
            "all-zero trace id",
        ),
        (
            vec![("b3", "80f198ee56343ba864fe8b2a57d3eff7-0000000000000000-1")],
            "all-zero span id",
        ),
        (
            vec![("b3", "80f198ee56343ba864fe8b2a57d3eff7-05e3ac9a4f6e3b90-2")],
            "unknown sampling state",
        ),
        (
            vec![(
                "b3",
                "80f198ee56343ba864fe8b2a57d3eff7-05e3ac9a4f6e3b90-1-xyz",
            )],
            "malformed parent",
        ),
        (
            vec![("b3", "80f198ee56343ba864fe8b2a57d3eff7")],
            "trace id alone",
        ),
        (
            vec![
                ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb612"),
                ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ],
            "multi: trace id of 31 digits",
        ),
        (
            vec![
                ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"),
                ("x-b3-spanid", "A2FB4A1D1A96D312"),
            ],
            "multi: upper-case span id",
        ),
        (
            vec![
                ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"),
                ("x-b3-spanid", "a2fb4a1d1a96d312"),
                ("x-b3-sampled", "2"),
            ],
            "multi: unknown sampled value",
        ),
        (
            vec![("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124")],
            "multi: no span id",
        ),
    ];
    for (pairs, why) in cases {
        let ours = if pairs[0].0 == "b3" {
            b3_single()
        } else {
            b3_multi()
        };
        let (result, extracted) = ours_extract(&ours, &header_map(&pairs));
        assert!(
            result.is_err(),
            "ours must reject {pairs:?} ({why}), got {result:?}"
        );
        assert_eq!(extracted.parent, None, "{why}");
        assert_eq!(otel_span(&zipkin_single(), &pairs), None, "{why}");
        assert_eq!(otel_span(&zipkin_multi(), &pairs), None, "{why}");
    }
}
