use std::borrow::Cow;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use rustc_hash::FxHashMap;
use tower_service::Service;

/// OpenMetrics text 1.0.0, which carries exemplars.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Prometheus' classic text format 0.0.4, for scrapers that do not prefer OpenMetrics.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A `/metrics` endpoint serving `registry` in the format the scraper's `Accept` prefers.
///
/// The `Accept` fields are read as media ranges with q-values (RFC 9110 §12.5.1; types and
/// parameter names case-insensitive, malformed ranges and ranges with an invalid `q` ignored).
/// Each format takes the q of the most specific range that matches it:
///
/// - OpenMetrics ([`OPENMETRICS_CONTENT_TYPE`]): `application/openmetrics-text` with
///   `version=1.0.0` or no version, else `application/*`, else `*/*`;
/// - Prometheus text ([`PROMETHEUS_CONTENT_TYPE`]): `text/plain` with `version=0.0.4` or no
///   version, else `text/*`, else `*/*`.
///
/// The format with the higher q is served; at equal q, one the scraper names beats one it only
/// accepts through a wildcard, and OpenMetrics (with its exemplars) wins when both are named.
/// Prometheus text is served when neither is acceptable (no `Accept`, `q=0`, other types) and
/// when both are reached only through wildcards at the same q (`*/*`, as curl sends).
/// Prometheus' default `Accept` names OpenMetrics first and gets it.
///
/// The Prometheus text drops what format 0.0.4 lacks: exemplars, `# UNIT` and `# EOF` lines; a
/// counter is declared under its `_total` sample name, an `info` metric as a gauge under its
/// `_info` sample name, any other type 0.0.4 lacks as `untyped`.
///
/// The registry is the application's: the metrics layers, the exporters' health metrics and any
/// metric of the application's own registered into it are all served.
pub fn metrics_service(registry: Arc<Registry>) -> MetricsEndpoint {
    MetricsEndpoint { registry }
}

/// The service [`metrics_service`] returns.
#[derive(Debug, Clone)]
pub struct MetricsEndpoint {
    registry: Arc<Registry>,
}

impl<B> Service<Request<B>> for MetricsEndpoint {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let accept = request.headers().get_all(header::ACCEPT);
        let format = negotiate(accept.iter().map(HeaderValue::as_bytes));
        let mut text = String::new();
        let response = match encode(&mut text, &self.registry) {
            Ok(()) if format == Format::OpenMetrics => exposition(text, OPENMETRICS_CONTENT_TYPE),
            Ok(()) => exposition(to_prometheus_text(&text), PROMETHEUS_CONTENT_TYPE),
            Err(_) => {
                let mut response = Response::new(Full::new(Bytes::from_static(
                    b"failed to encode the metrics\n",
                )));
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                response
            }
        };
        ready(Ok(response))
    }
}

fn exposition(text: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

// ---------------------------------------------------------------------------------------------
// Content negotiation
// ---------------------------------------------------------------------------------------------

/// The exposition formats the endpoint serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    OpenMetrics,
    PrometheusText,
}

impl Format {
    /// `(type, subtype, version)` as an `Accept` media range names the format.
    fn media_type(self) -> (&'static [u8], &'static [u8], &'static [u8]) {
        match self {
            Format::OpenMetrics => (b"application", b"openmetrics-text", b"1.0.0"),
            Format::PrometheusText => (b"text", b"plain", b"0.0.4"),
        }
    }
}

/// How a range matches a format, least specific first: [`Specificity::Named`] and
/// [`Specificity::Versioned`] name the format itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Specificity {
    AnyType,
    AnySubtype,
    Named,
    Versioned,
}

/// A media range of an `Accept` field: what the endpoint reads of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MediaRange<'a> {
    kind: &'a [u8],
    subtype: &'a [u8],
    version: Option<&'a [u8]>,
    /// The weight in thousandths, 0..=1000.
    q: u16,
}

impl MediaRange<'_> {
    /// `None` when the range does not match `format`, e.g. names another version of it.
    fn specificity(&self, format: Format) -> Option<Specificity> {
        let (kind, subtype, version) = format.media_type();
        if self.kind == b"*" {
            return (self.subtype == b"*").then_some(Specificity::AnyType);
        }
        if !self.kind.eq_ignore_ascii_case(kind) {
            return None;
        }
        if self.subtype == b"*" {
            return Some(Specificity::AnySubtype);
        }
        if !self.subtype.eq_ignore_ascii_case(subtype) {
            return None;
        }
        match self.version {
            None => Some(Specificity::Named),
            Some(asked) if asked == version => Some(Specificity::Versioned),
            Some(_) => None,
        }
    }
}

/// The format to serve for these `Accept` field values (see [`metrics_service`]).
fn negotiate<'a>(accept: impl IntoIterator<Item = &'a [u8]>) -> Format {
    let mut openmetrics: Option<(Specificity, u16)> = None;
    let mut text: Option<(Specificity, u16)> = None;
    for range in accept
        .into_iter()
        .flat_map(|field| split_unquoted(field, b','))
        .filter_map(media_range)
    {
        // RFC 9110: the most specific matching range sets the weight; among equally specific
        // ones (which the RFC leaves open) the highest q counts.
        for (format, best) in [
            (Format::OpenMetrics, &mut openmetrics),
            (Format::PrometheusText, &mut text),
        ] {
            if let Some(specificity) = range.specificity(format) {
                *best = (*best).max(Some((specificity, range.q)));
            }
        }
    }
    // Ranked by q, then by being named rather than reached through a wildcard; q=0 refuses.
    let rank = |best: Option<(Specificity, u16)>| match best {
        Some((specificity, q)) if q > 0 => (q, specificity >= Specificity::Named),
        _ => (0, false),
    };
    let (openmetrics, text) = (rank(openmetrics), rank(text));
    let (q, named) = openmetrics;
    // Both named at the same q: exemplars decide. Both reached only through wildcards: the
    // Prometheus text, which is what generic clients (curl, browsers) read best.
    if q > 0 && (openmetrics > text || (openmetrics == text && named)) {
        Format::OpenMetrics
    } else {
        Format::PrometheusText
    }
}

/// Parses one element of an `Accept` list; `None` for an empty or malformed one.
fn media_range(element: &[u8]) -> Option<MediaRange<'_>> {
    let mut parts = split_unquoted(element, b';');
    let media_type = parts.next()?.trim_ascii();
    let slash = media_type.iter().position(|&byte| byte == b'/')?;
    let (kind, subtype) = (&media_type[..slash], &media_type[slash + 1..]);
    let is_token = |part: &[u8]| !part.is_empty() && part.iter().all(|&b| is_token_byte(b));
    if !is_token(kind) || !is_token(subtype) {
        return None;
    }
    let mut range = MediaRange {
        kind,
        subtype,
        version: None,
        q: 1000,
    };
    for parameter in parts {
        let parameter = parameter.trim_ascii();
        // RFC 9110 allows empty parameters (`text/plain;;q=1`).
        if parameter.is_empty() {
            continue;
        }
        let equals = parameter.iter().position(|&byte| byte == b'=')?;
        let (name, value) = (&parameter[..equals], &parameter[equals + 1..]);
        if name.eq_ignore_ascii_case(b"q") {
            range.q = qvalue(value)?;
        } else if name.eq_ignore_ascii_case(b"version") {
            range.version = Some(unquote(value));
        }
    }
    Some(range)
}

/// RFC 9110's `qvalue` (`0`, `0.5`, `1.000`, ...) in thousandths; `None` if malformed.
fn qvalue(text: &[u8]) -> Option<u16> {
    let (whole, fraction) = match text.iter().position(|&byte| byte == b'.') {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &[][..]),
    };
    if fraction.len() > 3 || !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let thousandths = (0..3).fold(0, |sum, i| {
        sum * 10 + fraction.get(i).map_or(0, |digit| u16::from(digit - b'0'))
    });
    match whole {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// A parameter value without the quotes of a quoted-string. (Escapes are left in: no value the
/// endpoint compares against has any.)
fn unquote(value: &[u8]) -> &[u8] {
    value
        .strip_prefix(b"\"")
        .and_then(|inner| inner.strip_suffix(b"\""))
        .unwrap_or(value)
}

/// RFC 9110's `tchar`.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Splits at each `separator` outside quoted strings: a quoted parameter value may hold `,` or
/// `;`.
fn split_unquoted(bytes: &[u8], separator: u8) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(bytes);
    std::iter::from_fn(move || {
        let current = rest?;
        match find_unquoted(current, separator) {
            Some(at) => {
                rest = Some(&current[at + 1..]);
                Some(&current[..at])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// The first `target` outside double quotes, where a backslash within quotes escapes the next
/// byte: the rule of HTTP quoted-strings and of exposition label values alike.
fn find_unquoted(bytes: &[u8], target: u8) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (at, &byte) in bytes.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && byte == b'\\' {
            escaped = true;
        } else if byte == b'"' {
            quoted = !quoted;
        } else if byte == target && !quoted {
            return Some(at);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Prometheus text format
// ---------------------------------------------------------------------------------------------

/// Rewrites OpenMetrics text as Prometheus text format 0.0.4: no exemplars, no `# UNIT` or
/// `# EOF` lines, and every family declared under the name its samples carry, with a type
/// 0.0.4 has (see [`text_family`]).
pub(crate) fn to_prometheus_text(openmetrics: &str) -> String {
    // `# HELP` comes before `# TYPE`, and must be renamed the same way.
    let types: FxHashMap<&str, &str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.split_once(' '))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let (name, _) = text_family(name, types.get(name).copied().unwrap_or("unknown"));
            out.push_str("# HELP ");
            out.push_str(&name);
            if !help.is_empty() {
                out.push(' ');
                out.push_str(help);
            }
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (name, kind) = text_family(name, kind);
            out.push_str("# TYPE ");
            out.push_str(&name);
            out.push(' ');
            out.push_str(kind);
        } else {
            out.push_str(without_exemplar(line));
        }
        out.push('\n');
    }
    out
}

/// The text format's declaration of an OpenMetrics family: the name of its samples and a type
/// format 0.0.4 has.
///
/// prometheus-client 0.25 writes `counter` (samples `_total`), `gauge`, `histogram`, `info`
/// (samples `_info`, always 1: a gauge in Prometheus' own convention) and `unknown`; the other
/// OpenMetrics types (`stateset`, `gaugehistogram`, ...) would be `untyped` too, so that a
/// future encoder never yields a declaration the text parsers reject.
fn text_family<'a>(name: &'a str, openmetrics_type: &str) -> (Cow<'a, str>, &'static str) {
    match openmetrics_type {
        "counter" => (Cow::Owned(format!("{name}_total")), "counter"),
        "info" => (Cow::Owned(format!("{name}_info")), "gauge"),
        "gauge" => (Cow::Borrowed(name), "gauge"),
        "histogram" => (Cow::Borrowed(name), "histogram"),
        "summary" => (Cow::Borrowed(name), "summary"),
        _ => (Cow::Borrowed(name), "untyped"),
    }
}

/// A sample line without its exemplar (` # {labels} value [timestamp]`).
fn without_exemplar(line: &str) -> &str {
    // A label value may hold ` # {`: the exemplar can only start after the label set.
    let after_labels = match line.find(['{', ' ']) {
        Some(open) if line.as_bytes()[open] == b'{' => {
            find_unquoted(&line.as_bytes()[open..], b'}')
                .map_or(line.len(), |close| open + close + 1)
        }
        Some(space) => space,
        None => line.len(),
    };
    match line[after_labels..].find(" # ") {
        Some(at) => &line[..after_labels + at],
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::exemplar::CounterWithExemplar;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::info::Info;
    use proptest::prelude::*;

    use super::*;

    type Labels = Vec<(String, String)>;

    fn negotiate_one(accept: &str) -> Format {
        negotiate([accept.as_bytes()])
    }

    fn openmetrics_of(registry: &Registry) -> String {
        let mut text = String::new();
        encode(&mut text, registry).expect("the registry encodes");
        text
    }

    #[test]
    fn qvalues_follow_the_rfc_grammar() {
        for (text, q) in [
            ("0", Some(0)),
            ("0.", Some(0)),
            ("0.5", Some(500)),
            ("0.05", Some(50)),
            ("0.123", Some(123)),
            ("1", Some(1000)),
            ("1.000", Some(1000)),
            ("1.001", None),
            ("0.1234", None),
            ("2", None),
            ("-0", None),
            (".5", None),
            ("", None),
            ("0.5 ", None),
            ("1e0", None),
            ("\"0.5\"", None),
        ] {
            assert_eq!(qvalue(text.as_bytes()), q, "q={text}");
        }
    }

    #[test]
    fn the_highest_q_wins() {
        use Format::{OpenMetrics, PrometheusText};
        for (accept, format) in [
            // Prometheus 2's default, then 3's.
            (
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                 version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                OpenMetrics,
            ),
            (
                "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,\
                 application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;\
                 escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
                OpenMetrics,
            ),
            // `scrape_protocols: [PrometheusText0.0.4, OpenMetricsText1.0.0]`.
            (
                "text/plain;version=0.0.4;q=0.5,application/openmetrics-text;version=1.0.0;\
                 q=0.4,*/*;q=0.1",
                PrometheusText,
            ),
            ("application/openmetrics-text", OpenMetrics),
            ("application/openmetrics-text;q=0.001", OpenMetrics),
            (
                "text/plain;q=0.8, application/openmetrics-text;q=0.9",
                OpenMetrics,
            ),
            (
                "text/plain;q=0.9, application/openmetrics-text;q=0.8",
                PrometheusText,
            ),
            ("application/openmetrics-text;q=0.5, */*", PrometheusText),
            ("text/plain", PrometheusText),
            ("text/html, application/json", PrometheusText),
        ] {
            assert_eq!(negotiate_one(accept), format, "Accept: {accept}");
        }
    }

    #[test]
    fn q_zero_refuses_a_format() {
        use Format::{OpenMetrics, PrometheusText};
        for (accept, format) in [
            (
                "application/openmetrics-text;q=0, text/plain;version=0.0.4",
                PrometheusText,
            ),
            ("application/openmetrics-text;q=0.000, */*", PrometheusText),
            ("text/plain;q=0, */*", OpenMetrics),
            ("text/plain;q=0, application/*;q=0.1", OpenMetrics),
            // Nothing acceptable: the text format all the same.
            (
                "application/openmetrics-text;q=0, text/plain;q=0",
                PrometheusText,
            ),
            ("application/openmetrics-text;q=0", PrometheusText),
            // The most specific range sets the weight, whatever the others say.
            (
                "application/openmetrics-text;version=1.0.0;q=0, application/openmetrics-text",
                PrometheusText,
            ),
            (
                "application/*;q=0, application/openmetrics-text",
                OpenMetrics,
            ),
        ] {
            assert_eq!(negotiate_one(accept), format, "Accept: {accept}");
        }
    }

    #[test]
    fn wildcards_match_but_do_not_outrank_a_named_format() {
        use Format::{OpenMetrics, PrometheusText};
        for (accept, format) in [
            ("*/*", PrometheusText),
            ("text/*", PrometheusText),
            ("application/*", OpenMetrics),
            ("application/*;q=0.5, text/*;q=0.5", PrometheusText),
            ("application/*;q=0.6, text/*;q=0.5", OpenMetrics),
            ("application/openmetrics-text;q=0.5, */*;q=0.5", OpenMetrics),
            ("text/plain;q=0.5, */*;q=0.5", PrometheusText),
            // Only `*/*` is a wildcard type.
            ("*/openmetrics-text", PrometheusText),
        ] {
            assert_eq!(negotiate_one(accept), format, "Accept: {accept}");
        }
    }

    #[test]
    fn equal_q_for_both_named_formats_serves_openmetrics() {
        for accept in [
            "text/plain, application/openmetrics-text",
            "text/plain;version=0.0.4;q=0.7, application/openmetrics-text;q=0.7",
        ] {
            assert_eq!(
                negotiate_one(accept),
                Format::OpenMetrics,
                "Accept: {accept}"
            );
        }
    }

    #[test]
    fn types_and_parameter_names_are_case_insensitive() {
        for accept in [
            "Application/OpenMetrics-Text; version=1.0.0",
            "APPLICATION/OPENMETRICS-TEXT;VERSION=1.0.0;Q=1",
            "text/plain;Q=0.1, application/openmetrics-text;Q=0.2",
            "APPLICATION/*",
        ] {
            assert_eq!(
                negotiate_one(accept),
                Format::OpenMetrics,
                "Accept: {accept}"
            );
        }
    }

    #[test]
    fn only_the_served_versions_match() {
        use Format::{OpenMetrics, PrometheusText};
        for (accept, format) in [
            ("application/openmetrics-text;version=0.0.1", PrometheusText),
            (
                "application/openmetrics-text;version=\"1.0.0\"",
                OpenMetrics,
            ),
            (
                "application/openmetrics-text;version=1.0.0;charset=utf-8;escaping=underscores",
                OpenMetrics,
            ),
            (
                "application/openmetrics-text;version=0.0.1, text/plain;q=0.1",
                PrometheusText,
            ),
            (
                "text/plain;version=1.0.0, application/openmetrics-text;q=0.1",
                OpenMetrics,
            ),
            (
                "text/plain;version=\"0.0.4\";q=0.4, application/openmetrics-text;q=0.3",
                PrometheusText,
            ),
        ] {
            assert_eq!(negotiate_one(accept), format, "Accept: {accept}");
        }
    }

    #[test]
    fn parameters_are_split_outside_quoted_strings() {
        // A naive split at commas would see `text/plain;x="a` with q=1.
        let accept = "text/plain;x=\"a,b\";q=0.1, application/openmetrics-text;q=0.5";
        assert_eq!(negotiate_one(accept), Format::OpenMetrics);
        let accept = "text/plain;x=\"a;q=0\";q=0.9, application/openmetrics-text;q=0.5";
        assert_eq!(negotiate_one(accept), Format::PrometheusText);
        // Empty parameters and list elements are allowed.
        let accept = ",application/openmetrics-text;;q=1;, ,";
        assert_eq!(negotiate_one(accept), Format::OpenMetrics);
    }

    #[test]
    fn every_accept_field_counts() {
        let fields: [&[u8]; 2] = [b"text/plain;q=0.5", b"application/openmetrics-text"];
        assert_eq!(negotiate(fields), Format::OpenMetrics);
        assert_eq!(negotiate([]), Format::PrometheusText);
    }

    #[test]
    fn malformed_ranges_are_ignored() {
        for accept in [
            "application/openmetrics-text;q=2",
            "application/openmetrics-text;q=0.1234",
            "application/openmetrics-text;q=high",
            "application/openmetrics-text;q",
            "application/openmetrics-text;q=",
            "application/openmetrics-text;version",
            "application/openmetrics-text\";q=1",
            "application/openmetrics text",
            "application/",
            "/openmetrics-text",
            "application",
        ] {
            let with_text = format!("{accept}, text/plain;q=0.1");
            assert_eq!(
                negotiate_one(accept),
                Format::PrometheusText,
                "Accept: {accept}"
            );
            assert_eq!(
                negotiate_one(&with_text),
                Format::PrometheusText,
                "Accept: {with_text}"
            );
        }
        let junk: [&[u8]; 8] = [
            b"\xff\xfe/\x00;;;q=",
            b"\"",
            b"\"application/openmetrics-text",
            b"a/b;q=\"\\",
            b"\\",
            b";,;,=/=",
            b"application/openmetrics-text;q=0.\xff",
            b"application/openmetrics\xc3\xa9-text",
        ];
        for field in junk {
            assert_eq!(negotiate([field]), Format::PrometheusText, "{field:?}");
        }
    }

    proptest! {
        #[test]
        fn any_accept_bytes_are_negotiated(
            fields in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..48),
                0..3,
            ),
        ) {
            negotiate(fields.iter().map(Vec::as_slice));
        }

        #[test]
        fn any_accept_made_of_media_range_pieces_is_negotiated(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec![
                    "application", "openmetrics-text", "text", "plain", "*", "/", ";", ",", "=",
                    "q", "0", "1", ".", "5", "version", "1.0.0", "0.0.4", "\"", "\\", " ",
                ]),
                0..32,
            ),
        ) {
            negotiate([pieces.concat().as_bytes()]);
        }
    }

    #[test]
    fn openmetrics_becomes_prometheus_text() {
        let openmetrics = "# HELP requests Requests.\n# TYPE requests counter\nrequests_total 3\n\
# HELP latency_seconds Latency.\n# TYPE latency_seconds histogram\n# UNIT latency_seconds seconds\n\
latency_seconds_bucket{le=\"0.1\"} 1 # {trace_id=\"abc\"} 0.05\nlatency_seconds_count 1\n# EOF\n";
        let text = to_prometheus_text(openmetrics);
        assert_eq!(
            text,
            "# HELP requests_total Requests.\n# TYPE requests_total counter\nrequests_total 3\n\
# HELP latency_seconds Latency.\n# TYPE latency_seconds histogram\n\
latency_seconds_bucket{le=\"0.1\"} 1\nlatency_seconds_count 1\n"
        );
    }

    #[test]
    fn an_info_metric_becomes_a_gauge_named_like_its_sample() {
        let mut registry = Registry::default();
        registry.register(
            "build",
            "Build information",
            Info::new(vec![("version", "1.2.3")]),
        );
        let openmetrics = openmetrics_of(&registry);
        assert!(openmetrics.contains("# TYPE build info\n"), "{openmetrics}");
        assert_eq!(
            to_prometheus_text(&openmetrics),
            "# HELP build_info Build information.\n# TYPE build_info gauge\n\
build_info{version=\"1.2.3\"} 1\n"
        );
    }

    #[test]
    fn types_the_text_format_lacks_become_untyped() {
        let openmetrics = "# HELP a A.\n# TYPE a unknown\na 1\n# TYPE s stateset\ns{s=\"x\"} 1\n\
# TYPE g gaugehistogram\ng_bucket{le=\"+Inf\"} 1\ng_gcount 1\n# TYPE b gauge\nb 2\n# EOF\n";
        assert_eq!(
            to_prometheus_text(openmetrics),
            "# HELP a A.\n# TYPE a untyped\na 1\n# TYPE s untyped\ns{s=\"x\"} 1\n\
# TYPE g untyped\ng_bucket{le=\"+Inf\"} 1\ng_gcount 1\n# TYPE b gauge\nb 2\n"
        );
    }

    #[test]
    fn a_counter_named_with_total_is_declared_under_its_sample_name() {
        let mut registry = Registry::default();
        let counter = Counter::<u64>::default();
        counter.inc();
        registry.register("jobs_total", "Jobs", counter);
        let text = to_prometheus_text(&openmetrics_of(&registry));
        assert_eq!(
            text,
            "# HELP jobs_total_total Jobs.\n# TYPE jobs_total_total counter\njobs_total_total 1\n"
        );
    }

    #[test]
    fn exemplars_are_found_after_the_label_set() {
        for (line, sample) in [
            ("a 1", "a 1"),
            ("a 1 # {t=\"x\"} 2", "a 1"),
            (
                "a 1 1700000000 # {t=\"x\"} 2 1700000000.5",
                "a 1 1700000000",
            ),
            ("a{b=\"c\"} 1 # {t=\"x\"} 2", "a{b=\"c\"} 1"),
            ("a{b=\" # {c}\"} 1", "a{b=\" # {c}\"} 1"),
            ("a{b=\" # {c}\"} 1 # {t=\" # {\"} 2", "a{b=\" # {c}\"} 1"),
            ("a{b=\"\\\" # {\"} 1 # {t=\"x\"} 2", "a{b=\"\\\" # {\"} 1"),
            (
                "a{b=\"\\\\\",c=\"} # {\"} 1 # {} 2",
                "a{b=\"\\\\\",c=\"} # {\"} 1",
            ),
            // Malformed lines pass through.
            ("a{b=\"unterminated # {", "a{b=\"unterminated # {"),
            ("", ""),
        ] {
            assert_eq!(without_exemplar(line), sample, "{line}");
        }
    }

    /// A counter family with one series labelled `name=value`, once with an exemplar whose label
    /// is `exemplar`, once without.
    fn counter_lines(value: &str, exemplar: &str) -> (String, String) {
        let labels: Labels = vec![("name".into(), value.into())];
        let mut with = Registry::default();
        let family = Family::<Labels, CounterWithExemplar<Labels>>::default();
        with.register("jobs", "Jobs", family.clone());
        let timestamp = UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        family.get_or_create(&labels).inc_by(
            1,
            Some(vec![("trace_id".into(), exemplar.into())]),
            Some(timestamp),
        );
        let mut without = Registry::default();
        let family = Family::<Labels, Counter>::default();
        without.register("jobs", "Jobs", family.clone());
        family.get_or_create(&labels).inc();
        (openmetrics_of(&with), openmetrics_of(&without))
    }

    fn sample_line(exposition: &str) -> &str {
        exposition
            .lines()
            .find(|line| line.starts_with("jobs_total"))
            .expect("a jobs_total sample")
    }

    #[test]
    fn a_label_value_holding_an_exemplar_marker_is_kept_whole() {
        let (with, without) = counter_lines("nightly # {backup} \"q\" \\", "x # {y}");
        assert!(sample_line(&with).contains("} 1 # {trace_id="), "{with}");
        let text = to_prometheus_text(&with);
        assert_eq!(
            sample_line(&text),
            "jobs_total{name=\"nightly # {backup} \\\"q\\\" \\\\\"} 1"
        );
        assert_eq!(sample_line(&text), sample_line(&without));
    }

    proptest! {
        #[test]
        fn any_label_value_survives_the_text_format(
            value in any::<String>(),
            exemplar in any::<String>(),
        ) {
            let (with, without) = counter_lines(&value, &exemplar);
            let text = to_prometheus_text(&with);
            prop_assert_eq!(sample_line(&text), sample_line(&without));
            prop_assert_eq!(to_prometheus_text(&without), text);
        }
    }
}
