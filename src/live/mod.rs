//! The live feed (docs/protocol.md §3): stored readings and device status fanned out to
//! dashboard sockets, with offsets and resume.
//!
//! Readings are recorded **after commit**: the storage writer publishes what each
//! transaction newly stored, so a refused or duplicate reading is never shown.
//!
//! Owner: the fan-out task ([`LiveHub::start`]) receives committed batches and appends
//! them to the one hub-wide [`replay::ReplayBuffer`] (each reading gets the next offset;
//! nothing is copied per client), evicting beyond `live.history`. Each client is a
//! [`replay::Cursor`] into it: its socket task (in the transport, `server::live`) reads
//! the readings matching its patterns when the socket can take them, serialized once and
//! shared. A slow client is served from the replay buffer while it is within it and told
//! `lagged` (the exact count of matching readings it lost) only when an eviction passes
//! its cursor; one stuck past `stuck_timeout` is closed with 1008. Status events go to
//! each matching client's small [`queue::ClientQueue`].
//!
//! Other hubs of a cluster (see [`crate::mqtt`]) feed what *they* committed through
//! [`LiveHub::deliver_remote`] and [`LiveHub::deliver_remote_status`]: the same replay buffer
//! (remote readings get offsets here too), so a dashboard cannot tell a remote reading
//! from a local one. Offsets are this hub's own: resume works on the same hub only.
//!
//! Channels: receives [`CommittedBatch`]es (sender: the storage writer),
//! [`StatusEvent`]s (sender: the session registry) and [`AlertEvent`]s (sender: the alert
//! engine; queued like status frames for clients that sent `{"alerts": true}`); the
//! commit stream closing ends the task. Command changes come through
//! [`LiveHub::deliver_command`] (from the hub's wiring, which owns the commands
//! broadcast), queued for clients that sent `{"commands": true}`.
//! Clients are woken by the replay buffer's `appended` watch and their queue's notify.
//!
//! May use: `domain`, `protocol`, `config`, `metrics`. No transport: no axum here.

pub mod queue;
pub mod replay;

use crate::config::LiveSettings;
use crate::domain::{AlertEvent, CommittedBatch, StatusEvent};
use crate::metrics::Metrics;
use crate::protocol::live::{Pattern, alert_frame, status_frame};
use bytes::Bytes;
use parking_lot::Mutex;
use queue::ClientQueue;
use replay::{Cursor, Read, ReplayBuffer, Resume};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Registry {
    next_id: u64,
    clients: HashMap<u64, Client>,
}

/// What the fan-out needs of a client: its patterns (status events, and counting what an
/// eviction makes it lose), its cursor and its status queue.
struct Client {
    patterns: Vec<Pattern>,
    /// Whether it asked for alert events (`{"alerts": true}`).
    alerts: bool,
    /// Whether it asked for command changes (`{"commands": true}`).
    commands: bool,
    cursor: Arc<Cursor>,
    queue: Arc<ClientQueue>,
}

/// The fan-out's shared registry of dashboard clients, and the replay buffer they read.
#[derive(Clone)]
pub struct LiveHub {
    registry: Arc<Mutex<Registry>>,
    replay: Arc<ReplayBuffer>,
    /// Clients registered now (read by every socket writer, so kept outside the lock).
    count: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

/// How often the replay buffer is trimmed to its age bound when nothing is committed.
const TRIM_EVERY: Duration = Duration::from_secs(1);

impl LiveHub {
    /// Starts the fan-out task; it ends at `shutdown` or when the writer is gone.
    pub fn start(
        settings: &LiveSettings,
        metrics: Arc<Metrics>,
        mut committed: broadcast::Receiver<CommittedBatch>,
        mut status: broadcast::Receiver<StatusEvent>,
        mut alerts: broadcast::Receiver<AlertEvent>,
        shutdown: CancellationToken,
    ) -> Self {
        let replay = ReplayBuffer::new(settings.history.readings, settings.history.age);
        let hub = LiveHub {
            registry: Arc::default(),
            replay: Arc::new(replay),
            count: Arc::default(),
            metrics,
        };
        let fan_out = hub.clone();
        tokio::spawn(async move {
            let mut trim = tokio::time::interval(TRIM_EVERY);
            let mut alerts_open = true;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    r = committed.recv() => match r {
                        Ok(batch) => {
                            // Take every batch already waiting too: one append for all.
                            let mut batches = vec![batch];
                            while batches.len() < MAX_MERGED_BATCHES {
                                match committed.try_recv() {
                                    Ok(b) => batches.push(b),
                                    Err(_) => break,
                                }
                            }
                            fan_out.append(&batches);
                        }
                        Err(RecvError::Lagged(n)) => {
                            // Lost before they got offsets: every client is told (in
                            // batches, not readings; with a replay buffer this rarely happens).
                            tracing::warn!(batches = n, "live fan-out fell behind the writer");
                            for c in fan_out.registry.lock().clients.values() {
                                c.cursor.add_lagged(n);
                            }
                        }
                        Err(RecvError::Closed) => break,
                    },
                    s = status.recv() => if let Ok(ev) = s {
                        send_status(&fan_out.registry, &ev);
                    },
                    a = alerts.recv(), if alerts_open => match a {
                        Ok(ev) => send_alert(&fan_out.registry, &ev),
                        Err(RecvError::Lagged(n)) => tracing::warn!(events = n, "live fan-out missed alert events"),
                        Err(RecvError::Closed) => alerts_open = false,
                    },
                    _ = trim.tick() => fan_out.append(&[]),
                }
            }
        });
        hub
    }

    /// Appends to the replay buffer; an eviction that passes a client's cursor counts what
    /// it lost. Updates its metrics (`live_history_*`, named before the replay buffer was).
    fn append(&self, batches: &[CommittedBatch]) {
        let registry = self.registry.lock();
        let before = self.replay.stats().next;
        self.replay
            .append(batches, Instant::now(), |first, readings| {
                for c in registry.clients.values() {
                    ReplayBuffer::pass(&c.cursor, &c.patterns, first, readings);
                }
            });
        let behind = registry
            .clients
            .values()
            .filter(|c| c.cursor.next() < before)
            .count();
        drop(registry);
        let m = &self.metrics;
        let stats = self.replay.stats();
        m.live_history_readings.set(stats.readings as i64);
        m.live_history_bytes.set(stats.bytes as i64);
        m.live_history_oldest_offset.set(stats.oldest as i64);
        m.live_clients_behind.set(behind as i64);
    }

    /// Adds a client with no subscriptions, at the end of the replay buffer; dropping the
    /// handle removes it.
    pub fn register(&self) -> LiveClient {
        let queue = Arc::new(ClientQueue::new());
        let cursor = Arc::new(self.replay.cursor_at_end());
        let mut r = self.registry.lock();
        r.next_id += 1;
        let id = r.next_id;
        r.clients.insert(
            id,
            Client {
                patterns: Vec::new(),
                alerts: false,
                commands: false,
                cursor: cursor.clone(),
                queue: queue.clone(),
            },
        );
        self.count.fetch_add(1, Ordering::Relaxed);
        LiveClient {
            id,
            hub: self.clone(),
            patterns: Vec::new(),
            cursor,
            appended: self.replay.watch(),
            queue,
        }
    }

    /// Records readings another hub committed, exactly as if committed here: they get
    /// offsets in this hub's replay buffer.
    pub fn deliver_remote(&self, batch: &CommittedBatch) {
        self.append(std::slice::from_ref(batch));
    }

    /// Sends another hub's device status event to matching clients.
    pub fn deliver_remote_status(&self, ev: &StatusEvent) {
        send_status(&self.registry, ev);
    }

    pub fn clients(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// This start's epoch (random per start).
    pub fn epoch(&self) -> &str {
        self.replay.epoch()
    }
}

/// What a client's socket should write next: status frames, then `lagged`, then readings.
#[derive(Debug, Default)]
pub struct Batch {
    pub status: Vec<Bytes>,
    pub lagged: u64,
    pub readings: Vec<(u64, Bytes)>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.status.is_empty() && self.lagged == 0 && self.readings.is_empty()
    }
}

/// One dashboard client's registration: its patterns and cursor, owned by its socket task.
pub struct LiveClient {
    id: u64,
    hub: LiveHub,
    patterns: Vec<Pattern>,
    cursor: Arc<Cursor>,
    appended: watch::Receiver<u64>,
    pub queue: Arc<ClientQueue>,
}

impl LiveClient {
    /// Adds patterns (duplicates ignored). With `resume` (epoch, offset), the client
    /// reads every matching reading after that offset, if the replay buffer still holds them,
    /// and the answer says whether it does; without, a first subscription reads from now.
    pub fn subscribe(
        &mut self,
        patterns: Vec<Pattern>,
        resume: Option<(&str, u64)>,
    ) -> Option<Resume> {
        let first = self.patterns.is_empty();
        for p in patterns {
            if !self.patterns.contains(&p) {
                self.patterns.push(p);
            }
        }
        self.sync_patterns();
        let replay = &self.hub.replay;
        match resume {
            Some((epoch, offset)) => {
                let answer = replay.resume(&self.cursor, epoch, offset);
                match answer {
                    Resume::Resumed => self.hub.metrics.live_resumes_ok.inc(),
                    Resume::NotResumed { .. } => self.hub.metrics.live_resumes_failed.inc(),
                };
                Some(answer)
            }
            None => {
                if first {
                    replay.skip_to_end(&self.cursor);
                }
                None
            }
        }
    }

    /// Turns alert events (protocol.md §9) on or off for this client.
    pub fn set_alerts(&mut self, on: bool) {
        let mut r = self.hub.registry.lock();
        r.clients.get_mut(&self.id).expect("registered").alerts = on;
    }

    /// Turns command changes (docs/commands.md) on or off for this client.
    pub fn set_commands(&mut self, on: bool) {
        let mut r = self.hub.registry.lock();
        r.clients.get_mut(&self.id).expect("registered").commands = on;
    }

    pub fn unsubscribe(&mut self, patterns: &[Pattern]) {
        self.patterns.retain(|p| !patterns.contains(p));
        self.sync_patterns();
    }

    fn sync_patterns(&self) {
        let mut r = self.hub.registry.lock();
        let c = r.clients.get_mut(&self.id).expect("registered");
        c.patterns.clone_from(&self.patterns);
    }

    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }

    /// Waits until there is something to look at: readings past the cursor, a lag to
    /// report, or status frames. Cancel-safe.
    pub async fn ready(&mut self) {
        loop {
            let status = self.queue.notified();
            let next = *self.appended.borrow_and_update();
            if self.cursor.next() < next || self.cursor.lagged() > 0 || !self.queue.is_empty() {
                return;
            }
            tokio::select! {
                _ = status => {}
                r = self.appended.changed() => if r.is_err() {
                    std::future::pending::<()>().await;
                },
            }
        }
    }

    /// Takes the status frames queued and at most `limit` matching readings from the
    /// cursor (possibly nothing, when none matched).
    pub fn take(&mut self, limit: usize) -> Batch {
        let status = self.queue.take();
        let Read { readings, lagged } = self.hub.replay.read(&self.cursor, &self.patterns, limit);
        let m = &self.hub.metrics;
        m.live_delivered.inc_by(readings.len() as u64);
        m.live_dropped.inc_by(lagged);
        Batch {
            status,
            lagged,
            readings,
        }
    }
}

impl Drop for LiveClient {
    fn drop(&mut self) {
        self.hub.count.fetch_sub(1, Ordering::Relaxed);
        self.queue.close();
        self.hub.registry.lock().clients.remove(&self.id);
    }
}

/// Committed batches appended together at most, when the fan-out has fallen behind.
const MAX_MERGED_BATCHES: usize = 256;

fn send_status(registry: &Mutex<Registry>, ev: &StatusEvent) {
    let frame = status_frame(ev);
    for c in registry.lock().clients.values() {
        if c.patterns
            .iter()
            .any(|p| p.matches_device(ev.device.as_str()))
        {
            c.queue.push(frame.clone());
        }
    }
}

impl LiveHub {
    /// Queues a `{"command": …}` frame (a command as stored after a change) for every
    /// client that asked for commands. Called by one task, in the order of the changes.
    pub fn deliver_command(&self, frame: Bytes) {
        for c in self.registry.lock().clients.values().filter(|c| c.commands) {
            c.queue.push(frame.clone());
        }
    }
}

/// Queues an alert event for every client that asked for alerts.
fn send_alert(registry: &Mutex<Registry>, ev: &AlertEvent) {
    let frame = alert_frame(ev);
    for c in registry.lock().clients.values().filter(|c| c.alerts) {
        c.queue.push(frame.clone());
    }
}
