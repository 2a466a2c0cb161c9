//! Headers written by real client libraries (OpenTelemetry Python's propagators, Uber's Jaeger
//! clients for Python and Node), read back as the libraries meant them, then written by us and
//! read again.
//!
//! The corpus is `shared/testdata/propagation-real-clients.jsonl`; its README says what each
//! field holds.

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use trace_core::propagation::{
    B3Encoding, B3Propagator, BaggagePropagator, Extracted, JaegerPropagator, Presence, Propagator,
    RemoteContext, TraceContextPropagator,
};
use trace_core::{Baggage, SpanContext, TraceFlags, TraceState};

const CORPUS_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/testdata/propagation-real-clients.jsonl"
);
const CORPUS_LINES: usize = 84;

/// One corpus line, parsed.
#[derive(Debug)]
struct Case {
    line: usize,
    format: String,
    producer: String,
    headers: HeaderMap,
    expected: RemoteContext,
    /// Expected baggage as (key, value), in no particular order.
    baggage: Vec<(String, String)>,
}

impl Case {
    fn parse(line: usize, text: &str) -> Self {
        let json: Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("line {line}: invalid JSON: {e}"));
        let str_field = |value: &Value, name: &str| -> String {
            value
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("line {line}: missing string {name:?}"))
                .to_owned()
        };
        let expect = json
            .get("expect")
            .unwrap_or_else(|| panic!("line {line}: no expect"));

        let mut headers = HeaderMap::new();
        let header_object = json
            .get("headers")
            .and_then(Value::as_object)
            .unwrap_or_else(|| panic!("line {line}: no headers"));
        for (name, value) in header_object {
            let value = value
                .as_str()
                .unwrap_or_else(|| panic!("line {line}: header {name} is not a string"));
            // Lower-cases the name, as every HTTP stack does on the way in.
            let name = HeaderName::from_bytes(name.as_bytes())
                .unwrap_or_else(|e| panic!("line {line}: header name {name:?}: {e}"));
            let value = HeaderValue::from_str(value)
                .unwrap_or_else(|e| panic!("line {line}: header value {value:?}: {e}"));
            headers.append(name, value);
        }

        let sampled = expect
            .get("sampled")
            .and_then(Value::as_bool)
            .unwrap_or_else(|| panic!("line {line}: no sampled"));
        // Only Jaeger lines say; for the others the corpus has no debug requests.
        let debug = expect
            .get("debug")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let trace_state = match expect.get("trace_state") {
            None | Some(Value::Null) => TraceState::EMPTY,
            Some(state) => state
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("line {line}: invalid trace_state {state}")),
        };
        let baggage = match expect.get("baggage") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(entries)) => entries
                .iter()
                .map(|(k, v)| {
                    let v = v
                        .as_str()
                        .unwrap_or_else(|| panic!("line {line}: baggage value {v}"));
                    (k.clone(), v.to_owned())
                })
                .collect(),
            Some(other) => panic!("line {line}: baggage is {other}"),
        };
        let trace_id = str_field(expect, "trace_id")
            .parse()
            .unwrap_or_else(|e| panic!("line {line}: trace_id: {e}"));
        let span_id = str_field(expect, "span_id")
            .parse()
            .unwrap_or_else(|e| panic!("line {line}: span_id: {e}"));

        Self {
            line,
            format: str_field(&json, "format"),
            producer: str_field(&json, "producer"),
            headers,
            expected: RemoteContext {
                trace_id,
                span_id,
                // The corpus does not say; compared separately where it matters.
                parent_span_id: None,
                flags: TraceFlags::EMPTY
                    .with(TraceFlags::SAMPLED, sampled)
                    .with(TraceFlags::DEBUG, debug),
                trace_state,
                sampling_deferred: false,
            },
            baggage,
        }
    }

    /// The propagators that read this line's format, in order.
    fn propagators(&self) -> Vec<Box<dyn Propagator>> {
        match self.format.as_str() {
            "w3c" => vec![
                Box::new(TraceContextPropagator::new()),
                Box::new(BaggagePropagator::new()),
            ],
            "jaeger" => vec![Box::new(JaegerPropagator::new())],
            "b3" => vec![Box::new(B3Propagator::new(B3Encoding::SingleHeader))],
            "b3multi" => vec![Box::new(B3Propagator::new(B3Encoding::MultipleHeaders))],
            other => panic!("line {}: unknown format {other:?}", self.line),
        }
    }

    /// Whether baggage keys compare without case: Jaeger carries each key in a header *name*,
    /// which HTTP treats case-insensitively and HTTP/2 sends lower-cased, so `uberctx-userId`
    /// can only ever arrive as key `userid`.
    fn keys_ignore_case(&self) -> bool {
        self.format == "jaeger"
    }

    fn extract(&self, headers: &HeaderMap) -> Extracted {
        let mut extracted = Extracted::default();
        for propagator in self.propagators() {
            let result = propagator.extract(headers, &mut extracted);
            let absent_allowed = propagator.name() == "baggage" && self.baggage.is_empty();
            match result {
                Ok(Presence::Found) => {}
                Ok(Presence::Absent) if absent_allowed => {}
                other => panic!(
                    "line {} ({}): {} extraction gave {other:?} for {headers:?}",
                    self.line,
                    self.producer,
                    propagator.name()
                ),
            }
        }
        extracted
    }

    fn assert_extracted(&self, extracted: &Extracted, stage: &str) {
        let context = format!("line {} ({}), {stage}", self.line, self.producer);
        let parent = extracted
            .parent
            .as_ref()
            .unwrap_or_else(|| panic!("{context}: no parent"));
        assert_eq!(parent.trace_id, self.expected.trace_id, "{context}");
        assert_eq!(parent.span_id, self.expected.span_id, "{context}");
        assert_eq!(
            parent.flags.is_sampled(),
            self.expected.flags.is_sampled(),
            "{context}"
        );
        assert_eq!(
            parent.flags.is_debug(),
            self.expected.flags.is_debug(),
            "{context}"
        );
        assert_eq!(parent.flags, self.expected.flags, "{context}");
        assert_eq!(parent.trace_state, self.expected.trace_state, "{context}");
        assert!(!parent.sampling_deferred, "{context}");
        assert_eq!(extracted.debug_id, None, "{context}");
        assert_eq!(extracted.sampling_only, None, "{context}");

        assert_eq!(
            extracted.baggage.len(),
            self.baggage.len(),
            "{context}: {:?}",
            extracted.baggage
        );
        for (key, value) in &self.baggage {
            let found = extracted.baggage.iter().find(|entry| {
                if self.keys_ignore_case() {
                    entry.key.eq_ignore_ascii_case(key)
                } else {
                    entry.key == *key
                }
            });
            assert_eq!(
                found.map(|entry| entry.value.as_str()),
                Some(value.as_str()),
                "{context}: baggage {key}"
            );
        }
    }

    /// Our own context carrying what the line encodes.
    fn span_context(&self) -> SpanContext {
        let mut baggage = Baggage::EMPTY;
        for (key, value) in &self.baggage {
            // Jaeger injection lower-cases a key such as `userId` (see `keys_ignore_case`).
            baggage = baggage
                .with_entry(key.clone(), value.clone())
                .unwrap_or_else(|e| panic!("line {}: baggage: {e}", self.line));
        }
        SpanContext::new(
            self.expected.trace_id,
            self.expected.span_id,
            self.expected.flags,
        )
        .with_trace_state(self.expected.trace_state.clone())
        .with_baggage(baggage)
    }

    fn inject(&self, context: &SpanContext) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for propagator in self.propagators() {
            propagator.inject(context, &mut headers);
        }
        headers
    }
}

fn corpus() -> Vec<Case> {
    let text =
        std::fs::read_to_string(CORPUS_PATH).unwrap_or_else(|e| panic!("{CORPUS_PATH}: {e}"));
    let cases: Vec<Case> = text
        .lines()
        .enumerate()
        .filter(|(_, text)| !text.trim().is_empty())
        .map(|(index, text)| Case::parse(index + 1, text))
        .collect();
    assert_eq!(cases.len(), CORPUS_LINES, "corpus lines read");
    cases
}

#[test]
fn real_client_headers_are_read_as_their_clients_meant() {
    for case in corpus() {
        let extracted = case.extract(&case.headers);
        case.assert_extracted(&extracted, "as sent by the client");
    }
}

#[test]
fn real_client_contexts_survive_our_inject_and_extract() {
    for case in corpus() {
        let context = case.span_context();
        let headers = case.inject(&context);
        let extracted = case.extract(&headers);
        case.assert_extracted(&extracted, "after our inject");
    }
}

#[test]
fn corpus_covers_every_format_and_the_lenient_jaeger_forms() {
    let cases = corpus();
    for format in ["w3c", "jaeger", "b3", "b3multi"] {
        assert!(
            cases.iter().any(|case| case.format == format),
            "no {format} line"
        );
    }
    let jaeger_values: Vec<&str> = cases
        .iter()
        .filter_map(|case| case.headers.get("uber-trace-id"))
        .filter_map(|value| value.to_str().ok())
        .collect();
    // Ids without leading zeros, parent `0`, one-digit flags and debug without sampled.
    assert!(
        jaeger_values
            .iter()
            .any(|v| v.contains(":f067aa0ba902b7:0:1"))
    );
    assert!(jaeger_values.iter().any(|v| v.ends_with(":0:2")));
    // Both the encoded and the raw `uberctx-*` forms are there.
    let user_ids: Vec<&str> = cases
        .iter()
        .filter_map(|case| case.headers.get("uberctx-user-id"))
        .filter_map(|value| value.to_str().ok())
        .collect();
    assert!(user_ids.contains(&"carol%2F42") && user_ids.contains(&"carol/42"));
}

#[test]
fn jaeger_parent_span_ids_from_real_clients_are_kept() {
    let case = corpus()
        .into_iter()
        .find(|case| {
            case.headers
                .get("uber-trace-id")
                .is_some_and(|v| v.as_bytes().ends_with(b":1234:1"))
        })
        .expect("a jaeger line with a parent span id");
    let extracted = case.extract(&case.headers);
    assert_eq!(
        extracted
            .parent
            .and_then(|p| p.parent_span_id)
            .map(|id| id.to_u64()),
        Some(0x1234)
    );
}
