//! The trace viewer's JSON API over real HTTP: an axum app traced into the in-memory store, the
//! viewer nested at `/debug/traces`, read back with a hyper client and an independent JSON
//! parser. Lists, filters, the waterfall of a trace across two services, the debug-id lookup,
//! refusals of bad input, and the store's bounds as the API reports them.

#![allow(clippy::unwrap_used)]

mod support;
mod viewer_app;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use http::Method;
use serde_json::Value;
use trace_core::{InMemoryCollector, TraceId};
use trace_http::context::RequestContext;
use trace_http::viewer::TraceViewer;
use trace_http::{TraceIdHeader, TraceLayer};

use viewer_app::{DEBUG_ID, Demo, SLOW, Traffic, VIEWER};

/// `GET {VIEWER}{path}` on A, parsed as JSON, with the status it came with.
async fn api(demo: &Demo, path: &str) -> (u16, Value) {
    let reply = support::get(demo.a, &format!("{VIEWER}{path}"), &[]).await;
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{path}: {}",
        reply.body
    );
    let json = serde_json::from_str(&reply.body)
        .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {}", reply.body));
    (reply.status.as_u16(), json)
}

/// The trace ids a list answer carries, in order.
async fn listed(demo: &Demo, query: &str) -> Vec<String> {
    let (status, json) = api(demo, &format!("/api/traces?{query}")).await;
    assert_eq!(status, 200, "{query}: {json}");
    json["traces"]
        .as_array()
        .unwrap_or_else(|| panic!("{query}: no traces array in {json}"))
        .iter()
        .map(|t| t["trace_id"].as_str().unwrap().to_owned())
        .collect()
}

fn ids(traces: &[TraceId]) -> Vec<String> {
    traces.iter().map(ToString::to_string).collect()
}

async fn demo_with_traffic() -> (Demo, Traffic) {
    let demo = viewer_app::start(support::collector()).await;
    let traffic = viewer_app::send_traffic(&demo).await;
    (demo, traffic)
}

#[tokio::test]
async fn lists_recent_traces_with_their_summaries() {
    let (demo, t) = demo_with_traffic().await;
    // Most recent first: the order the requests were sent, reversed.
    assert_eq!(
        listed(&demo, "").await,
        ids(&[t.debug, t.slow, t.failure, t.user, t.chain])
    );
    let (_, json) = api(&demo, "/api/traces").await;
    assert_eq!(json["order"], "recent");
    assert_eq!(json["matched"], 5);
    assert_eq!(json["store"]["traces"], 5);
    assert_eq!(json["store"]["spans"], 7);
    let chain = &json["traces"][4];
    assert_eq!(chain["root_name"], "GET /call/{*path}");
    assert_eq!(chain["root_service"], "a");
    assert_eq!(chain["span_count"], 3);
    assert_eq!(chain["status_code"], 200);
    assert_eq!(chain["services"], serde_json::json!(["b", "a"]));
    assert_eq!(chain["debug"], false);
    assert_eq!(chain["error"], false);
    let failure = &json["traces"][2];
    assert_eq!(failure["status_code"], 500);
    assert_eq!(failure["error"], true);
    let slow = &json["traces"][1];
    assert!(slow["duration_us"].as_u64().unwrap() >= SLOW.as_micros() as u64);

    // Looking at the traces recorded nothing more: the viewer sits outside the trace layer.
    for _ in 0..3 {
        listed(&demo, "").await;
    }
    assert_eq!(demo.store.len(), viewer_app::TRAFFIC_SPANS);
}

#[tokio::test]
async fn filters_and_orders() {
    let (demo, t) = demo_with_traffic().await;
    assert_eq!(listed(&demo, "service=b").await, ids(&[t.chain]));
    assert_eq!(listed(&demo, "service=c").await, ids(&[t.debug]));
    assert_eq!(
        listed(&demo, "service=a").await,
        ids(&[t.slow, t.failure, t.user, t.chain])
    );
    assert_eq!(listed(&demo, "service=nobody").await, ids(&[]));
    assert_eq!(listed(&demo, "route=%2Fusers").await, ids(&[t.user]));
    assert_eq!(listed(&demo, "route=/hop&service=a").await, ids(&[t.chain]));
    assert_eq!(listed(&demo, "status=5xx").await, ids(&[t.failure]));
    assert_eq!(listed(&demo, "status=500").await, ids(&[t.failure]));
    assert_eq!(listed(&demo, "status=error").await, ids(&[t.failure]));
    assert_eq!(listed(&demo, "order=errors").await, ids(&[t.failure]));
    assert_eq!(listed(&demo, "status=4xx").await, ids(&[]));
    assert_eq!(
        listed(&demo, "min_duration_ms=500").await,
        ids(&[t.slow]),
        "only /slow lasts {SLOW:?}"
    );
    assert_eq!(listed(&demo, "order=slowest").await[0], t.slow.to_string());
    assert_eq!(
        listed(&demo, &format!("trace_id={}", t.user)).await,
        ids(&[t.user])
    );
    assert_eq!(
        listed(
            &demo,
            &format!("trace_id={}", t.user.to_string().to_uppercase())
        )
        .await,
        ids(&[t.user]),
        "trace ids are read in either case"
    );
    let (_, limited) = api(&demo, "/api/traces?limit=2").await;
    assert_eq!(limited["traces"].as_array().unwrap().len(), 2);
    assert_eq!(limited["matched"], 5);
    let (_, capped) = api(&demo, "/api/traces?limit=100000").await;
    assert_eq!(capped["limit"], 500);

    let (_, services) = api(&demo, "/api/services").await;
    assert_eq!(
        services["services"],
        serde_json::json!([
            {"name": "a", "traces": 4},
            {"name": "b", "traces": 1},
            {"name": "c", "traces": 1},
        ])
    );
}

#[tokio::test]
async fn a_trace_across_two_services_is_a_nested_waterfall() {
    let (demo, t) = demo_with_traffic().await;
    let (status, trace) = api(&demo, &format!("/api/traces/{}", t.chain)).await;
    assert_eq!(status, 200, "{trace}");
    assert_eq!(trace["trace_id"], t.chain.to_string());
    let spans = trace["spans"].as_array().unwrap();
    let rows: Vec<(&str, u64, &str, &str)> = spans
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap(),
                s["depth"].as_u64().unwrap(),
                s["kind"].as_str().unwrap(),
                s["service"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("GET /call/{*path}", 0, "server", "a"),
            // The client span has no service name of its own: it shows its parent's.
            ("GET", 1, "client", "a"),
            ("GET /hop", 2, "server", "b"),
        ]
    );
    assert_eq!(spans[0]["parent_span_id"], Value::Null);
    assert_eq!(spans[1]["parent_span_id"], spans[0]["span_id"]);
    assert_eq!(spans[2]["parent_span_id"], spans[1]["span_id"]);
    assert_eq!(spans[0]["offset_us"], 0);
    for pair in spans.windows(2) {
        // A child starts no earlier and ends no later than its parent.
        let (parent, child) = (&pair[0], &pair[1]);
        let start = |s: &Value| s["offset_us"].as_u64().unwrap();
        let end = |s: &Value| start(s) + s["duration_us"].as_u64().unwrap();
        assert!(start(child) >= start(parent) && end(child) <= end(parent) + 1000);
    }
    let attributes = spans[2]["attributes"].as_array().unwrap();
    assert!(
        attributes
            .iter()
            .any(|a| a["key"] == "http.route" && a["value"] == "/hop"),
        "{attributes:?}"
    );
    assert!(
        attributes
            .iter()
            .any(|a| a["key"] == "http.response.status_code" && a["value"] == 200),
        "integers stay numbers: {attributes:?}"
    );
    assert_eq!(trace["summary"]["span_count"], 3);
}

#[tokio::test]
async fn a_spans_events_are_listed_with_it() {
    let (demo, t) = demo_with_traffic().await;
    let (status, trace) = api(&demo, &format!("/api/traces/{}", t.slow)).await;
    assert_eq!(status, 200, "{trace}");
    // The slow response streams its body: its first byte went out before its end.
    let events = trace["spans"][0]["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["name"] == "first byte sent"),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_debug_trace_is_marked_and_found_by_its_debug_id() {
    let (demo, t) = demo_with_traffic().await;
    assert_eq!(
        listed(&demo, &format!("debug_id={DEBUG_ID}")).await,
        ids(&[t.debug])
    );
    assert_eq!(listed(&demo, "debug_id=other").await, ids(&[]));
    let (_, list) = api(&demo, "/api/traces").await;
    for trace in list["traces"].as_array().unwrap() {
        let is_debug = trace["trace_id"] == t.debug.to_string();
        assert_eq!(trace["debug"], is_debug, "{trace}");
        if is_debug {
            assert_eq!(trace["debug_id"], DEBUG_ID);
            assert_eq!(trace["root_service"], "c");
        } else {
            assert_eq!(trace["debug_id"], Value::Null);
        }
    }
    let (_, trace) = api(&demo, &format!("/api/traces/{}", t.debug)).await;
    assert_eq!(trace["spans"][0]["debug"], true);
    assert_eq!(trace["spans"][0]["debug_id"], DEBUG_ID);
}

#[tokio::test]
async fn bad_input_is_refused_with_a_reason() {
    let (demo, t) = demo_with_traffic().await;
    for (path, status, needle) in [
        ("/api/traces?limit=0", 400, "limit"),
        ("/api/traces?limit=ten", 400, "limit"),
        ("/api/traces?min_duration_ms=fast", 400, "min_duration_ms"),
        ("/api/traces?min_duration_ms=-5", 400, "min_duration_ms"),
        ("/api/traces?status=700", 400, "status"),
        ("/api/traces?trace_id=123", 400, "trace_id"),
        (
            "/api/traces?trace_id=00000000000000000000000000000000",
            400,
            "trace_id",
        ),
        ("/api/traces?order=oldest", 400, "order"),
        ("/api/traces?colour=red", 400, "unknown query parameter"),
        ("/api/traces?debug_id=%C3%28", 400, "UTF-8"),
        ("/api/traces?service=a&service=b", 400, "more than once"),
        ("/api/traces/not-a-trace-id", 400, "32 hex digits"),
        (
            "/api/traces/0af7651916cd43dd8448eb211c80319c",
            404,
            "no such trace",
        ),
        ("/api/nothing", 404, "no such API path"),
    ] {
        let (got, json) = api(&demo, path).await;
        assert_eq!(got, status, "{path}: {json}");
        let message = json["error"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{path}: {message:?}");
    }
    let long = format!("/api/traces?debug_id={}", "d".repeat(5000));
    assert_eq!(api(&demo, &long).await.0, 400);

    let post = support::send(
        &support::client(),
        support::request(Method::POST, demo.a, &format!("{VIEWER}/api/traces"), &[]),
    )
    .await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    // The server is still answering, and the traces are still there.
    assert_eq!(listed(&demo, "").await.len(), 5);
    assert_eq!(api(&demo, &format!("/api/traces/{}", t.user)).await.0, 200);
}

#[tokio::test]
async fn the_page_is_served_self_contained_at_the_mount_point() {
    let (demo, _) = demo_with_traffic().await;
    for path in [VIEWER.to_owned(), format!("{VIEWER}/")] {
        let reply = support::get(demo.a, &path, &[]).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(
            reply.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        let policy = reply.header("content-security-policy").unwrap();
        assert!(policy.contains("default-src 'none'"), "{policy}");
        assert!(reply.body.contains("<script>") && reply.body.contains("<style>"));
        // Nothing is loaded from elsewhere, and every API URL is relative to the page.
        for external in [
            "src=", "http://", "https://", "//cdn", "@import", "fetch('/",
        ] {
            assert!(!reply.body.contains(external), "{path}: {external}");
        }
    }
    let reply = support::get(demo.a, &format!("{VIEWER}/index.php"), &[]).await;
    assert_eq!(reply.status, 404);
    let head = support::send(
        &support::client(),
        support::request(Method::HEAD, demo.a, VIEWER, &[]),
    )
    .await;
    assert_eq!(head.status, 200);
    assert_eq!(head.body, "", "HEAD answers the headers alone");
}

#[tokio::test]
async fn served_by_plain_hyper_at_the_root_too() {
    let store = support::collector();
    let context = trace_core::SpanContext::new_root(trace_core::TraceFlags::SAMPLED)
        .with_collector(store.clone());
    drop(context.child("work"));
    let addr = support::serve_tower(TraceViewer::new(store)).await;
    let page = support::get(addr, "/", &[]).await;
    assert_eq!(page.status, 200);
    let list = support::get(addr, "/api/traces", &[]).await;
    let json: Value = serde_json::from_str(&list.body).unwrap();
    assert_eq!(
        json["traces"][0]["trace_id"],
        context.trace_id().to_string()
    );
    assert_eq!(json["traces"][0]["root_name"], "work");
}

/// A handler that records `children` child spans of the request's span.
async fn busy(RequestContext(context): RequestContext) -> &'static str {
    for i in 0..4 {
        drop(context.child(format!("step {i}")));
    }
    "done"
}

#[tokio::test]
async fn the_store_bounds_traces_and_spans_per_trace_and_counts_evictions() {
    let store = Arc::new(
        InMemoryCollector::builder()
            .max_traces(3)
            .max_spans_per_trace(2)
            .build(),
    );
    let app = Router::new()
        .route("/one", get(|| async { "one" }))
        .route("/busy", get(busy))
        .layer(
            TraceLayer::new(store.clone())
                .service_name("bounded")
                .trace_id_header(TraceIdHeader::TraceResponse),
        )
        .nest_service(VIEWER, TraceViewer::new(store.clone()));
    let addr = support::serve(app).await;
    let demo = Demo {
        a: addr,
        c: addr,
        store: store.clone(),
    };

    // Five busy requests, each five spans (four steps, then the server span).
    let mut traces = Vec::new();
    for _ in 0..5 {
        let reply = support::get(addr, "/busy", &[]).await;
        traces.push(viewer_app::trace_of(&reply));
        // Each trace's spans all end before the next request: wait for its server span.
        let last = *traces.last().unwrap();
        let deadline = tokio::time::Instant::now() + support::SPAN_WAIT;
        while store
            .trace(last)
            .is_none_or(|t| !t.spans.iter().any(|s| s.name == "GET /busy"))
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "server span of {last}"
            );
            tokio::time::sleep(support::SPAN_STEP).await;
        }
    }
    let (_, json) = api(&demo, "/api/traces").await;
    assert_eq!(
        listed(&demo, "").await,
        ids(&[traces[4], traces[3], traces[2]]),
        "the two oldest traces were evicted whole"
    );
    let store_json = &json["store"];
    assert_eq!(store_json["traces"], 3);
    assert_eq!(store_json["spans"], 6);
    assert_eq!(store_json["evicted_traces"], 2);
    assert_eq!(
        store_json["trimmed_spans"],
        5 * 3,
        "three steps of each trace"
    );
    assert_eq!(store_json["evicted_spans"], 5 * 3 + 2 * 2);
    // Each trace kept its newest spans: the last step and the server span, its root.
    for trace in json["traces"].as_array().unwrap() {
        assert_eq!(trace["span_count"], 2);
        assert_eq!(trace["root_name"], "GET /busy");
    }
    let (_, detail) = api(&demo, &format!("/api/traces/{}", traces[4])).await;
    let rows: Vec<(&str, u64)> = detail["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["depth"].as_u64().unwrap()))
        .collect();
    assert_eq!(rows, [("GET /busy", 0), ("step 3", 1)]);
    assert_eq!(store.evicted_traces(), 2);
    assert_eq!(store.trimmed_spans(), 15);
}
