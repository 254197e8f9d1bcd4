//! Presence: which devices are online, and the transport each last used, whatever the
//! transport (docs/protocol.md §17).
//!
//! A device is online while it holds a WebSocket to the hub, or for `[presence] timeout`
//! after its last stored reading over HTTP, the line protocol, MQTT or a gateway. The
//! decisions are made by the pure [`table::Table`]; [`Presence`] is its shell: one mutex
//! held only for table updates, and status events sent in the order they were decided.
//!
//! Fed by: the session registry (sockets opened and closed) and the ingest pipeline (each
//! committed message, with its transport). Read by `/v1/devices`, the live feed, MQTT's
//! cluster announcements and the alert engine.
//!
//! Channel: every change goes out on the `broadcast` sender given to [`Presence::new`]
//! (receivers: the live fan-out, MQTT egress and the alert engine). [`Presence::run`]
//! turns expiries into offline changes; it ends at shutdown.
//!
//! A device's `presence_timeout` label overrides `[presence] timeout` for it; [`labels`]
//! keeps the table's overrides equal to the stored labels.
//!
//! Bounded: at most `[presence] max_devices` devices are tracked.
//!
//! May use: `domain`, `config`, `storage`.

pub mod labels;
mod table;

use crate::config::PresenceSettings;
use crate::domain::{DeviceName, StatusEvent, Timestamp, Transport};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use table::{Change, Table};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

/// The hub's presence table and where its changes go.
pub struct Presence {
    table: Mutex<Table>,
    status: broadcast::Sender<StatusEvent>,
    /// Woken when a device came online by a reading (it may expire before the
    /// expiry task's current deadline).
    wake: Notify,
    /// Woken when a device's labels changed on this hub (see [`labels::follow`]).
    labels: Notify,
}

impl Presence {
    pub fn new(settings: &PresenceSettings, status: broadcast::Sender<StatusEvent>) -> Arc<Self> {
        Arc::new(Self {
            table: Mutex::new(Table::new(settings.timeout, settings.max_devices)),
            status,
            wake: Notify::new(),
            labels: Notify::new(),
        })
    }

    /// A WebSocket of `device` opened.
    pub fn connected(&self, device: &DeviceName) {
        let mut t = self.table.lock();
        self.send(t.connected(device, Timestamp::now()));
    }

    /// A WebSocket of `device` closed.
    pub fn disconnected(&self, device: &DeviceName) {
        let mut t = self.table.lock();
        self.send(t.disconnected(device, Timestamp::now()));
    }

    /// Readings of these devices, received over these transports, were stored.
    pub fn heard<'a>(&self, devices: impl IntoIterator<Item = (&'a DeviceName, Transport)>) {
        let now = Timestamp::now();
        let mut t = self.table.lock();
        for (device, transport) in devices {
            if let Some(ev) = t.heard(device, transport, now) {
                self.send(Some(ev));
                self.wake.notify_one();
            }
        }
    }

    /// The devices with a presence timeout of their own (every other one's is
    /// `[presence] timeout`).
    pub fn set_timeouts(&self, timeouts: HashMap<DeviceName, Duration>) {
        self.table.lock().set_timeouts(timeouts);
        // An expiry may now be earlier than the one `run` waits for.
        self.wake.notify_one();
    }

    /// A device's labels were changed on this hub: its timeout is read again now rather
    /// than at the next `[presence] labels_poll`.
    pub fn labels_changed(&self) {
        self.labels.notify_one();
    }

    pub fn is_online(&self, device: &str) -> bool {
        self.table.lock().is_online(device)
    }

    pub fn online_devices(&self) -> Vec<DeviceName> {
        self.table.lock().online_devices()
    }

    /// The transport `device` last used, if this hub saw it since it started.
    pub fn transport(&self, device: &str) -> Option<Transport> {
        self.table.lock().transport(device)
    }

    /// Announces the devices whose presence timed out, each when it does; ends when
    /// `stop` is cancelled.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        // With nothing to expire, sleep until woken.
        const IDLE: Duration = Duration::from_secs(3600);
        loop {
            let next = self.table.lock().next_expiry();
            let wait = next.map_or(IDLE, |t| until(t, Timestamp::now()));
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.wake.notified() => continue,
                _ = tokio::time::sleep(wait) => {}
            }
            let mut t = self.table.lock();
            for ev in t.expire(Timestamp::now()) {
                self.send(Some(ev));
            }
        }
    }

    /// Sends a change (called with the table locked, so changes go out in order).
    fn send(&self, change: Change) {
        if let Some(ev) = change {
            // No receiver (a hub without live clients yet) is not an error.
            let _ = self.status.send(ev);
        }
    }
}

/// How long from `now` until `t` (zero when it has passed).
fn until(t: Timestamp, now: Timestamp) -> Duration {
    Duration::from_micros(t.as_micros().saturating_sub(now.as_micros()).max(0) as u64)
}
