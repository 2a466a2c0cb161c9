//! Exporting to an OpenTelemetry collector (or Jaeger v2, Tempo, a vendor) over OTLP: every
//! setting from the standard variables, so the same binary talks HTTP/protobuf, HTTP/JSON or
//! gRPC as `OTEL_EXPORTER_OTLP_PROTOCOL` says.
//!
//! ```text
//! docker run --rm -e COLLECTOR_OTLP_ENABLED=true -p 16686:16686 -p 4317:4317 -p 4318:4318 \
//!     jaegertracing/all-in-one
//! OTEL_SERVICE_NAME=otlp-example OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 \
//!     cargo run -p examples --bin export_otlp
//! curl http://127.0.0.1:3004/work
//! ```
//!
//! The same exporter in code: `OtlpHttpExporter::builder().endpoint("http://127.0.0.1:4318/v1/traces")
//! .gzip(true).header("x-tenant", "shop").resource(Resource::new("otlp-example")).build_http()?`.

use std::time::Duration;

use axum::{Router, routing::get};
use trace_exporters::config::{ExporterConfig, ExporterKind};
use trace_http::TraceLayer;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // OTLP unless TRACES_EXPORTER says otherwise; every OTEL_* variable applies.
    let mut config = ExporterConfig::default().with_exporter(ExporterKind::Otlp);
    config.apply_env_vars()?;
    let telemetry = config.build()?;
    eprintln!("exporting to {}", telemetry.description());

    let app = Router::new()
        .route("/work", get(|| async { "done\n" }))
        .layer(
            TraceLayer::new(telemetry.collector())
                .sampler(telemetry.sampler())
                .propagation(telemetry.propagator()),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3004").await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    let report = telemetry.shutdown(Duration::from_secs(5)).await;
    eprintln!("flushed {} spans, lost {}", report.exported, report.lost);
    Ok(())
}
