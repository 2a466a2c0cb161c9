//! The smallest traced axum app: each request becomes a span, printed as one JSON line.
//!
//! `cargo run -p examples --bin axum_minimal`, then `curl http://127.0.0.1:3001/hello/you`.

use std::time::Duration;

use axum::{Router, extract::Path, routing::get};
use trace_core::sampler::AlwaysOn;
use trace_exporters::{BatchExporter, Resource, stdout::StdoutExporter};
use trace_http::TraceLayer;

async fn hello(Path(name): Path<String>) -> String {
    format!("hello {name}\n")
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let spans = BatchExporter::builder(StdoutExporter::new(Resource::new("hello"))).build();
    let app = Router::new()
        .route("/hello/{name}", get(hello))
        .layer(TraceLayer::new(spans.clone()).sampler(AlwaysOn));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    spans.shutdown(Duration::from_secs(2)).await;
    Ok(())
}
