//! `telehub command send|list|show|cancel` (docs/commands.md), straight on storage: a
//! running hub finds a command created here within `commands.poll_interval`. A bad
//! request (unknown device, params not an object or over 8 KiB, ttl over 7 d) is a
//! usage error, exit 2; `send --wait` exits 0 only when the command `succeeded`.

use super::UsageError;
use super::output::{Format, csv_field, table};
use crate::commands::request::{Spec, parse_wait};
use crate::commands::{self, CommandError};
use crate::config::Settings;
use crate::domain::{DeviceName, Timestamp, parse_time_arg};
use crate::storage::commands::{CommandFilter, CommandRow, CommandState};
use crate::storage::{OpenMode, StorageError, Store};
use clap::{Args, Subcommand};
use serde_json::{Map, Value as Json};
use std::io::Write;
use std::time::Duration;

#[derive(Subcommand, Debug)]
pub enum CommandCommand {
    /// Send a command to a device; prints its id (with --wait, the command as JSON).
    Send(SendArgs),
    /// List commands, newest first.
    List(ListArgs),
    /// Show one command as JSON.
    Show { id: String },
    /// Cancel a command that has not ended; prints it as JSON.
    Cancel { id: String },
}

#[derive(Args, Debug)]
pub struct SendArgs {
    device: String,
    /// The command's name (the sensor-name rule), e.g. set_interval.
    name: String,
    /// A parameter: K=V, V read as JSON when it is (10, true, "x"), else as a string.
    #[arg(long = "param", value_name = "K=V")]
    param: Vec<String>,
    /// All parameters as a JSON object (--param values are added to it).
    #[arg(long, value_name = "JSON")]
    params: Option<String>,
    /// How long the command may wait for its device (default `commands.default_ttl`, at most 7d).
    #[arg(long, value_name = "DUR")]
    ttl: Option<String>,
    /// Wait up to DUR (at most 60s) for the device's answer; print the command as JSON.
    #[arg(long, value_name = "DUR")]
    wait: Option<String>,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[arg(long)]
    device: Option<String>,
    #[arg(long, value_enum)]
    state: Option<CommandState>,
    /// Only commands created at or after this time (RFC 3339, `now`, or relative like -1h).
    #[arg(long, allow_hyphen_values = true)]
    from: Option<String>,
    /// At most this many (the newest).
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// table (default on a terminal), csv (default otherwise) or json (one object per line).
    #[arg(long, value_enum)]
    format: Option<Format>,
}

pub async fn run(settings: Settings, cmd: &CommandCommand) -> anyhow::Result<()> {
    let store = Store::open_with(&settings.database, OpenMode::Existing).await?;
    let result = command(&store, &settings, cmd).await;
    store.close().await;
    result
}

async fn command(store: &Store, settings: &Settings, cmd: &CommandCommand) -> anyhow::Result<()> {
    match cmd {
        CommandCommand::Send(args) => send(store, settings, args).await,
        CommandCommand::List(args) => list(store, args).await,
        CommandCommand::Show { id } => {
            let row = store
                .command(id)
                .await?
                .ok_or_else(|| CommandError::NotFound(id.clone()))?;
            println!("{}", serde_json::to_string_pretty(&row)?);
            Ok(())
        }
        CommandCommand::Cancel { id } => {
            let row = commands::cancel(store, id).await?;
            println!("{}", serde_json::to_string_pretty(&row)?);
            Ok(())
        }
    }
}

async fn send(store: &Store, settings: &Settings, args: &SendArgs) -> anyhow::Result<()> {
    let usage = |e: CommandError| -> anyhow::Error {
        match e {
            CommandError::Invalid(m) => UsageError(m).into(),
            CommandError::Storage(StorageError::NoSuchDevice(d)) => {
                UsageError(format!("no device {d}; see `telehub device list`")).into()
            }
            other => other.into(),
        }
    };
    let device = DeviceName::parse(&args.device)
        .map_err(|e| UsageError(format!("device name {:?} {e}", args.device)))?;
    let params = params_of(args)?;
    let spec = Spec::parse(
        &args.name,
        Some(params),
        args.ttl.as_deref(),
        &settings.commands,
    )
    .map_err(usage)?;
    let wait = parse_wait(args.wait.as_deref()).map_err(usage)?;
    let row = commands::create(store, &settings.commands, &[device], &spec)
        .await
        .map_err(usage)?
        .pop()
        .expect("one command per device");
    let Some(wait) = wait else {
        println!("{}", row.id);
        return Ok(());
    };
    let row = wait_terminal(store, &row.id, wait).await?;
    println!("{}", serde_json::to_string(&row)?);
    match row.state {
        CommandState::Succeeded => Ok(()),
        state if state.is_terminal() => anyhow::bail!(
            "command {} ended {}{}",
            row.id,
            state.as_str(),
            row.error.map(|e| format!(": {e}")).unwrap_or_default()
        ),
        state => anyhow::bail!(
            "command {} is still {} after {}",
            row.id,
            state.as_str(),
            humantime::format_duration(wait)
        ),
    }
}

/// `--params JSON`, then each `--param K=V` over it.
fn params_of(args: &SendArgs) -> anyhow::Result<Json> {
    let mut params = match &args.params {
        None => Map::new(),
        Some(text) => match serde_json::from_str(text) {
            Ok(Json::Object(m)) => m,
            _ => return Err(UsageError("--params: expected a JSON object".into()).into()),
        },
    };
    for p in &args.param {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| UsageError(format!("--param {p:?}: expected K=V")))?;
        let v = serde_json::from_str(v).unwrap_or_else(|_| Json::String(v.to_owned()));
        params.insert(k.to_owned(), v);
    }
    Ok(Json::Object(params))
}

/// Polls storage until the command is terminal or `wait` is over (the hub that
/// delivers it may be another process).
async fn wait_terminal(store: &Store, id: &str, wait: Duration) -> anyhow::Result<CommandRow> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let row = store
            .command(id)
            .await?
            .ok_or_else(|| CommandError::NotFound(id.to_owned()))?;
        if row.state.is_terminal() || tokio::time::Instant::now() >= deadline {
            return Ok(row);
        }
        let next = tokio::time::Instant::now() + Duration::from_millis(100);
        tokio::time::sleep_until(next.min(deadline)).await;
    }
}

async fn list(store: &Store, args: &ListArgs) -> anyhow::Result<()> {
    let device = args
        .device
        .as_deref()
        .map(|d| DeviceName::parse(d).map_err(|e| UsageError(format!("--device {d:?} {e}"))))
        .transpose()?;
    let from = args
        .from
        .as_deref()
        .map(|f| {
            parse_time_arg(f, Timestamp::now()).map_err(|e| UsageError(format!("--from: {e}")))
        })
        .transpose()?;
    let rows = store
        .list_commands(&CommandFilter {
            device,
            state: args.state,
            from,
            before: None,
            limit: i64::from(args.limit.max(1)),
        })
        .await?;
    let mut out = std::io::stdout().lock();
    let cells = |r: &CommandRow| {
        vec![
            r.id.clone(),
            r.device.clone(),
            r.name.clone(),
            r.state.as_str().to_owned(),
            r.created.to_rfc3339(),
            r.attempts.to_string(),
            r.error.clone().unwrap_or_default(),
        ]
    };
    let header = [
        "ID", "DEVICE", "NAME", "STATE", "CREATED", "ATTEMPTS", "ERROR",
    ];
    match Format::or_default(args.format) {
        Format::Table => table(
            &mut out,
            &header,
            &rows.iter().map(cells).collect::<Vec<_>>(),
        )?,
        Format::Json => {
            for r in &rows {
                writeln!(out, "{}", serde_json::to_string(r)?)?;
            }
        }
        Format::Csv => {
            writeln!(out, "id,device,name,state,created,attempts,error")?;
            for r in &rows {
                let line: Vec<String> =
                    cells(r).iter().map(|c| csv_field(c).into_owned()).collect();
                writeln!(out, "{}", line.join(","))?;
            }
        }
    }
    Ok(())
}
