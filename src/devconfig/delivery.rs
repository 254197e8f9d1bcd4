//! The delivery task: the one owner of "which connections does each device have". It
//! hands each connection of a device the newest desired version: those this hub set
//! ([`Input::Changed`], at once) and those found by polling storage every
//! `device_config.poll_interval` (set by the CLI or another hub), the way the commands
//! dispatcher finds commands created elsewhere.
//!
//! Channels: [`Input`]s in (`mpsc`, bounded by `device_config.queue`; senders: the
//! [`super::ConfigHandle`] clones and each [`super::device::ConfigFeed`]'s drop; shutdown
//! ends the task). Out, per connection, a `watch` holding the newest version not yet
//! written (so nothing queues behind a slow device); a version is handed over only when
//! it is newer than the one the connection holds.

use crate::config::DeviceConfigSettings;
use crate::protocol::commands::ConfigDocument;
use crate::storage::devconfig::DesiredChange;
use crate::storage::{StorageError, Store};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Desired versions read from storage per statement.
const PAGE: i64 = 1000;
/// How far back (in `seq`) each poll looks again: on PostgreSQL a version may commit
/// after one written later did, so a poll from the last `seq` seen alone could miss it.
pub const LOOKBACK: i64 = 256;

/// Where a connection's configurations go: the newest not yet written to it.
pub type Deliver = watch::Sender<Option<Arc<ConfigDocument>>>;

/// An event for the delivery task.
#[derive(Debug)]
pub enum Input {
    /// This hub stored a new desired version of `device`.
    Changed {
        device: String,
        doc: Arc<ConfigDocument>,
    },
    /// A connection of `device` that takes configurations opened.
    Connected {
        device: String,
        connection: u64,
        deliver: Deliver,
    },
    Disconnected {
        device: String,
        connection: u64,
    },
}

pub struct Delivery {
    store: Store,
    poll_interval: Duration,
    /// The newest history `seq` seen.
    last_seq: i64,
    connections: Connections,
}

/// Each device's connections that take configurations, by connection number.
type Connections = HashMap<String, Vec<(u64, Deliver)>>;

impl Delivery {
    pub async fn load(store: Store, settings: &DeviceConfigSettings) -> Result<Self, StorageError> {
        let last_seq = store.last_config_seq().await?;
        Ok(Self {
            store,
            poll_interval: settings.poll_interval,
            last_seq,
            connections: HashMap::new(),
        })
    }

    pub async fn run(mut self, mut inputs: mpsc::Receiver<Input>, shutdown: CancellationToken) {
        let mut poll = tokio::time::interval(self.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                input = inputs.recv() => match input {
                    Some(input) => self.apply(input),
                    None => break,
                },
                _ = poll.tick() => {
                    if let Err(e) = self.poll().await {
                        tracing::warn!(error = %e, "device config: cannot look for new desired versions");
                    }
                }
            }
        }
    }

    fn apply(&mut self, input: Input) {
        match input {
            Input::Changed { device, doc } => deliver(&self.connections, &device, &doc),
            Input::Connected {
                device,
                connection,
                deliver,
            } => self
                .connections
                .entry(device)
                .or_default()
                .push((connection, deliver)),
            Input::Disconnected { device, connection } => {
                if let Some(conns) = self.connections.get_mut(&device) {
                    conns.retain(|(c, _)| *c != connection);
                    if conns.is_empty() {
                        self.connections.remove(&device);
                    }
                }
            }
        }
    }

    /// Hands the versions written since the last poll (and a little before) to the
    /// connections of their devices.
    async fn poll(&mut self) -> Result<(), StorageError> {
        let connections = &self.connections;
        poll_desired(&self.store, &mut self.last_seq, |c| {
            if connections.contains_key(&c.device) {
                let doc = ConfigDocument {
                    version: c.version,
                    document: c.desired,
                };
                deliver(connections, &c.device, &Arc::new(doc));
            }
        })
        .await
    }
}

/// Calls `each` with the desired versions written since `last_seq` (and up to
/// `LOOKBACK` before it, so some come again), oldest first, and advances `last_seq` to
/// the newest seen.
pub async fn poll_desired(
    store: &Store,
    last_seq: &mut i64,
    mut each: impl FnMut(DesiredChange),
) -> Result<(), StorageError> {
    let mut after = last_seq.saturating_sub(LOOKBACK);
    loop {
        let changes = store.desired_changes(after, PAGE).await?;
        let full = changes.len() as i64 == PAGE;
        let Some(last) = changes.last().map(|c| c.cursor) else {
            return Ok(());
        };
        for c in changes {
            *last_seq = (*last_seq).max(c.cursor);
            each(c);
        }
        if !full {
            return Ok(());
        }
        after = last;
    }
}

/// Gives `doc` to every connection of `device` that holds an older version.
fn deliver(connections: &Connections, device: &str, doc: &Arc<ConfigDocument>) {
    for (_, tx) in connections.get(device).into_iter().flatten() {
        tx.send_if_modified(|held| {
            let newer = held.as_ref().is_none_or(|h| h.version < doc.version);
            if newer {
                *held = Some(doc.clone());
            }
            newer
        });
    }
}
