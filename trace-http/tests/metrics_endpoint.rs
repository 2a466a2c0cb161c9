//! The `/metrics` endpoint: OpenMetrics (with exemplars and `# EOF`) when the scraper's `Accept`
//! prefers it, Prometheus text format 0.0.4 otherwise; metric name prefix and constant labels;
//! and the application's own metrics registered into the same registry, info metrics and label
//! values holding the exemplar marker among them.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::routing::get;
use http::{Method, StatusCode};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use trace_http::TraceLayer;
use trace_http::metrics::{
    MetricsBuilder, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE, metrics_service,
};

use support::{PROMETHEUS_ACCEPT, Reply, Sample, parse_exposition, sample_value, samples_of};

const OPENMETRICS_ACCEPT: &str = "application/openmetrics-text; version=1.0.0";

/// The application's own metrics, standing in for the exporters' health metrics.
struct AppMetrics {
    exported: Counter,
    queue: Gauge<u64, AtomicU64>,
}

/// An app traced (AlwaysOn) and measured by a layer of `builder`, with the application's own
/// metrics in the same registry, after one request to `/users/1` and one to `/fail`.
async fn serve_app(builder: MetricsBuilder) -> (SocketAddr, AppMetrics) {
    let mut registry = Registry::default();
    let metrics = builder.server(&mut registry);
    let app_metrics = AppMetrics {
        exported: Counter::default(),
        queue: Gauge::default(),
    };
    registry.register(
        "exporter_spans_exported",
        "Spans the exporter sent",
        app_metrics.exported.clone(),
    );
    registry.register(
        "exporter_queue_length",
        "Spans waiting in the exporter's queue",
        app_metrics.queue.clone(),
    );
    let collector = support::collector();
    let app = Router::new()
        .route("/users/{id}", get(|| async { "alice" }))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .layer(metrics)
        .layer(TraceLayer::new(collector.clone()))
        .route_service("/metrics", metrics_service(Arc::new(registry)));
    let addr = support::serve(app).await;
    assert_eq!(support::get(addr, "/users/1", &[]).await.body, "alice");
    assert_eq!(support::get(addr, "/fail", &[]).await.status, 500);
    support::wait_for_spans(&collector, 2).await;
    // Both requests recorded (the duration ends on the server task, just after the body).
    support::scrape_until(addr, "both requests recorded", |s| {
        samples_of(s, "http_server_request_duration_seconds_count", &[])
            .iter()
            .chain(samples_of(s, "shop_http_server_request_duration_seconds_count", &[]).iter())
            .map(|s| s.value)
            .sum::<f64>()
            == 2.0
    })
    .await;
    (addr, app_metrics)
}

fn content_type(reply: &Reply) -> &str {
    reply.header("content-type").unwrap()
}

/// The `# TYPE` lines: metric family name → type.
fn declared_types(text: &str) -> BTreeMap<String, String> {
    let mut types = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            let previous = types.insert(name.to_owned(), kind.to_owned());
            assert!(previous.is_none(), "{name} declared twice in:\n{text}");
        }
    }
    types
}

/// The samples without their exemplars, in order.
fn without_exemplars(samples: &[Sample]) -> Vec<Sample> {
    samples
        .iter()
        .cloned()
        .map(|mut s| {
            s.exemplar = None;
            s
        })
        .collect()
}

#[tokio::test]
async fn openmetrics_is_served_with_exemplars_when_the_scraper_asks_for_it() {
    let (addr, _) = serve_app(MetricsBuilder::new()).await;
    for accept in [OPENMETRICS_ACCEPT, PROMETHEUS_ACCEPT] {
        let reply = support::scrape(addr, Some(accept)).await;
        assert_eq!(
            content_type(&reply),
            OPENMETRICS_CONTENT_TYPE,
            "Accept: {accept}"
        );
        assert_eq!(
            content_type(&reply),
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        let text = &reply.body;
        assert!(text.ends_with("\n# EOF\n"), "Accept: {accept}:\n{text}");
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
        let samples = parse_exposition(text);
        let exemplars = samples.iter().filter(|s| s.exemplar.is_some()).count();
        assert_eq!(exemplars, 2, "one per traced request:\n{text}");
        let types = declared_types(text);
        assert_eq!(
            types
                .get("http_server_request_duration_seconds")
                .map(String::as_str),
            Some("histogram")
        );
        // OpenMetrics declares a counter by its family name; its sample has `_total`.
        assert_eq!(
            types
                .get("tracewire_http_server_series_overflow")
                .map(String::as_str),
            Some("counter")
        );
        assert!(text.contains("\ntracewire_http_server_series_overflow_total 0\n"));
        assert!(text.contains("# UNIT http_server_request_duration_seconds seconds\n"));
    }
}

#[tokio::test]
async fn prometheus_text_is_served_otherwise_without_exemplars_or_eof() {
    let (addr, _) = serve_app(MetricsBuilder::new()).await;
    let openmetrics = support::scrape(addr, Some(OPENMETRICS_ACCEPT)).await;
    let expected = without_exemplars(&parse_exposition(&openmetrics.body));
    for accept in [None, Some("text/plain"), Some("*/*")] {
        let reply = support::scrape(addr, accept).await;
        assert_eq!(
            content_type(&reply),
            PROMETHEUS_CONTENT_TYPE,
            "Accept: {accept:?}"
        );
        assert_eq!(
            content_type(&reply),
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let text = &reply.body;
        assert!(!text.contains("# EOF"), "{text}");
        assert!(
            !text.contains(" # {"),
            "no exemplar in the text format:\n{text}"
        );
        assert!(!text.contains("# UNIT"), "{text}");
        assert!(!text.contains("trace_id"), "{text}");
        assert!(text.ends_with('\n'), "{text}");
        // The same samples as the OpenMetrics exposition, less the exemplars.
        assert_eq!(parse_exposition(text), expected, "Accept: {accept:?}");
        let types = declared_types(text);
        // Counters are declared under their `_total` sample name.
        assert_eq!(
            types
                .get("tracewire_http_server_series_overflow_total")
                .map(String::as_str),
            Some("counter"),
            "{text}"
        );
        assert!(
            !types.contains_key("tracewire_http_server_series_overflow"),
            "{text}"
        );
        assert!(
            text.contains("# HELP tracewire_http_server_series_overflow_total "),
            "{text}"
        );
        for (name, kind) in &types {
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter {name} in:\n{text}");
            }
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind.as_str()),
                "{name} has type {kind}"
            );
            // Every declared family has its samples right after (the text format's rule).
            assert!(
                text.lines()
                    .any(|l| l.starts_with(name.as_str()) && !l.starts_with('#')),
                "{name} has no sample"
            );
        }
        assert_eq!(
            types
                .get("http_server_request_duration_seconds")
                .map(String::as_str),
            Some("histogram")
        );
        let samples = parse_exposition(text);
        let fail = [("http_route", "/fail"), ("error_type", "500")];
        assert_eq!(
            sample_value(
                &samples,
                "http_server_request_duration_seconds_count",
                &fail
            ),
            Some(1.0)
        );
    }
}

#[tokio::test]
async fn the_prefix_and_constant_labels_appear_on_every_series_of_the_layer() {
    let builder = MetricsBuilder::new()
        .prefix("shop")
        .constant_label("service", "checkout");
    let (addr, _) = serve_app(builder).await;
    for accept in [Some(OPENMETRICS_ACCEPT), None] {
        let reply = support::scrape(addr, accept).await;
        let text = &reply.body;
        let samples = parse_exposition(text);
        let layer_samples: Vec<&Sample> = samples
            .iter()
            .filter(|s| !s.name.starts_with("exporter_"))
            // (Where the overflow counter lives is left open: see its own tests.)
            .filter(|s| !s.name.contains("_series_overflow"))
            .collect();
        assert!(!layer_samples.is_empty());
        for sample in &layer_samples {
            assert!(sample.name.starts_with("shop_"), "unprefixed {sample:?}");
            assert_eq!(sample.label("service"), Some("checkout"), "{sample:?}");
        }
        let ok = [
            ("service", "checkout"),
            ("http_request_method", "GET"),
            ("http_route", "/users/{id}"),
            ("http_response_status_code", "200"),
        ];
        assert_eq!(
            sample_value(
                &samples,
                "shop_http_server_request_duration_seconds_count",
                &ok
            ),
            Some(1.0),
            "{text}"
        );
        assert!(
            text.contains("# TYPE shop_http_server_request_duration_seconds histogram\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE shop_http_server_active_requests gauge\n"),
            "{text}"
        );
        // The application's own metrics, registered at the top, are untouched.
        for sample in samples.iter().filter(|s| s.name.starts_with("exporter_")) {
            assert_eq!(sample.label("service"), None, "{sample:?}");
        }
        if accept.is_some() {
            let exemplars = layer_samples
                .iter()
                .filter(|s| s.exemplar.is_some())
                .count();
            assert_eq!(exemplars, 2, "{text}");
        }
    }
}

#[tokio::test]
async fn metrics_the_application_registers_are_served_too() {
    let (addr, app_metrics) = serve_app(MetricsBuilder::new()).await;
    app_metrics.exported.inc_by(7);
    app_metrics.queue.set(42);

    let reply = support::scrape(addr, Some(OPENMETRICS_ACCEPT)).await;
    let text = &reply.body;
    assert!(
        text.contains("# HELP exporter_spans_exported Spans the exporter sent.\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE exporter_spans_exported counter\n"),
        "{text}"
    );
    assert!(
        text.contains("\nexporter_spans_exported_total 7\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE exporter_queue_length gauge\n"),
        "{text}"
    );
    assert!(text.contains("\nexporter_queue_length 42\n"), "{text}");
    let samples = parse_exposition(text);
    assert!(
        sample_value(
            &samples,
            "http_server_request_duration_seconds_count",
            &[("http_route", "/users/{id}")]
        ) == Some(1.0)
    );

    let reply = support::scrape(addr, None).await;
    let text = &reply.body;
    assert!(
        text.contains("# TYPE exporter_spans_exported_total counter\n"),
        "{text}"
    );
    assert!(
        text.contains("\nexporter_spans_exported_total 7\n"),
        "{text}"
    );
    assert!(text.contains("\nexporter_queue_length 42\n"), "{text}");

    // Later changes show in the next scrape.
    app_metrics.exported.inc();
    let reply = support::scrape(addr, None).await;
    assert!(reply.body.contains("\nexporter_spans_exported_total 8\n"));
}

#[tokio::test]
async fn a_registry_with_server_and_client_layers_declares_each_family_once() {
    let mut registry = Registry::default();
    let server = MetricsBuilder::new().server(&mut registry);
    let _client = MetricsBuilder::new().client(&mut registry);
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(server)
        .route_service("/metrics", metrics_service(Arc::new(registry)));
    let addr = support::serve(app).await;
    support::send(
        &support::client(),
        support::request(Method::GET, addr, "/", &[]),
    )
    .await;
    for accept in [Some(OPENMETRICS_ACCEPT), None] {
        let reply = support::scrape(addr, accept).await;
        // Panics on a family declared twice: invalid in both formats.
        declared_types(&reply.body);
    }
}

/// The one sample named `name`; panics if there is not exactly one.
fn only_sample<'a>(samples: &'a [Sample], name: &str) -> &'a Sample {
    match samples_of(samples, name, &[]).as_slice() {
        [one] => one,
        found => panic!("one {name} sample expected, found {found:#?}"),
    }
}

/// `/metrics` of a registry holding the server layer's metrics (one request recorded).
async fn serve_layer_metrics() -> SocketAddr {
    support::serve_layer_metrics_with(|_| {}).await
}

#[tokio::test]
async fn the_format_follows_the_q_values_of_accept() {
    let addr = serve_layer_metrics().await;
    for (accept, expected) in [
        (Some(OPENMETRICS_ACCEPT), OPENMETRICS_CONTENT_TYPE),
        (Some(PROMETHEUS_ACCEPT), OPENMETRICS_CONTENT_TYPE),
        // Prometheus with `scrape_protocols: [PrometheusText0.0.4, OpenMetricsText1.0.0]`.
        (
            Some(
                "text/plain;version=0.0.4;q=0.5,application/openmetrics-text;version=1.0.0;q=0.4,\
                 */*;q=0.1",
            ),
            PROMETHEUS_CONTENT_TYPE,
        ),
        (
            Some("application/openmetrics-text;q=0, text/plain;version=0.0.4"),
            PROMETHEUS_CONTENT_TYPE,
        ),
        (
            Some("application/openmetrics-text;q=0, */*"),
            PROMETHEUS_CONTENT_TYPE,
        ),
        (Some("text/plain;q=0, */*"), OPENMETRICS_CONTENT_TYPE),
        (
            Some("Application/OpenMetrics-Text; Version=1.0.0"),
            OPENMETRICS_CONTENT_TYPE,
        ),
        (
            Some("text/plain, application/openmetrics-text"),
            OPENMETRICS_CONTENT_TYPE,
        ),
        (
            Some("application/openmetrics-text;version=0.0.1"),
            PROMETHEUS_CONTENT_TYPE,
        ),
        (
            Some("application/openmetrics-text;q=1.5, text/plain;q=0.1"),
            PROMETHEUS_CONTENT_TYPE,
        ),
        // A browser.
        (
            Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            PROMETHEUS_CONTENT_TYPE,
        ),
        (None, PROMETHEUS_CONTENT_TYPE),
    ] {
        let reply = support::scrape(addr, accept).await;
        assert_eq!(content_type(&reply), expected, "Accept: {accept:?}");
        let openmetrics = expected == OPENMETRICS_CONTENT_TYPE;
        assert_eq!(
            reply.body.ends_with("\n# EOF\n"),
            openmetrics,
            "Accept: {accept:?}:\n{}",
            reply.body
        );
    }
}

#[tokio::test]
async fn every_accept_field_counts_and_junk_bytes_are_ignored() {
    let addr = serve_layer_metrics().await;
    let cases: [(&[&[u8]], &str); 5] = [
        (
            &[b"text/plain;q=0.5", b"application/openmetrics-text;q=0.6"],
            OPENMETRICS_CONTENT_TYPE,
        ),
        (
            &[b"application/openmetrics-text;q=0.6", b"text/plain;q=0.7"],
            PROMETHEUS_CONTENT_TYPE,
        ),
        // Bytes that are not UTF-8 spoil their own range only.
        (
            &[b"text/x-\xe9\xff;q=1, application/openmetrics-text;q=0.2"],
            OPENMETRICS_CONTENT_TYPE,
        ),
        (
            &[b"application/openmetrics-text;q=0.\xe9, text/plain;q=0.1"],
            PROMETHEUS_CONTENT_TYPE,
        ),
        (
            &[
                b"\"application/openmetrics-text",
                b";;,,=\\\"",
                b"\xff/\xfe;q=",
            ],
            PROMETHEUS_CONTENT_TYPE,
        ),
    ];
    for (fields, expected) in cases {
        let headers = fields
            .iter()
            .map(|field| support::header("accept", field))
            .collect();
        let request = support::request_raw(Method::GET, addr, "/metrics", headers);
        let reply = support::send(&support::client(), request).await;
        assert_eq!(reply.status, StatusCode::OK, "Accept: {fields:?}");
        assert_eq!(content_type(&reply), expected, "Accept: {fields:?}");
    }
}

/// A label value holding the marker that starts an exemplar, and a quote and a backslash.
const JOB: &str = "nightly # {backup} \"full\" \\";
/// The job's exemplar label value, holding the marker too.
const JOB_TRACE: &str = "abc # {def}";

/// `/metrics` of a registry holding the server layer's metrics (one request recorded), a
/// build-info metric and a counter with a label value and an exemplar holding ` # {`.
async fn serve_build_info_and_jobs() -> SocketAddr {
    support::serve_layer_metrics_with(|registry| {
        support::register_info_and_jobs(registry, JOB, JOB_TRACE);
    })
    .await
}

#[tokio::test]
async fn an_info_metric_is_a_gauge_named_like_its_sample_in_the_text_format() {
    let addr = serve_build_info_and_jobs().await;
    let openmetrics = support::scrape(addr, Some(OPENMETRICS_ACCEPT)).await.body;
    assert_eq!(
        declared_types(&openmetrics)
            .get("build")
            .map(String::as_str),
        Some("info"),
        "{openmetrics}"
    );

    let text = support::scrape(addr, None).await.body;
    let types = declared_types(&text);
    assert_eq!(
        types.get("build_info").map(String::as_str),
        Some("gauge"),
        "{text}"
    );
    assert!(!types.contains_key("build"), "{text}");
    assert!(
        text.contains("# HELP build_info Build information.\n"),
        "{text}"
    );
    assert!(!text.contains("# HELP build "), "{text}");
    let samples = parse_exposition(&text);
    let build = only_sample(&samples, "build_info");
    assert_eq!(build.label("version"), Some("1.2.3"));
    assert_eq!(build.value, 1.0);
    for (name, kind) in &types {
        assert!(
            ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind.as_str()),
            "{name} has type {kind}"
        );
        assert!(
            samples.iter().any(|s| s.name.starts_with(name.as_str())),
            "{name} has no sample:\n{text}"
        );
    }
}

#[tokio::test]
async fn a_label_value_holding_the_exemplar_marker_is_served_whole() {
    let addr = serve_build_info_and_jobs().await;
    let openmetrics = support::scrape(addr, Some(OPENMETRICS_ACCEPT)).await.body;
    let samples = parse_exposition(&openmetrics);
    let job = only_sample(&samples, "jobs_total");
    assert_eq!(job.label("name"), Some(JOB), "{openmetrics}");
    let exemplar = job.exemplar.as_ref().unwrap();
    assert_eq!(exemplar.label("trace_id"), Some(JOB_TRACE), "{openmetrics}");

    let text = support::scrape(addr, None).await.body;
    assert!(
        text.contains("\njobs_total{name=\"nightly # {backup} \\\"full\\\" \\\\\"} 1\n"),
        "{text}"
    );
    assert!(
        !text.contains(JOB_TRACE),
        "no exemplar in the text format:\n{text}"
    );
    // Every line whole: the same samples as OpenMetrics, less the exemplars.
    assert_eq!(
        parse_exposition(&text),
        without_exemplars(&samples),
        "{text}"
    );
}
