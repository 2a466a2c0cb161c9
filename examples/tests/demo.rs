//! The demo binary, end to end: started as a newcomer starts it (with the traffic generator on)
//! and exporting over OTLP/HTTP to a loopback receiver that decodes with `opentelemetry-proto`.
//!
//! - `/metrics` passes `promtool check metrics` (Debian's `prometheus` package, installed by
//!   `.ci/run`) and holds the HTTP and gRPC families;
//! - the viewer's JSON shows a trace across the HTTP front, the gRPC users service and the HTTP
//!   profiles service, each span the child of the right one;
//! - SIGINT stops it within 5 s, and every span the exporter took is delivered: none lost from
//!   the queue, each delivered once.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use serde_json::Value;

/// Span ids the receiver got, and how many arrived more than once.
#[derive(Default)]
struct Received {
    span_ids: HashSet<Vec<u8>>,
    duplicates: usize,
}

async fn receive(State(received): State<Arc<Mutex<Received>>>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).expect("a valid OTLP request");
    let mut received = received.lock().unwrap();
    for span in request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
    {
        if !received.span_ids.insert(span.span_id.clone()) {
            received.duplicates += 1;
        }
    }
    ExportTraceServiceResponse::default().encode_to_vec()
}

/// Kills the demo if the test ends before it exits.
struct DemoProcess(Child);

impl Drop for DemoProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn get(url: &str) -> (u16, String) {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let response = tokio::time::timeout(Duration::from_secs(10), client.get(url.parse().unwrap()))
        .await
        .expect("the demo answers within 10 s")
        .expect("the demo answers");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A span of the viewer's trace JSON.
fn span<'a>(spans: &'a [Value], id: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["span_id"] == id)
        .unwrap_or_else(|| panic!("span {id} in the trace"))
}

/// The one span of `kind` and `service` whose parent is `parent` (service `None`: any).
fn child<'a>(spans: &'a [Value], parent: &str, kind: &str, service: Option<&str>) -> &'a Value {
    let found: Vec<&Value> = spans
        .iter()
        .filter(|s| s["parent_span_id"] == parent && s["kind"] == kind)
        .filter(|s| service.is_none_or(|service| s["service"] == service))
        .collect();
    assert_eq!(found.len(), 1, "one {kind} child of {parent} in {spans:#?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_traces_across_services_serves_metrics_and_flushes_on_sigint() {
    // The OTLP receiver.
    let received = Arc::new(Mutex::new(Received::default()));
    let sink = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink_addr: SocketAddr = sink.local_addr().unwrap();
    let app = Router::new()
        .route("/v1/traces", post(receive))
        .with_state(received.clone());
    tokio::spawn(async move { axum::serve(sink, app).await });

    // The demo, as `cargo run -p examples --bin demo` starts it, on free ports.
    let process = Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(["--addr", "127.0.0.1:0", "--load-rate", "100"])
        .env("TRACES_EXPORTER", "otlp")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{sink_addr}"))
        // Spans wait in the queue until shutdown unless a batch fills: the flush is tested.
        .env("OTEL_BSP_SCHEDULE_DELAY", "60000")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the demo starts");
    let mut demo = DemoProcess(process);
    let stdout = demo.0.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut output = Vec::new();
    let front = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the demo prints its front URL within 30 s");
        output.push(line.clone());
        if let Some(url) = line.trim().strip_prefix("front") {
            break url.trim().trim_end_matches('/').to_owned();
        }
    };

    // Our own request with a debug id, traced whatever the sampler says.
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let request = http::Request::get(format!("{front}/users/7"))
        .header("jaeger-debug-id", "demo-test")
        .body(Empty::new())
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    drop(response.into_body().collect().await.unwrap());

    // The trace across the three services, in the viewer.
    let deadline = Instant::now() + Duration::from_secs(15);
    let trace = loop {
        let (status, list) = get(&format!(
            "{front}/debug/traces/api/traces?debug_id=demo-test"
        ))
        .await;
        assert_eq!(status, 200, "{list}");
        let list: Value = serde_json::from_str(&list).unwrap();
        if let Some(found) = list["traces"]
            .as_array()
            .and_then(|t| t.first())
            .filter(|t| t["span_count"] == 6)
        {
            let id = found["trace_id"].as_str().unwrap().to_owned();
            let (_, trace) = get(&format!("{front}/debug/traces/api/traces/{id}")).await;
            break serde_json::from_str::<Value>(&trace).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the debug trace reaches the viewer: {list}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let spans = trace["spans"].as_array().unwrap();
    let root = spans
        .iter()
        .find(|s| s["parent_span_id"].is_null())
        .expect("a root span");
    assert_eq!(root["service"], "front");
    assert_eq!(root["kind"], "server");
    assert_eq!(root["name"], "GET /users/{id}");
    let root_id = root["span_id"].as_str().unwrap();
    let grpc_call = child(spans, root_id, "client", None);
    assert_eq!(grpc_call["name"], "demo.users.v1.Users/GetUser");
    let users = child(
        spans,
        grpc_call["span_id"].as_str().unwrap(),
        "server",
        Some("users"),
    );
    assert_eq!(users["name"], "demo.users.v1.Users/GetUser");
    let http_call = child(spans, users["span_id"].as_str().unwrap(), "client", None);
    let profiles = child(
        spans,
        http_call["span_id"].as_str().unwrap(),
        "server",
        Some("profiles"),
    );
    assert_eq!(profiles["name"], "GET /profiles/{id}");
    let lookup = child(
        spans,
        profiles["span_id"].as_str().unwrap(),
        "internal",
        None,
    );
    assert_eq!(lookup["name"], "SELECT profiles");
    assert_eq!(span(spans, root_id)["debug_id"], "demo-test");

    // Generated traffic shows up too (the load generator sends debug ids of its own).
    let (_, services) = get(&format!("{front}/debug/traces/api/services")).await;
    for service in ["front", "users", "profiles"] {
        assert!(services.contains(service), "{service} in {services}");
    }

    // /metrics is valid for promtool and holds the HTTP and gRPC families.
    let (status, metrics) = get(&format!("{front}/metrics")).await;
    assert_eq!(status, 200);
    for family in [
        "http_server_request_duration_seconds",
        "rpc_server_call_duration_seconds",
        "rpc_client_call_duration_seconds",
        "trace_exporter_queue_length",
    ] {
        assert!(metrics.contains(family), "{family} in /metrics");
    }
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "`promtool` cannot be run ({error}): install Debian's `prometheus` package \
                 (apt-get install -y prometheus), as .ci/run does"
            )
        });
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // Let generated traffic fill the queue (and be in flight) before the interrupt.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // SIGINT: a clean exit within 5 s, with every queued span delivered.
    let pid = demo.0.id().to_string();
    let interrupted = Instant::now();
    let kill = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(kill.success());
    let status = loop {
        if let Some(status) = demo.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            interrupted.elapsed() < Duration::from_secs(5),
            "the demo exits within 5 s of SIGINT"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "the demo exits cleanly: {status}");
    output.extend(lines.try_iter());
    while let Ok(line) = lines.recv_timeout(Duration::from_millis(500)) {
        output.push(line);
    }
    let report = output
        .iter()
        .find(|line| line.starts_with("exporter flushed:"))
        .unwrap_or_else(|| panic!("a flush report in {output:#?}"));
    // "exporter flushed: {n} spans sent during shutdown, {lost} lost; {exported} exported and
    // {dropped} dropped in all"
    let numbers: Vec<u64> = report
        .split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .map(|part| part.parse().unwrap())
        .collect();
    let [flushed, lost, exported, dropped] = numbers[..] else {
        panic!("four numbers in `{report}`");
    };
    assert_eq!(lost, 0, "{report}");
    assert_eq!(dropped, 0, "{report}");
    assert!(
        flushed > 50,
        "spans of generated traffic waited in the queue: {report}"
    );
    let received = received.lock().unwrap();
    eprintln!("{report}; the receiver got {}", received.span_ids.len());
    assert_eq!(received.duplicates, 0, "each span delivered once");
    assert_eq!(
        received.span_ids.len() as u64,
        exported,
        "the receiver got every span the exporter says it sent: {report}"
    );
}
