//! Jaeger propagation checked against the header examples of Jaeger's own documentation.
//!
//! OpenTelemetry's Jaeger propagator for Rust no longer builds with current `opentelemetry`, so
//! instead of a cross-check these tests write out the examples and rules of:
//!
//! - the Jaeger documentation, "Client Libraries → Propagation Format"
//!   (jaegertracing/documentation, `content/docs/1.21/client-libraries.md`; the same section is
//!   on <https://www.jaegertracing.io/docs/1.21/client-libraries/#propagation-format>);
//! - the jaeger-client-go README ("Debug Traces (Forced Sampling) → Via HTTP Headers" and
//!   "Baggage Injection");
//! - jaeger-client-java's `TextMapCodec`, whose `HTTP_HEADERS` codec URL-encodes the whole
//!   `uber-trace-id` value, so that `:` travels as `%3A`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::percent_decode_str;
use trace_core::propagation::{ExtractError, Extracted, JaegerPropagator, Presence, Propagator};
use trace_core::{Baggage, SpanContext, SpanId, TraceFlags, TraceId};

fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).expect("test header name"),
            HeaderValue::from_bytes(value.as_bytes()).expect("test header value"),
        );
    }
    headers
}

fn extract(pairs: &[(&str, &str)]) -> (Result<Presence, ExtractError>, Extracted) {
    let mut extracted = Extracted::default();
    let result = JaegerPropagator::new().extract(&header_map(pairs), &mut extracted);
    (result, extracted)
}

/// The parent read from one `uber-trace-id` value; panics if it is rejected.
fn parent_of(value: &str) -> trace_core::propagation::RemoteContext {
    let (result, extracted) = extract(&[("uber-trace-id", value)]);
    assert_eq!(result, Ok(Presence::Found), "{value:?}");
    extracted
        .parent
        .unwrap_or_else(|| panic!("no parent from {value:?}"))
}

fn trace(hex: &str) -> TraceId {
    TraceId::from_u128(u128::from_str_radix(hex, 16).expect("hex")).expect("non-zero")
}

fn span(hex: &str) -> SpanId {
    SpanId::from_u64(u64::from_str_radix(hex, 16).expect("hex")).expect("non-zero")
}

fn baggage_map(baggage: &Baggage) -> BTreeMap<String, String> {
    baggage
        .iter()
        .map(|entry| (entry.key.clone(), entry.value.clone()))
        .collect()
}

fn injected(context: &SpanContext) -> HeaderMap {
    let mut headers = HeaderMap::new();
    JaegerPropagator::new().inject(context, &mut headers);
    headers
}

// ---------------------------------------------------------------------------------------------
// Trace/Span Identity: `uber-trace-id: {trace-id}:{span-id}:{parent-span-id}:{flags}`
// ---------------------------------------------------------------------------------------------

#[test]
fn docs_value_with_128_bit_trace_id_and_parent_is_read() {
    // Key `uber-trace-id`, "case-insensitive in HTTP": the name is given here as a client that
    // capitalises headers would send it.
    let (result, extracted) = extract(&[(
        "Uber-Trace-Id",
        "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:a3ce929d0e0e4736:01",
    )]);
    assert_eq!(result, Ok(Presence::Found));
    let parent = extracted.parent.expect("parent");
    assert_eq!(parent.trace_id, trace("4bf92f3577b34da6a3ce929d0e0e4736"));
    assert_eq!(parent.span_id, span("00f067aa0ba902b7"));
    assert_eq!(parent.parent_span_id, Some(span("a3ce929d0e0e4736")));
    assert_eq!(parent.flags, TraceFlags::SAMPLED);
    assert!(!parent.sampling_deferred);
    assert!(parent.trace_state.is_empty());
    assert_eq!(extracted.debug_id, None);
    assert!(extracted.baggage.is_empty());
}

#[test]
fn docs_value_with_64_bit_trace_id_is_read_as_the_low_half() {
    // "{trace-id}: 64-bit or 128-bit random number in base16 format"
    let parent = parent_of("a3ce929d0e0e4736:00f067aa0ba902b7:0:1");
    assert_eq!(parent.trace_id.high_u64(), 0);
    assert_eq!(parent.trace_id.low_u64(), 0xa3ce_929d_0e0e_4736);
    assert_eq!(
        parent.trace_id.to_string(),
        "0000000000000000a3ce929d0e0e4736"
    );
}

#[test]
fn docs_shorter_ids_are_zero_padded_on_the_left() {
    // "Receivers MUST accept hex-strings shorter than 32 characters and 0-pad them on the left"
    // (trace id) and "shorter than 16 characters" (span id); Java clients write ids with
    // Long.toHexString, which drops leading zeros.
    let cases = [
        ("abc:def:0:1", "abc", "def"),
        ("1:2:0:1", "1", "2"),
        (
            "f067aa0ba902b7:a3ce929d0e0e473:0:1",
            "f067aa0ba902b7",
            "a3ce929d0e0e473",
        ),
        (
            "4bf92f3577b34da6a3ce929d0e0e47:00f067aa0ba902b7:0:1",
            "4bf92f3577b34da6a3ce929d0e0e47",
            "00f067aa0ba902b7",
        ),
    ];
    for (value, trace_hex, span_hex) in cases {
        let parent = parent_of(value);
        assert_eq!(parent.trace_id, trace(trace_hex), "{value:?}");
        assert_eq!(parent.span_id, span(span_hex), "{value:?}");
        assert_eq!(parent.flags, TraceFlags::SAMPLED);
    }
}

#[test]
fn docs_parent_span_id_zero_means_root_span() {
    // "{parent-span-id} … 0 value is valid and means 'root span'"
    assert_eq!(parent_of("abc:def:0:1").parent_span_id, None);
    assert_eq!(parent_of("abc:def:0000000000000000:1").parent_span_id, None);
    assert_eq!(parent_of("abc:def:123:1").parent_span_id, Some(span("123")));
}

#[test]
fn docs_flags_bits_map_to_sampled_debug_and_firehose() {
    // "{flags}: One byte bitmap, as one or two hex digits (leading zero may be omitted)";
    // bit 0x01 sampled, 0x02 debug, 0x04 not used, 0x08 firehose, "other bits are unused".
    let sampled = TraceFlags::SAMPLED;
    let debug = TraceFlags::DEBUG;
    let firehose = TraceFlags::FIREHOSE;
    let cases = [
        ("0", TraceFlags::EMPTY),
        ("00", TraceFlags::EMPTY),
        ("1", sampled),
        ("01", sampled),
        ("2", debug),
        ("3", sampled | debug),
        ("03", sampled | debug),
        ("4", TraceFlags::EMPTY),
        ("05", sampled),
        ("8", firehose),
        ("09", sampled | firehose),
        ("0a", debug | firehose),
        ("0b", sampled | debug | firehose),
        ("f0", TraceFlags::EMPTY),
        ("ff", sampled | debug | firehose),
    ];
    for (flags, expected) in cases {
        let parent = parent_of(&format!(
            "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:{flags}"
        ));
        assert_eq!(parent.flags, expected, "flags {flags:?}");
        // Jaeger has no random-trace-id flag.
        assert!(!parent.flags.is_random(), "flags {flags:?}");
    }
}

#[test]
fn docs_zero_ids_are_not_valid() {
    // "Value of 0 is not valid" (trace id and span id).
    for value in [
        "0:def:0:1",
        "00000000000000000000000000000000:00f067aa0ba902b7:0:1",
        "abc:0:0:1",
        "abc:0000000000000000:0:1",
    ] {
        let (result, extracted) = extract(&[("uber-trace-id", value)]);
        assert!(
            matches!(
                result,
                Err(ExtractError::Malformed {
                    header: "uber-trace-id",
                    ..
                })
            ),
            "{value:?}: {result:?}"
        );
        assert_eq!(extracted.parent, None, "{value:?}");
    }
}

#[test]
fn values_outside_the_documented_format_are_rejected() {
    // Four ':'-separated base16 fields: a trace id of at most 128 bits (32 digits), span ids of
    // at most 64 bits (16 digits), and one byte of flags.
    for value in [
        "",
        "abc:def:0",
        "abc:def:0:1:0",
        "abc::0:1",
        ":def:0:1",
        "abc:def::1",
        "abc:def:0:",
        "xyz:def:0:1",
        "abc:def:0:1g",
        "abc-def-0-1",
        "abc def 0 1",
        "14bf92f3577b34da6a3ce929d0e0e4736:def:0:1",
        "abc:100f067aa0ba902b7:0:1",
        "abc:def:100f067aa0ba902b7:1",
        "abc:def:0:100",
        "+abc:def:0:1",
        "abc:-def:0:1",
    ] {
        let (result, extracted) = extract(&[("uber-trace-id", value)]);
        assert!(
            matches!(
                result,
                Err(ExtractError::Malformed {
                    header: "uber-trace-id",
                    ..
                })
            ),
            "{value:?}: {result:?}"
        );
        assert_eq!(extracted.parent, None, "{value:?}");
    }
}

#[test]
fn url_encoded_value_from_the_java_client_is_read_like_the_plain_one() {
    // jaeger-client-java's HTTP_HEADERS codec (TextMapCodec with URL encoding) passes the whole
    // `uber-trace-id` value through URLEncoder, so every ':' arrives as "%3A".
    let plain = parent_of("4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:a3ce929d0e0e4736:3");
    for encoded in [
        "4bf92f3577b34da6a3ce929d0e0e4736%3A00f067aa0ba902b7%3Aa3ce929d0e0e4736%3A3",
        "4bf92f3577b34da6a3ce929d0e0e4736%3a00f067aa0ba902b7%3aa3ce929d0e0e4736%3a3",
    ] {
        assert_eq!(parent_of(encoded), plain, "{encoded:?}");
    }
    assert_eq!(plain.flags, TraceFlags::SAMPLED | TraceFlags::DEBUG);
    // What URLEncoder writes for a Java client's 64-bit ids (Long.toHexString, no padding).
    let java = parent_of("51729f13a64c2ef3%3A258169797d519815%3A51729f13a64c2ef3%3A1");
    assert_eq!(java.trace_id, trace("51729f13a64c2ef3"));
    assert_eq!(java.span_id, span("258169797d519815"));
    assert_eq!(java.parent_span_id, Some(span("51729f13a64c2ef3")));
}

#[test]
fn injected_uber_trace_id_follows_the_documented_sender_rules() {
    // "Senders SHOULD generate hex strings of exactly 16 or 32 characters in length" (trace id),
    // "exactly 16 characters" (span id); the parent is still sent ("most Jaeger clients … still
    // include it on the sending side"), 0 for a root span; flags one byte in hex.
    let cases = [
        (
            trace("4bf92f3577b34da6a3ce929d0e0e4736"),
            None,
            TraceFlags::SAMPLED,
            "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:01",
        ),
        (
            trace("a3ce929d0e0e4736"),
            Some(span("51729f13a64c2ef3")),
            TraceFlags::SAMPLED | TraceFlags::DEBUG,
            "a3ce929d0e0e4736:00f067aa0ba902b7:51729f13a64c2ef3:03",
        ),
        (
            trace("1"),
            Some(span("2")),
            TraceFlags::FIREHOSE,
            "0000000000000001:00f067aa0ba902b7:0000000000000002:08",
        ),
        (
            trace("4bf92f3577b34da6a3ce929d0e0e4736"),
            None,
            // W3C's random flag has no Jaeger bit.
            TraceFlags::SAMPLED | TraceFlags::RANDOM,
            "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:01",
        ),
    ];
    for (trace_id, parent, flags, expected) in cases {
        let context =
            SpanContext::new(trace_id, span("00f067aa0ba902b7"), flags).with_parent_span_id(parent);
        let headers = injected(&context);
        let value = headers
            .get("uber-trace-id")
            .and_then(|v| v.to_str().ok())
            .expect("uber-trace-id written");
        assert_eq!(value, expected);
        let back = parent_of(value);
        assert_eq!(back.trace_id, trace_id);
        assert_eq!(back.span_id, context.span_id());
        assert_eq!(back.parent_span_id, parent);
        assert_eq!(back.flags, flags.with(TraceFlags::RANDOM, false));
    }
}

// ---------------------------------------------------------------------------------------------
// Baggage: `uberctx-{baggage-key}: {baggage-value}`
// ---------------------------------------------------------------------------------------------

#[test]
fn docs_baggage_headers_become_baggage() {
    // span.SetBaggageItem("key1", "value1"); span.SetBaggageItem("key2", "value2") results in
    // "uberctx-key1: value1" and "uberctx-key2: value2".
    let (result, extracted) = extract(&[("uberctx-key1", "value1"), ("uberctx-key2", "value2")]);
    assert_eq!(result, Ok(Presence::Found));
    assert_eq!(extracted.parent, None);
    assert_eq!(
        baggage_map(&extracted.baggage),
        BTreeMap::from([
            ("key1".to_owned(), "value1".to_owned()),
            ("key2".to_owned(), "value2".to_owned()),
        ])
    );
}

#[test]
fn docs_baggage_beside_a_trace_id_is_read_with_it() {
    let (result, extracted) = extract(&[
        ("uber-trace-id", "abc:def:0:1"),
        ("uberctx-my-baggage-key-1", "value1"),
    ]);
    assert_eq!(result, Ok(Presence::Found));
    assert_eq!(extracted.parent.expect("parent").trace_id, trace("abc"));
    assert_eq!(extracted.baggage.get("my-baggage-key-1"), Some("value1"));
}

#[test]
fn docs_url_encoded_baggage_value_is_decoded() {
    // SetBaggageItem("key1", "value 1 / blah") with HTTP_HEADERS gives
    // "uberctx-key1: value%201%20%2F%20blah".
    let (result, extracted) = extract(&[("uberctx-key1", "value%201%20%2F%20blah")]);
    assert_eq!(result, Ok(Presence::Found));
    assert_eq!(extracted.baggage.get("key1"), Some("value 1 / blah"));
}

#[test]
fn docs_baggage_header_names_arrive_lower_case() {
    // "since HTTP headers don't preserve the case, Jaeger recommends baggage keys to be
    // lowercase-kebab-case, e.g. my-baggage-key-1": a header sent as `UberCtx-My-Key` is read
    // under the lower-case key.
    let (result, extracted) = extract(&[("UberCtx-My-Key", "v")]);
    assert_eq!(result, Ok(Presence::Found));
    assert_eq!(
        baggage_map(&extracted.baggage),
        BTreeMap::from([("my-key".to_owned(), "v".to_owned())])
    );
}

#[test]
fn injected_baggage_values_are_url_encoded_as_the_docs_show() {
    let baggage = Baggage::EMPTY
        .with_entry("key1", "value 1 / blah")
        .and_then(|b| b.with_entry("my-baggage-key-1", "caf\u{e9}, 100% \"done\"; a+b"))
        .expect("fits");
    let context = SpanContext::new(
        trace("4bf92f3577b34da6a3ce929d0e0e4736"),
        span("00f067aa0ba902b7"),
        TraceFlags::SAMPLED,
    )
    .with_baggage(baggage.clone());
    let headers = injected(&context);
    for entry in baggage.iter() {
        let name = format!("uberctx-{}", entry.key);
        let value = headers
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{name} written"));
        // The docs' own encoding of the first value is "value%201%20%2F%20blah"; '/' may also go
        // unencoded, what matters is that a URL decoder gives the value back.
        assert!(
            value.bytes().all(|b| b.is_ascii_graphic()),
            "{name}: {value:?} must be URL-encoded"
        );
        assert!(!value.contains('+'), "{name}: '+' would decode as a space");
        assert_eq!(
            percent_decode_str(value).decode_utf8().expect("UTF-8"),
            entry.value.as_str(),
            "{name}"
        );
    }
    let pairs: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().expect("ASCII").to_owned()))
        .collect();
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let (_, extracted) = extract(&pairs);
    assert_eq!(baggage_map(&extracted.baggage), baggage_map(&baggage));
}

#[test]
fn go_client_readme_jaeger_baggage_header_is_read_as_baggage() {
    // jaeger-client-go README, "Baggage Injection": an external process can inject baggage with
    // `curl -H "jaeger-baggage: key1=value1, key2=value2" http://myhost.com`
    // (jaeger-client-java's TextMapCodec reads the same header).
    let (result, extracted) = extract(&[("jaeger-baggage", "key1=value1, key2=value2")]);
    assert_eq!(result, Ok(Presence::Found));
    assert_eq!(extracted.parent, None);
    assert_eq!(
        baggage_map(&extracted.baggage),
        BTreeMap::from([
            ("key1".to_owned(), "value1".to_owned()),
            ("key2".to_owned(), "value2".to_owned()),
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// Debug traces: `jaeger-debug-id`
// ---------------------------------------------------------------------------------------------

#[test]
fn go_client_readme_debug_id_header_requests_a_debug_trace() {
    // jaeger-client-go README, "Debug Traces (Forced Sampling) → Via HTTP Headers":
    // `curl -H "jaeger-debug-id: some-correlation-id" http://myhost.com` on a request "that
    // otherwise has no tracing context" forces a debug trace tagged with the correlation id.
    let (result, extracted) = extract(&[("jaeger-debug-id", "some-correlation-id")]);
    assert_eq!(result, Ok(Presence::Found));
    assert_eq!(extracted.parent, None);
    assert_eq!(extracted.debug_id.as_deref(), Some("some-correlation-id"));
    assert!(extracted.is_debug_requested());
}

#[test]
fn debug_id_beside_a_trace_id_is_kept_with_the_parent() {
    let (result, extracted) = extract(&[
        ("uber-trace-id", "abc:def:0:0"),
        ("jaeger-debug-id", "some-correlation-id"),
    ]);
    assert_eq!(result, Ok(Presence::Found));
    let parent = extracted.parent.clone().expect("parent");
    assert_eq!(parent.flags, TraceFlags::EMPTY);
    assert_eq!(extracted.debug_id.as_deref(), Some("some-correlation-id"));
    assert!(extracted.is_debug_requested());
}

#[test]
fn debug_id_is_not_forwarded_on_injection() {
    // The correlation id tags the root span of the request that carried it; the client libraries
    // do not send it on (TextMapCodec.inject writes uber-trace-id and uberctx-* only).
    let context = SpanContext::new(
        trace("abc"),
        span("def"),
        TraceFlags::SAMPLED | TraceFlags::DEBUG,
    )
    .with_debug_id(Some("some-correlation-id".into()));
    let mut headers = header_map(&[("jaeger-debug-id", "stale")]);
    JaegerPropagator::new().inject(&context, &mut headers);
    assert_eq!(headers.get("jaeger-debug-id"), None);
    assert_eq!(
        headers.get("uber-trace-id").and_then(|v| v.to_str().ok()),
        Some("0000000000000abc:0000000000000def:0:03")
    );
}
