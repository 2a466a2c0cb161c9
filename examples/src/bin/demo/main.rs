//! The tracewire demo: a small traced system in one process, with the trace viewer and
//! `/metrics`, and no other service needed.
//!
//! ```text
//! cargo run --release -p examples --bin demo
//! ```
//!
//! An HTTP front service (axum) calls a gRPC back service (tonic, `users`), which calls an HTTP
//! back service (`profiles`), all through tracewire's client layers, so one request makes one
//! trace across three services. A built-in traffic generator keeps the viewer and `/metrics`
//! busy (`--no-load` turns it off); every 20th generated request carries a `jaeger-debug-id`.
//! Export and sampling come from the same environment variables and flags as every tracewire
//! service (`TRACES_EXPORTER`, `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_TRACES_SAMPLER`, ...); the
//! embedded viewer is always on.

#![forbid(unsafe_code)]
// A command-line program: printing where it listens is its job.
#![allow(clippy::print_stdout)]

mod front;
mod load;
mod profiles;
mod telemetry;
mod users;

/// The code generated from `proto/users.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all)]
mod proto {
    tonic::include_proto!("demo.users.v1");
}

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Command-line flags; the exporter settings also read their environment variables.
#[derive(Debug, Parser)]
#[command(
    name = "demo",
    about = "tracewire demo: a traced front, gRPC and HTTP back services, the viewer and /metrics"
)]
struct Args {
    /// Where the front service listens.
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// Where the gRPC users service listens (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    users_addr: SocketAddr,
    /// Where the HTTP profiles service listens (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    profiles_addr: SocketAddr,
    /// Do not generate traffic.
    #[arg(long)]
    no_load: bool,
    /// Generated requests per second.
    #[arg(long, default_value_t = 20.0)]
    load_rate: f64,
    /// Every Nth generated request carries a `jaeger-debug-id` header (0: never).
    #[arg(long, default_value_t = 20)]
    debug_every: u64,
    /// How long shutdown may take to flush queued spans to the exporter.
    #[arg(long, default_value = "3", value_parser = parse_seconds)]
    flush_deadline: Duration,
    #[command(flatten)]
    exporter: trace_exporters::config::ExporterArgs,
}

fn parse_seconds(value: &str) -> Result<Duration, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("`{value}` is not a number of seconds"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::parse();
    let telemetry = telemetry::Telemetry::start(args.exporter)?;
    let (stop_tx, stop_rx) = watch::channel(false);

    let profiles_listener = TcpListener::bind(args.profiles_addr).await?;
    let profiles_addr = profiles_listener.local_addr()?;
    let profiles = tokio::spawn(profiles::serve(
        profiles_listener,
        telemetry.clone(),
        stopped(stop_rx.clone()),
    ));

    let users_listener = TcpListener::bind(args.users_addr).await?;
    let users_addr = users_listener.local_addr()?;
    let users = tokio::spawn(users::serve(
        users_listener,
        profiles_addr,
        telemetry.clone(),
        stopped(stop_rx.clone()),
    ));

    let front_listener = TcpListener::bind(args.addr).await?;
    let front_addr = front_listener.local_addr()?;
    let front_app = front::app(users_addr, &telemetry).await?;
    let front = tokio::spawn(async move {
        axum::serve(front_listener, front_app)
            .with_graceful_shutdown(stopped(stop_rx.clone()))
            .await
    });

    println!("tracewire demo");
    println!("  front       http://{front_addr}/");
    println!("  viewer      http://{front_addr}/debug/traces");
    println!("  metrics     http://{front_addr}/metrics");
    println!("  users gRPC  http://{users_addr}");
    println!("  profiles    http://{profiles_addr}");
    println!("  exporter    {}", telemetry.exporter_description());
    println!(
        "  try         curl -H 'jaeger-debug-id: hello' http://{front_addr}/users/7  (then search 'hello' in the viewer)"
    );

    let load = (!args.no_load).then(|| {
        tokio::spawn(load::generate(
            front_addr,
            args.load_rate,
            args.debug_every,
            stopped(stop_tx.subscribe()),
        ))
    });

    shutdown_signal().await;
    println!("shutting down");
    // Stop the load first so the servers drain only what is already in flight.
    let _ = stop_tx.send(true);
    if let Some(load) = load {
        let _ = load.await;
    }
    front.await??;
    users.await??;
    profiles.await??;
    let report = telemetry.shutdown(args.flush_deadline).await;
    match telemetry.exporter_totals() {
        Some((exported, dropped)) => println!(
            "exporter flushed: {} spans sent during shutdown, {} lost{}; {exported} exported and {dropped} dropped in all",
            report.exported,
            report.lost,
            if report.deadline_reached {
                " (flush deadline reached)"
            } else {
                ""
            },
        ),
        None => println!("no exporter to flush"),
    }
    Ok(())
}

/// Resolves when the stop flag turns true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = interrupt => {}
            () = terminate => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
