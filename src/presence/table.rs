//! The presence table: a pure state machine, no clock and no I/O. It takes what the
//! transports report (a socket opened or closed, a reading was stored) and the time, and
//! returns the status changes to announce; the shell in `presence` does the rest.
//!
//! A device is online while it has a WebSocket open, or until `timeout` after its last
//! reading over a connectionless transport. Each device waiting for such an expiry has
//! exactly one entry in `expiries` (its deadline may be older than its real one: a later
//! reading moves the real one on, and the entry is put back when it comes due).

use crate::domain::{DeviceName, StatusEvent, Timestamp, Transport};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

#[derive(Default)]
struct Entry {
    /// Open WebSockets of the device itself.
    sockets: usize,
    /// Online until then after a reading over a connectionless transport.
    heard_until: Option<Timestamp>,
    /// The transport of its last socket or reading.
    transport: Option<Transport>,
    /// What was last announced.
    online: bool,
    /// Whether `expiries` holds an entry for it.
    queued: bool,
}

pub struct Table {
    timeout: Duration,
    max_devices: usize,
    devices: HashMap<DeviceName, Entry>,
    expiries: BTreeSet<(Timestamp, DeviceName)>,
}

/// A status change to announce.
pub type Change = Option<StatusEvent>;

impl Table {
    pub fn new(timeout: Duration, max_devices: usize) -> Self {
        Self {
            timeout,
            max_devices,
            devices: HashMap::new(),
            expiries: BTreeSet::new(),
        }
    }

    /// A WebSocket of `device` opened.
    pub fn connected(&mut self, device: &DeviceName, now: Timestamp) -> Change {
        let e = self.entry(device)?;
        e.sockets += 1;
        e.transport = Some(Transport::Ws);
        announce(device, e, true, now)
    }

    /// A WebSocket of `device` closed.
    pub fn disconnected(&mut self, device: &DeviceName, now: Timestamp) -> Change {
        let e = self.devices.get_mut(device)?;
        e.sockets = e.sockets.saturating_sub(1);
        let heard = e.heard_until.is_some_and(|t| t > now);
        announce(device, e, e.sockets > 0 || heard, now)
    }

    /// A reading of `device` that came over `transport` was stored.
    pub fn heard(&mut self, device: &DeviceName, transport: Transport, now: Timestamp) -> Change {
        let until = now.saturating_add(self.timeout);
        let e = self.entry(device)?;
        e.transport = Some(transport);
        if transport.is_connected() {
            return None;
        }
        e.heard_until = Some(until);
        let queue = !e.queued;
        e.queued = true;
        let change = announce(device, e, true, now);
        if queue {
            self.expiries.insert((until, device.clone()));
        }
        change
    }

    /// The changes due at `now`: devices last heard `timeout` ago and without a socket.
    pub fn expire(&mut self, now: Timestamp) -> Vec<StatusEvent> {
        let mut changes = Vec::new();
        while let Some(first) = self.expiries.first()
            && first.0 <= now
        {
            let (_, device) = self.expiries.pop_first().expect("a first entry");
            let Some(e) = self.devices.get_mut(&device) else {
                continue;
            };
            match e.heard_until {
                Some(until) if until > now => {
                    self.expiries.insert((until, device));
                }
                _ => {
                    e.queued = false;
                    e.heard_until = None;
                    changes.extend(announce(&device, e, e.sockets > 0, now));
                }
            }
        }
        changes
    }

    /// When [`Table::expire`] next has something to do.
    pub fn next_expiry(&self) -> Option<Timestamp> {
        self.expiries.first().map(|(t, _)| *t)
    }

    pub fn is_online(&self, device: &str) -> bool {
        self.devices.get(device).is_some_and(|e| e.online)
    }

    pub fn online_devices(&self) -> Vec<DeviceName> {
        let online = self.devices.iter().filter(|(_, e)| e.online);
        online.map(|(d, _)| d.clone()).collect()
    }

    pub fn transport(&self, device: &str) -> Option<Transport> {
        self.devices.get(device).and_then(|e| e.transport)
    }

    /// The entry of `device`, made if need be; at `max_devices`, the offline ones are
    /// forgotten first, and a device that still does not fit is not tracked.
    fn entry(&mut self, device: &DeviceName) -> Option<&mut Entry> {
        if !self.devices.contains_key(device) && self.devices.len() >= self.max_devices {
            self.devices.retain(|_, e| e.online || e.queued);
            if self.devices.len() >= self.max_devices {
                tracing::warn!(
                    max = self.max_devices,
                    "presence: more devices online than presence.max_devices; not tracking another"
                );
                return None;
            }
        }
        Some(self.devices.entry(device.clone()).or_default())
    }
}

/// Sets `e.online`; the event when that changed it.
fn announce(device: &DeviceName, e: &mut Entry, online: bool, now: Timestamp) -> Change {
    (e.online != online).then(|| {
        e.online = online;
        StatusEvent {
            device: device.clone(),
            online,
            ts: now,
        }
    })
}

#[cfg(test)]
mod tests;
