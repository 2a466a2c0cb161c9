//! The composite propagator: `OTEL_PROPAGATORS` parsing (`b3` and `b3multi` merged into one B3
//! format), order of preference, merged baggage, counted rejections, a later format's debug flag
//! for the chosen span, and continuing an extracted context through a sampler, hop after hop.

use http::{HeaderMap, HeaderName, HeaderValue};
use trace_core::propagation::{
    B3Encoding, B3Propagator, CompositePropagator, Extracted, Propagator, TraceContextPropagator,
    UnknownPropagator,
};
use trace_core::sampler::{AlwaysOff, AlwaysOn, DebugForced, ParentBased, Sampler};
use trace_core::{Baggage, SpanContext, SpanId, TraceFlags, TraceId};

const W3C_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const B3_TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

fn names(propagation: &CompositePropagator) -> Vec<&'static str> {
    propagation.formats().map(|f| f.name()).collect()
}

#[test]
fn otel_propagators_lists_build_the_composite_in_order() {
    let parsed =
        CompositePropagator::from_otel_propagators(" B3multi , tracecontext,jaeger,baggage")
            .expect("known names");
    assert_eq!(
        names(&parsed),
        ["b3multi", "tracecontext", "jaeger", "baggage"]
    );
    let parsed = CompositePropagator::from_otel_propagators("tracecontext,tracecontext,b3,")
        .expect("known names");
    assert_eq!(names(&parsed), ["tracecontext", "b3"]);
    let none = CompositePropagator::from_otel_propagators("none").expect("known names");
    assert_eq!(names(&none).len(), 0);
    assert_eq!(
        CompositePropagator::from_otel_propagators("tracecontext,xray").map(|p| names(&p)),
        Err(UnknownPropagator("xray".into()))
    );
    assert_eq!(
        names(&CompositePropagator::default()),
        ["tracecontext", "baggage", "jaeger", "b3"]
    );
}

#[test]
fn the_first_format_with_a_valid_parent_wins() {
    let both = headers(&[
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
    ]);
    let w3c_first = CompositePropagator::from_otel_propagators("tracecontext,b3").expect("known");
    let b3_first = CompositePropagator::from_otel_propagators("b3,tracecontext").expect("known");
    let trace_of =
        |p: &CompositePropagator| p.extract(&both).parent.map(|c| c.trace_id.to_string());
    assert_eq!(trace_of(&w3c_first).as_deref(), Some(W3C_TRACE));
    assert_eq!(trace_of(&b3_first).as_deref(), Some(B3_TRACE));

    // A malformed preferred format falls through to the next, and is counted.
    let broken_w3c = headers(&[
        ("traceparent", "00-not-a-traceparent-01"),
        ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
    ]);
    assert_eq!(
        trace_of_headers(&w3c_first, &broken_w3c).as_deref(),
        Some(B3_TRACE)
    );
    let stats = w3c_first.stats();
    assert_eq!(
        (stats[0].name, stats[0].found, stats[0].rejected),
        ("tracecontext", 1, 1)
    );
    assert_eq!(
        (stats[1].name, stats[1].found, stats[1].rejected),
        ("b3", 1, 0)
    );
}

fn trace_of_headers(p: &CompositePropagator, headers: &HeaderMap) -> Option<String> {
    p.extract(headers).parent.map(|c| c.trace_id.to_string())
}

#[test]
fn baggage_is_merged_from_every_format() {
    let incoming = headers(&[
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("baggage", "tenant=acme"),
        ("uberctx-user", "alice"),
    ]);
    let extracted = CompositePropagator::default().extract(&incoming);
    assert_eq!(extracted.baggage.get("tenant"), Some("acme"));
    assert_eq!(extracted.baggage.get("user"), Some("alice"));
}

#[test]
fn malformed_input_means_no_parent_and_is_counted() {
    let propagation = CompositePropagator::default();
    let garbage = headers(&[
        (
            "traceparent",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("uber-trace-id", "zz:yy:0:1"),
        ("b3", "0000000000000000-0000000000000000-1"),
    ]);
    let extracted = propagation.extract(&garbage);
    assert_eq!(extracted.parent, None);
    let rejected: u64 = propagation.stats().iter().map(|s| s.rejected).sum();
    assert_eq!(rejected, 3);
    // And the request still gets a context: a new trace.
    let context = extracted.into_span_context(&AlwaysOn, "GET");
    assert!(context.is_sampled());
    assert_eq!(context.parent_span_id(), None);
}

#[test]
fn continuing_a_trace_keeps_ids_state_and_random_flag() {
    let incoming = headers(&[
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
        ),
        ("tracestate", "congo=t61rcWkgMzE"),
    ]);
    let context = CompositePropagator::default()
        .extract(&incoming)
        .into_span_context(&ParentBased::new(AlwaysOff), "GET");
    assert_eq!(context.trace_id().to_string(), W3C_TRACE);
    assert_eq!(
        context.parent_span_id().map(|s| s.to_string()).as_deref(),
        Some("00f067aa0ba902b7")
    );
    assert_ne!(context.span_id().to_string(), "00f067aa0ba902b7");
    assert_eq!(context.flags(), TraceFlags::SAMPLED | TraceFlags::RANDOM);
    assert_eq!(context.trace_state().get("congo"), Some("t61rcWkgMzE"));

    // The random flag is a property of the trace id: forwarded as W3C, it stays.
    let mut outgoing = HeaderMap::new();
    TraceContextPropagator::new().inject(&context, &mut outgoing);
    let traceparent = outgoing.get("traceparent").and_then(|v| v.to_str().ok());
    assert!(
        traceparent.is_some_and(|v| v.ends_with("-03")),
        "{traceparent:?}"
    );
}

#[test]
fn a_jaeger_debug_id_forces_a_trace_within_the_cap() {
    let incoming = headers(&[("jaeger-debug-id", "support-ticket-4711")]);
    let sampler = DebugForced::new(ParentBased::new(AlwaysOff), 1.0);
    let propagation = CompositePropagator::default();
    let forced = propagation
        .extract(&incoming)
        .into_span_context(&sampler, "GET");
    assert!(forced.is_sampled() && forced.is_debug());
    assert_eq!(forced.debug_id(), Some("support-ticket-4711"));
    // The second within the same second is over the cap: traced normally (here: not at all).
    let refused = propagation
        .extract(&incoming)
        .into_span_context(&sampler, "GET");
    assert!(!refused.is_sampled() && !refused.is_debug());
    assert_eq!(refused.debug_id(), None);
    assert_eq!((sampler.forced(), sampler.refused()), (1, 1));
}

#[test]
fn a_b3_debug_request_is_sampled_in_every_format_it_is_forwarded_in() {
    let incoming = headers(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d")]);
    let sampler = DebugForced::new(ParentBased::new(AlwaysOff), 10.0);
    let context = CompositePropagator::default()
        .extract(&incoming)
        .into_span_context(&sampler, "GET");
    assert!(context.is_sampled() && context.is_debug());
    let mut outgoing = HeaderMap::new();
    CompositePropagator::default().inject(&context, &mut outgoing);
    let value = |name: &str| {
        outgoing
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    assert!(
        value("traceparent").ends_with("-01"),
        "{}",
        value("traceparent")
    );
    assert!(
        value("uber-trace-id").ends_with(":03"),
        "{}",
        value("uber-trace-id")
    );
    assert!(value("b3").contains("-d"), "{}", value("b3"));
}

#[test]
fn b3_sampling_decisions_without_ids_and_deferred_decisions() {
    let sampler = ParentBased::new(AlwaysOn);
    let propagation = CompositePropagator::default();
    // `b3: 0`: a new trace, not sampled, because the caller said so.
    let deny = propagation
        .extract(&headers(&[("b3", "0")]))
        .into_span_context(&sampler, "GET");
    assert!(!deny.is_sampled());
    assert_eq!(deny.parent_span_id(), None);
    // Ids without a decision: the parent is continued, the root sampler decides.
    let deferred = B3Propagator::new(B3Encoding::MultipleHeaders);
    let multi = headers(&[
        ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
    ]);
    let mut extracted = Extracted::default();
    let _ = Propagator::extract(&deferred, &multi, &mut extracted);
    assert!(
        extracted
            .parent
            .as_ref()
            .is_some_and(|p| p.sampling_deferred)
    );
    let continued = extracted.into_span_context(&sampler, "GET");
    assert!(continued.is_sampled());
    assert_eq!(continued.trace_id().to_string(), B3_TRACE);
}

#[test]
fn injection_replaces_stale_headers() {
    let context = SpanContext::new(
        TraceId::from_u128(0xabc).expect("non-zero"),
        SpanId::from_u64(0xdef).expect("non-zero"),
        TraceFlags::SAMPLED,
    )
    .with_baggage(Baggage::EMPTY.with_entry("k", "v").expect("fits"));
    let mut outgoing = headers(&[
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("uber-trace-id", "1:2:0:1"),
    ]);
    CompositePropagator::default().inject(&context, &mut outgoing);
    assert_eq!(outgoing.get_all("traceparent").iter().count(), 1);
    assert_eq!(
        outgoing.get("traceparent").and_then(|v| v.to_str().ok()),
        Some("00-00000000000000000000000000000abc-0000000000000def-01")
    );
    assert_eq!(outgoing.get_all("uber-trace-id").iter().count(), 1);
    assert_eq!(
        outgoing.get("uber-trace-id").and_then(|v| v.to_str().ok()),
        Some("0000000000000abc:0000000000000def:0:01")
    );
    assert_eq!(
        outgoing.get("baggage").and_then(|v| v.to_str().ok()),
        Some("k=v")
    );
    assert_eq!(
        outgoing.get("uberctx-k").and_then(|v| v.to_str().ok()),
        Some("v")
    );
}

/// A format of the application's own, reading a header no built-in format knows.
#[derive(Debug)]
struct RequestIdFormat;

impl Propagator for RequestIdFormat {
    fn name(&self) -> &'static str {
        "request-id"
    }

    fn extract(
        &self,
        headers: &HeaderMap,
        into: &mut Extracted,
    ) -> Result<trace_core::propagation::Presence, trace_core::propagation::ExtractError> {
        let Some(id) = headers.get("x-request-id").and_then(|v| v.to_str().ok()) else {
            return Ok(trace_core::propagation::Presence::Absent);
        };
        into.baggage = Baggage::EMPTY
            .with_entry("request.id", id)
            .expect("a short entry");
        Ok(trace_core::propagation::Presence::Found)
    }

    fn inject(&self, _context: &SpanContext, _headers: &mut HeaderMap) {}
}

/// A built-in format is skipped when the scan found none of its headers; a format of the
/// application's own is always asked, since the scan cannot know what it reads.
#[test]
fn formats_are_asked_when_their_headers_are_there_and_custom_ones_always() {
    let propagation = CompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(B3Propagator::new(B3Encoding::MultipleHeaders)),
        Box::new(RequestIdFormat),
    ]);
    let extracted = propagation.extract(&headers(&[("x-request-id", "r-42")]));
    assert!(extracted.parent.is_none());
    assert_eq!(extracted.baggage.get("request.id"), Some("r-42"));
    let extracted = propagation.extract(&headers(&[
        ("x-b3-traceid", B3_TRACE),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ("x-b3-sampled", "1"),
    ]));
    let parent = extracted
        .parent
        .expect("the B3 parent, read with no W3C header present");
    assert_eq!(parent.trace_id.to_string(), B3_TRACE);
    let found: Vec<(&str, u64)> = propagation
        .stats()
        .iter()
        .map(|s| (s.name, s.found))
        .collect();
    assert_eq!(
        found,
        [("tracecontext", 0), ("b3multi", 1), ("request-id", 1)]
    );
}

#[test]
fn a_composite_hands_over_the_headers_none_of_its_formats_reads() {
    let w3c = CompositePropagator::from_otel_propagators("tracecontext").expect("known");
    let all = CompositePropagator::default();
    let debug = HeaderName::from_static("jaeger-debug-id");
    assert!(w3c.hands_over(&debug) && !all.hands_over(&debug));
    let traceparent = HeaderName::from_static("traceparent");
    assert!(!w3c.hands_over(&traceparent) && !all.hands_over(&traceparent));
    let host = http::header::HOST;
    assert!(w3c.hands_over(&host) && all.hands_over(&host));

    let request = headers(&[
        ("jaeger-debug-id", "debug-1"),
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
    ]);
    let mut handed = Vec::new();
    let extracted = w3c.extract_with(&request, |name, _| handed.push(name.as_str()));
    assert_eq!(handed, ["jaeger-debug-id"]);
    assert!(extracted.parent.is_some() && extracted.debug_id.is_none());
    let mut handed = Vec::new();
    let extracted = all.extract_with(&request, |name, _| handed.push(name.as_str()));
    assert!(handed.is_empty(), "Jaeger reads it: {handed:?}");
    assert_eq!(extracted.debug_id.as_deref(), Some("debug-1"));
}

/// Every header line, sorted, as text.
fn written(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut lines: Vec<(String, String)> = headers
        .iter()
        .map(|(name, value)| {
            let value = value.to_str().unwrap_or("(not text)");
            (name.as_str().to_owned(), value.to_owned())
        })
        .collect();
    lines.sort_unstable();
    lines
}

fn lines(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

#[test]
fn otel_propagators_b3_and_b3multi_become_one_b3_format_writing_both() {
    for (list, expected) in [
        (
            "tracecontext,b3,b3multi",
            &["tracecontext", "b3,b3multi"][..],
        ),
        ("b3multi,tracecontext,B3", &["b3,b3multi", "tracecontext"]),
        ("b3,jaeger,b3multi,b3,b3multi", &["b3,b3multi", "jaeger"]),
        ("jaeger,b3multi,b3multi", &["jaeger", "b3multi"]),
        ("b3,b3", &["b3"]),
    ] {
        let parsed = CompositePropagator::from_otel_propagators(list).expect("known names");
        assert_eq!(names(&parsed), expected, "{list}");
        // The names, joined, are a list that builds the same composite.
        let again = CompositePropagator::from_otel_propagators(&names(&parsed).join(","))
            .expect("known names");
        assert_eq!(names(&again), expected, "{list}");
    }

    let composite =
        CompositePropagator::from_otel_propagators("tracecontext,b3,b3multi").expect("known");
    let context = SpanContext::new(
        B3_TRACE.parse().expect("valid"),
        "e457b5a2e4d86bd1".parse().expect("valid"),
        TraceFlags::SAMPLED,
    )
    .with_parent_span_id(Some("05e3ac9a4f6e3b90".parse().expect("valid")));
    let mut outgoing = HeaderMap::new();
    composite.inject(&context, &mut outgoing);
    assert_eq!(
        written(&outgoing),
        lines(&[
            (
                "b3",
                "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90"
            ),
            (
                "traceparent",
                "00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-01"
            ),
            ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
            ("x-b3-sampled", "1"),
            ("x-b3-spanid", "e457b5a2e4d86bd1"),
            ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
        ])
    );

    // Either encoding alone is read, and counted under the one name.
    for pairs in [
        &[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")][..],
        &[
            ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
            ("x-b3-spanid", "e457b5a2e4d86bd1"),
            ("x-b3-sampled", "1"),
        ],
    ] {
        assert_eq!(
            trace_of_headers(&composite, &headers(pairs)).as_deref(),
            Some(B3_TRACE)
        );
    }
    let stats: Vec<(&str, u64, u64)> = composite
        .stats()
        .iter()
        .map(|s| (s.name, s.found, s.rejected))
        .collect();
    assert_eq!(stats, [("tracecontext", 0, 0), ("b3,b3multi", 2, 0)]);
}

/// A service that samples nothing of its own but honours every debug request.
fn debug_only() -> DebugForced {
    DebugForced::new(AlwaysOff, f64::INFINITY)
}

/// A server continuing what a request's headers carry, then a client call from that server span,
/// with the default formats: the server span's context and the call's headers.
fn hop(sampler: &dyn Sampler, incoming: &HeaderMap) -> (SpanContext, SpanContext, HeaderMap) {
    let propagation = CompositePropagator::default();
    let server = propagation
        .extract(incoming)
        .into_span_context(sampler, "GET /");
    let client = server.new_child();
    let mut outgoing = HeaderMap::new();
    propagation.inject(&client, &mut outgoing);
    (server, client, outgoing)
}

fn expected_headers(
    context: &SpanContext,
    w3c: &str,
    jaeger: &str,
    b3: &str,
) -> Vec<(String, String)> {
    let trace = context.trace_id();
    let span = context.span_id();
    let parent = context
        .parent_span_id()
        .map(|p| p.to_string())
        .unwrap_or_default();
    lines(&[
        ("b3", &format!("{trace}-{span}-{b3}-{parent}")),
        ("traceparent", &format!("00-{trace}-{span}-{w3c}")),
        (
            "uber-trace-id",
            &format!("{trace}:{span}:{parent}:{jaeger}"),
        ),
    ])
}

#[test]
fn a_debug_trace_stays_debug_from_service_to_service_with_the_default_formats() {
    let sampler = debug_only();
    let debug = TraceFlags::SAMPLED | TraceFlags::DEBUG | TraceFlags::RANDOM;

    // A: a `jaeger-debug-id` from curl forces the trace.
    let (a, a_call, to_b) = hop(&sampler, &headers(&[("jaeger-debug-id", "ticket-4711")]));
    assert_eq!(a.flags(), debug);
    assert_eq!(a.debug_id(), Some("ticket-4711"));
    assert_eq!(written(&to_b), expected_headers(&a_call, "03", "03", "d"));

    // B: traceparent is preferred and has no debug bit; uber-trace-id and b3, for the same span,
    // carry it.
    let extracted = CompositePropagator::default().extract(&to_b);
    let parent = extracted.parent.clone().expect("A's call");
    assert_eq!(
        (parent.trace_id, parent.span_id, parent.flags),
        (a.trace_id(), a_call.span_id(), debug)
    );
    let (b, b_call, to_c) = hop(&sampler, &to_b);
    assert_eq!(
        (b.trace_id(), b.parent_span_id(), b.flags()),
        (a.trace_id(), Some(a_call.span_id()), debug)
    );
    assert_eq!(b.debug_id(), None);
    assert_eq!(written(&to_c), expected_headers(&b_call, "03", "03", "d"));

    // C: still the same debug trace.
    let (c, c_call, downstream) = hop(&sampler, &to_c);
    assert_eq!(
        (c.trace_id(), c.parent_span_id(), c.flags()),
        (a.trace_id(), Some(b_call.span_id()), debug)
    );
    assert_eq!(
        written(&downstream),
        expected_headers(&c_call, "03", "03", "d")
    );
    assert_eq!((sampler.forced(), sampler.refused()), (3, 0));
}

#[test]
fn a_debug_flag_of_another_span_does_not_make_the_chosen_parent_debug() {
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let sampler = debug_only();
    for (name, value) in [
        // Same trace, another span.
        (
            "uber-trace-id",
            "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b8:0:03",
        ),
        ("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b8-d"),
        // Same span id, another trace.
        (
            "uber-trace-id",
            "80f198ee56343ba864fe8b2a57d3eff7:00f067aa0ba902b7:0:03",
        ),
        ("b3", "80f198ee56343ba864fe8b2a57d3eff7-00f067aa0ba902b7-d"),
    ] {
        let propagation = CompositePropagator::default();
        let extracted =
            propagation.extract(&headers(&[("traceparent", traceparent), (name, value)]));
        let parent = extracted.parent.clone().expect("the W3C parent");
        assert_eq!(
            (
                parent.trace_id.to_string(),
                parent.span_id.to_string(),
                parent.flags
            ),
            (
                W3C_TRACE.to_owned(),
                "00f067aa0ba902b7".to_owned(),
                TraceFlags::SAMPLED
            ),
            "{name}: {value}"
        );
        assert!(!extracted.is_debug_requested(), "{name}: {value}");
        let context = extracted.into_span_context(&sampler, "GET");
        assert_eq!(context.flags(), TraceFlags::EMPTY, "{name}: {value}");
        let found: u64 = propagation.stats().iter().skip(2).map(|s| s.found).sum();
        assert_eq!(found, 0, "{name}: {value}");
    }
    assert_eq!(sampler.forced(), 0);
}

#[test]
fn a_later_formats_debug_flag_is_taken_once_and_counted_as_found() {
    let propagation = CompositePropagator::default();
    let extracted = propagation.extract(&headers(&[
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        ),
        (
            "uber-trace-id",
            "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:1:03",
        ),
        (
            "b3",
            "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-d-1",
        ),
    ]));
    let parent = extracted.parent.expect("the W3C parent");
    assert_eq!(parent.flags, TraceFlags::SAMPLED | TraceFlags::DEBUG);
    // Jaeger's parent span id is not taken: W3C does not carry one.
    assert_eq!(parent.parent_span_id, None);
    let stats: Vec<(&str, u64, u64)> = propagation
        .stats()
        .iter()
        .map(|s| (s.name, s.found, s.rejected))
        .collect();
    // B3 found the parent debug already and had nothing to add.
    assert_eq!(
        stats,
        [
            ("tracecontext", 1, 0),
            ("baggage", 0, 0),
            ("jaeger", 1, 0),
            ("b3", 0, 0)
        ]
    );
}

#[test]
fn a_later_debug_flag_without_sampled_leaves_the_decision_to_the_debug_cap() {
    let request = headers(&[
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        ),
        // Jaeger's debug bit alone, for the same span: a debug request, not a sampled parent.
        (
            "uber-trace-id",
            "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:02",
        ),
    ]);
    let extracted = CompositePropagator::default().extract(&request);
    let parent = extracted.parent.clone().expect("the W3C parent");
    assert_eq!(parent.flags, TraceFlags::DEBUG);
    assert!(extracted.is_debug_requested());

    // Read alone, the same header is the same request: both go to the sampler alike.
    let alone = CompositePropagator::default().extract(&headers(&[(
        "uber-trace-id",
        "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:02",
    )]));
    assert_eq!(
        alone.parent.clone().expect("the Jaeger parent").flags,
        TraceFlags::DEBUG
    );

    // With the debug cap spent, neither is traced.
    let capped = DebugForced::new(AlwaysOff, 0.0);
    for extracted in [extracted.clone(), alone.clone()] {
        let context = extracted.into_span_context(&capped, "GET");
        assert!(!context.is_sampled(), "{context:?}");
    }
    assert_eq!(capped.forced(), 0);
    // Within it, both are.
    let sampler = debug_only();
    for extracted in [extracted, alone] {
        let context = extracted.into_span_context(&sampler, "GET");
        assert!(context.is_sampled() && context.is_debug(), "{context:?}");
    }
    assert_eq!(sampler.forced(), 2);
}

#[test]
fn malformed_later_formats_beside_a_chosen_parent_are_not_counted() {
    let propagation = CompositePropagator::default();
    let extracted = propagation.extract(&headers(&[
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("uber-trace-id", "zz:yy:0:3"),
        ("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-x"),
        ("x-b3-spanid", "00f067aa0ba902b7"),
    ]));
    let parent = extracted.parent.expect("the W3C parent");
    assert_eq!(parent.flags, TraceFlags::SAMPLED);
    let rejected: Vec<(&str, u64)> = propagation
        .stats()
        .iter()
        .map(|s| (s.name, s.rejected))
        .collect();
    assert_eq!(
        rejected,
        [
            ("tracecontext", 0),
            ("baggage", 0),
            ("jaeger", 0),
            ("b3", 0)
        ]
    );
}
