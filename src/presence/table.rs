//! The presence table: a pure state machine, no clock and no I/O. It takes what the
//! transports report (a socket opened or closed, a reading was stored) and the time, and
//! returns the status changes to announce; the shell in `presence` does the rest.
//!
//! A device is online while it has a WebSocket open, or until `timeout` after its last
//! reading over a connectionless transport (`timeout`, or the device's own from its
//! `presence_timeout` label). Each device waiting for such an expiry has exactly one entry
//! in `expiries`; its deadline is never later than the real one (a later reading moves the
//! real one on, and the entry is put back when it comes due; a shorter timeout moves the
//! entry forward at once).

use crate::domain::{DeviceName, StatusEvent, Timestamp, Transport};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

#[derive(Default)]
struct Entry {
    /// Open WebSockets of the device itself.
    sockets: usize,
    /// Its last reading over a connectionless transport, while that keeps it online.
    heard: Option<Timestamp>,
    /// The transport of its last socket or reading.
    transport: Option<Transport>,
    /// What was last announced.
    online: bool,
    /// The deadline of its entry in `expiries`, if it has one.
    queued: Option<Timestamp>,
}

pub struct Table {
    timeout: Duration,
    /// Devices with a timeout of their own (their `presence_timeout` label).
    timeouts: HashMap<DeviceName, Duration>,
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
            timeouts: HashMap::new(),
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
        let timeout = self.timeout_of(device);
        let e = self.devices.get_mut(device)?;
        e.sockets = e.sockets.saturating_sub(1);
        let heard = e.heard.is_some_and(|t| t.saturating_add(timeout) > now);
        announce(device, e, e.sockets > 0 || heard, now)
    }

    /// A reading of `device` that came over `transport` was stored.
    pub fn heard(&mut self, device: &DeviceName, transport: Transport, now: Timestamp) -> Change {
        let until = now.saturating_add(self.timeout_of(device));
        let e = self.entry(device)?;
        e.transport = Some(transport);
        if transport.is_connected() {
            return None;
        }
        e.heard = Some(now);
        let change = announce(device, e, true, now);
        self.queue(device, until);
        change
    }

    /// The devices with a timeout of their own (every other one's is `timeout`): from
    /// now on, and for the devices already waiting to expire.
    pub fn set_timeouts(&mut self, timeouts: HashMap<DeviceName, Duration>) {
        self.timeouts = timeouts;
        let waiting: Vec<(DeviceName, Timestamp)> = self
            .devices
            .iter()
            .filter_map(|(d, e)| Some((d.clone(), e.heard?)))
            .collect();
        for (device, heard) in waiting {
            let until = heard.saturating_add(self.timeout_of(&device));
            self.queue(&device, until);
        }
    }

    /// The changes due at `now`: devices last heard their timeout ago and without a socket.
    pub fn expire(&mut self, now: Timestamp) -> Vec<StatusEvent> {
        let mut changes = Vec::new();
        while let Some(first) = self.expiries.first()
            && first.0 <= now
        {
            let (_, device) = self.expiries.pop_first().expect("a first entry");
            let timeout = self.timeout_of(&device);
            let Some(e) = self.devices.get_mut(&device) else {
                continue;
            };
            e.queued = None;
            match e.heard.map(|t| t.saturating_add(timeout)) {
                Some(until) if until > now => {
                    e.queued = Some(until);
                    self.expiries.insert((until, device));
                }
                _ => {
                    e.heard = None;
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

    fn timeout_of(&self, device: &DeviceName) -> Duration {
        self.timeouts.get(device).copied().unwrap_or(self.timeout)
    }

    /// Puts `device` in `expiries` at `until`, unless it already waits there for an
    /// earlier deadline (which puts it back when it comes due).
    fn queue(&mut self, device: &DeviceName, until: Timestamp) {
        let Some(e) = self.devices.get_mut(device) else {
            return;
        };
        match e.queued {
            Some(at) if at <= until => {}
            at => {
                if let Some(at) = at {
                    self.expiries.remove(&(at, device.clone()));
                }
                e.queued = Some(until);
                self.expiries.insert((until, device.clone()));
            }
        }
    }

    /// The entry of `device`, made if need be; at `max_devices`, the offline ones are
    /// forgotten first, and a device that still does not fit is not tracked.
    fn entry(&mut self, device: &DeviceName) -> Option<&mut Entry> {
        if !self.devices.contains_key(device) && self.devices.len() >= self.max_devices {
            self.devices.retain(|_, e| e.online || e.queued.is_some());
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
