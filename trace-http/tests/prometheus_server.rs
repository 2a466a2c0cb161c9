//! The metrics against the real Prometheus tools: `promtool check metrics` accepts the
//! Prometheus-text exposition (info metrics and label values holding ` # {` included), and a
//! real `prometheus` server scrapes an axum app with both layers, computes a latency quantile in
//! the right bucket and stores the trace exemplars.
//!
//! They fail, saying what to install, when `promtool` / `prometheus` are missing: `.ci/run`
//! installs Debian's `prometheus` package.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::{any, get, post};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use serde_json::Value;
use trace_core::{InMemoryCollector, TraceId};
use trace_http::TraceLayer;
use trace_http::metrics::{DURATION_BUCKETS, MetricsBuilder, metrics_service};

// ---------------------------------------------------------------------------------------------
// Tools
// ---------------------------------------------------------------------------------------------

/// Fails the test, saying what to install, when `tool` cannot be run.
fn require(tool: &str) {
    if let Err(error) = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        panic!(
            "`{tool}` cannot be run ({error}): install Debian's `prometheus` package \
             (apt-get install -y prometheus), as .ci/run does"
        );
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A fresh temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path =
            std::env::temp_dir().join(format!("tracewire-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// The app
// ---------------------------------------------------------------------------------------------

/// An app with the trace layer (AlwaysOn, the default) and the metrics layer of `builder`, with
/// `/metrics` beside them, and some metrics of the application's own in the registry.
async fn serve_app(builder: MetricsBuilder, collector: Arc<InMemoryCollector>) -> SocketAddr {
    let mut registry = Registry::default();
    let metrics = builder.server(&mut registry);
    let exported = Counter::<u64>::default();
    exported.inc_by(3);
    registry.register("exporter_spans_exported", "Spans sent", exported);
    let app = Router::new()
        .route("/users/{id}", get(|| async { "alice" }))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route("/upload", post(|body: Bytes| async move { body }))
        .route("/purge", any(|| async { "purged" }))
        .route(
            "/fast",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(30)).await;
                "fast"
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "slow"
            }),
        )
        .layer(metrics)
        .layer(TraceLayer::new(collector))
        .route_service("/metrics", metrics_service(Arc::new(registry)));
    support::serve(app).await
}

/// One request of every kind the layer labels differently.
async fn varied_traffic(addr: SocketAddr) {
    let client = support::client();
    for path in ["/users/1", "/users/2", "/fail", "/no/such/page"] {
        support::send(&client, support::request(Method::GET, addr, path, &[])).await;
    }
    let purge = Method::from_bytes(b"PURGE").unwrap();
    support::send(&client, support::request(purge, addr, "/purge", &[])).await;
    let upload = Request::post(format!("http://{addr}/upload"))
        .body(Full::new(Bytes::from(vec![b'x'; 3000])))
        .unwrap();
    support::send(&client, upload).await;
}

// ---------------------------------------------------------------------------------------------
// promtool
// ---------------------------------------------------------------------------------------------

/// Lint findings that are not defects of the exposition. (None so far: promtool's linter has
/// nothing to say about these metrics. An entry would be a substring of a finding's text.)
const ACCEPTABLE_LINTS: &[&str] = &[];

/// Pipes `exposition` into `promtool check metrics`; panics on a parse error or a lint finding
/// not in [`ACCEPTABLE_LINTS`].
fn promtool_check(exposition: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let code = output.status.code();
    let report = format!(
        "promtool check metrics exited {code:?}\nstdout:\n{stdout}\nstderr:\n{stderr}\n\
         exposition:\n{exposition}"
    );
    // 0: clean; 3: lint findings only; anything else (1): the exposition does not parse.
    assert!(matches!(code, Some(0 | 3)), "{report}");
    assert!(!stderr.contains("error"), "{report}");
    let findings: Vec<&str> = stdout.lines().chain(stderr.lines()).collect();
    if code == Some(3) {
        assert!(!findings.is_empty(), "{report}");
    }
    for finding in findings {
        assert!(
            ACCEPTABLE_LINTS.iter().any(|ok| finding.contains(ok)),
            "unexpected lint finding {finding:?}\n{report}"
        );
    }
}

#[tokio::test]
async fn promtool_accepts_the_prometheus_text_exposition() {
    require("promtool");
    let collector = support::collector();
    let addr = serve_app(MetricsBuilder::new(), collector.clone()).await;
    varied_traffic(addr).await;
    support::wait_for_spans(&collector, 6).await;
    let (_, samples) = support::scrape_until(addr, "all six requests", |s| {
        support::samples_of(s, "http_server_request_duration_seconds_count", &[])
            .iter()
            .map(|s| s.value)
            .sum::<f64>()
            == 6.0
    })
    .await;
    assert!(samples.iter().any(|s| s.exemplar.is_some()));

    let reply = support::scrape(addr, None).await;
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(
        reply
            .body
            .contains("http_server_request_body_size_bytes_bucket")
    );
    assert!(reply.body.contains("http_request_method=\"_OTHER\""));
    promtool_check(&reply.body);
}

#[tokio::test]
async fn promtool_accepts_the_exposition_with_prefix_constant_labels_and_overflow() {
    require("promtool");
    let builder = MetricsBuilder::new()
        .prefix("shop")
        .constant_label("service", "checkout")
        .max_series_per_metric(2);
    let collector = support::collector();
    let addr = serve_app(builder, collector.clone()).await;
    varied_traffic(addr).await;
    support::wait_for_spans(&collector, 6).await;
    let (text, _) = support::scrape_until(addr, "an overflow series", |s| {
        !support::samples_of(
            s,
            "shop_http_server_request_duration_seconds_count",
            &[("http_request_method", "_overflow")],
        )
        .is_empty()
    })
    .await;
    assert!(text.contains("service=\"checkout\""));
    promtool_check(&support::scrape(addr, None).await.body);
}

#[tokio::test]
async fn promtool_accepts_a_registry_with_server_and_client_layers() {
    require("promtool");
    let addr = support::serve_layer_metrics_with(|registry| {
        MetricsBuilder::new().client(registry);
    })
    .await;
    support::scrape_until(addr, "the request", |s| {
        !support::samples_of(s, "http_server_request_duration_seconds_count", &[]).is_empty()
    })
    .await;
    promtool_check(&support::scrape(addr, None).await.body);
}

#[tokio::test]
async fn promtool_accepts_info_metrics_and_label_values_holding_the_exemplar_marker() {
    require("promtool");
    let addr = support::serve_layer_metrics_with(|registry| {
        support::register_info_and_jobs(registry, "nightly # {backup}", "abc # {def}");
    })
    .await;
    support::scrape_until(addr, "the request", |s| {
        !support::samples_of(s, "http_server_request_duration_seconds_count", &[]).is_empty()
    })
    .await;
    let text = support::scrape(addr, None).await.body;
    assert!(text.contains("\n# TYPE build_info gauge\n"), "{text}");
    assert!(
        text.contains("\njobs_total{name=\"nightly # {backup}\"} 1\n"),
        "{text}"
    );
    promtool_check(&text);
}

// ---------------------------------------------------------------------------------------------
// A real Prometheus server
// ---------------------------------------------------------------------------------------------

/// Longest wait for anything Prometheus does (start, scrapes, query results).
const PROMETHEUS_WAIT: Duration = Duration::from_secs(30);

/// A `prometheus` process, killed (and its data removed) when dropped, also on test failure.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second, with exemplar storage on.
    fn start(target: SocketAddr) -> Self {
        let dir = TempDir::new("prometheus");
        let config = dir.0.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: tracewire\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let data = dir.0.join("data");
        let log = std::fs::File::create(dir.0.join("prometheus.log")).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--enable-feature=exemplar-storage")
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Self { child, addr, dir }
    }

    /// What Prometheus logged so far (for failure messages).
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("prometheus.log")).unwrap_or_default()
    }

    /// `GET {path}` on Prometheus' HTTP API, as JSON; `None` if it does not answer (yet).
    async fn api(&self, path_and_query: &str) -> Option<Value> {
        let request = Request::get(format!("http://{}{path_and_query}", self.addr))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let exchange = async {
            let response = support::client().request(request).await.ok()?;
            let status = response.status();
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .ok()?
                .to_bytes();
            let json: Value = serde_json::from_slice(&body).ok()?;
            assert_eq!(status, StatusCode::OK, "{path_and_query}: {json}");
            assert_eq!(json["status"], "success", "{path_and_query}: {json}");
            Some(json)
        };
        tokio::time::timeout(Duration::from_secs(5), exchange)
            .await
            .ok()
            .flatten()
    }

    /// An instant query's result vector.
    async fn query(&self, query: &str) -> Option<Vec<Value>> {
        let json = self
            .api(&format!("/api/v1/query?query={}", encode(query)))
            .await?;
        json["data"]["result"].as_array().cloned()
    }

    /// The value of a query that returns one sample, if it does.
    async fn scalar(&self, query: &str) -> Option<f64> {
        let result = self.query(query).await?;
        match result.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }

    /// Polls `check` until it gives a value, within the deadline; panics with Prometheus' log
    /// otherwise.
    async fn wait_for<T, F>(&self, deadline: Instant, what: &str, mut check: impl FnMut() -> F) -> T
    where
        F: Future<Output = Option<T>>,
    {
        loop {
            if let Some(value) = check().await {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus: {what} not seen within {PROMETHEUS_WAIT:?}; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query parameter value.
fn encode(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_quantiles_in_the_right_bucket_and_exemplars_of_recorded_traces() {
    require("prometheus");
    let started = Instant::now();
    let deadline = started + PROMETHEUS_WAIT;
    let collector = support::collector();
    let app = serve_app(MetricsBuilder::new(), collector.clone()).await;
    let prometheus = Prometheus::start(app);

    // The first scrape has succeeded.
    prometheus
        .wait_for(deadline, "up == 1", || async {
            (prometheus.scalar("up{job=\"tracewire\"}").await? == 1.0).then_some(())
        })
        .await;

    // 20 requests each to /slow (300 ms) and /fast (30 ms), spread over ~3 s of scrapes.
    let mut requests = Vec::new();
    for _ in 0..20 {
        for path in ["/slow", "/fast"] {
            requests.push(tokio::spawn(async move {
                support::get(app, path, &[]).await.status
            }));
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    for request in requests {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }

    // Prometheus has scraped all of it, and at least 3 times in all.
    prometheus
        .wait_for(deadline, "all 40 requests scraped", || async {
            let count =
                "sum(http_server_request_duration_seconds_count{http_route=~\"/slow|/fast\"})";
            (prometheus.scalar(count).await? == 40.0).then_some(())
        })
        .await;
    let scrapes = prometheus
        .wait_for(deadline, "3 scrapes", || async {
            let scrapes = prometheus
                .scalar("count_over_time(up{job=\"tracewire\"}[1m])")
                .await?;
            (scrapes >= 3.0).then_some(scrapes)
        })
        .await;

    // The 99th percentile of /slow lies in its bucket, (0.25, 0.5]; /fast's well below.
    let quantile = |route: &'static str| {
        format!(
            "histogram_quantile(0.99, sum by (le) (rate(\
             http_server_request_duration_seconds_bucket{{http_route=\"{route}\"}}[30s])))"
        )
    };
    let slow = prometheus
        .wait_for(deadline, "the /slow quantile", || async {
            let value = prometheus.scalar(&quantile("/slow")).await?;
            value.is_finite().then_some(value)
        })
        .await;
    assert!(slow > 0.25 && slow <= 0.5, "p99 of a 300 ms route: {slow}");
    let fast = prometheus
        .wait_for(deadline, "the /fast quantile", || async {
            let value = prometheus.scalar(&quantile("/fast")).await?;
            value.is_finite().then_some(value)
        })
        .await;
    // (Its bucket is (0.025, 0.05]; a loaded machine may push one of 20 requests past it.)
    assert!(fast > 0.025 && fast < 0.25, "p99 of a 30 ms route: {fast}");

    // Prometheus stored exemplars, all of traces the collector recorded, on the right buckets.
    let recorded: Vec<String> = collector
        .trace_ids()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(recorded.len(), 40, "every request traced");
    let exemplar_series = prometheus
        .wait_for(deadline, "exemplars", || async {
            let path = format!(
                "/api/v1/query_exemplars?query={}&start={}&end={}",
                encode("http_server_request_duration_seconds_bucket"),
                unix_now() - 300.0,
                unix_now() + 60.0
            );
            let json = prometheus.api(&path).await?;
            let series = json["data"].as_array()?.clone();
            let slow = series
                .iter()
                .any(|s| s["seriesLabels"]["http_route"] == "/slow");
            let fast = series
                .iter()
                .any(|s| s["seriesLabels"]["http_route"] == "/fast");
            (slow && fast).then_some(series)
        })
        .await;
    let mut checked = 0;
    for series in &exemplar_series {
        let labels = &series["seriesLabels"];
        let le: f64 = match labels["le"].as_str().unwrap() {
            "+Inf" => f64::INFINITY,
            le => le.parse().unwrap(),
        };
        for exemplar in series["exemplars"].as_array().unwrap() {
            let trace_id = exemplar["labels"]["trace_id"].as_str().unwrap();
            let span_id = exemplar["labels"]["span_id"].as_str().unwrap();
            assert!(support::is_hex_id(trace_id, 32), "{exemplar}");
            assert!(support::is_hex_id(span_id, 16), "{exemplar}");
            assert!(
                recorded.iter().any(|id| id == trace_id),
                "exemplar {exemplar} of {labels} is not a recorded trace"
            );
            let spans = collector.spans_of_trace(TraceId::from_hex(trace_id.as_bytes()).unwrap());
            assert!(
                spans.iter().any(|s| s.span_id.to_string() == span_id),
                "exemplar {exemplar}: not the server span of its trace {spans:#?}"
            );
            // On the bucket its value falls in.
            let value: f64 = exemplar["value"].as_str().unwrap().parse().unwrap();
            let lower = DURATION_BUCKETS
                .iter()
                .copied()
                .filter(|b| *b < le)
                .fold(0.0, f64::max);
            assert!(
                value > lower && value <= le,
                "exemplar {exemplar} not in its bucket {labels}"
            );
            match labels["http_route"].as_str() {
                Some("/slow") => {
                    assert!(value > 0.3 && value <= 0.5, "{exemplar} {labels}");
                    assert_eq!(labels["le"], "0.5", "{exemplar} {labels}");
                }
                Some("/fast") => assert!(value > 0.03, "{exemplar} {labels}"),
                _ => {}
            }
            checked += 1;
        }
    }
    assert!(checked >= 2, "{exemplar_series:#?}");
    eprintln!(
        "Prometheus test: {scrapes} scrapes, p99 /slow {slow:.3} s, /fast {fast:.3} s, \
         {checked} exemplars checked, {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
    drop(prometheus);
}
