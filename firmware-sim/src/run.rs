//! `firmware-sim run` (docs/simulator.md): one simulated device per `NAME TOKEN` line of a
//! tokens file, each a [`DeviceClient`] fed by a [`telehub_client::sim`] signal generator,
//! over the WebSocket or (`--transport http|line`) HTTP requests (protocol.md §4).
//!
//! Per device: one generator task (samples every `1/rate` s on the device clock) and the
//! client's own task (buffer, pipelined sends, resend, reconnect). Memory per device is
//! bounded by `--buffer` readings plus one socket with small buffers.
//!
//! On exit — end of `--duration`, or Ctrl-C / SIGTERM — generators stop, every client
//! drains for up to `--drain-timeout` (a second signal cuts that short), and one JSON
//! line with the summed counters goes to stdout.
//!
//! With `--commands`, each device also takes commands (docs/commands.md) and carries
//! them out as [`telehub_client::sim::commands`] says: `set_interval`, `reboot`, `fail`.

use crate::causes::Causes;
use anyhow::{Context, bail};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use telehub_client::client::{
    BackoffConfig, ClientConfig, CommandsConfig, DeviceClient, PersistConfig, ReadingSender, Stats,
    Transport,
};
use telehub_client::domain::DeviceName;
use telehub_client::sim::commands::{SimControl, play_commanded};
use telehub_client::sim::{self, Kind, Pace, SimDevice};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The hub's base address, ws://HOST:PORT or wss://HOST:PORT (`/v1/ingest` is appended;
    /// http(s):// is the same address).
    #[arg(long)]
    hub: String,
    /// How readings travel: one WebSocket per device (ws), `POST /v1/ingest` requests
    /// (http), or InfluxDB line protocol to `/api/v2/write` (line; units are not sent).
    #[arg(long, value_enum, default_value_t = TransportArg::Ws)]
    transport: TransportArg,
    /// A file of `NAME TOKEN` lines, as `telehub device add --count N --prefix P --tokens-out FILE` writes.
    #[arg(long, value_name = "FILE")]
    tokens: PathBuf,
    /// Readings per second per sensor (fractions allowed: 0.1 is one every 10 s).
    #[arg(long, default_value = "1", value_parser = rate)]
    rate: f64,
    /// Readings per message at most.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    batch: u64,
    /// Stop after this long (e.g. 30s, 5m); without it, run until Ctrl-C or SIGTERM.
    #[arg(long, value_parser = duration)]
    duration: Option<Duration>,
    /// The device clocks' offset from true time, e.g. 2s or -1500ms.
    #[arg(long, default_value = "0s", allow_hyphen_values = true, value_parser = signed_micros)]
    clock_skew: i64,
    /// Unacked readings kept per device at most; beyond it the oldest unsent are dropped.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    buffer: u64,
    /// Keep each device's unacked readings in DIR/NAME.outbox, resumed by the next run.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// How often buffered readings are saved under --state-dir.
    #[arg(long, default_value = "2s", value_parser = positive_duration)]
    save_every: Duration,
    /// Messages awaiting the hub's reply per device at most (http, line: concurrent requests).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1000))]
    max_inflight: u64,
    /// How long a reading may wait for its message to fill up (0s: send at once).
    #[arg(long, default_value = "100ms", value_parser = duration)]
    linger: Duration,
    /// At exit, how long to keep sending what is not acked yet.
    #[arg(long, default_value = "10s", value_parser = duration)]
    drain_timeout: Duration,
    /// A connection attempt (TCP, TLS, WebSocket handshake) gives up after this long.
    #[arg(long, default_value = "10s", value_parser = positive_duration)]
    connect_timeout: Duration,
    /// No reply for this long while messages await one: reconnect and resend.
    #[arg(long, default_value = "30s", value_parser = positive_duration)]
    reply_timeout: Duration,
    /// The first reconnect delay's upper bound (it doubles per failure, with full jitter).
    #[arg(long, default_value = "250ms", value_parser = positive_duration)]
    backoff_initial: Duration,
    /// The longest reconnect delay.
    #[arg(long, default_value = "30s", value_parser = positive_duration)]
    backoff_max: Duration,
    /// Picks one of many plausible signal histories (the same seed replays the same values).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also trust this PEM certificate (a hub with a self-signed certificate).
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// Take commands (over the WebSocket, or long-polled over HTTP with `--transport http`
    /// or `line`): `set_interval {"seconds": N}` changes the send interval, `reboot`
    /// reconnects, `fail` answers `error`, anything else `rejected`.
    #[arg(long)]
    commands: bool,
}

/// `--transport`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportArg {
    Ws,
    Http,
    Line,
}

impl From<TransportArg> for Transport {
    fn from(t: TransportArg) -> Self {
        match t {
            TransportArg::Ws => Transport::WebSocket,
            TransportArg::Http => Transport::Http,
            TransportArg::Line => Transport::Line,
        }
    }
}

/// A flag value `run` cannot use, and what to give instead.
#[derive(Debug, PartialEq, thiserror::Error)]
enum ArgError {
    #[error("{0:?}: expected a number of readings per second above 0, at most 100000")]
    Rate(String),
    #[error("{0:?}: {1} (e.g. 500ms, 30s, 5m)")]
    Duration(String, humantime::DurationError),
    #[error("{0:?}: must be more than zero")]
    Zero(String),
    #[error("{0:?} is too large")]
    TooLarge(String),
}

fn rate(s: &str) -> Result<f64, ArgError> {
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= 100_000.0 => Ok(r),
        _ => Err(ArgError::Rate(s.to_owned())),
    }
}

fn duration(s: &str) -> Result<Duration, ArgError> {
    humantime::parse_duration(s.trim()).map_err(|e| ArgError::Duration(s.to_owned(), e))
}

fn positive_duration(s: &str) -> Result<Duration, ArgError> {
    duration(s).and_then(|d| {
        if d.is_zero() {
            Err(ArgError::Zero(s.to_owned()))
        } else {
            Ok(d)
        }
    })
}

fn signed_micros(s: &str) -> Result<i64, ArgError> {
    let (sign, rest) = match s.trim().strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, s.trim().trim_start_matches('+')),
    };
    let d = duration(rest)?;
    i64::try_from(d.as_micros())
        .map(|us| sign * us)
        .map_err(|_| ArgError::TooLarge(s.to_owned()))
}

/// Reads `NAME TOKEN` lines; blank lines and `#` comments are skipped.
fn read_tokens(path: &Path) -> anyhow::Result<Vec<(DeviceName, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read tokens file {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(name), Some(token), None) = (parts.next(), parts.next(), parts.next()) else {
            bail!("{}:{}: expected `NAME TOKEN`", path.display(), i + 1);
        };
        let name = DeviceName::parse(name).map_err(|e| {
            anyhow::anyhow!("{}:{}: device name {name:?} {e}", path.display(), i + 1)
        })?;
        out.push((name, token.to_owned()));
    }
    if out.is_empty() {
        bail!("no devices in {}", path.display());
    }
    Ok(out)
}

impl RunArgs {
    fn client_config(
        &self,
        name: &DeviceName,
        token: &str,
        control: Option<&Arc<SimControl>>,
    ) -> ClientConfig {
        let mut c = ClientConfig::new(self.hub.clone(), token);
        c.transport = self.transport.into();
        c.label = name.to_string();
        c.ca_file = self.ca_file.clone();
        c.buffer_capacity = self.buffer as usize;
        c.max_batch = self.batch as usize;
        c.max_inflight = self.max_inflight as usize;
        c.linger = self.linger;
        c.connect_timeout = self.connect_timeout;
        c.reply_timeout = self.reply_timeout;
        c.give_up_when_permanent = true;
        c.backoff = BackoffConfig {
            initial: self.backoff_initial,
            max: self.backoff_max,
        };
        c.persist = self.state_dir.as_ref().map(|dir| PersistConfig {
            path: dir.join(format!("{name}.outbox")),
            interval: self.save_every,
        });
        c.commands = control.map(|c| CommandsConfig {
            config: Some(c.config_handler()),
            ..CommandsConfig::new(c.handler())
        });
        c
    }
}

pub async fn run(a: RunArgs) -> anyhow::Result<()> {
    let period = Duration::from_secs_f64(1.0 / a.rate);
    let devices = read_tokens(&a.tokens)?;
    if let Some(dir) = &a.state_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create state dir {}", dir.display()))?;
    }
    raise_open_file_limit(devices.len());
    let stop = CancellationToken::new();
    let mut clients = Vec::with_capacity(devices.len());
    let mut generators = JoinSet::new();
    let pace = Pace {
        period,
        clock_skew_us: a.clock_skew,
        align: false,
    };
    let causes = Causes::default();
    for (name, token) in &devices {
        let control = a.commands.then(|| SimControl::new(period));
        let client = DeviceClient::start(a.client_config(name, token, control.as_ref()))
            .with_context(|| format!("device {name}"))?;
        causes.watch(name.to_string(), client.subscribe());
        let device = SimDevice::new(name.as_str(), Kind::for_name(name.as_str()), a.seed);
        let (sender, stop) = (client.sender(), stop.clone());
        generators.spawn(async move {
            // Spread the fleet over one period instead of sampling all at once.
            let offset = period.mul_f64(rand::random::<f64>());
            tokio::select! {
                _ = tokio::time::sleep(offset) => {}
                _ = stop.cancelled() => return,
            }
            match control {
                None => {
                    let _ = sim::play(&device, &sender, pace, stop).await;
                }
                Some(control) => {
                    let _ = play_commanded(&device, &sender, pace, &control, stop).await;
                }
            }
        });
        clients.push(client);
    }
    let senders: Vec<ReadingSender> = clients.iter().map(DeviceClient::sender).collect();
    let progress = std::io::stderr()
        .is_terminal()
        .then(|| tokio::spawn(show_progress(senders.clone(), stop.clone())));
    tracing::debug!(devices = devices.len(), hub = %a.hub, "simulating");

    tokio::select! {
        _ = sleep_or_forever(a.duration) => {}
        _ = telehub_client::shutdown::shutdown_signal() => {}
    }
    stop.cancel();
    while generators.join_next().await.is_some() {}
    if let Some(p) = progress {
        let _ = p.await;
    }

    let drain = a.drain_timeout;
    let draining = futures_util::future::join_all(clients.into_iter().map(|c| c.shutdown(drain)));
    let totals = tokio::select! {
        all = draining => all.into_iter().fold(Stats::default(), |mut t, s| { t += s; t }),
        _ = telehub_client::shutdown::shutdown_signal() => {
            eprintln!("firmware-sim: second signal: stopping without waiting for the drain");
            total(&senders)
        }
    };
    causes.report();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string(&Summary::from(totals))?)?;
    out.flush()?;
    if totals.pending > 0 {
        let gave_up = match causes.gave_up() {
            0 => String::new(),
            n => format!("; {n} device(s) gave up (see above)"),
        };
        let saved = if a.state_dir.is_some() {
            " (saved in the state dir)"
        } else {
            ""
        };
        bail!(
            "{} readings were neither acked nor refused by the end of the drain{saved}{gave_up}",
            totals.pending
        );
    }
    Ok(())
}

/// The exit line of simulator.md, keys in the contract's order.
#[derive(serde::Serialize)]
struct Summary {
    generated: u64,
    acked: u64,
    nacked: u64,
    dropped: u64,
    reconnects: u64,
}

impl From<Stats> for Summary {
    fn from(s: Stats) -> Self {
        Self {
            generated: s.generated,
            acked: s.acked,
            nacked: s.nacked,
            dropped: s.dropped,
            reconnects: s.reconnects,
        }
    }
}

fn total(senders: &[ReadingSender]) -> Stats {
    senders.iter().fold(Stats::default(), |mut t, s| {
        t += s.stats();
        t
    })
}

/// A one-line status on stderr, rewritten every second (only on a terminal).
async fn show_progress(senders: Vec<ReadingSender>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => break,
        }
        let connected = senders.iter().filter(|s| s.stats().connected).count();
        let t = total(&senders);
        eprint!(
            "\r\x1b[2K{connected}/{} connected · generated {} · acked {} · pending {} · dropped {} · nacked {} · reconnects {}",
            senders.len(),
            t.generated,
            t.acked,
            t.pending,
            t.dropped,
            t.nacked,
            t.reconnects
        );
    }
    eprint!("\r\x1b[2K");
}

async fn sleep_or_forever(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Each device holds a socket (and, with --state-dir, briefly a file): lift the soft
/// open-file limit to the hard one when the fleet needs it.
fn raise_open_file_limit(devices: usize) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        let want = (devices as libc::rlim_t)
            .saturating_mul(2)
            .saturating_add(64);
        if lim.rlim_cur >= want {
            return;
        }
        lim.rlim_cur = want.min(lim.rlim_max);
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur < want {
            tracing::warn!(
                limit = lim.rlim_cur,
                devices,
                "the open-file limit may be too low for this many devices (raise it with ulimit -n)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_files_are_read_line_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tokens.txt");
        std::fs::write(&f, "# fleet\nsim-1 th_a\n\n  sim-2   th_b  \n").unwrap();
        let t = read_tokens(&f).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!((t[1].0.as_str(), t[1].1.as_str()), ("sim-2", "th_b"));
        std::fs::write(&f, "sim-1\n").unwrap();
        assert!(read_tokens(&f).unwrap_err().to_string().contains(":1:"));
        std::fs::write(&f, "bad name th_a\n").unwrap();
        assert!(read_tokens(&f).is_err());
        std::fs::write(&f, "# nothing\n").unwrap();
        assert!(
            read_tokens(&f)
                .unwrap_err()
                .to_string()
                .contains("no devices")
        );
    }

    #[test]
    fn skews_may_be_negative() {
        assert_eq!(signed_micros("-1500ms"), Ok(-1_500_000));
        assert_eq!(signed_micros("2s"), Ok(2_000_000));
        assert_eq!(signed_micros("0s"), Ok(0));
        assert!(signed_micros("soon").is_err());
    }
}
