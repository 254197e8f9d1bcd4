//! `telehub bridge serial`: runs one port from flags, or every `[[bridge.serial]]`
//! entry of the config file, until SIGINT or SIGTERM; then drains, and prints one JSON
//! summary line per port on stdout.

use super::UsageError;
use crate::bridge::{self, FlowControl, Parity, SerialPortSettings};
use crate::config::Settings;
use crate::domain::parse_duration;
use clap::{Args, Subcommand};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Subcommand, Debug)]
pub enum BridgeCommand {
    /// Forward serial lines (`[ts=..,][device=..,]sensor=value,...[*HH]`) to the hub as a
    /// gateway device. Without --port, runs every [[bridge.serial]] entry of --config.
    Serial(SerialArgs),
}

/// Flags override the matching setting of every config entry (or of the one --port).
#[derive(Args, Debug)]
pub struct SerialArgs {
    /// Serial device, e.g. /dev/ttyUSB0.
    #[arg(long, value_name = "PATH")]
    port: Option<PathBuf>,
    /// Line speed [default: 115200].
    #[arg(long, value_name = "N")]
    baud: Option<u32>,
    /// Hub base address, ws://HOST:PORT or wss://HOST:PORT (/v1/ingest is appended).
    #[arg(long, value_name = "URL")]
    hub: Option<String>,
    /// The gateway device's token.
    #[arg(
        long,
        value_name = "T",
        env = "TELEHUB_BRIDGE_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// 5, 6, 7 or 8 [default: 8].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(5..=8))]
    data_bits: Option<u8>,
    /// Parity bit [default: none].
    #[arg(long, value_enum)]
    parity: Option<Parity>,
    /// 1 or 2 [default: 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=2))]
    stop_bits: Option<u8>,
    /// Flow control; `hardware` needs RTS/CTS wired [default: none].
    #[arg(long, value_enum)]
    flow_control: Option<FlowControl>,
    /// Accept lines without a *HH checksum.
    #[arg(long)]
    no_checksum_required: bool,
    /// Take no commands: connect without ?commands=1 and write no !cmd lines.
    #[arg(long)]
    no_commands: bool,
    /// Readings buffered while the hub is unreachable [default: 100000].
    #[arg(long, value_name = "N")]
    buffer: Option<usize>,
    /// Keep unacked readings in FILE so a restart of the bridge loses nothing.
    #[arg(long, value_name = "FILE")]
    state_file: Option<PathBuf>,
    /// Extra CA certificate (PEM) to trust for wss://, e.g. a self-signed hub's.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// How often a summary line is logged [default: 60s].
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    stats_interval: Option<Duration>,
}

impl SerialArgs {
    fn apply(&self, s: &mut SerialPortSettings) {
        if let Some(p) = &self.port {
            s.port = p.clone();
        }
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = &self.$f { s.$f = v.clone(); } )* };
        }
        set!(
            baud,
            hub,
            token,
            data_bits,
            parity,
            stop_bits,
            flow_control,
            buffer
        );
        set!(stats_interval);
        if self.state_file.is_some() {
            s.state_file = self.state_file.clone();
        }
        if self.ca_file.is_some() {
            s.ca_file = self.ca_file.clone();
        }
        if self.no_checksum_required {
            s.checksum_required = false;
        }
        if self.no_commands {
            s.commands = false;
        }
    }
}

#[derive(Serialize)]
struct Summary {
    port: String,
    #[serde(flatten)]
    stats: bridge::StatsSnapshot,
}

pub async fn run(settings: Settings, cmd: &BridgeCommand) -> anyhow::Result<()> {
    let BridgeCommand::Serial(args) = cmd;
    let mut ports = match (&args.port, settings.bridge) {
        (Some(_), _) => vec![SerialPortSettings::default()],
        (None, Some(b)) if !b.serial.is_empty() => b.serial,
        (None, _) => {
            return Err(UsageError(
                "no port: give --port PATH --hub URL --token T, or list ports as [[bridge.serial]] entries in --config FILE".into(),
            )
            .into());
        }
    };
    for p in &mut ports {
        args.apply(p);
    }
    let all = bridge::BridgeSettings { serial: ports };
    all.validate()
        .map_err(|e| UsageError(e.to_string().replace("bridge.serial", "bridge serial")))?;
    let shutdown = CancellationToken::new();
    let mut running = Vec::new();
    for p in all.serial {
        match bridge::start_port(p, shutdown.clone()) {
            Ok(r) => running.push(r),
            Err(e) => {
                shutdown.cancel();
                return Err(e.into());
            }
        }
    }
    super::shutdown_signal().await;
    eprintln!("stopping: sending what is buffered (up to drain_timeout)…");
    shutdown.cancel();
    for r in running {
        let port = r.port.display().to_string();
        let stats = r.finished().await;
        println!("{}", serde_json::to_string(&Summary { port, stats })?);
    }
    Ok(())
}
