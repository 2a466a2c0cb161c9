//! The load benchmark of tracewire against bare axum and the stacks users run today.
//!
//! One binary, three commands:
//! - `serve --mode MODE --addr ADDR --otlp-endpoint URL`: the server under test, the same
//!   `GET /users/{id}` handler wrapped as the mode says (see [`modes::Mode`]), on a
//!   multi-thread tokio runtime with `--workers` workers (1 for the benchmark);
//! - `sink --addr ADDR`: a loopback OTLP/HTTP collector that counts and acknowledges spans;
//! - `summarize RUNS.tsv`: the results table from the runs `bench/run.sh` measured.
//!
//! `bench/run.sh` builds this in release, runs every mode in interleaved rounds under `wrk` and
//! writes `bench/RESULTS.md`.

mod minimal;
mod modes;
mod sink;
mod summary;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "tracewire load benchmark: server modes, OTLP sink, results table")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve `GET /users/{id}` (and `/metrics` in the modes that have metrics).
    Serve {
        /// What wraps the handler.
        #[arg(long, value_enum)]
        mode: modes::Mode,
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:18080")]
        addr: SocketAddr,
        /// Base URL of the OTLP/HTTP collector (`/v1/traces` is appended).
        #[arg(long, default_value = "http://127.0.0.1:14318")]
        otlp_endpoint: String,
        /// Tokio worker threads.
        #[arg(long, default_value_t = 1)]
        workers: usize,
    },
    /// Count and acknowledge OTLP/HTTP spans: `POST /v1/traces`, `GET /count`, `GET /stats`.
    Sink {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:14318")]
        addr: SocketAddr,
    },
    /// Print the Markdown results table of a runs file written by `run.sh`.
    Summarize {
        /// The tab-separated runs file.
        runs: PathBuf,
    },
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Setup(#[from] modes::SetupError),
    #[error(transparent)]
    Parse(#[from] summary::ParseError),
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "tracewire-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Serve {
            mode,
            addr,
            otlp_endpoint,
            workers,
        } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers.max(1))
                .enable_all()
                .build()?;
            // Built outside the runtime: the default OTLP client is reqwest's blocking one,
            // which must not be created inside an async context.
            let (app, finish) = modes::app(mode, &otlp_endpoint, runtime.handle())?;
            runtime.block_on(serve(addr, app))?;
            // Flush while the runtime (where tracewire's export task runs) is still alive.
            finish();
            drop(runtime);
            Ok(())
        }
        Command::Sink { addr } => {
            // The sink shares the load generator's core; one worker is plenty.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()?;
            let counts = Arc::new(sink::SinkCounts::default());
            runtime.block_on(serve(addr, sink::router(counts)))?;
            Ok(())
        }
        Command::Summarize { runs } => {
            let text = std::fs::read_to_string(runs)?;
            let table = summary::markdown(&summary::summarize(&summary::parse_runs(&text)?));
            std::io::stdout().lock().write_all(table.as_bytes())?;
            Ok(())
        }
    }
}

/// Serves `app` on `addr` until SIGTERM or Ctrl-C, then lets requests in flight finish.
async fn serve(addr: SocketAddr, app: axum::Router) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(stopped())
        .await
}

async fn stopped() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
