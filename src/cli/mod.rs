//! The `telehub` command line (docs/cli.md): argument definitions, exit codes, and
//! one module per command family. This is the binary edge: errors become one line
//! on stderr and exit code 1, usage errors exit code 2.
//!
//! May use: every module (the top layer, with `hub`).

mod alert;
mod alert_ops;
mod backup;
mod bridge;
mod command;
mod demo;
mod device;
mod device_config;
mod device_labels;
mod device_life;
mod export;
mod logging;
mod output;
mod query;
mod serve;
mod stats;
mod tail;

use crate::config::{LogFormat, LogSettings, Overrides, Settings};
use crate::domain::DeviceName;
use clap::{Parser, Subcommand};
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
    /// Log level (error, warn, info, debug, trace) or filter; overrides `[log] level`.
    #[arg(long, global = true, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Log format; overrides `[log] format`.
    #[arg(long, global = true, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
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
    /// Manage viewer, operator and admin tokens.
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
    /// Copy the SQLite database to FILE, consistent and checked, while the hub runs.
    Backup(backup::BackupArgs),
    /// Alert rules, current alerts and events (protocol.md §9).
    #[command(subcommand)]
    Alert(alert::AlertCommand),
    /// Send commands to devices, list, show and cancel them (docs/commands.md).
    #[command(subcommand, name = "command")]
    Commands(command::CommandCommand),
}

/// A mistake in how the command was called: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A device name from the command line; a bad one is a usage error.
pub(crate) fn device_name(s: &str) -> anyhow::Result<DeviceName> {
    DeviceName::parse(s).map_err(|e| UsageError(format!("device name {s:?} {e}")).into())
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `tail --server` reads no configuration (without it, the hub's listen address comes
    // from it); every other command loads it before logging starts.
    let settings = match &cli.command {
        Command::Tail(args) if args.has_server() => Ok(None),
        _ => settings(&cli).map(Some),
    };
    let log = match &settings {
        Ok(Some(s)) => s.log.clone(),
        _ => flag_log_settings(&cli),
    };
    logging::init(&log);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let result = settings.and_then(|settings| {
        // The serial bridge is a few I/O-bound tasks: one thread costs it the least CPU.
        let mut builder = match cli.command {
            Command::Bridge(_) => tokio::runtime::Builder::new_current_thread(),
            _ => tokio::runtime::Builder::new_multi_thread(),
        };
        let runtime = builder
            .enable_all()
            .build()
            .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
        runtime.block_on(run(cli, settings))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let refused = e
                .downcast_ref::<crate::storage::StorageError>()
                .is_some_and(|s| s.is_usage_error());
            let code = if refused || e.downcast_ref::<UsageError>().is_some() {
                2
            } else {
                1
            };
            eprintln!("telehub: {}", one_line(&e));
            ExitCode::from(code)
        }
    }
}

/// The error and its causes on one line, each said once: a cause whose text its
/// wrapper already quotes is left out.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

/// `[log]` from the flags alone, for `tail` and for reporting a configuration that failed to load.
fn flag_log_settings(cli: &Cli) -> LogSettings {
    let mut log = LogSettings::default();
    if let Some(l) = &cli.log_level {
        log.level = l.clone();
    }
    if let Some(f) = cli.log_format {
        log.format = f;
    }
    log
}

fn settings(cli: &Cli) -> anyhow::Result<Settings> {
    let listen = match &cli.command {
        Command::Serve(args) => args.listen.as_deref().map(serve::resolve).transpose()?,
        _ => None,
    };
    let overrides = Overrides {
        database_url: cli.database_url.clone(),
        listen,
        log_level: cli.log_level.clone(),
        log_format: cli.log_format,
    };
    Ok(Settings::load(cli.config.as_deref(), &overrides)?)
}

async fn run(cli: Cli, settings: Option<Settings>) -> anyhow::Result<()> {
    let s = || {
        settings
            .clone()
            .expect("loaded for every command but tail --server")
    };
    match &cli.command {
        Command::Serve(args) => serve::run(s(), args).await,
        Command::Migrate => {
            let s = s();
            let store = crate::storage::Store::open(&s.database).await?;
            store.close().await;
            eprintln!(
                "migrations applied to {}",
                crate::config::redact_url(&s.database.url)
            );
            Ok(())
        }
        Command::Device(cmd) => device::run_device(s(), cmd).await,
        Command::Token(cmd) => device::run_token(s(), cmd).await,
        Command::Query(args) => query::run(s(), args).await,
        Command::Tail(args) => tail::run(args, settings.as_ref()).await,
        Command::Bridge(cmd) => bridge::run(s(), cmd).await,
        Command::Export(args) => export::run(s(), args).await,
        Command::Stats(args) => stats::run(s(), args).await,
        Command::Backup(args) => backup::run(s(), args).await,
        Command::Alert(cmd) => alert::run(s(), cmd).await,
        Command::Commands(cmd) => command::run(s(), cmd).await,
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM; one owner for the hub, the simulator and
/// device programs: [`telehub_client::shutdown`].
pub use telehub_client::shutdown::shutdown_signal;
