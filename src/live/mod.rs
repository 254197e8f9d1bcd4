//! The live feed (contract §3): stored readings and device status fanned out to
//! dashboard sockets.
//!
//! Readings are broadcast **after commit**: the storage writer publishes what each
//! transaction newly stored, so a refused or duplicate reading is never shown.
//!
//! Owner: the fan-out task ([`LiveHub::start`]) receives committed batches and status
//! events (broadcast channels from the writer and the session registry), serializes
//! each reading once, and pushes the shared bytes into every matching client's bounded
//! [`queue::ClientQueue`] without ever waiting. Each client's socket task (in the
//! transport, `server::live`) drains its queue into frames ([`crate::protocol::live::frames`]). A slow client only loses its own readings (counted,
//! then reported as `lagged`); one stuck past `stuck_timeout` is closed with 1008.
//!
//! Other hubs of a cluster (see [`crate::mqtt`]) feed what *they* committed through
//! [`LiveHub::deliver_remote`] and [`LiveHub::deliver_remote_status`]: the same
//! serialization and matching, so a dashboard cannot tell a remote reading from a local one.
//!
//! Channels: receives [`CommittedBatch`]es (sender: the storage writer) and
//! [`StatusEvent`]s (sender: the session registry); either closing ends the task.
//!
//! May use: `domain`, `protocol`, `config`, `metrics`. No transport: no axum here.

pub mod queue;

use crate::config::LiveSettings;
use crate::domain::{CommittedBatch, StatusEvent};
use crate::metrics::Metrics;
use crate::protocol::live::{Pattern, reading_object, status_frame};
use bytes::Bytes;
use parking_lot::Mutex;
use queue::{ClientQueue, Item};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Registry {
    next_id: u64,
    clients: HashMap<u64, Client>,
}

struct Client {
    patterns: Vec<Pattern>,
    queue: Arc<ClientQueue>,
}

/// The fan-out's shared registry of dashboard clients.
#[derive(Clone)]
pub struct LiveHub {
    registry: Arc<Mutex<Registry>>,
    /// Clients registered now (read by every socket writer, so kept outside the lock).
    count: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
    client_queue: usize,
}

impl LiveHub {
    /// Starts the fan-out task; it ends at `shutdown` or when the writer is gone.
    pub fn start(
        settings: &LiveSettings,
        metrics: Arc<Metrics>,
        mut committed: broadcast::Receiver<CommittedBatch>,
        mut status: broadcast::Receiver<StatusEvent>,
        shutdown: CancellationToken,
    ) -> Self {
        let hub = LiveHub {
            registry: Arc::default(),
            count: Arc::default(),
            metrics: metrics.clone(),
            client_queue: settings.client_queue,
        };
        let registry = hub.registry.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    r = committed.recv() => match r {
                        Ok(batch) => {
                            // Take every batch already waiting too: one push per client
                            // for all of them (batches pile up only when we fall behind).
                            let mut batches = vec![batch];
                            while batches.len() < MAX_MERGED_BATCHES {
                                match committed.try_recv() {
                                    Ok(b) => batches.push(b),
                                    Err(_) => break,
                                }
                            }
                            fan_out(&registry, &metrics, &batches);
                        }
                        Err(RecvError::Lagged(n)) => {
                            tracing::warn!(batches = n, "live fan-out fell behind the writer");
                            for c in registry.lock().clients.values() {
                                c.queue.add_lagged(n);
                            }
                        }
                        Err(RecvError::Closed) => break,
                    },
                    s = status.recv() => if let Ok(ev) = s {
                        send_status(&registry, &ev);
                    },
                }
            }
        });
        hub
    }

    /// Adds a client with no subscriptions; dropping the handle removes it.
    pub fn register(&self) -> LiveClient {
        let queue = Arc::new(ClientQueue::new(self.client_queue));
        let mut r = self.registry.lock();
        r.next_id += 1;
        let id = r.next_id;
        r.clients.insert(
            id,
            Client {
                patterns: Vec::new(),
                queue: queue.clone(),
            },
        );
        self.count.fetch_add(1, Ordering::Relaxed);
        LiveClient {
            id,
            registry: self.registry.clone(),
            count: self.count.clone(),
            queue,
        }
    }

    /// Fans out readings another hub committed, exactly as if committed here.
    pub fn deliver_remote(&self, batch: &CommittedBatch) {
        fan_out(&self.registry, &self.metrics, std::slice::from_ref(batch));
    }

    /// Sends another hub's device status event to matching clients.
    pub fn deliver_remote_status(&self, ev: &StatusEvent) {
        send_status(&self.registry, ev);
    }

    pub fn clients(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

/// One dashboard client's registration.
pub struct LiveClient {
    id: u64,
    registry: Arc<Mutex<Registry>>,
    count: Arc<AtomicUsize>,
    pub queue: Arc<ClientQueue>,
}

impl LiveClient {
    /// Adds patterns (duplicates ignored); returns the number now subscribed.
    pub fn subscribe(&self, patterns: Vec<Pattern>) -> usize {
        let mut r = self.registry.lock();
        let c = r.clients.get_mut(&self.id).expect("registered");
        for p in patterns {
            if !c.patterns.contains(&p) {
                c.patterns.push(p);
            }
        }
        c.patterns.len()
    }

    pub fn unsubscribe(&self, patterns: &[Pattern]) {
        let mut r = self.registry.lock();
        let c = r.clients.get_mut(&self.id).expect("registered");
        c.patterns.retain(|p| !patterns.contains(p));
    }

    pub fn pattern_count(&self) -> usize {
        self.registry
            .lock()
            .clients
            .get(&self.id)
            .map_or(0, |c| c.patterns.len())
    }
}

impl Drop for LiveClient {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
        self.queue.close();
        self.registry.lock().clients.remove(&self.id);
    }
}

/// Committed batches fanned out together at most, when the fan-out has fallen behind.
const MAX_MERGED_BATCHES: usize = 256;

/// Serializes each reading once and queues the shared bytes for every matching client,
/// with one push per client for all of `batches`.
fn fan_out(registry: &Mutex<Registry>, metrics: &Metrics, batches: &[CommittedBatch]) {
    let anyone = |r: &Registry| r.clients.values().any(|c| !c.patterns.is_empty());
    if !anyone(&registry.lock()) {
        // No subscriber: skip serializing (MQTT- or bulk-only hubs spend nothing here).
        return;
    }
    let encoded: Vec<(&str, &str, Bytes)> = batches
        .iter()
        .flat_map(|b| b.iter())
        .map(|s| {
            (
                s.device.as_str(),
                s.reading.sensor.as_str(),
                reading_object(s),
            )
        })
        .collect();
    let registry = registry.lock();
    let (mut delivered, mut dropped) = (0u64, 0u64);
    for c in registry.clients.values().filter(|c| !c.patterns.is_empty()) {
        let matching: Vec<Item> = encoded
            .iter()
            .filter(|(d, s, _)| c.patterns.iter().any(|p| p.matches(d, s)))
            .map(|(_, _, b)| Item::Reading(b.clone()))
            .collect();
        if matching.is_empty() {
            continue;
        }
        let n = matching.len() as u64;
        let lost = c.queue.push_all(matching);
        delivered += n - lost;
        dropped += lost;
    }
    metrics.live_delivered.inc_by(delivered);
    metrics.live_dropped.inc_by(dropped);
}

fn send_status(registry: &Mutex<Registry>, ev: &StatusEvent) {
    let frame = status_frame(ev);
    for c in registry.lock().clients.values() {
        if c.patterns
            .iter()
            .any(|p| p.matches_device(ev.device.as_str()))
        {
            c.queue.push_all([Item::Frame(frame.clone())]);
        }
    }
}
