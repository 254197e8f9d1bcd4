//! The `telehub` command line (contract §5): argument definitions, exit codes, and
//! one module per command family. This is the binary edge: errors become one line
//! on stderr and exit code 1, usage errors exit code 2.
//!
//! May use: every module (the top layer, with `hub`).

mod bridge;
mod demo;
mod device;
mod export;
mod output;
mod query;
mod serve;
mod stats;
mod tail;

use crate::config::{Overrides, Settings};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "telehub", version, about = "IoT sensor telemetry hub")]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Storage: sqlite://PATH or postgres://user@host/db (overrides the config).
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the hub.
    Serve(serve::ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Manage devices and their tokens.
    #[command(subcommand)]
    Device(device::DeviceCommand),
    /// Manage viewer and admin tokens.
    #[command(subcommand)]
    Token(device::TokenCommand),
    /// Query stored readings (works while the hub runs).
    Query(query::QueryArgs),
    /// Print the live feed: one line per reading and per device status change.
    Tail(tail::TailArgs),
    /// Forward devices' lines to the hub (`bridge serial`).
    #[command(subcommand)]
    Bridge(bridge::BridgeCommand),
    /// Stream every raw reading of a range as CSV or NDJSON, in constant memory.
    Export(export::ExportArgs),
    /// Show what storage holds: rows, series, devices, time extents, disk use.
    Stats(stats::StatsArgs),
}

/// A mistake in how the command was called: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The serial bridge is a few I/O-bound tasks: one thread costs it the least CPU.
    let mut builder = match cli.command {
        Command::Bridge(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("telehub: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = if e.downcast_ref::<UsageError>().is_some() {
                2
            } else {
                1
            };
            eprintln!("telehub: {}", one_line(&e));
            ExitCode::from(code)
        }
    }
}

fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("telehub=info,warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn settings(cli: &Cli, listen: Option<SocketAddr>) -> anyhow::Result<Settings> {
    let overrides = Overrides {
        database_url: cli.database_url.clone(),
        listen,
    };
    Ok(Settings::load(cli.config.as_deref(), &overrides)?)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Serve(args) => serve::run(settings(&cli, args.listen)?, args).await,
        Command::Migrate => {
            let s = settings(&cli, None)?;
            let store = crate::storage::Store::open(&s.database).await?;
            store.close().await;
            eprintln!(
                "migrations applied to {}",
                crate::config::redact_url(&s.database.url)
            );
            Ok(())
        }
        Command::Device(cmd) => device::run_device(settings(&cli, None)?, cmd).await,
        Command::Token(cmd) => device::run_token(settings(&cli, None)?, cmd).await,
        Command::Query(args) => query::run(settings(&cli, None)?, args).await,
        Command::Tail(args) => tail::run(args).await,
        Command::Bridge(cmd) => bridge::run(settings(&cli, None)?, cmd).await,
        Command::Export(args) => export::run(settings(&cli, None)?, args).await,
        Command::Stats(args) => stats::run(settings(&cli, None)?, args).await,
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (Ctrl-C only where SIGTERM cannot be watched).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
