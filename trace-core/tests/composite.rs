//! The composite propagator: `OTEL_PROPAGATORS` parsing, order of preference, merged baggage,
//! counted rejections, and continuing an extracted context through a sampler.

use http::{HeaderMap, HeaderName, HeaderValue};
use trace_core::propagation::{
    B3Encoding, B3Propagator, CompositePropagator, Extracted, Propagator, TraceContextPropagator,
    UnknownPropagator,
};
use trace_core::sampler::{AlwaysOff, AlwaysOn, DebugForced, ParentBased};
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
