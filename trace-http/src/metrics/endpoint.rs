use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use tower_service::Service;

/// OpenMetrics text, which carries exemplars.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Prometheus' classic text format, for scrapers that do not ask for OpenMetrics.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A `/metrics` endpoint serving `registry`: OpenMetrics text (with exemplars) when the
/// scraper's `Accept` asks for `application/openmetrics-text` — Prometheus does — and the
/// Prometheus text format otherwise.
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
        let openmetrics = request
            .headers()
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(|value| value.contains("application/openmetrics-text"));
        let mut text = String::new();
        let response = match encode(&mut text, &self.registry) {
            Ok(()) if openmetrics => exposition(text, OPENMETRICS_CONTENT_TYPE),
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

/// Rewrites OpenMetrics text as Prometheus text format 0.0.4: no exemplars, no `# UNIT` or
/// `# EOF` lines, counters declared under their `_total` sample name, `unknown` as `untyped`.
pub(crate) fn to_prometheus_text(openmetrics: &str) -> String {
    let lines: Vec<&str> = openmetrics.lines().collect();
    let counters: Vec<&str> = lines
        .iter()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in lines {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
        {
            let keyword = &line[..7];
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            let name_out = if counters.contains(&name) && !name.ends_with("_total") {
                format!("{name}_total")
            } else {
                name.to_owned()
            };
            let tail = if keyword == "# TYPE " && tail == "unknown" {
                "untyped"
            } else {
                tail
            };
            out.push_str(keyword);
            out.push_str(&name_out);
            if !tail.is_empty() {
                out.push(' ');
                out.push_str(tail);
            }
            out.push('\n');
            continue;
        }
        // A sample line: drop a trailing exemplar (` # {labels} value [timestamp]`).
        let sample = line.split_once(" # {").map_or(line, |(sample, _)| sample);
        out.push_str(sample);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
