//! A resilient device client for `/v1/ingest` (docs/protocol.md §2, simulator.md): what `firmware-sim`,
//! `telehub serve --demo` and the serial bridge use to deliver readings — over the
//! WebSocket, or ([`Transport`]) as HTTP requests to `POST /v1/ingest` or to the
//! line-protocol endpoint `/api/v2/write` (protocol.md §5).
//!
//! ```no_run
//! # async fn demo(reading: telehub_client::protocol::ingest::DeviceReading) -> Result<(), telehub_client::client::ClientError> {
//! use telehub_client::client::{ClientConfig, DeviceClient};
//! let client = DeviceClient::start(ClientConfig::new("ws://127.0.0.1:8080", "th_..."))?;
//! client.push(reading).ok();                  // never blocks; buffered until acked
//! let mut events = client.subscribe();        // connects, losses, refusals
//! let stats = client.shutdown(std::time::Duration::from_secs(5)).await; // drain, then stop
//! println!("{} of {} acked", stats.acked, stats.generated);
//! # Ok(()) }
//! ```
//!
//! How it works, module by module:
//! - `address`: the `--hub` base address (protocol.md §2) and TLS (rustls, ring, webpki roots plus
//!   an optional CA file for self-signed hubs); opens one authenticated socket.
//! - `outbox`: the bounded store-and-forward buffer of unacked readings. Full: the
//!   oldest unsent reading is dropped and counted. It also holds the in-flight messages.
//! - `flow`: when the next message may go out (window, linger, pauses), its size, and
//!   what an answer does to the outbox; the same for every transport.
//! - `session`: one open socket: sends messages with `id`s (a bounded in-flight
//!   window), matches the in-order replies, puts back what must be resent.
//! - `http`, `http_session`: the HTTP transports: one request per message, up to
//!   `max_inflight` at once, answers settled in sending order; a failed request is
//!   handled like a lost socket (everything in flight is resent after a backoff delay).
//! - `triage`: a refused message's readings: resend later, or give up only the
//!   reading (or device) the hub named and resend the others.
//! - `driver`: the client task: connect → session → exponential backoff with full
//!   jitter ([`crate::backoff`]) → connect again, until shut down; drains on shutdown.
//! - `persist`: optional snapshots of the outbox to a file (temp file + rename), so a
//!   restarted process resumes with what was not acked.
//! - `commands`: with [`ClientConfig::commands`] set, the device takes commands
//!   (docs/commands.md): acknowledged at once, run by the caller's handler once per id,
//!   answered until the hub confirms. On its WebSocket, or over HTTP by long-poll
//!   (`http_commands`, for the `http` and `line` transports).
//!
//! Ownership: the outbox is shared by the handle (which only appends) and the client
//! task (which takes, settles and puts back), under one `std` mutex held for O(batch)
//! work and never across an `.await`. A shared buffer rather than a channel, because
//! appending must never wait for the network and dropping the oldest reading needs the
//! whole buffer in view. [`tokio::sync::Notify`] wakes the task when readings arrive;
//! a `watch` channel carries run → drain → stop from the handle to the task.
//!
//! Every reading pushed ends in exactly one counter: `acked` (the hub committed it),
//! `nacked` (refused for good: never resent), `dropped` (buffer full) — or is still
//! `pending`.
//! Everything not acked is resent after a reconnect; the hub dedupes by
//! (device, sensor, ts), so a reading is stored once however often it is sent.
//!
//! May use: `domain`, `backoff`, `protocol`, `tls`.

mod address;
mod commands;
mod driver;
mod flow;
mod http;
mod http_commands;
mod http_session;
mod outbox;
mod persist;
mod session;
mod triage;

pub use crate::backoff::BackoffConfig;
pub use address::{ConnectFailure, HubAddress, Target, Ws};
pub use commands::{CommandHandler, CommandsConfig, ConfigHandler};

use crate::protocol::ingest::{DeviceReading, ErrorCode};
use outbox::Outbox;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, broadcast, watch};
use tokio::time::Instant;

/// Why a client could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Address(#[from] crate::protocol::address::AddressError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("the token cannot be sent in an HTTP header (it has spaces or control characters)")]
    Token,
    #[error("client setting: {0}")]
    Setting(String),
    #[error("client setting: {0}")]
    Backoff(#[from] crate::backoff::BackoffError),
    #[error("cannot read the saved outbox {path}: {source}")]
    Restore {
        path: String,
        source: std::io::Error,
    },
}

/// A reading pushed after the client was shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the device client has shut down")]
pub struct Closed;

/// Where the outbox is saved between runs.
#[derive(Debug, Clone)]
pub struct PersistConfig {
    /// The snapshot file; a `.tmp` sibling is written first, then renamed over it.
    pub path: PathBuf,
    /// How often a changed outbox is saved (and once more when the client stops).
    pub interval: Duration,
}

/// How readings travel to the hub.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Transport {
    /// One WebSocket to `/v1/ingest`, messages pipelined on it (protocol.md §2).
    #[default]
    WebSocket,
    /// `POST /v1/ingest`, one protocol.md §2 message per request (protocol.md §4).
    Http,
    /// `POST /api/v2/write?precision=us`, one line-protocol body per request (protocol.md §5);
    /// units are not carried.
    Line,
}

/// Everything a client needs; [`ClientConfig::new`] fills in the defaults.
#[derive(Clone)]
pub struct ClientConfig {
    /// The hub's base address, `ws[s]://HOST:PORT` (protocol.md §2); `/v1/ingest` is appended
    /// unless the address already ends with it. `http(s)://` is read as `ws(s)://`.
    pub hub: String,
    /// WebSocket (the default) or one of the HTTP transports.
    pub transport: Transport,
    /// A device (or gateway) token, sent as `Authorization: Bearer`.
    pub token: String,
    /// PEM certificates to trust besides the webpki roots: each is a root for what it
    /// signed, and a hub presenting exactly one of them is trusted as is (pinned), so a
    /// self-signed hub certificate works whatever its name or CA flag.
    pub ca_file: Option<PathBuf>,
    /// A name for logs (usually the device name).
    pub label: String,
    /// Unacked readings kept at most (queued + in flight); beyond it the oldest unsent is dropped.
    pub buffer_capacity: usize,
    /// Readings per message at most (the hub's `max_readings_per_message` is 1000 by default).
    pub max_batch: usize,
    /// Bytes per message at most (the hub's `max_frame_bytes` is 64 KiB by default).
    pub max_message_bytes: usize,
    /// Messages sent and not yet answered at most (the hub reads up to 64 ahead by
    /// default); over HTTP, concurrent requests (each on its own pooled connection).
    pub max_inflight: usize,
    /// How long a reading may wait for more to fill its message; zero sends at once.
    pub linger: Duration,
    /// Reconnect delays; also the pause after a `rate_limited` / `unavailable` refusal.
    pub backoff: BackoffConfig,
    /// TCP + TLS + WebSocket handshake, at most.
    pub connect_timeout: Duration,
    /// A message without a reply for this long (or a write stuck this long) means the
    /// connection is dead: reconnect and resend. Over HTTP: a request's time limit.
    pub reply_timeout: Duration,
    /// Nothing at all heard from the hub for this long (it pings every 20 s): reconnect.
    pub idle_timeout: Duration,
    /// Save the outbox to a file so a restarted process resumes (off by default).
    pub persist: Option<PersistConfig>,
    /// Events kept for a slow [`DeviceClient::subscribe`] receiver before it lags.
    pub event_capacity: usize,
    /// Stop connecting after a refusal that retrying cannot cure (401/403, an untrusted
    /// certificate, TLS on one side only): [`ClientEvent::GaveUp`]. Off: retry forever.
    pub give_up_when_permanent: bool,
    /// Take commands: over the WebSocket, connect with `?commands=1`; over HTTP (the
    /// `http` and `line` transports), long-poll `GET /v1/commands/next`. Each runs with
    /// this handler. Off (`None`): the hub never sends this client a command.
    pub commands: Option<CommandsConfig>,
}

impl ClientConfig {
    /// A configuration with the defaults: 10 000 buffered readings, messages of up to
    /// 100 readings and 60 000 bytes, 16 in flight, no linger, backoff 250 ms → 30 s.
    pub fn new(hub: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            hub: hub.into(),
            transport: Transport::WebSocket,
            token: token.into(),
            ca_file: None,
            label: String::new(),
            buffer_capacity: 10_000,
            max_batch: 100,
            max_message_bytes: 60_000,
            max_inflight: 16,
            linger: Duration::ZERO,
            backoff: BackoffConfig::default(),
            connect_timeout: Duration::from_secs(10),
            reply_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
            persist: None,
            event_capacity: 64,
            give_up_when_permanent: false,
            commands: None,
        }
    }

    fn validate(&self) -> Result<(), ClientError> {
        let bad = |m: &str| Err(ClientError::Setting(m.into()));
        if self.buffer_capacity == 0 || self.max_batch == 0 || self.max_inflight == 0 {
            return bad("buffer_capacity, max_batch and max_inflight must be ≥ 1");
        }
        if self.max_message_bytes < 256 {
            return bad("max_message_bytes must be ≥ 256");
        }
        if self.connect_timeout.is_zero()
            || self.reply_timeout.is_zero()
            || self.idle_timeout.is_zero()
        {
            return bad("connect_timeout, reply_timeout and idle_timeout must be > 0");
        }
        if self.persist.as_ref().is_some_and(|p| p.interval.is_zero()) {
            return bad("persist.interval must be > 0");
        }
        if let Some(c) = &self.commands {
            if c.remember == 0 || c.max_running == 0 || c.max_sends == 0 {
                return bad("commands: remember, max_running and max_sends must be ≥ 1");
            }
            if c.resend_after.is_zero() {
                return bad("commands: resend_after must be > 0");
            }
        }
        Ok(self.backoff.validate()?)
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("hub", &self.hub)
            .field("transport", &self.transport)
            .field("token", &"***")
            .field("label", &self.label)
            .field("buffer_capacity", &self.buffer_capacity)
            .field("max_batch", &self.max_batch)
            .field("max_inflight", &self.max_inflight)
            .field("persist", &self.persist)
            .field("commands", &self.commands)
            .finish_non_exhaustive()
    }
}

/// The client's counters, in readings (except `reconnects`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Taken into the buffer: pushed, plus those restored from a saved outbox.
    pub generated: u64,
    /// Committed by the hub (in an `ack`).
    pub acked: u64,
    /// Refused for good (a `nack` other than `unavailable` / `rate_limited`).
    pub nacked: u64,
    /// Dropped because the buffer was full.
    pub dropped: u64,
    /// Connections opened after the first one (HTTP: requests answered again after a
    /// failed one, once any had been answered).
    pub reconnects: u64,
    /// Still buffered (queued or in flight).
    pub pending: u64,
    /// Whether a socket is open right now (HTTP: the last request was answered).
    pub connected: bool,
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        self.generated += o.generated;
        self.acked += o.acked;
        self.nacked += o.nacked;
        self.dropped += o.dropped;
        self.reconnects += o.reconnects;
        self.pending += o.pending;
        self.connected |= o.connected;
    }
}

/// What happened to the connection, for callers that log or show it.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    Connected,
    /// An open socket was lost; everything unacked will be resent.
    Disconnected {
        reason: String,
    },
    /// A connection attempt failed; the next one is in `retry_in`.
    ConnectFailed {
        reason: String,
        retry_in: Duration,
    },
    /// A connection attempt failed in a way retrying cannot cure; with
    /// [`ClientConfig::give_up_when_permanent`] the client stops connecting (its readings
    /// stay unacked). Follows the attempt's `ConnectFailed`.
    GaveUp {
        reason: String,
    },
    /// The hub refused `readings` readings for good.
    Refused {
        readings: usize,
        error: ErrorCode,
        detail: String,
    },
}

/// Extra time [`DeviceClient::shutdown`] gives the task past its drain deadline.
const GRACE: Duration = Duration::from_secs(2);

/// Run → drain (until a deadline) → stop; sent by the handle, read by the task.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Run,
    Drain { deadline: Instant },
    Stop,
}

/// State shared by the handle(s) and the client task.
struct Shared {
    outbox: Mutex<Outbox>,
    /// Readings were pushed (notify_one: a push while the task is busy is not lost).
    wake: Notify,
    connected: AtomicBool,
    reconnects: AtomicU64,
    events: broadcast::Sender<ClientEvent>,
    /// The command side, when the client takes commands.
    commands: Option<Arc<commands::CommandSide>>,
    /// Asks an open session to close and connect again ([`ReadingSender::reconnect`]).
    reconnect: Notify,
}

impl Shared {
    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn emit(&self, e: ClientEvent) {
        let _ = self.events.send(e);
    }
    fn stats(&self) -> Stats {
        let mut s = self.outbox().stats();
        s.reconnects = self.reconnects.load(Ordering::Relaxed);
        s.connected = self.connected.load(Ordering::Relaxed);
        s
    }
}

/// A cheap, cloneable handle that only pushes readings.
#[derive(Clone)]
pub struct ReadingSender {
    shared: Arc<Shared>,
}

impl ReadingSender {
    /// Buffers one reading; never waits. When the buffer is full the oldest unsent
    /// reading is dropped (counted in [`Stats::dropped`]).
    pub fn push(&self, reading: DeviceReading) -> Result<(), Closed> {
        self.push_all(std::iter::once(reading))
    }

    /// Buffers several readings under one lock, and wakes the client task once.
    pub fn push_all(
        &self,
        readings: impl IntoIterator<Item = DeviceReading>,
    ) -> Result<(), Closed> {
        let now = Instant::now();
        {
            let mut ob = self.shared.outbox();
            if ob.is_closed() {
                return Err(Closed);
            }
            for r in readings {
                ob.push(r, now);
            }
        }
        self.shared.wake.notify_one();
        Ok(())
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Closes the open connection (if any) and connects again, as after a lost one
    /// (a simulated `reboot`); what is unacked is resent.
    pub fn reconnect(&self) {
        self.shared.reconnect.notify_one();
    }
}

/// A running client: push readings, read stats and events, shut down.
///
/// Dropping it stops the client task without draining; the outbox is still saved
/// when persistence is on. Prefer [`DeviceClient::shutdown`].
pub struct DeviceClient {
    sender: ReadingSender,
    mode: watch::Sender<Mode>,
    task: tokio::task::JoinHandle<()>,
}

impl DeviceClient {
    /// Checks the configuration, restores a saved outbox, and starts the client task
    /// (on the current tokio runtime), which connects at once and keeps reconnecting.
    pub fn start(config: ClientConfig) -> Result<Self, ClientError> {
        config.validate()?;
        let link = driver::Link::new(&config)?;
        let mut outbox = Outbox::new(config.buffer_capacity);
        if let Some(p) = &config.persist {
            let (readings, skipped) =
                persist::load(&p.path).map_err(|source| ClientError::Restore {
                    path: p.path.display().to_string(),
                    source,
                })?;
            if skipped > 0 {
                tracing::warn!(path = %p.path.display(), skipped, "unreadable lines in the saved outbox were skipped");
            }
            if !readings.is_empty() {
                tracing::info!(path = %p.path.display(), readings = readings.len(), "resuming unacked readings");
            }
            outbox.restore(readings, Instant::now());
        }
        let commands = match &config.commands {
            None => None,
            Some(c) => {
                let book = match &config.persist {
                    None => commands::Book::default(),
                    Some(p) => persist::load_commands(&p.path, c.remember).map_err(|source| {
                        ClientError::Restore {
                            path: persist::commands_path(&p.path).display().to_string(),
                            source,
                        }
                    })?,
                };
                Some(commands::CommandSide::new(c.clone(), book))
            }
        };
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        let shared = Arc::new(Shared {
            outbox: Mutex::new(outbox),
            wake: Notify::new(),
            connected: AtomicBool::new(false),
            reconnects: AtomicU64::new(0),
            events,
            commands,
            reconnect: Notify::new(),
        });
        let (mode, mode_rx) = watch::channel(Mode::Run);
        let span = tracing::debug_span!("client", label = %config.label);
        let task = tokio::spawn(tracing::Instrument::instrument(
            driver::drive(shared.clone(), Arc::new(config), link, mode_rx),
            span,
        ));
        Ok(Self {
            sender: ReadingSender { shared },
            mode,
            task,
        })
    }

    /// A handle for pushing readings from other tasks.
    pub fn sender(&self) -> ReadingSender {
        self.sender.clone()
    }

    /// See [`ReadingSender::push`].
    pub fn push(&self, reading: DeviceReading) -> Result<(), Closed> {
        self.sender.push(reading)
    }

    /// See [`ReadingSender::push_all`].
    pub fn push_all(
        &self,
        readings: impl IntoIterator<Item = DeviceReading>,
    ) -> Result<(), Closed> {
        self.sender.push_all(readings)
    }

    pub fn stats(&self) -> Stats {
        self.sender.stats()
    }

    /// Connection events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ClientEvent> {
        self.sender.shared.events.subscribe()
    }

    /// Stops taking readings, keeps sending (and reconnecting) until everything is
    /// acked or refused or `drain` has passed, closes the socket, saves what is left
    /// (with persistence on) and returns the final counters.
    pub async fn shutdown(self, drain: Duration) -> Stats {
        self.sender.shared.outbox().close();
        let _ = self.mode.send(Mode::Drain {
            deadline: Instant::now() + drain,
        });
        let mut task = self.task;
        // The task ends by itself at the deadline (every wait in it is bounded by it);
        // these guards only cover a bug there.
        if tokio::time::timeout(drain + GRACE, &mut task)
            .await
            .is_err()
        {
            let _ = self.mode.send(Mode::Stop);
            if tokio::time::timeout(GRACE, &mut task).await.is_err() {
                tracing::warn!("device client task did not stop; aborting it");
                task.abort();
            }
        }
        self.sender.stats()
    }
}
