//! `telehub bridge serial` (docs/protocol.md §6): forwards the lines of microcontrollers on a
//! serial port to the hub's `/v1/ingest`, as the gateway device whose token it holds.
//!
//! The path of a line, module by module:
//! serial port ([`port`]) → lines ([`framing`]) → readings ([`crate::protocol::serial`])
//! or command answers ([`commands`])
//! → per-device batches and the store-and-forward buffer ([`outbox`] of [`message`]s,
//! kept across restarts by [`journal`])
//! → hub connection ([`forward`] over [`uplink`]).
//!
//! Each port runs as two tasks with one channel between them: the reader owns the
//! serial device, the forwarder owns the buffer and the socket, so an unplugged port
//! never disturbs the hub connection and a hub outage never stops the port being read.
//! [`stats`] counts what happened; a summary is logged every `stats_interval`.
//!
//! Commands from the hub go the other way: the forwarder hands each to the reader,
//! which writes it to the port as a `!cmd` line ([`commands`]). The devices' results the
//! hub has not confirmed are kept beside the state file ([`result_log`]); both files are
//! [`append_file`]s.
//!
//! May use: `domain`, `protocol`, `config`, `client` (a transport: nothing of the hub's inside).

pub mod append_file;
pub mod commands;
pub mod forward;
pub mod framing;
pub mod journal;
pub mod message;
pub mod outbox;
pub mod port;
pub mod result_log;
pub mod stats;
pub mod uplink;

pub use crate::config::{BridgeSettings, FlowControl, Parity, SerialPortSettings};
pub use stats::{PortStats, StatsSnapshot};

use crate::protocol::serial::LineRules;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Parsed lines waiting for the forwarder at most; the forwarder drains this at once
/// into its buffer, so it only fills if the forwarder is stuck writing to the hub.
const LINE_QUEUE: usize = 1024;

/// Why a bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("{0}")]
    Settings(String),
    #[error(transparent)]
    Hub(#[from] crate::client::ClientError),
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
}

/// One bridged port, running in the background until `shutdown` is cancelled.
pub struct RunningPort {
    pub port: PathBuf,
    pub stats: Arc<PortStats>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningPort {
    /// Waits for the tasks to end (after shutdown: the buffer drained or kept in the
    /// state file) and returns the final counters.
    pub async fn finished(self) -> StatsSnapshot {
        for t in self.tasks {
            let _ = t.await;
        }
        self.stats.snapshot()
    }
}

/// Starts the reader and forwarder of one port. Fails only on settings or a state
/// file that cannot be used; a missing port or hub is retried in the background.
pub fn start_port(
    settings: SerialPortSettings,
    shutdown: CancellationToken,
) -> Result<RunningPort, BridgeError> {
    settings
        .validate()
        .map_err(|e| BridgeError::Settings(e.to_string()))?;
    let hub = Arc::new(uplink::target(&settings)?);
    let (journal, recovered) = match &settings.state_file {
        Some(path) => {
            let (j, recovered) = journal::Journal::open(path)?;
            (Some(j), recovered)
        }
        None => (None, Vec::new()),
    };
    let (results, results_recovered) = match &settings.state_file {
        Some(path) => {
            let path = result_log::path_beside(path);
            let (log, recovered) = result_log::ResultLog::open(&path, settings.command_queue)?;
            (Some(log), recovered)
        }
        None => (None, Vec::new()),
    };
    let settings = Arc::new(settings);
    let stats = Arc::new(PortStats::default());
    let limits = outbox::OutboxLimits {
        capacity: settings.buffer,
        batch: settings.batch,
        linger: settings.linger,
        max_inflight: settings.max_inflight,
    };
    let outbox = outbox::Outbox::new(limits, journal, recovered, stats.clone());
    let (tx, rx) = mpsc::channel(LINE_QUEUE);
    let (to_port, from_forwarder) = mpsc::channel(settings.command_queue);
    let span = tracing::info_span!("bridge", port = %settings.port.display());
    let reader = port::PortReader {
        settings: settings.clone(),
        rules: LineRules {
            checksum_required: settings.checksum_required,
            max_clock_skew: settings.max_clock_skew,
            max_readings: settings.batch,
        },
        lines: tx,
        commands: from_forwarder,
        stats: stats.clone(),
        shutdown: shutdown.clone(),
    };
    let forwarder = forward::Forwarder {
        settings: settings.clone(),
        hub,
        outbox,
        lines: rx,
        commands: commands::Relay::new(to_port, settings.command_queue, results, results_recovered),
        stats: stats.clone(),
        shutdown: shutdown.clone(),
    };
    let tasks = vec![
        tokio::spawn(reader.run().instrument(span.clone())),
        tokio::spawn(forwarder.run().instrument(span.clone())),
        tokio::spawn(log_stats(stats.clone(), settings.stats_interval, shutdown).instrument(span)),
    ];
    Ok(RunningPort {
        port: settings.port.clone(),
        stats,
        tasks,
    })
}

/// Logs a summary line every `every` until shutdown.
async fn log_stats(stats: Arc<PortStats>, every: std::time::Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let s = stats.snapshot();
        tracing::info!(
            lines = s.lines_read,
            bad = ?s.bad_lines,
            forwarded = s.forwarded,
            refused = ?s.refused,
            buffered = s.buffered,
            dropped = s.dropped,
            reconnects = s.reconnects,
            reopens = s.reopens,
            "serial bridge stats"
        );
    }
}
