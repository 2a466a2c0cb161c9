//! Exporting to Jaeger: to the agent over UDP (Thrift compact), or straight to the collector
//! over HTTP (Thrift binary) when `JAEGER_ENDPOINT` is set (`http://host:14268/api/traces`, or
//! `host:14268`). Serves a traced app; Prometheus metrics include the exporter's health.
//!
//! ```text
//! docker run --rm -p 16686:16686 -p 6831:6831/udp -p 14268:14268 jaegertracing/all-in-one
//! cargo run -p examples --bin export_jaeger
//! curl http://127.0.0.1:3003/work ; open http://localhost:16686
//! ```

use std::sync::Arc;
use std::time::Duration;

use axum::{Router, routing::get};
use prometheus_client::registry::Registry;
use trace_core::sampler::AlwaysOn;
use trace_exporters::jaeger::{JaegerAgentExporter, JaegerCollectorExporter};
use trace_exporters::{BatchExporter, ExporterMetrics, Resource, SpanExporter};
use trace_http::TraceLayer;
use trace_http::metrics::metrics_service;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let resource = Resource::new("jaeger-example").with_attribute("service.version", "1.0.0");
    let exporter: Box<dyn SpanExporter> = match std::env::var("JAEGER_ENDPOINT") {
        Ok(endpoint) => Box::new(
            JaegerCollectorExporter::builder()
                .endpoint(endpoint)
                .resource(resource)
                .build()?,
        ),
        Err(_) => Box::new(
            JaegerAgentExporter::builder()
                .endpoint("127.0.0.1:6831")
                // 65,000 by default; macOS allows smaller datagrams.
                .max_packet_size(8192)
                .resource(resource)
                .build()?,
        ),
    };
    let mut registry = Registry::default();
    let spans = BatchExporter::builder(exporter)
        .metrics(&ExporterMetrics::register(&mut registry))
        .build();

    let app = Router::new()
        .route("/work", get(|| async { "done\n" }))
        .layer(TraceLayer::new(spans.clone()).sampler(AlwaysOn))
        .route_service("/metrics", metrics_service(Arc::new(registry)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3003").await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    let report = spans.shutdown(Duration::from_secs(5)).await;
    eprintln!("flushed {} spans, lost {}", report.exported, report.lost);
    Ok(())
}
