//! The alert engine: one task owning every rule's per-series state.
//!
//! State machine per (rule, series) — per (rule, device) for `offline`:
//! `ok → pending → firing → ok`, where reaching `firing` and leaving it (`resolved`)
//! are events. Thresholds move on readings, by reading time (`for`); `no_data` and
//! `offline` move on deadlines by the hub clock, kept in one min-heap (a slot has at most
//! one condition deadline and one `repeat` deadline queued; a popped deadline is checked
//! against the slot and pushed back when the slot moved on), never a scan of every series.
//!
//! Persistence: a threshold's `pending` and every `firing` are rows of `alert_state`,
//! written with the event and its webhook outbox rows in one transaction
//! ([`crate::storage::Store::record_alert`]); a restart loads them, so a firing alert
//! stays firing and is not announced twice. `offline` and `no_data` waits live in memory
//! and restart from the hub's start (offline) or the series' newest stored reading (no_data).
//!
//! Cluster (hubs sharing PostgreSQL): every change is conditional on the row's version,
//! so one hub decides it; a hub that loses the race adopts the stored row. Before a
//! `no_data` alert fires, the newest stored reading is looked up, so readings stored by
//! another hub count. `offline` sees only this hub's sockets (see the README).
//!
//! Channels: receives committed batches on its own bounded `mpsc` (sender: the storage
//! writer, which waits when it is full, so no batch is ever skipped; its closing — the
//! writer has flushed — ends the engine) and status events (broadcast from the session
//! registry; after a lag the engine re-reads who is online). Sends each stored event on
//! the `events` broadcast (live fan-out, MQTT) and wakes the webhook sender.

use super::matcher::Matcher;
use super::rules::{Condition, Rule};
use crate::domain::{
    AlertEvent, AlertState, CommittedBatch, DeviceName, SensorName, StatusEvent, Timestamp, Value,
};
use crate::metrics::Metrics;
use crate::sessions::Sessions;
use crate::storage::alerts::{AlertKey, AlertStateRow, NewState, Recorded, StateChange};
use crate::storage::{StorageError, Store};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Notify, broadcast, mpsc, watch};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ok,
    Pending,
    Firing,
}

impl Phase {
    fn label(self) -> Option<&'static str> {
        match self {
            Phase::Ok => None,
            Phase::Pending => Some("pending"),
            Phase::Firing => Some("firing"),
        }
    }
}

/// One rule's state for one series (or device).
#[derive(Debug, Clone)]
struct Slot {
    rule: usize,
    phase: Phase,
    /// When the condition began (pending start; kept while firing).
    since: Timestamp,
    value: Option<Value>,
    /// The stored row's version; `None`: no row.
    version: Option<i64>,
    notified: Option<Timestamp>,
    /// no_data: the last reading (hub clock, or the stored reading time after a load).
    last_seen: Timestamp,
    waiting: bool,
    repeating: bool,
}

impl Slot {
    fn new(rule: usize, now: Timestamp) -> Self {
        Self {
            rule,
            phase: Phase::Ok,
            since: now,
            value: None,
            version: None,
            notified: None,
            last_seen: now,
            waiting: false,
            repeating: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Condition,
    Repeat,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Deadline {
    at: Timestamp,
    generation: u64,
    rule: usize,
    device: DeviceName,
    sensor: Option<SensorName>,
    due: Due,
}

/// A change decided for a slot.
struct Transition {
    to: Phase,
    since: Timestamp,
    value: Option<Value>,
    /// The event to announce and its time.
    event: Option<(AlertState, Timestamp)>,
}

/// The engine's outputs, given by the hub.
pub struct Outputs {
    pub events: broadcast::Sender<AlertEvent>,
    pub wake_sender: Arc<Notify>,
    /// The rules' epoch last loaded, for HTTP rule changes waiting for it.
    pub loaded: watch::Sender<i64>,
}

pub struct Engine {
    store: Store,
    metrics: Arc<Metrics>,
    sessions: Arc<Sessions>,
    webhooks: Vec<String>,
    out: Outputs,
    matcher: Matcher,
    epoch: Option<i64>,
    generation: u64,
    series: HashMap<DeviceName, HashMap<SensorName, Vec<Slot>>>,
    devices: HashMap<DeviceName, Vec<Slot>>,
    /// Stored rows not yet taken by a slot.
    persisted: HashMap<AlertKey, AlertStateRow>,
    /// Devices seen disconnected (or not connected at start), and since when.
    disconnected: HashMap<DeviceName, Timestamp>,
    deadlines: BinaryHeap<Reverse<Deadline>>,
}

/// How long after a storage failure a deadline is tried again.
const STORAGE_RETRY: Duration = Duration::from_secs(1);

impl Engine {
    pub fn new(
        store: Store,
        metrics: Arc<Metrics>,
        sessions: Arc<Sessions>,
        webhooks: Vec<String>,
        out: Outputs,
    ) -> Self {
        Self {
            store,
            metrics,
            sessions,
            webhooks,
            out,
            matcher: Matcher::default(),
            epoch: None,
            generation: 0,
            series: HashMap::new(),
            devices: HashMap::new(),
            persisted: HashMap::new(),
            disconnected: HashMap::new(),
            deadlines: BinaryHeap::new(),
        }
    }

    /// Runs until the writer closes `batches` (after its last commit).
    pub async fn run(
        mut self,
        mut batches: mpsc::Receiver<CommittedBatch>,
        mut status: broadcast::Receiver<StatusEvent>,
        nudge: Arc<Notify>,
        rules_poll: Duration,
    ) {
        self.reload_if_changed().await;
        let mut poll = tokio::time::interval(rules_poll);
        poll.reset();
        let mut status_open = true;
        loop {
            let next = self.deadlines.peek().map(|Reverse(d)| d.at);
            let wait = next.map(until);
            tokio::select! {
                b = batches.recv() => match b {
                    Some(b) => self.on_batch(&b).await,
                    None => break,
                },
                s = status.recv(), if status_open => match s {
                    Ok(ev) => self.on_status(ev).await,
                    Err(RecvError::Lagged(_)) => self.resync_presence().await,
                    Err(RecvError::Closed) => status_open = false,
                },
                _ = async { tokio::time::sleep(wait.unwrap_or_default()).await }, if wait.is_some() => {
                    self.on_due().await;
                }
                _ = poll.tick() => self.reload_if_changed().await,
                _ = nudge.notified() => self.reload_if_changed().await,
            }
        }
        tracing::debug!("alert engine: commit stream closed, engine stopped");
    }

    async fn reload_if_changed(&mut self) {
        let epoch = match self.store.alert_rules_epoch().await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "alerts: cannot read the rules' epoch");
                return;
            }
        };
        if self.epoch == Some(epoch) {
            return;
        }
        if let Err(e) = self.load(epoch).await {
            tracing::error!(error = %e, "alerts: cannot load rules; retrying");
        }
    }

    /// (Re)loads rules and stored states, and rebuilds every slot.
    async fn load(&mut self, epoch: i64) -> Result<(), StorageError> {
        let mut rules = Vec::new();
        for row in self.store.alert_rules().await? {
            match Rule::from_json(&row.spec) {
                Ok(r) => rules.push(Arc::new(r)),
                Err(e) => {
                    tracing::warn!(rule = %row.name, error = %e, "alerts: stored rule ignored")
                }
            }
        }
        let states = self.store.alert_states().await?;
        let needs_registry = rules
            .iter()
            .any(|r| !matches!(r.condition, Condition::Threshold { .. }));
        let registry = if needs_registry {
            self.store.list_devices().await?
        } else {
            Vec::new()
        };
        // no_data waits carry over from the slots being replaced.
        let mut seen: HashMap<(DeviceName, SensorName), Timestamp> = HashMap::new();
        let old_rules = self.matcher.rules().to_vec();
        for (d, sensors) in &self.series {
            for (s, slots) in sensors {
                for slot in slots {
                    if matches!(old_rules[slot.rule].condition, Condition::NoData { .. }) {
                        seen.insert((d.clone(), s.clone()), slot.last_seen);
                    }
                }
            }
        }
        self.epoch = Some(epoch);
        self.generation += 1;
        self.series.clear();
        self.devices.clear();
        self.deadlines.clear();
        self.metrics.alerts.states.clear();
        self.metrics.alerts.rules.set(rules.len() as i64);
        self.matcher = Matcher::new(rules);
        self.persisted = states.into_iter().map(|r| (r.key(), r)).collect();
        let now = Timestamp::now();
        let keys: Vec<AlertKey> = self.persisted.keys().cloned().collect();
        for k in keys {
            let Ok(device) = DeviceName::parse(&k.device) else {
                continue;
            };
            match k.sensor.as_deref().map(SensorName::parse) {
                Some(Ok(sensor)) => {
                    self.series_slots(&device, &sensor, None);
                }
                Some(Err(_)) => {}
                None => {
                    self.device_slots(&device);
                }
            }
        }
        for d in registry.iter().filter(|d| !d.revoked) {
            let Ok(device) = DeviceName::parse(&d.name) else {
                continue;
            };
            if self.matcher.has_offline_rules() {
                if !self.sessions.is_online(&d.name) {
                    self.disconnected.entry(device.clone()).or_insert(now);
                }
                self.device_slots(&device);
            }
            for (sensor, latest) in &d.latest {
                let Ok(sensor) = SensorName::parse(sensor) else {
                    continue;
                };
                let last = seen
                    .get(&(device.clone(), sensor.clone()))
                    .copied()
                    .unwrap_or(latest.ts.min(now));
                self.series_slots(&device, &sensor, Some(last));
            }
        }
        self.out.loaded.send_replace(epoch);
        tracing::info!(
            rules = self.matcher.rules().len(),
            open = self.persisted.len(),
            "alerts: rules loaded"
        );
        Ok(())
    }

    /// The slots of a series, created on first sight (from stored rows when present).
    /// `last_seen`: the newest stored reading, for no_data waits (default: now).
    fn series_slots(
        &mut self,
        device: &DeviceName,
        sensor: &SensorName,
        last_seen: Option<Timestamp>,
    ) -> usize {
        if let Some(slots) = self.series.get(device).and_then(|m| m.get(sensor)) {
            return slots.len();
        }
        let now = Timestamp::now();
        let rules = self.matcher.series_rules(device.as_str(), sensor.as_str());
        let mut slots = Vec::with_capacity(rules.len());
        for i in rules {
            let rule = self.matcher.rules()[i].clone();
            let mut slot = self.restore(i, &rule, device.as_str(), Some(sensor.as_str()), now);
            if let Condition::NoData { after } = rule.condition {
                slot.last_seen = last_seen.unwrap_or(now);
                if slot.phase == Phase::Ok {
                    slot.waiting = true;
                    self.push(
                        slot.last_seen.saturating_add(after),
                        i,
                        device,
                        Some(sensor),
                        Due::Condition,
                    );
                }
            }
            slots.push(slot);
        }
        let n = slots.len();
        self.series
            .entry(device.clone())
            .or_default()
            .insert(sensor.clone(), slots);
        n
    }

    /// The offline slots of a device, created on first sight.
    fn device_slots(&mut self, device: &DeviceName) -> usize {
        if let Some(slots) = self.devices.get(device) {
            return slots.len();
        }
        let now = Timestamp::now();
        let mut slots = Vec::new();
        for i in self.matcher.device_rules(device.as_str()) {
            let rule = self.matcher.rules()[i].clone();
            let mut slot = self.restore(i, &rule, device.as_str(), None, now);
            if slot.phase == Phase::Ok
                && let Some(&since) = self.disconnected.get(device)
                && let Condition::Offline { after } = rule.condition
            {
                self.set_phase(&rule, &mut slot, Phase::Pending);
                slot.since = since;
                slot.waiting = true;
                self.push(since.saturating_add(after), i, device, None, Due::Condition);
            }
            slots.push(slot);
        }
        let n = slots.len();
        self.devices.insert(device.clone(), slots);
        n
    }

    /// A slot from its stored row (taken from `persisted`), or a new ok slot.
    fn restore(
        &mut self,
        i: usize,
        rule: &Rule,
        device: &str,
        sensor: Option<&str>,
        now: Timestamp,
    ) -> Slot {
        let key = AlertKey {
            rule: rule.name.clone(),
            device: device.to_owned(),
            sensor: sensor.map(str::to_owned),
        };
        let mut slot = Slot::new(i, now);
        if let Some(row) = self.persisted.remove(&key) {
            let phase = if row.state == "firing" {
                Phase::Firing
            } else {
                Phase::Pending
            };
            self.set_phase(rule, &mut slot, phase);
            slot.since = row.since;
            slot.value = row.value;
            slot.version = Some(row.version);
            slot.notified = row.notified;
            if phase == Phase::Firing
                && let (Some(r), Some(n)) = (rule.repeat, row.notified)
                && let (Ok(d), s) = (DeviceName::parse(device), sensor.map(SensorName::parse))
            {
                slot.repeating = true;
                let s = s.and_then(Result::ok);
                self.push(n.saturating_add(r), i, &d, s.as_ref(), Due::Repeat);
            }
        }
        slot
    }

    fn push(
        &mut self,
        at: Timestamp,
        rule: usize,
        device: &DeviceName,
        sensor: Option<&SensorName>,
        due: Due,
    ) {
        self.deadlines.push(Reverse(Deadline {
            at,
            generation: self.generation,
            rule,
            device: device.clone(),
            sensor: sensor.cloned(),
            due,
        }));
    }

    fn set_phase(&self, rule: &Rule, slot: &mut Slot, to: Phase) {
        let gauge = |state: &'static str| {
            self.metrics
                .alerts
                .states
                .get_or_create(&vec![
                    ("rule", rule.name.clone()),
                    ("state", state.to_owned()),
                ])
                .clone()
        };
        if let Some(s) = slot.phase.label() {
            gauge(s).dec();
        }
        if let Some(s) = to.label() {
            gauge(s).inc();
        }
        slot.phase = to;
    }

    async fn on_batch(&mut self, batch: &CommittedBatch) {
        if self.matcher.rules().is_empty() {
            return;
        }
        let now = Timestamp::now();
        let (mut decided, mut waits) = (Vec::new(), Vec::new());
        for stored in batch.iter() {
            let (device, r) = (&stored.device, &stored.reading);
            if !self
                .series
                .get(device)
                .is_some_and(|m| m.contains_key(&r.sensor))
            {
                self.series_slots(device, &r.sensor, Some(now));
            }
            // One lookup per reading; the rules are borrowed beside the slots.
            let rules = self.matcher.rules();
            let slots = self
                .series
                .get_mut(device)
                .and_then(|m| m.get_mut(&r.sensor))
                .expect("made above");
            for (k, slot) in slots.iter_mut().enumerate() {
                let rule = &rules[slot.rule];
                if let Some(t) = on_reading(rule, slot, &r.value, r.ts, now) {
                    decided.push((k, t));
                }
                if let Condition::NoData { after } = rule.condition
                    && !slot.waiting
                {
                    slot.waiting = true;
                    waits.push((now.saturating_add(after), slot.rule));
                }
            }
            for (at, i) in waits.drain(..) {
                self.push(at, i, device, Some(&r.sensor), Due::Condition);
            }
            for (k, t) in decided.drain(..) {
                self.apply(device, Some(&r.sensor), k, t).await;
            }
        }
    }

    async fn on_status(&mut self, ev: StatusEvent) {
        if ev.online {
            self.disconnected.remove(&ev.device);
        } else {
            self.disconnected.insert(ev.device.clone(), ev.ts);
        }
        if !self.matcher.has_offline_rules() {
            return;
        }
        let n = self.device_slots(&ev.device);
        for k in 0..n {
            let slot = &mut self.devices.get_mut(&ev.device).expect("made")[k];
            let rule = self.matcher.rules()[slot.rule].clone();
            let Condition::Offline { after } = rule.condition else {
                continue;
            };
            match (ev.online, slot.phase) {
                (true, Phase::Firing) => {
                    let t = Transition {
                        to: Phase::Ok,
                        since: slot.since,
                        value: None,
                        event: Some((AlertState::Resolved, ev.ts)),
                    };
                    self.apply(&ev.device, None, k, t).await;
                }
                (true, Phase::Pending) => {
                    let mut s = slot.clone();
                    self.set_phase(&rule, &mut s, Phase::Ok);
                    self.put(&ev.device, None, k, s);
                }
                (false, Phase::Ok) => {
                    let mut s = slot.clone();
                    self.set_phase(&rule, &mut s, Phase::Pending);
                    s.since = ev.ts;
                    let i = s.rule;
                    self.put(&ev.device, None, k, s);
                    self.push(
                        ev.ts.saturating_add(after),
                        i,
                        &ev.device,
                        None,
                        Due::Condition,
                    );
                }
                _ => {}
            }
        }
    }

    /// After missing status events: every device with offline slots is checked against
    /// the sessions, as if its current presence had just been announced.
    async fn resync_presence(&mut self) {
        tracing::warn!("alerts: status events were missed; re-reading who is online");
        let devices: Vec<DeviceName> = self.devices.keys().cloned().collect();
        for device in devices {
            let online = self.sessions.is_online(device.as_str());
            if online != self.disconnected.contains_key(&device) {
                continue;
            }
            self.on_status(StatusEvent {
                device,
                online,
                ts: Timestamp::now(),
            })
            .await;
        }
    }

    /// Handles every deadline that is due.
    async fn on_due(&mut self) {
        let now = Timestamp::now();
        while let Some(Reverse(d)) = self.deadlines.peek() {
            if d.at > now {
                break;
            }
            let Reverse(d) = self.deadlines.pop().expect("peeked");
            if d.generation == self.generation {
                self.on_deadline(d, now).await;
            }
        }
    }

    fn slot_mut(
        &mut self,
        device: &DeviceName,
        sensor: Option<&SensorName>,
        rule: usize,
    ) -> Option<(usize, &mut Slot)> {
        let slots = match sensor {
            Some(s) => self.series.get_mut(device)?.get_mut(s)?,
            None => self.devices.get_mut(device)?,
        };
        slots.iter_mut().enumerate().find(|(_, s)| s.rule == rule)
    }

    async fn on_deadline(&mut self, d: Deadline, now: Timestamp) {
        let rule = self.matcher.rules()[d.rule].clone();
        let Some((k, slot)) = self.slot_mut(&d.device, d.sensor.as_ref(), d.rule) else {
            return;
        };
        let t = match d.due {
            Due::Repeat => {
                slot.repeating = false;
                let (Some(every), Some(last)) = (rule.repeat, slot.notified) else {
                    return;
                };
                if slot.phase != Phase::Firing {
                    return;
                }
                let at = last.saturating_add(every);
                if at > now {
                    slot.repeating = true;
                    self.push(at, d.rule, &d.device, d.sensor.as_ref(), Due::Repeat);
                    return;
                }
                Transition {
                    to: Phase::Firing,
                    since: slot.since,
                    value: slot.value.clone(),
                    event: Some((AlertState::Firing, now)),
                }
            }
            Due::Condition => {
                slot.waiting = false;
                let at = match rule.condition {
                    Condition::NoData { after } if slot.phase == Phase::Ok => {
                        slot.last_seen.saturating_add(after)
                    }
                    Condition::Offline { after } if slot.phase == Phase::Pending => {
                        slot.since.saturating_add(after)
                    }
                    _ => return,
                };
                if at <= now && matches!(rule.condition, Condition::NoData { .. }) {
                    // Another hub may have stored readings of this series.
                    let (device, sensor) = (
                        d.device.as_str(),
                        d.sensor.as_ref().map_or("", |s| s.as_str()),
                    );
                    match self.store.latest_reading_ts(device, sensor).await {
                        Ok(latest) => {
                            let Some((_, slot)) =
                                self.slot_mut(&d.device, d.sensor.as_ref(), d.rule)
                            else {
                                return;
                            };
                            if let Some(ts) = latest.filter(|ts| *ts > slot.last_seen) {
                                slot.last_seen = ts.min(now);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "alerts: no_data check failed; retrying");
                            let at = now.saturating_add(STORAGE_RETRY);
                            self.reschedule(&d, at);
                            return;
                        }
                    }
                }
                let Some((_, slot)) = self.slot_mut(&d.device, d.sensor.as_ref(), d.rule) else {
                    return;
                };
                let at = match rule.condition {
                    Condition::NoData { after } => slot.last_seen.saturating_add(after),
                    _ => at,
                };
                if at > now {
                    self.reschedule(&d, at);
                    return;
                }
                let since = match rule.condition {
                    Condition::NoData { .. } => slot.last_seen,
                    _ => slot.since,
                };
                Transition {
                    to: Phase::Firing,
                    since,
                    value: None,
                    event: Some((AlertState::Firing, now)),
                }
            }
        };
        self.apply(&d.device, d.sensor.as_ref(), k, t).await;
    }

    fn reschedule(&mut self, d: &Deadline, at: Timestamp) {
        if let Some((_, slot)) = self.slot_mut(&d.device, d.sensor.as_ref(), d.rule) {
            slot.waiting = true;
        }
        self.push(at, d.rule, &d.device, d.sensor.as_ref(), Due::Condition);
    }

    /// Carries out a transition of slot `k`: in memory only for the waits of `offline`
    /// and `no_data`, else stored (with its event and outbox rows) and announced.
    async fn apply(
        &mut self,
        device: &DeviceName,
        sensor: Option<&SensorName>,
        k: usize,
        t: Transition,
    ) {
        let slot = match sensor {
            Some(s) => &self.series[device][s][k],
            None => &self.devices[device][k],
        };
        let rule = self.matcher.rules()[slot.rule].clone();
        let threshold = matches!(rule.condition, Condition::Threshold { .. });
        let stored = threshold || t.to == Phase::Firing || slot.phase == Phase::Firing;
        let now = Timestamp::now();
        let notified = match t.event {
            Some((AlertState::Firing, _)) => Some(now),
            _ if t.to == Phase::Firing => slot.notified,
            _ => None,
        };
        let mut next = slot.clone();
        if stored {
            let key = AlertKey {
                rule: rule.name.clone(),
                device: device.as_str().to_owned(),
                sensor: sensor.map(|s| s.as_str().to_owned()),
            };
            let new = (t.to != Phase::Ok).then(|| NewState {
                state: t.to.label().expect("not ok"),
                severity: rule.severity.clone(),
                since: t.since,
                value: t.value.clone(),
                notified,
            });
            let change = StateChange {
                key: key.clone(),
                new,
                expected: slot.version,
            };
            let event = t.event.map(|(state, ts)| AlertEvent {
                id: 0,
                rule: rule.name.clone(),
                device: key.device.clone(),
                sensor: key.sensor.clone(),
                state,
                severity: rule.severity.clone(),
                value: t.value.clone(),
                ts,
                since: t.since,
            });
            match self
                .store
                .record_alert(&change, event.as_ref(), &self.webhooks)
                .await
            {
                Ok(Recorded::Done { version, event }) => {
                    next.version = (t.to != Phase::Ok).then_some(version);
                    if let Some(e) = event {
                        self.metrics.alerts.events.inc();
                        let _ = self.out.events.send(e);
                        self.out.wake_sender.notify_one();
                    }
                }
                Ok(Recorded::Conflict) => {
                    self.adopt(device, sensor, k, &key).await;
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, rule = %rule.name, device = %device, "alerts: cannot store a transition; it is decided again on the next reading or deadline");
                    if !threshold {
                        let at = now.saturating_add(STORAGE_RETRY);
                        self.push(at, next.rule, device, sensor, Due::Condition);
                    }
                    return;
                }
            }
        }
        self.set_phase(&rule, &mut next, t.to);
        next.since = t.since;
        next.value = t.value;
        next.notified = notified;
        if let (Phase::Firing, Some(every), false) = (t.to, rule.repeat, next.repeating) {
            next.repeating = true;
            self.push(
                now.saturating_add(every),
                next.rule,
                device,
                sensor,
                Due::Repeat,
            );
        }
        if t.to == Phase::Ok
            && let Condition::NoData { after } = rule.condition
            && !next.waiting
        {
            next.waiting = true;
            self.push(
                next.last_seen.saturating_add(after),
                next.rule,
                device,
                sensor,
                Due::Condition,
            );
        }
        self.put(device, sensor, k, next);
    }

    /// Stores `slot` back as slot `k` of the series (or device).
    fn put(&mut self, device: &DeviceName, sensor: Option<&SensorName>, k: usize, slot: Slot) {
        let slots = match sensor {
            Some(s) => self.series.get_mut(device).and_then(|m| m.get_mut(s)),
            None => self.devices.get_mut(device),
        };
        slots.expect("made before it changes")[k] = slot;
    }

    /// Another hub changed this row first: take what it stored.
    async fn adopt(
        &mut self,
        device: &DeviceName,
        sensor: Option<&SensorName>,
        k: usize,
        key: &AlertKey,
    ) {
        let row = match self.store.alert_states().await {
            Ok(rows) => rows.into_iter().find(|r| r.key() == *key),
            Err(e) => {
                tracing::warn!(error = %e, "alerts: cannot re-read a state another hub changed");
                return;
            }
        };
        let slot = match sensor {
            Some(s) => &self.series[device][s][k],
            None => &self.devices[device][k],
        };
        let rule = self.matcher.rules()[slot.rule].clone();
        let mut next = slot.clone();
        match row {
            Some(r) => {
                let phase = if r.state == "firing" {
                    Phase::Firing
                } else {
                    Phase::Pending
                };
                self.set_phase(&rule, &mut next, phase);
                next.since = r.since;
                next.value = r.value;
                next.version = Some(r.version);
                next.notified = r.notified;
            }
            None => {
                self.set_phase(&rule, &mut next, Phase::Ok);
                next.version = None;
            }
        }
        self.put(device, sensor, k, next);
    }
}

/// What a reading does to a slot: a no_data slot notes it (and resolves); a threshold
/// slot moves per §11. Readings of another type than the rule's value are ignored.
fn on_reading(
    rule: &Rule,
    slot: &mut Slot,
    value: &Value,
    ts: Timestamp,
    now: Timestamp,
) -> Option<Transition> {
    match &rule.condition {
        Condition::NoData { .. } => {
            slot.last_seen = now;
            (slot.phase == Phase::Firing).then(|| Transition {
                to: Phase::Ok,
                since: slot.since,
                value: Some(value.clone()),
                event: Some((AlertState::Resolved, ts)),
            })
        }
        Condition::Threshold {
            op,
            value: limit,
            hold,
            clear,
        } => {
            let meets = op.test(value, limit)?;
            let t = |to, since, event| {
                Some(Transition {
                    to,
                    since,
                    value: Some(value.clone()),
                    event,
                })
            };
            match slot.phase {
                Phase::Ok if meets && hold.is_zero() => {
                    t(Phase::Firing, ts, Some((AlertState::Firing, ts)))
                }
                Phase::Ok if meets => t(Phase::Pending, ts, None),
                Phase::Pending if !meets => t(Phase::Ok, ts, None),
                Phase::Pending if ts >= slot.since.saturating_add(*hold) => {
                    t(Phase::Firing, slot.since, Some((AlertState::Firing, ts)))
                }
                Phase::Firing => {
                    let still = match clear {
                        Some(c) => op.test(value, c)?,
                        None => meets,
                    };
                    (!still).then(|| Transition {
                        to: Phase::Ok,
                        since: slot.since,
                        value: Some(value.clone()),
                        event: Some((AlertState::Resolved, ts)),
                    })
                }
                _ => None,
            }
        }
        Condition::Offline { .. } => None,
    }
}

/// How long from now until `at` (zero when past).
fn until(at: Timestamp) -> Duration {
    let us = at.as_micros().saturating_sub(Timestamp::now().as_micros());
    Duration::from_micros(us.max(0) as u64)
}
