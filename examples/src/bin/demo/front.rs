//! The HTTP front service: the routes a visitor (or the traffic generator) calls.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde::Deserialize;

use crate::proto::GetUserRequest;
use crate::telemetry::{Telemetry, UsersClient};

/// The front app: routes traced and measured, plus `/metrics` and the viewer (not traced).
pub(crate) async fn app(
    users_addr: SocketAddr,
    telemetry: &Telemetry,
) -> Result<Router, Box<dyn std::error::Error + Send + Sync>> {
    let users = telemetry.users_client(users_addr)?;
    Ok(Router::new()
        .route("/", get(index))
        .route("/users/{id}", get(user))
        .route("/slow", get(slow))
        .route("/fail", get(fail))
        .route("/stream", get(stream))
        .layer(
            telemetry
                .trace_layer("front")
                .metrics(telemetry.http_metrics()),
        )
        .with_state(users)
        .route_service("/metrics", telemetry.metrics_service())
        .nest_service("/debug/traces", telemetry.viewer()))
}

async fn index() -> Html<&'static str> {
    Html(include_str!("index.html"))
}

/// `GET /users/{id}`: asks the gRPC users service, which asks the HTTP profiles service.
async fn user(State(users): State<UsersClient>, Path(id): Path<u64>) -> Response {
    call_users(users, id, false).await
}

/// `GET /fail`: the same call with the profiles service failing: 500.
async fn fail(State(users): State<UsersClient>) -> Response {
    call_users(users, 13, true).await
}

async fn call_users(mut users: UsersClient, id: u64, fail: bool) -> Response {
    match users.get_user(GetUserRequest { id, fail }).await {
        Ok(user) => {
            let user = user.into_inner();
            (
                [(header::CONTENT_TYPE, "application/json")],
                format!(
                    r#"{{"id":{},"name":"{}","plan":"{}"}}"#,
                    user.id, user.name, user.plan
                ),
            )
                .into_response()
        }
        Err(status) if status.code() == tonic::Code::NotFound => {
            (StatusCode::NOT_FOUND, status.message().to_owned()).into_response()
        }
        Err(status) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("users service: {}", status.message()),
        )
            .into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct SlowQuery {
    ms: Option<u64>,
}

/// The longest `/slow` sleeps, so a query cannot park a connection for long.
const MAX_SLOW_MS: u64 = 10_000;

/// `GET /slow?ms=N`: sleeps N milliseconds (default 200, at most 10 s).
async fn slow(Query(query): Query<SlowQuery>) -> Result<String, (StatusCode, String)> {
    let ms = query.ms.unwrap_or(200);
    if ms > MAX_SLOW_MS {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("ms={ms} is more than {MAX_SLOW_MS}"),
        ));
    }
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(format!("slept {ms} ms\n"))
}

/// `GET /stream`: a chunked body of ten lines over about a second; the span ends with the last
/// chunk.
async fn stream() -> Response {
    let chunks = futures_util::stream::unfold(0u32, |n| async move {
        if n == 10 {
            return None;
        }
        if n > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let line = Bytes::from(format!("chunk {n}\n"));
        Some((Ok::<_, Infallible>(line), n + 1))
    });
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(chunks),
    )
        .into_response()
}
