//! The dispatch state machine (docs/commands.md), pure: events in, [`Action`]s out, no
//! sockets, no SQL, no clock of its own (every event carries `now`).
//!
//! It holds every open command this hub knows, each device's in creation order. A
//! device that is reachable — connected (and opted in), or served by the relay (MQTT's
//! `commands_topic`) while it is not — gets its commands in order, at most
//! `window` sent and not yet answered at a time. A command sent but not acknowledged
//! is sent again when the device reconnects, or after `ack_timeout` on a connection
//! that stayed open; one that has been sent `max_attempts` times is given up. Expiry is
//! checked before every send, and expiries and acknowledgement deadlines wait in one
//! deadline heap (entries made stale by a later change are skipped when they come up,
//! and the heap is rebuilt when stale entries outnumber live ones), never a scan.
//!
//! The shell ([`super::shell`]) stores each action's state change conditionally and
//! tells the machine when a command settles (answered, canceled, changed elsewhere).

use crate::domain::Timestamp;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::time::Duration;

/// The delivery bounds (`[commands]`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub window: usize,
    pub ack_timeout: Duration,
    pub max_attempts: u32,
}

/// Where an open command is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Queued,
    /// Sent, not acknowledged.
    Sent,
    /// Acknowledged, not answered: it holds its place in the window.
    Received,
}

/// An open command, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Open {
    pub id: String,
    pub device: String,
    pub seq: i64,
    pub expires: Timestamp,
    /// Sends so far.
    pub attempts: u32,
    pub stage: Stage,
}

/// What the shell must do; each is a conditional state change in storage first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Store `sent` (expecting `attempts` sends so far), then hand it to the device.
    Send {
        id: String,
        device: String,
        attempts: u32,
    },
    /// Store `expired`.
    Expire { id: String },
    /// Store `failed`: sent `attempts` times without an answer.
    GiveUp { id: String, attempts: u32 },
}

impl Action {
    /// The command it is about.
    pub fn id(&self) -> &str {
        match self {
            Self::Send { id, .. } | Self::Expire { id } | Self::GiveUp { id, .. } => id,
        }
    }
}

#[derive(Debug)]
struct Entry {
    device: String,
    seq: i64,
    expires: Timestamp,
    attempts: u32,
    stage: Stage,
}

#[derive(Debug, Default)]
struct Device {
    /// Open connections that opted in.
    connections: u32,
    /// Its open commands by `seq`: the FIFO.
    order: BTreeMap<i64, String>,
}

/// A deadline: a command's expiry, or the acknowledgement of its `n`th send.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Expiry(String),
    Ack(String, u32),
}

/// Every open command this hub knows and each device's delivery.
#[derive(Debug)]
pub struct Dispatch {
    limits: Limits,
    commands: HashMap<String, Entry>,
    devices: HashMap<String, Device>,
    deadlines: BinaryHeap<Reverse<(Timestamp, Due)>>,
    /// A relay takes the commands of devices with no connection.
    relay: bool,
}

impl Dispatch {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            commands: HashMap::new(),
            devices: HashMap::new(),
            deadlines: BinaryHeap::new(),
            relay: false,
        }
    }

    /// Open commands held.
    pub fn len(&self) -> usize {
        self.commands.len()
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    pub fn knows(&self, id: &str) -> bool {
        self.commands.contains_key(id)
    }

    /// The earliest deadline (possibly a stale one: waking for it is harmless).
    pub fn next_due(&self) -> Option<Timestamp> {
        self.deadlines.peek().map(|Reverse((t, _))| *t)
    }

    /// A command created (or found open in storage); one already known is ignored.
    pub fn add(&mut self, c: Open, now: Timestamp) -> Vec<Action> {
        if self.commands.contains_key(&c.id) {
            return Vec::new();
        }
        self.push(c.expires, Due::Expiry(c.id.clone()));
        if c.stage == Stage::Sent {
            // Sent before this hub knew it: sent again if not acknowledged in time.
            let due = Due::Ack(c.id.clone(), c.attempts);
            self.push(now.saturating_add(self.limits.ack_timeout), due);
        }
        let device = self.devices.entry(c.device.clone()).or_default();
        device.order.insert(c.seq, c.id.clone());
        let connected = device.connections > 0 || self.relay;
        let entry = Entry {
            device: c.device.clone(),
            seq: c.seq,
            expires: c.expires,
            attempts: c.attempts,
            stage: c.stage,
        };
        self.commands.insert(c.id, entry);
        let mut out = Vec::new();
        if connected {
            self.pump(&c.device, now, &mut out);
        }
        out
    }

    /// A connection of `device` that opted in opened: what it was sent and did not
    /// acknowledge is sent again, then its queue moves.
    pub fn connect(&mut self, device: &str, now: Timestamp) -> Vec<Action> {
        let d = self.devices.entry(device.to_owned()).or_default();
        d.connections += 1;
        let unacked: Vec<String> = d
            .order
            .values()
            .filter(|id| self.commands[*id].stage == Stage::Sent)
            .cloned()
            .collect();
        let mut out = Vec::new();
        for id in unacked {
            self.send(&id, now, &mut out);
        }
        self.pump(device, now, &mut out);
        out
    }

    /// A connection of `device` closed: with a relay, its queue moves on there.
    pub fn disconnect(&mut self, device: &str, now: Timestamp) -> Vec<Action> {
        let mut out = Vec::new();
        if let Some(d) = self.devices.get_mut(device) {
            d.connections = d.connections.saturating_sub(1);
            if d.connections == 0 && d.order.is_empty() {
                self.devices.remove(device);
            } else if d.connections == 0 && self.relay {
                self.pump(device, now, &mut out);
            }
        }
        out
    }

    /// A relay now takes (or no longer takes) the commands of devices with no
    /// connection: every queue moves.
    pub fn set_relay(&mut self, on: bool, now: Timestamp) -> Vec<Action> {
        self.relay = on;
        let mut out = Vec::new();
        let devices: Vec<String> = self.devices.keys().cloned().collect();
        for d in devices {
            self.pump(&d, now, &mut out);
        }
        out
    }

    /// The relay could not hand over the send of `id` that came after `attempts`
    /// sends: it counts as not sent, and is tried again after `ack_timeout`.
    pub fn unsent(&mut self, id: &str, attempts: u32, now: Timestamp) {
        let Some(e) = self.commands.get_mut(id) else {
            return;
        };
        if e.stage != Stage::Sent || e.attempts != attempts + 1 {
            return;
        }
        e.attempts = attempts;
        let due = Due::Ack(id.to_owned(), attempts);
        self.push(now.saturating_add(self.limits.ack_timeout), due);
    }

    fn reachable(&self, d: &Device) -> bool {
        d.connections > 0 || self.relay
    }

    /// The device acknowledged `id`: no more resends; it keeps its place in the window.
    pub fn acked(&mut self, id: &str) {
        if let Some(e) = self.commands.get_mut(id)
            && e.stage == Stage::Sent
        {
            e.stage = Stage::Received;
        }
    }

    /// `id` is terminal (answered, canceled, expired or given up) or no longer this
    /// hub's to deliver: it leaves, and its device's queue moves.
    pub fn settled(&mut self, id: &str, now: Timestamp) -> Vec<Action> {
        let mut out = Vec::new();
        if let Some(device) = self.remove(id) {
            self.pump(&device, now, &mut out);
        }
        out
    }

    /// Handles every deadline up to `now`.
    pub fn tick(&mut self, now: Timestamp) -> Vec<Action> {
        let mut out = Vec::new();
        while let Some(Reverse((t, _))) = self.deadlines.peek() {
            if *t > now {
                break;
            }
            let Some(Reverse((_, due))) = self.deadlines.pop() else {
                break;
            };
            match due {
                Due::Expiry(id) => {
                    if self.commands.get(&id).is_some_and(|e| e.expires <= now) {
                        out.push(Action::Expire { id: id.clone() });
                        self.settle_into(&id, now, &mut out);
                    }
                }
                Due::Ack(id, n) => {
                    let waiting = self.commands.get(&id).filter(|e| {
                        e.stage == Stage::Sent
                            && e.attempts == n
                            && self.reachable(&self.devices[&e.device])
                    });
                    if let Some(device) = waiting.map(|e| e.device.clone()) {
                        self.send(&id, now, &mut out);
                        self.pump(&device, now, &mut out);
                    }
                }
            }
        }
        self.compact();
        out
    }

    /// Sends what fits in `device`'s window, oldest first.
    fn pump(&mut self, device: &str, now: Timestamp, out: &mut Vec<Action>) {
        loop {
            let Some(d) = self.devices.get(device) else {
                return;
            };
            if !self.reachable(d) {
                return;
            }
            let stage = |id: &String| self.commands[id].stage;
            let in_flight = d
                .order
                .values()
                .filter(|id| stage(id) != Stage::Queued)
                .count();
            if in_flight >= self.limits.window {
                return;
            }
            let Some(next) = d
                .order
                .values()
                .find(|id| stage(id) == Stage::Queued)
                .cloned()
            else {
                return;
            };
            self.send(&next, now, out);
        }
    }

    /// Sends `id` (again), unless it expired or was sent `max_attempts` times already:
    /// then it leaves with [`Action::Expire`] or [`Action::GiveUp`] (the caller pumps
    /// its device's queue after).
    fn send(&mut self, id: &str, now: Timestamp, out: &mut Vec<Action>) {
        let ack_timeout = self.limits.ack_timeout;
        let e = self.commands.get_mut(id).expect("a held command");
        if e.expires <= now {
            out.push(Action::Expire { id: id.to_owned() });
            self.remove(id);
        } else if e.attempts >= self.limits.max_attempts {
            out.push(Action::GiveUp {
                id: id.to_owned(),
                attempts: e.attempts,
            });
            self.remove(id);
        } else {
            out.push(Action::Send {
                id: id.to_owned(),
                device: e.device.clone(),
                attempts: e.attempts,
            });
            e.attempts += 1;
            e.stage = Stage::Sent;
            let due = Due::Ack(id.to_owned(), e.attempts);
            self.push(now.saturating_add(ack_timeout), due);
        }
    }

    fn settle_into(&mut self, id: &str, now: Timestamp, out: &mut Vec<Action>) {
        if let Some(device) = self.remove(id) {
            self.pump(&device, now, out);
        }
    }

    /// Forgets `id`; returns its device.
    fn remove(&mut self, id: &str) -> Option<String> {
        let e = self.commands.remove(id)?;
        if let Some(d) = self.devices.get_mut(&e.device) {
            d.order.remove(&e.seq);
            if d.connections == 0 && d.order.is_empty() {
                self.devices.remove(&e.device);
            }
        }
        Some(e.device)
    }

    fn push(&mut self, at: Timestamp, due: Due) {
        self.deadlines.push(Reverse((at, due)));
    }

    /// Rebuilds the heap from the live deadlines when stale ones outnumber them, so
    /// settled commands' expiries do not pile up until their time.
    fn compact(&mut self) {
        if self.deadlines.len() <= 2 * self.commands.len() + 1024 {
            return;
        }
        let live: Vec<_> = self
            .deadlines
            .drain()
            .filter(|Reverse((_, due))| match due {
                Due::Expiry(id) => self.commands.contains_key(id),
                Due::Ack(id, n) => self
                    .commands
                    .get(id)
                    .is_some_and(|e| e.stage == Stage::Sent && e.attempts == *n),
            })
            .collect();
        self.deadlines = live.into();
    }
}

#[cfg(test)]
#[path = "dispatch_tests.rs"]
mod tests;
