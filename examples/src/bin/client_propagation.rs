//! Outgoing calls that continue the trace: service `front` calls service `back` through a
//! hyper client wrapped in `ClientTraceLayer`, which makes a client span and writes its context
//! into the request's `traceparent` (and Jaeger's `uber-trace-id`). Both services' spans are
//! printed as JSON lines; they share one trace id.
//!
//! `cargo run -p examples --bin client_propagation` (it makes one request and exits).

// An example whose output is the point.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::{Router, routing::get};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tower::{Layer, ServiceExt};
use trace_core::propagation::CompositePropagator;
use trace_core::sampler::AlwaysOn;
use trace_exporters::{BatchExporter, Resource, stdout::StdoutExporter};
use trace_http::client::ClientTraceService;
use trace_http::{ClientTraceLayer, TraceLayer};

type TracedClient = ClientTraceService<Client<HttpConnector, Empty<Bytes>>>;

/// `back` shows the trace headers it received.
async fn back(headers: HeaderMap) -> String {
    let traceparent = headers.get("traceparent").and_then(|v| v.to_str().ok());
    let uber = headers.get("uber-trace-id").and_then(|v| v.to_str().ok());
    format!("back saw traceparent={traceparent:?} uber-trace-id={uber:?}\n")
}

/// `front` calls `back`; the client span is a child of front's server span.
async fn front(State((client, back_url)): State<(TracedClient, String)>) -> String {
    let request = http::Request::get(back_url)
        .body(Empty::new())
        .expect("a valid request");
    match client.oneshot(request).await {
        Ok(response) => match response.into_body().collect().await {
            Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
            Err(error) => format!("reading back's answer failed: {error}\n"),
        },
        Err(error) => format!("calling back failed: {error}\n"),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let spans = BatchExporter::builder(StdoutExporter::new(Resource::new("propagation"))).build();
    let formats = CompositePropagator::from_otel_propagators("tracecontext,baggage,jaeger")?;

    let back_listener = TcpListener::bind("127.0.0.1:0").await?;
    let back_url = format!("http://{}/", back_listener.local_addr()?);
    let back_app = Router::new().route("/", get(back)).layer(
        TraceLayer::new(spans.clone())
            .service_name("back")
            .propagation(formats.clone()),
    );
    tokio::spawn(async move { axum::serve(back_listener, back_app).await });

    let client: TracedClient = ClientTraceLayer::new()
        .propagation(formats.clone())
        .layer(Client::builder(TokioExecutor::new()).build_http());
    let front_listener = TcpListener::bind("127.0.0.1:0").await?;
    let front_url = format!("http://{}/", front_listener.local_addr()?);
    let front_app = Router::new()
        .route("/", get(front))
        .layer(
            TraceLayer::new(spans.clone())
                .service_name("front")
                .sampler(AlwaysOn)
                .propagation(formats),
        )
        .with_state((client, back_url));
    tokio::spawn(async move { axum::serve(front_listener, front_app).await });

    // One request from outside, without trace headers: front starts the trace.
    let plain: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let response = plain.get(front_url.parse()?).await?;
    let body = response.into_body().collect().await?.to_bytes();
    print!("{}", String::from_utf8_lossy(&body));
    spans.shutdown(Duration::from_secs(2)).await;
    Ok(())
}
