//! The HTTP back service: user profiles, called by the gRPC users service.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::routing::get;
use serde::Deserialize;
use tokio::net::TcpListener;
use trace_http::context::RequestContext;

use crate::telemetry::Telemetry;

#[derive(Debug, Deserialize)]
struct ProfileQuery {
    #[serde(default)]
    fail: bool,
}

/// `GET /profiles/{id}`: the user's plan, after a simulated database lookup (a child span).
/// `?fail=true` answers 500, as a broken dependency would.
async fn profile(
    RequestContext(context): RequestContext,
    Path(id): Path<u64>,
    Query(query): Query<ProfileQuery>,
) -> Result<String, (StatusCode, &'static str)> {
    let mut lookup = context.child("SELECT profiles");
    lookup.set_attribute("db.system.name", "postgresql");
    lookup.set_attribute("db.query.text", "SELECT plan FROM profiles WHERE id = $1");
    tokio::time::sleep(Duration::from_millis(2 + id % 5)).await;
    if query.fail {
        lookup.set_status(trace_core::Status::error("connection reset by peer"));
        return Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            "profile store unavailable",
        ));
    }
    drop(lookup);
    let plan = if id % 3 == 0 { "pro" } else { "free" };
    Ok(format!(r#"{{"id":{id},"plan":"{plan}"}}"#))
}

/// Serves the profiles service until `shutdown` resolves.
pub(crate) async fn serve(
    listener: TcpListener,
    telemetry: Telemetry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new().route("/profiles/{id}", get(profile)).layer(
        telemetry
            .trace_layer("profiles")
            .metrics(telemetry.http_metrics()),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
