//! The alert engine: one task owning every rule's per-series state, a thin shell of I/O
//! around pure state machines.
//!
//! One [`machine::Machine`] per (rule, series) — per (rule, device) for `offline` —
//! decides every transition from the events it is given and answers with actions; this
//! module feeds it (committed readings, presence, due deadlines) and carries out what it
//! asks. The parts, each in its own file:
//! - [`machine`]: the state machine (phases, `for`, `clear`, `repeat`), no I/O;
//! - [`deadlines`]: the `no_data`, `offline` and `repeat` deadlines, one min-heap;
//! - [`load`]: loading rules and restoring stored states into machines;
//! - [`persist`]: storing a transition with its event and outbox rows, and taking the
//!   stored row when another hub of a cluster changed it first;
//! - [`operator`]: acknowledgements and silences (contract §16).
//!
//! Persistence: a threshold's `pending` and every `firing` are rows of `alert_state`;
//! a restart loads them, so a firing alert stays firing and is not announced twice.
//! `offline` and `no_data` waits live in memory and restart from the hub's start
//! (offline) or the series' newest stored reading (no_data). Before a `no_data` alert
//! fires, the newest stored reading is looked up, so readings stored by another hub
//! count. `offline` sees only this hub's sockets (see the README).
//!
//! Channels: receives committed batches on its own bounded `mpsc` (sender: the storage
//! writer, which waits when it is full, so no batch is ever skipped; its closing — the
//! writer has flushed — ends the engine) and status events (broadcast from the session
//! registry; after a lag the engine re-reads who is online). Sends each stored event on
//! the `events` broadcast (live fan-out, MQTT) and wakes the webhook sender. Receives
//! [`Request`]s (acknowledge, silences changed) from the HTTP API on its own bounded
//! `mpsc`, each answered on a oneshot.

mod deadlines;
mod load;
pub mod machine;
mod operator;
mod persist;

pub use operator::Request;

use super::matcher::Matcher;
use super::rules::Rule;
use super::silences::Silences;
use crate::domain::{
    AlertEvent, CommittedBatch, DeviceName, SensorName, StatusEvent, Timestamp, Unit,
};
use crate::metrics::Metrics;
use crate::sessions::Sessions;
use crate::storage::Store;
use crate::storage::alerts::{AlertKey, AlertStateRow};
use deadlines::Deadlines;
use machine::{Action, Actions, Due, Input, Machine, Phase};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Notify, broadcast, mpsc, watch};

/// One rule's machine for one series (or device), and where it is stored.
#[derive(Debug, Clone)]
struct Slot {
    /// The rule's index in the matcher.
    rule: usize,
    /// The stored row's version; `None`: no row.
    version: Option<i64>,
    machine: Machine,
    /// The unit of the series' last reading that had one (for the event's `unit`).
    unit: Option<Unit>,
}

/// Where a slot is: slot `k` of a series, or of a device's `offline` slots.
#[derive(Debug, Clone, Copy)]
struct Loc<'a> {
    device: &'a DeviceName,
    sensor: Option<&'a SensorName>,
    k: usize,
}

/// Where each event is delivered through the outbox, and what its link points to.
pub struct Delivery {
    /// Each event gets an outbox row per target: a webhook's URL or an email's key.
    pub targets: Vec<String>,
    /// The dashboard's base address for each event's `url`.
    pub dashboard_url: String,
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
    delivery: Delivery,
    out: Outputs,
    matcher: Matcher,
    epoch: Option<i64>,
    series: HashMap<DeviceName, HashMap<SensorName, Vec<Slot>>>,
    devices: HashMap<DeviceName, Vec<Slot>>,
    /// Stored rows not yet taken by a slot.
    persisted: HashMap<AlertKey, AlertStateRow>,
    /// Devices seen disconnected (or not connected at start), and since when.
    disconnected: HashMap<DeviceName, Timestamp>,
    deadlines: Deadlines,
    /// The active silences, as last read.
    silences: Silences,
}

/// How long after a storage failure a deadline is tried again.
const STORAGE_RETRY: Duration = Duration::from_secs(1);

impl Engine {
    pub fn new(
        store: Store,
        metrics: Arc<Metrics>,
        sessions: Arc<Sessions>,
        delivery: Delivery,
        out: Outputs,
    ) -> Self {
        Self {
            store,
            metrics,
            sessions,
            delivery,
            out,
            matcher: Matcher::default(),
            epoch: None,
            series: HashMap::new(),
            devices: HashMap::new(),
            persisted: HashMap::new(),
            disconnected: HashMap::new(),
            deadlines: Deadlines::default(),
            silences: Silences::default(),
        }
    }

    /// Runs until the writer closes `batches` (after its last commit).
    pub async fn run(
        mut self,
        mut batches: mpsc::Receiver<CommittedBatch>,
        mut status: broadcast::Receiver<StatusEvent>,
        mut requests: mpsc::Receiver<Request>,
        nudge: Arc<Notify>,
        rules_poll: Duration,
    ) {
        self.reload_if_changed().await;
        self.reload_silences().await;
        let mut requests_open = true;
        let mut poll = tokio::time::interval(rules_poll);
        poll.reset();
        let mut status_open = true;
        loop {
            let wait = self.deadlines.wait(Timestamp::now());
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
                r = requests.recv(), if requests_open => match r {
                    Some(r) => self.on_request(r).await,
                    None => requests_open = false,
                },
                _ = poll.tick() => {
                    self.reload_if_changed().await;
                    self.reload_silences().await;
                }
                _ = nudge.notified() => {
                    self.reload_if_changed().await;
                    self.reload_silences().await;
                }
            }
        }
        tracing::debug!("alerts: commit stream closed, engine stopped");
    }

    async fn on_batch(&mut self, batch: &CommittedBatch) {
        if self.matcher.rules().is_empty() {
            return;
        }
        let now = Timestamp::now();
        let mut decided = Vec::new();
        for stored in batch.iter() {
            let (device, r) = (&stored.device, &stored.reading);
            if !self
                .series
                .get(device)
                .is_some_and(|m| m.contains_key(&r.sensor))
            {
                self.series_slots(device, &r.sensor, Some(now));
            }
            // One lookup per reading; the rules are borrowed beside the slots. A reading
            // moves no phase by itself (only the moves it asks for do): no metric changes.
            let rules = self.matcher.rules();
            let slots = self
                .series
                .get_mut(device)
                .and_then(|m| m.get_mut(&r.sensor))
                .expect("made above");
            for (k, slot) in slots.iter_mut().enumerate() {
                if r.unit.is_some() {
                    slot.unit.clone_from(&r.unit);
                }
                let input = Input::Reading {
                    value: &r.value,
                    ts: r.ts,
                    now,
                };
                let actions = slot.machine.handle(&rules[slot.rule], input);
                if !actions.is_empty() {
                    decided.push((k, actions));
                }
            }
            for (k, actions) in decided.drain(..) {
                let at = Loc {
                    device,
                    sensor: Some(&r.sensor),
                    k,
                };
                self.act(at, actions, now).await;
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
            let at = Loc {
                device: &ev.device,
                sensor: None,
                k,
            };
            let input = Input::Presence {
                online: ev.online,
                ts: ev.ts,
            };
            let actions = self.step(at, input);
            self.act(at, actions, ev.ts).await;
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
        while let Some(d) = self.deadlines.pop_due(now) {
            let slots = match &d.sensor {
                Some(s) => self.series.get(&d.device).and_then(|m| m.get(s)),
                None => self.devices.get(&d.device),
            };
            let Some(k) = slots.and_then(|slots| slots.iter().position(|s| s.rule == d.rule))
            else {
                continue;
            };
            let at = Loc {
                device: &d.device,
                sensor: d.sensor.as_ref(),
                k,
            };
            let actions = self.step(at, Input::Due { due: d.due, now });
            self.act(at, actions, now).await;
        }
    }

    fn slot(&self, at: Loc<'_>) -> &Slot {
        match at.sensor {
            Some(s) => &self.series[at.device][s][at.k],
            None => &self.devices[at.device][at.k],
        }
    }

    fn slot_mut(&mut self, at: Loc<'_>) -> &mut Slot {
        let slots = match at.sensor {
            Some(s) => self.series.get_mut(at.device).and_then(|m| m.get_mut(s)),
            None => self.devices.get_mut(at.device),
        };
        &mut slots.expect("made before it changes")[at.k]
    }

    /// The rule of the slot at `at`.
    fn rule(&self, at: Loc<'_>) -> Arc<Rule> {
        self.matcher.rules()[self.slot(at).rule].clone()
    }

    /// Gives `input` to the machine at `at`, keeping the phase metrics.
    fn step(&mut self, at: Loc<'_>, input: Input<'_>) -> Actions {
        let rule = self.rule(at);
        let machine = &mut self.slot_mut(at).machine;
        let before = machine.phase;
        let actions = machine.handle(&rule, input);
        let after = machine.phase;
        count_phase(&self.metrics, &rule, before, after);
        actions
    }

    /// Carries out what the machine at `at` asked, and what it asks in answer, until it
    /// asks nothing more. `now`: the hub clock of the input that led to `actions`.
    async fn act(&mut self, at: Loc<'_>, actions: Actions, now: Timestamp) {
        let mut todo = Some(actions);
        while let Some(actions) = todo.take() {
            for action in actions {
                let more = match action {
                    Action::Schedule { at: when, due } => {
                        self.schedule(at, when, due);
                        None
                    }
                    Action::Move(t) => Some(self.apply(at, t).await),
                    Action::LookUpNewest => Some(self.newest(at, now).await),
                };
                if more.is_some() {
                    debug_assert!(todo.is_none(), "one follow-up per batch of actions");
                    todo = more;
                }
            }
        }
    }

    /// Queues the deadline `due` of the machine at `at` for `when`.
    fn schedule(&mut self, at: Loc<'_>, when: Timestamp, due: Due) {
        let rule = self.slot(at).rule;
        self.deadlines.push(when, rule, at.device, at.sensor, due);
    }

    /// The machine's answer to the newest stored reading of its series (another hub
    /// may have stored readings of it), or to the look-up failing.
    async fn newest(&mut self, at: Loc<'_>, now: Timestamp) -> Actions {
        let sensor = at.sensor.map_or("", |s| s.as_str());
        let input = match self
            .store
            .latest_reading_ts(at.device.as_str(), sensor)
            .await
        {
            Ok(ts) => Input::Newest { ts, now },
            Err(e) => {
                tracing::warn!(error = %e, "alerts: no_data check failed; retrying");
                Input::Retry {
                    at: now.saturating_add(STORAGE_RETRY),
                }
            }
        };
        self.step(at, input)
    }
}

/// Moves `rule`'s phase gauges from `from` to `to`.
fn count_phase(metrics: &Metrics, rule: &Rule, from: Phase, to: Phase) {
    if from == to {
        return;
    }
    let gauge = |state: &'static str| {
        metrics
            .alerts
            .states
            .get_or_create(&vec![
                ("rule", rule.name.clone()),
                ("state", state.to_owned()),
            ])
            .clone()
    };
    if let Some(s) = from.label() {
        gauge(s).dec();
    }
    if let Some(s) = to.label() {
        gauge(s).inc();
    }
}
