//! Child spans inside a handler: a span per step, attributes and events, work on a spawned
//! task kept in the request's trace, and a `#[tracing::instrument]`-free way to time a block.
//!
//! `cargo run -p examples --bin child_spans`, then `curl http://127.0.0.1:3002/orders/42`.

use std::time::Duration;

use axum::{Router, extract::Path, routing::get};
use trace_core::sampler::AlwaysOn;
use trace_core::{KeyValue, SpanKind, Status};
use trace_exporters::{BatchExporter, Resource, stdout::StdoutExporter};
use trace_http::TraceLayer;
use trace_http::context::{RequestContext, in_context};

async fn order(RequestContext(context): RequestContext, Path(id): Path<u64>) -> String {
    // A child span lives until it is dropped; set attributes and events while it runs.
    let mut load = context.child("load order");
    load.set_attribute("order.id", id as i64);
    tokio::time::sleep(Duration::from_millis(5)).await;
    load.add_event("cache miss", vec![KeyValue::new("cache", "orders")]);
    drop(load);

    // A client-kind span for a call to another system, marked failed when it fails.
    let mut payment = context.child_of_kind("charge card", SpanKind::Client);
    if id % 2 == 1 {
        payment.set_status(Status::error("card declined"));
    }
    drop(payment);

    // A spawned task does not inherit the current context: `in_context` carries it along, so
    // `current_context()` (and the client layers) inside see the request's span.
    let audit = tokio::spawn(in_context(context.clone(), async move {
        if let Some(context) = trace_http::context::current_context() {
            let _write = context.child("write audit log");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }));
    let _ = audit.await;
    format!("order {id}\n")
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let spans = BatchExporter::builder(StdoutExporter::new(Resource::new("orders"))).build();
    let app = Router::new()
        .route("/orders/{id}", get(order))
        .layer(TraceLayer::new(spans.clone()).sampler(AlwaysOn));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3002").await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    spans.shutdown(Duration::from_secs(2)).await;
    Ok(())
}
