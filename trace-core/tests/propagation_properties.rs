//! Property tests of header propagation, for every format and for the default composite:
//!
//! - injecting an arbitrary context and extracting it again gives back exactly what the format
//!   carries (W3C: ids, sampled, random and trace state; Jaeger: ids, parent, sampled, debug,
//!   firehose and baggage, keys lower-cased; B3: ids, parent, sampled, and debug which implies
//!   sampled; W3C baggage: the baggage in order, percent-encoding included; the composite: the
//!   W3C parent, debug when Jaeger carries the same span as debug, and the baggage of both W3C
//!   and Jaeger; B3 writing both encodings: what each encoding alone writes);
//! - arbitrary header bytes (non-UTF-8 included) under every header name an extractor reads, one
//!   line or several, and valid headers with one byte changed, never panic, never produce an
//!   all-zero id, and every id extracted is one that was in the headers.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::percent_decode;
use proptest::prelude::*;
use proptest::sample::Index;
use trace_core::propagation::{
    B3Encoding, B3Propagator, BaggagePropagator, CompositePropagator, ExtractError, Extracted,
    JaegerPropagator, Presence, Propagator, RemoteContext, TraceContextPropagator,
};
use trace_core::sampler::{AlwaysOn, DebugForced};
use trace_core::{Baggage, SpanContext, SpanId, TraceFlags, TraceId, TraceState};

/// At most the default number of cases, and no regression files written next to the tests.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Generators of valid contexts
// ---------------------------------------------------------------------------------------------

fn trace_id() -> impl Strategy<Value = TraceId> {
    prop_oneof![
        // 128-bit ids.
        (1..=u128::MAX).prop_map(|v| TraceId::from_u128(v).expect("non-zero")),
        // 64-bit ids (high half zero), which Jaeger writes as 16 digits and B3 may.
        (1..=u64::MAX).prop_map(|v| TraceId::from_u128(u128::from(v)).expect("non-zero")),
        // Long runs of leading zeros.
        (1..=0xffffu128).prop_map(|v| TraceId::from_u128(v).expect("non-zero")),
    ]
}

fn span_id() -> impl Strategy<Value = SpanId> {
    prop_oneof![
        (1..=u64::MAX).prop_map(|v| SpanId::from_u64(v).expect("non-zero")),
        (1..=0xffffu64).prop_map(|v| SpanId::from_u64(v).expect("non-zero")),
    ]
}

/// Any combination of tracewire's four flags.
fn flags() -> impl Strategy<Value = TraceFlags> {
    any::<(bool, bool, bool, bool)>().prop_map(|(sampled, random, debug, firehose)| {
        TraceFlags::EMPTY
            .with(TraceFlags::SAMPLED, sampled)
            .with(TraceFlags::RANDOM, random)
            .with(TraceFlags::DEBUG, debug)
            .with(TraceFlags::FIREHOSE, firehose)
    })
}

/// A valid W3C trace state: simple and multi-tenant keys, values of every allowed character
/// (a leading space included), up to 8 members.
fn trace_state() -> impl Strategy<Value = TraceState> {
    let key = prop_oneof![
        "[a-z][a-z0-9_*/-]{0,15}",
        "[a-z0-9][a-z0-9_*/-]{0,10}@[a-z][a-z0-9_*/-]{0,5}",
    ];
    let value = "[\\x20-\\x2b\\x2d-\\x3c\\x3e-\\x7e]{0,20}[\\x21-\\x2b\\x2d-\\x3c\\x3e-\\x7e]";
    prop::collection::btree_map(key, value, 0..8).prop_map(|members| {
        let text: Vec<String> = members.iter().map(|(k, v)| format!("{k}={v}")).collect();
        text.join(",")
            .parse()
            .unwrap_or_else(|e| panic!("generated trace state {text:?} is invalid: {e}"))
    })
}

/// W3C baggage keys: RFC 7230 tokens, case preserved.
fn w3c_baggage_key() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"
}

/// Jaeger baggage keys travel in header names, which HTTP lower-cases: lower-case tokens.
fn jaeger_baggage_key() -> impl Strategy<Value = String> {
    "[a-z0-9!#$%&'*+.^_`|~-]{1,12}"
}

/// Printable values, many of them needing percent-encoding (space, `%`, `,`, `;`, `"`, `\`,
/// `+`, `=`, tab, non-ASCII), possibly empty, possibly with white space at either end.
fn baggage_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,16}",
        "\\PC{0,16}",
        "[ %,;=\"\\\\\t+a]{0,8}",
        "%[0-9A-Fa-f]{2}[a-z]{0,3}",
    ]
}

fn baggage(key: impl Strategy<Value = String>) -> impl Strategy<Value = Baggage> {
    prop::collection::btree_map(key, baggage_value(), 0..8).prop_map(|entries| {
        entries.into_iter().fold(Baggage::EMPTY, |baggage, (k, v)| {
            baggage
                .with_entry(k, v)
                .expect("small baggage fits the limits")
        })
    })
}

fn span_context(baggage: impl Strategy<Value = Baggage>) -> impl Strategy<Value = SpanContext> {
    (
        trace_id(),
        span_id(),
        proptest::option::of(span_id()),
        flags(),
        trace_state(),
        baggage,
    )
        .prop_map(|(trace, span, parent, flags, state, baggage)| {
            SpanContext::new(trace, span, flags)
                .with_parent_span_id(parent)
                .with_trace_state(state)
                .with_baggage(baggage)
        })
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn extract(
    propagator: &dyn Propagator,
    headers: &HeaderMap,
) -> (Result<Presence, ExtractError>, Extracted) {
    let mut extracted = Extracted::default();
    let result = propagator.extract(headers, &mut extracted);
    (result, extracted)
}

fn inject(propagator: &dyn Propagator, context: &SpanContext) -> HeaderMap {
    let mut headers = HeaderMap::new();
    propagator.inject(context, &mut headers);
    headers
}

fn baggage_map(baggage: &Baggage) -> BTreeMap<String, String> {
    baggage
        .iter()
        .map(|entry| (entry.key.clone(), entry.value.clone()))
        .collect()
}

/// Every format on its own, as its `OTEL_PROPAGATORS` name says.
fn formats() -> Vec<Box<dyn Propagator>> {
    vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
        Box::new(JaegerPropagator::new()),
        Box::new(B3Propagator::new(B3Encoding::SingleHeader)),
        Box::new(B3Propagator::new(B3Encoding::MultipleHeaders)),
    ]
}

/// What the W3C format keeps of a context's flags.
fn w3c_flags(flags: TraceFlags) -> TraceFlags {
    TraceFlags::EMPTY
        .with(TraceFlags::SAMPLED, flags.is_sampled())
        .with(TraceFlags::RANDOM, flags.is_random())
}

// ---------------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn tracecontext_round_trip_keeps_ids_sampled_random_and_trace_state(
        context in span_context(Just(Baggage::EMPTY)),
    ) {
        let headers = inject(&TraceContextPropagator::new(), &context);
        let (result, extracted) = extract(&TraceContextPropagator::new(), &headers);
        prop_assert_eq!(result, Ok(Presence::Found));
        prop_assert_eq!(
            extracted.parent,
            Some(RemoteContext {
                trace_id: context.trace_id(),
                span_id: context.span_id(),
                parent_span_id: None,
                flags: w3c_flags(context.flags()),
                trace_state: context.trace_state().clone(),
                sampling_deferred: false,
            })
        );
        prop_assert!(extracted.baggage.is_empty());
        prop_assert_eq!(extracted.debug_id, None);
        prop_assert_eq!(extracted.sampling_only, None);
    }

    #[test]
    fn baggage_round_trip_keeps_every_entry_in_order(
        context in span_context(baggage(w3c_baggage_key())),
    ) {
        let headers = inject(&BaggagePropagator::new(), &context);
        prop_assert!(headers.keys().all(|name| name == "baggage"));
        let (result, extracted) = extract(&BaggagePropagator::new(), &headers);
        let expected_presence = if context.baggage().is_empty() {
            Presence::Absent
        } else {
            Presence::Found
        };
        prop_assert_eq!(result, Ok(expected_presence));
        prop_assert_eq!(&extracted.baggage, context.baggage());
        prop_assert_eq!(extracted.parent, None);
    }

    #[test]
    fn jaeger_round_trip_keeps_ids_parent_sampled_debug_firehose_and_baggage(
        context in span_context(baggage(jaeger_baggage_key())),
    ) {
        let headers = inject(&JaegerPropagator::new(), &context);
        let (result, extracted) = extract(&JaegerPropagator::new(), &headers);
        prop_assert_eq!(result, Ok(Presence::Found));
        let flags = context.flags();
        prop_assert_eq!(
            extracted.parent,
            Some(RemoteContext {
                trace_id: context.trace_id(),
                span_id: context.span_id(),
                parent_span_id: context.parent_span_id(),
                flags: TraceFlags::EMPTY
                    .with(TraceFlags::SAMPLED, flags.is_sampled())
                    .with(TraceFlags::DEBUG, flags.is_debug())
                    .with(TraceFlags::FIREHOSE, flags.is_firehose()),
                trace_state: TraceState::EMPTY,
                sampling_deferred: false,
            })
        );
        prop_assert_eq!(baggage_map(&extracted.baggage), baggage_map(context.baggage()));
        prop_assert_eq!(extracted.debug_id, None);
    }

    #[test]
    fn jaeger_and_composite_carry_mixed_case_baggage_keys_lower_cased(
        context in span_context(baggage(w3c_baggage_key())),
    ) {
        // Header names reach a receiver lower-cased, so Jaeger sends `userId` as
        // `uberctx-userid`; W3C baggage keeps the case, and the composite has both spellings.
        let lower_cased: BTreeMap<String, String> = context
            .baggage()
            .iter()
            .map(|entry| (entry.key.to_ascii_lowercase(), entry.value.clone()))
            .collect();
        prop_assume!(lower_cased.len() == context.baggage().len());
        let headers = inject(&JaegerPropagator::new(), &context);
        let (result, extracted) = extract(&JaegerPropagator::new(), &headers);
        prop_assert_eq!(result, Ok(Presence::Found));
        prop_assert_eq!(baggage_map(&extracted.baggage), lower_cased.clone());

        let composite = CompositePropagator::default();
        let mut headers = HeaderMap::new();
        composite.inject(&context, &mut headers);
        let mut both = baggage_map(context.baggage());
        both.extend(lower_cased);
        prop_assert_eq!(baggage_map(&composite.extract(&headers).baggage), both);
    }

    #[test]
    fn b3_round_trip_keeps_ids_parent_sampled_and_debug_implies_sampled(
        context in span_context(Just(Baggage::EMPTY)),
        multi in any::<bool>(),
    ) {
        let propagator = B3Propagator::new(if multi {
            B3Encoding::MultipleHeaders
        } else {
            B3Encoding::SingleHeader
        });
        let headers = inject(&propagator, &context);
        prop_assert_eq!(headers.contains_key("b3"), !multi);
        prop_assert_eq!(headers.contains_key("x-b3-traceid"), multi);
        let (result, extracted) = extract(&propagator, &headers);
        prop_assert_eq!(result, Ok(Presence::Found));
        let flags = context.flags();
        let expected_flags = if flags.is_debug() {
            TraceFlags::DEBUG | TraceFlags::SAMPLED
        } else {
            TraceFlags::EMPTY.with(TraceFlags::SAMPLED, flags.is_sampled())
        };
        prop_assert_eq!(
            extracted.parent,
            Some(RemoteContext {
                trace_id: context.trace_id(),
                span_id: context.span_id(),
                parent_span_id: context.parent_span_id(),
                flags: expected_flags,
                trace_state: TraceState::EMPTY,
                sampling_deferred: false,
            })
        );
        prop_assert_eq!(extracted.sampling_only, None);
        // The other B3 encoding reads what this one wrote.
        let other = B3Propagator::new(if multi {
            B3Encoding::SingleHeader
        } else {
            B3Encoding::MultipleHeaders
        });
        let (other_result, other_extracted) = extract(&other, &headers);
        prop_assert_eq!(other_result, Ok(Presence::Found));
        prop_assert_eq!(other_extracted.parent, extract(&propagator, &headers).1.parent);
    }

    #[test]
    fn b3_both_encodings_write_what_each_encoding_alone_writes(
        context in span_context(Just(Baggage::EMPTY)),
    ) {
        let both = inject(&B3Propagator::new(B3Encoding::SingleAndMultipleHeaders), &context);
        let mut expected = inject(&B3Propagator::new(B3Encoding::SingleHeader), &context);
        expected.extend(inject(&B3Propagator::new(B3Encoding::MultipleHeaders), &context));
        prop_assert_eq!(&both, &expected);
        // Each encoding alone reads the same parent from them.
        let (result, extracted) =
            extract(&B3Propagator::new(B3Encoding::SingleAndMultipleHeaders), &both);
        prop_assert_eq!(result, Ok(Presence::Found));
        let without_single = {
            let mut headers = both.clone();
            headers.remove("b3");
            headers
        };
        let multi = B3Propagator::new(B3Encoding::MultipleHeaders);
        prop_assert_eq!(&extracted.parent, &extract(&multi, &without_single).1.parent);
        prop_assert_eq!(
            extracted.parent.map(|p| (p.trace_id, p.span_id)),
            Some((context.trace_id(), context.span_id()))
        );
    }

    #[test]
    fn default_composite_round_trip_prefers_w3c_and_merges_baggage(
        // Lower-case keys, which W3C baggage and Jaeger's header names both carry unchanged.
        context in span_context(baggage(jaeger_baggage_key())),
    ) {
        let composite = CompositePropagator::default();
        let mut headers = HeaderMap::new();
        composite.inject(&context, &mut headers);
        for name in ["traceparent", "uber-trace-id", "b3"] {
            prop_assert!(headers.contains_key(name), "{} not written", name);
        }
        let extracted = composite.extract(&headers);
        // W3C has no debug bit: Jaeger's for the same span adds it, with its sampled bit (which
        // W3C carries already). A debug context that is not sampled stays so: Jaeger, preferred
        // to B3 (whose debug state implies sampled), says so.
        let flags = if context.is_debug() {
            w3c_flags(context.flags()) | TraceFlags::DEBUG
        } else {
            w3c_flags(context.flags())
        };
        prop_assert_eq!(
            extracted.parent,
            Some(RemoteContext {
                trace_id: context.trace_id(),
                span_id: context.span_id(),
                parent_span_id: None,
                flags,
                trace_state: context.trace_state().clone(),
                sampling_deferred: false,
            })
        );
        // W3C baggage and Jaeger both carry every entry, with the same values.
        prop_assert_eq!(baggage_map(&extracted.baggage), baggage_map(context.baggage()));
        prop_assert_eq!(extracted.debug_id, None);
        prop_assert_eq!(extracted.sampling_only, None);
        for stats in composite.stats() {
            prop_assert_eq!(stats.rejected, 0, "{} rejected its own headers", stats.name);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Arbitrary and near-miss input
// ---------------------------------------------------------------------------------------------

/// Every header name an extractor reads.
const NAMES: &[&str] = &[
    "traceparent",
    "tracestate",
    "baggage",
    "uber-trace-id",
    "jaeger-debug-id",
    "uberctx-x",
    "uberctx-userid",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
];

/// Headers whose rejection must leave no parent (and no id-less decision) behind.
const ID_HEADERS: &[&str] = &[
    "traceparent",
    "uber-trace-id",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
];

/// Any byte `HeaderValue::from_bytes` accepts: visible ASCII, space, tab and obs-text (so
/// values need not be UTF-8).
fn header_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        8 => 0x20u8..=0x7e,
        1 => Just(b'\t'),
        2 => 0x80u8..=0xff,
    ]
}

/// Bytes that make up the formats, so that arbitrary values get past the first checks.
const FORMAT_BYTES: &[u8] = b"0123456789abcdefABCDEF-:;,=% \t@*/+dtrue%3A\x80\xc3\xa9\xff";

fn format_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => prop::sample::select(FORMAT_BYTES),
        1 => header_byte(),
    ]
}

/// Fields shaped like ids, sampling states and flags, joined by one of the formats' separators
/// and maybe padded with white space: values that get deep into the parsers.
fn structured_value() -> impl Strategy<Value = Vec<u8>> {
    let field = "[0-9a-f]{16}|[0-9a-f]{32}|[0-9a-f]{1,15}|[0-9a-fA-F]{0,34}|0{1,32}|[01d]|true|ff";
    let separator = prop_oneof![
        3 => Just("-"),
        3 => Just(":"),
        1 => Just("%3A"),
        1 => prop::sample::select(vec!["%3a", ",", "=", ";", " "]),
    ];
    (prop::collection::vec(field, 1..6), separator, "[ \t]{0,2}").prop_map(
        |(fields, separator, padding)| {
            format!("{padding}{}{padding}", fields.join(separator)).into_bytes()
        },
    )
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(header_byte(), 0..80),
        prop::collection::vec(format_byte(), 0..80),
        structured_value(),
    ]
}

/// A `traceparent` whose every field is mostly valid and sometimes a near miss.
fn traceparent_shaped() -> impl Strategy<Value = String> {
    (
        prop_oneof![6 => Just("00".to_owned()), 1 => "[0-9a-f]{2}", 1 => "[0-9a-fA-F.]{0,3}"],
        prop_oneof![6 => "[0-9a-f]{32}", 1 => "0{32}", 1 => "[0-9a-fA-F]{31,33}"],
        prop_oneof![6 => "[0-9a-f]{16}", 1 => "0{16}", 1 => "[0-9a-fA-F]{15,17}"],
        prop_oneof![6 => "[0-9a-f]{2}", 1 => "[0-9a-fA-Fg.]{0,3}"],
        prop_oneof![6 => Just(String::new()), 1 => "-[ -~]{0,10}", 1 => "[.x ][ -~]{0,5}"],
    )
        .prop_map(|(version, trace, span, flags, tail)| {
            format!("{version}-{trace}-{span}-{flags}{tail}")
        })
}

/// An `uber-trace-id` with ids of any width, colons plain or URL-encoded, and near misses.
fn uber_trace_id_shaped() -> impl Strategy<Value = String> {
    let separator = || {
        prop_oneof![
            6 => Just(":"),
            1 => Just("%3A"),
            1 => Just("%3a"),
            1 => prop::sample::select(vec!["%3", "::", "-", ""]),
        ]
    };
    (
        prop_oneof![
            6 => "[0-9a-f]{1,32}",
            1 => "0{1,32}",
            1 => "[0-9a-fA-F]{33}",
            1 => "[0-9A-F]{1,32}",
        ],
        prop_oneof![6 => "[0-9a-f]{1,16}", 1 => "0{1,16}", 1 => "[0-9a-f]{17}"],
        prop_oneof![3 => Just("0".to_owned()), 3 => "[0-9a-f]{1,16}", 1 => "[0-9a-f]{17}"],
        prop_oneof![6 => "[0-9a-f]{1,2}", 1 => "[0-9a-fg]{0,3}"],
        (separator(), separator(), separator()),
    )
        .prop_map(|(trace, span, parent, flags, (a, b, c))| {
            format!("{trace}{a}{span}{b}{parent}{c}{flags}")
        })
}

/// A single `b3` value: ids with optional state and parent, or a state alone.
fn b3_shaped() -> impl Strategy<Value = String> {
    let trace = prop_oneof![
        3 => "[0-9a-f]{32}",
        3 => "[0-9a-f]{16}",
        1 => "0{16}|0{32}",
        1 => "[0-9a-fA-F]{15,33}",
    ];
    let span = prop_oneof![6 => "[0-9a-f]{16}", 1 => "0{16}", 1 => "[0-9a-fA-F]{15,17}"];
    let state = prop_oneof![3 => "[01d]", 1 => "true|2|"];
    prop_oneof![
        1 => "[01d]|true|2|",
        6 => (trace, span.clone(), proptest::option::of(state), proptest::option::of(span))
            .prop_map(|(trace, span, state, parent)| {
                let mut value = format!("{trace}-{span}");
                if let Some(state) = state {
                    value = format!("{value}-{state}");
                }
                if let Some(parent) = parent {
                    value = format!("{value}-{parent}");
                }
                value
            }),
    ]
}

/// A set of `x-b3-*` headers, each present or not, valid or a near miss.
fn b3_multi_shaped() -> impl Strategy<Value = Vec<(HeaderName, Vec<u8>)>> {
    let id16 = || prop_oneof![6 => "[0-9a-f]{16}", 1 => "0{16}", 1 => "[0-9a-fA-F]{15,17}"];
    (
        proptest::option::weighted(0.9, prop_oneof![3 => "[0-9a-f]{32}", 3 => id16()]),
        proptest::option::weighted(0.9, id16()),
        proptest::option::weighted(0.5, id16()),
        proptest::option::weighted(0.6, "[01]|true|false|TRUE|2|"),
        proptest::option::weighted(0.3, "[01]|2|"),
    )
        .prop_map(|(trace, span, parent, sampled, flags)| {
            [
                ("x-b3-traceid", trace),
                ("x-b3-spanid", span),
                ("x-b3-parentspanid", parent),
                ("x-b3-sampled", sampled),
                ("x-b3-flags", flags),
            ]
            .into_iter()
            .filter_map(|(name, value)| Some((HeaderName::from_static(name), value?.into_bytes())))
            .collect()
        })
}

fn header_lines() -> impl Strategy<Value = Vec<(usize, Vec<u8>)>> {
    prop::collection::vec((0..NAMES.len(), header_value()), 1..8)
}

fn to_header_map(lines: &[(HeaderName, Vec<u8>)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in lines {
        let value = HeaderValue::from_bytes(value)
            .unwrap_or_else(|e| panic!("generator produced an invalid value {value:?}: {e}"));
        headers.append(name.clone(), value);
    }
    headers
}

/// Each header value as sent and percent-decoded, lower-cased, to look ids up in.
fn haystacks(headers: &HeaderMap) -> Vec<Vec<u8>> {
    headers
        .values()
        .flat_map(|value| {
            let raw = value.as_bytes().to_ascii_lowercase();
            let decoded: Vec<u8> = percent_decode(value.as_bytes()).collect();
            [raw, decoded.to_ascii_lowercase()]
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

/// Checks what any extraction of `headers` may produce.
fn check_extracted(
    label: &str,
    headers: &HeaderMap,
    extracted: &Extracted,
) -> Result<(), TestCaseError> {
    let haystacks = haystacks(headers);
    let came_from_input = |hex: String| haystacks.iter().any(|h| contains(h, hex.as_bytes()));
    if let Some(parent) = &extracted.parent {
        prop_assert_ne!(parent.trace_id.to_u128(), 0, "{}: all-zero trace id", label);
        prop_assert_ne!(parent.span_id.to_u64(), 0, "{}: all-zero span id", label);
        let trace_hex = format!("{:x}", parent.trace_id.to_u128());
        let span_hex = format!("{:x}", parent.span_id.to_u64());
        prop_assert!(
            came_from_input(trace_hex.clone()),
            "{}: trace id {} is in no header of {:?}",
            label,
            trace_hex,
            headers
        );
        prop_assert!(
            came_from_input(span_hex.clone()),
            "{}: span id {} is in no header of {:?}",
            label,
            span_hex,
            headers
        );
        if let Some(grandparent) = parent.parent_span_id {
            prop_assert_ne!(
                grandparent.to_u64(),
                0,
                "{}: all-zero parent span id",
                label
            );
            prop_assert!(
                came_from_input(format!("{:x}", grandparent.to_u64())),
                "{}",
                label
            );
        }
        prop_assert!(
            extracted.sampling_only.is_none(),
            "{}: a decision without ids beside a parent",
            label
        );
        prop_assert!(
            !(parent.sampling_deferred && parent.flags.is_sampled()),
            "{}: a deferred decision cannot be sampled",
            label
        );
    }
    if let Some(debug_id) = &extracted.debug_id {
        let sent: Vec<&[u8]> = headers
            .get_all("jaeger-debug-id")
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        prop_assert!(
            !debug_id.is_empty() && sent.iter().any(|v| contains(v, debug_id.as_bytes())),
            "{}: debug id {:?} not from {:?}",
            label,
            debug_id,
            sent
        );
    }
    for entry in extracted.baggage.iter() {
        let key = entry.key.to_ascii_lowercase();
        let in_a_name = headers
            .keys()
            .any(|name| contains(name.as_str().as_bytes(), key.as_bytes()));
        prop_assert!(
            in_a_name || haystacks.iter().any(|h| contains(h, key.as_bytes())),
            "{}: baggage key {:?} not from the headers",
            label,
            entry.key
        );
    }
    Ok(())
}

/// Runs every format and the default composite on `headers` and checks their results.
fn check_all(headers: &HeaderMap) -> Result<(), TestCaseError> {
    for format in formats() {
        let label = format.name();
        let (result, extracted) = extract(&*format, headers);
        check_extracted(label, headers, &extracted)?;
        match &result {
            Err(
                ExtractError::Malformed { header, .. } | ExtractError::Oversized { header, .. },
            ) if ID_HEADERS.contains(header) => {
                prop_assert_eq!(
                    &extracted.parent,
                    &None,
                    "{}: parent kept although {} was rejected: {:?}",
                    label,
                    header,
                    result
                );
                prop_assert_eq!(extracted.sampling_only, None, "{}", label);
            }
            // A broken `b3` falls back to the x-b3-* headers: whatever was read came from them.
            Err(ExtractError::Malformed { header: "b3", .. })
            | Err(ExtractError::Oversized { header: "b3", .. }) => {
                let mut without_single = headers.clone();
                without_single.remove("b3");
                let (_, fallback) = extract(&*format, &without_single);
                prop_assert_eq!(&extracted.parent, &fallback.parent, "{}", label);
                prop_assert_eq!(extracted.sampling_only, fallback.sampling_only, "{}", label);
            }
            _ => {}
        }
        if label == "tracecontext" && extracted.parent.is_some() {
            prop_assert!(
                matches!(
                    result,
                    Ok(Presence::Found) | Err(ExtractError::TraceState(_))
                ),
                "tracecontext: parent beside {:?}",
                result
            );
        }
        if label == "baggage" {
            prop_assert_eq!(&extracted.parent, &None);
        }
        if result == Ok(Presence::Absent) {
            prop_assert_eq!(
                &extracted,
                &Extracted::default(),
                "{}: absent but set",
                label
            );
        }
    }
    let composite = CompositePropagator::default();
    let extracted = composite.extract(headers);
    check_extracted("composite", headers, &extracted)?;
    // Every format, B3 writing both encodings; what was read is continued and written again.
    let every =
        CompositePropagator::from_otel_propagators("tracecontext,baggage,jaeger,b3,b3multi")
            .expect("known names");
    let extracted = every.extract(headers);
    check_extracted("every format", headers, &extracted)?;
    let context = extracted.into_span_context(&DebugForced::new(AlwaysOn, f64::INFINITY), "x");
    let mut written = HeaderMap::new();
    every.inject(&context, &mut written);
    prop_assert!(written.contains_key("b3") && written.contains_key("x-b3-traceid"));
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_under_every_header_name_are_handled(lines in header_lines()) {
        let lines: Vec<(HeaderName, Vec<u8>)> = lines
            .into_iter()
            .map(|(name, value)| (HeaderName::from_static(NAMES[name]), value))
            .collect();
        check_all(&to_header_map(&lines))?;
    }

    #[test]
    fn format_shaped_values_with_near_misses_are_handled(
        traceparent in proptest::option::of(traceparent_shaped()),
        uber_trace_id in proptest::option::of(uber_trace_id_shaped()),
        b3 in proptest::option::of(b3_shaped()),
        b3_multi in b3_multi_shaped(),
        padding in "[ \t]{0,1}",
    ) {
        let mut lines = b3_multi;
        for (name, value) in [
            ("traceparent", traceparent),
            ("uber-trace-id", uber_trace_id),
            ("b3", b3),
        ] {
            if let Some(value) = value {
                lines.push((
                    HeaderName::from_static(name),
                    format!("{padding}{value}{padding}").into_bytes(),
                ));
            }
        }
        check_all(&to_header_map(&lines))?;
    }

    #[test]
    fn one_arbitrary_value_under_every_name_at_once_is_handled(
        value in header_value(),
        lines_per_name in 1..=3usize,
    ) {
        let lines: Vec<(HeaderName, Vec<u8>)> = NAMES
            .iter()
            .flat_map(|name| {
                std::iter::repeat_n((HeaderName::from_static(name), value.clone()), lines_per_name)
            })
            .collect();
        check_all(&to_header_map(&lines))?;
    }
}

/// One change to one line of a valid header set.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    /// The line sent twice.
    Repeat,
    /// The line cut short.
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), format_byte()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        2 => (any::<Index>(), format_byte()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        2 => any::<Index>().prop_map(Mutation::Delete),
        1 => Just(Mutation::Repeat),
        1 => any::<Index>().prop_map(Mutation::Truncate),
    ]
}

/// The header lines of a valid context written by one format (or by the default composite).
fn valid_lines(context: &SpanContext, format: usize) -> Vec<(HeaderName, Vec<u8>)> {
    let headers = match formats().get(format) {
        Some(format) => inject(&**format, context),
        None => {
            let mut headers = HeaderMap::new();
            CompositePropagator::default().inject(context, &mut headers);
            headers
        }
    };
    headers
        .iter()
        .map(|(name, value)| (name.clone(), value.as_bytes().to_vec()))
        .collect()
}

fn apply(lines: &mut Vec<(HeaderName, Vec<u8>)>, line: Index, mutation: &Mutation) {
    if lines.is_empty() {
        return;
    }
    let line = line.index(lines.len());
    let value = &mut lines[line].1;
    match mutation {
        Mutation::Replace(at, byte) if !value.is_empty() => {
            let at = at.index(value.len());
            value[at] = *byte;
        }
        Mutation::Insert(at, byte) => {
            let at = at.index(value.len() + 1);
            value.insert(at, *byte);
        }
        Mutation::Delete(at) if !value.is_empty() => {
            let at = at.index(value.len());
            value.remove(at);
        }
        Mutation::Truncate(at) => {
            let at = at.index(value.len() + 1);
            value.truncate(at);
        }
        Mutation::Repeat => {
            let repeated = lines[line].clone();
            lines.push(repeated);
        }
        Mutation::Replace(..) | Mutation::Delete(_) => {}
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn valid_headers_with_one_change_are_handled(
        context in span_context(baggage(jaeger_baggage_key())),
        format in 0..=5usize,
        line in any::<Index>(),
        mutation in mutation(),
    ) {
        let mut lines = valid_lines(&context, format);
        apply(&mut lines, line, &mutation);
        check_all(&to_header_map(&lines))?;
    }

    #[test]
    fn valid_headers_with_several_changes_are_handled(
        context in span_context(baggage(jaeger_baggage_key())),
        format in 0..=5usize,
        mutations in prop::collection::vec((any::<Index>(), mutation()), 2..6),
    ) {
        let mut lines = valid_lines(&context, format);
        for (line, mutation) in &mutations {
            apply(&mut lines, *line, mutation);
        }
        check_all(&to_header_map(&lines))?;
    }

    #[test]
    fn traceparent_with_an_upper_case_hex_digit_is_rejected(
        context in span_context(Just(Baggage::EMPTY)),
        at in any::<Index>(),
    ) {
        // W3C ids and flags are lower-case hex only: turning any one of their letters upper-case
        // must cost the parent.
        let headers = inject(&TraceContextPropagator::new(), &context);
        let mut value = headers["traceparent"].as_bytes().to_vec();
        let letters: Vec<usize> = (0..value.len())
            .filter(|&i| value[i].is_ascii_lowercase())
            .collect();
        prop_assume!(!letters.is_empty());
        let i = letters[at.index(letters.len())];
        value[i] = value[i].to_ascii_uppercase();
        let lines = vec![(HeaderName::from_static("traceparent"), value)];
        let (result, extracted) = extract(&TraceContextPropagator::new(), &to_header_map(&lines));
        prop_assert!(
            matches!(result, Err(ExtractError::Malformed { header: "traceparent", .. })),
            "{:?}",
            result
        );
        prop_assert_eq!(extracted.parent, None);
    }

    #[test]
    fn traceparent_with_one_id_digit_replaced_by_a_non_hex_byte_is_rejected(
        context in span_context(Just(Baggage::EMPTY)),
        at in any::<Index>(),
        byte in header_byte(),
    ) {
        prop_assume!(!byte.is_ascii_digit() && !(b'a'..=b'f').contains(&byte));
        let headers = inject(&TraceContextPropagator::new(), &context);
        let mut value = headers["traceparent"].as_bytes().to_vec();
        // Positions of the version, trace id, parent id and flags digits (not the dashes), and
        // not the ends, where white space is trimmed.
        let digits: Vec<usize> = (1..value.len() - 1).filter(|&i| value[i] != b'-').collect();
        let i = digits[at.index(digits.len())];
        value[i] = byte;
        let lines = vec![(HeaderName::from_static("traceparent"), value)];
        let (result, extracted) = extract(&TraceContextPropagator::new(), &to_header_map(&lines));
        prop_assert!(result.is_err(), "{:?}", result);
        prop_assert_eq!(extracted.parent, None);
    }

    #[test]
    fn b3_ids_with_one_byte_changed_are_read_as_written_or_rejected(
        context in span_context(Just(Baggage::EMPTY)),
        multi in any::<bool>(),
        at in any::<Index>(),
        byte in format_byte(),
    ) {
        // A changed hex digit gives another valid id; anything else must be rejected. Either way
        // the ids read are exactly those in the changed header.
        let propagator = B3Propagator::new(if multi {
            B3Encoding::MultipleHeaders
        } else {
            B3Encoding::SingleHeader
        });
        let mut lines = valid_lines(&context, if multi { 4 } else { 3 });
        let index = at.index(lines.len());
        let value = &mut lines[index].1;
        let position = at.index(value.len());
        value[position] = byte;
        let headers = to_header_map(&lines);
        let (result, extracted) = extract(&propagator, &headers);
        check_extracted(propagator.name(), &headers, &extracted)?;
        if let Some(parent) = extracted.parent {
            prop_assert!(result.is_ok(), "{:?}", result);
            let written = inject(&propagator, &SpanContext::new(
                parent.trace_id,
                parent.span_id,
                parent.flags,
            ).with_parent_span_id(parent.parent_span_id));
            // Re-writing what was read gives back the changed header (B3 ids are written at full
            // width, as they were generated).
            for (name, value) in &lines {
                if let Some(rewritten) = written.get(name) {
                    prop_assert_eq!(rewritten.as_bytes(), value.as_slice(), "{}", name);
                }
            }
        } else {
            prop_assert!(result.is_err(), "{:?}", result);
        }
    }
}
