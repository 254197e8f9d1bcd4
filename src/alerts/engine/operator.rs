//! What operators do to alerts (contract §16), carried out by the engine: acknowledging
//! a firing alert, and the silences — which are active (an event they cover is stored
//! silenced, see [`super::persist`]) and which ended, so what still fires under them is
//! announced once.
//!
//! Requests come from the HTTP API on the engine's own bounded channel ([`Request`],
//! each answered on a oneshot). Silences are read from storage at start, on every
//! rules poll and nudge, and when a request says they changed, so a silence added by
//! the CLI or another hub counts within `alerts.rules_poll`. The end of a silence is
//! claimed in storage, so one hub of a cluster announces it, also after a restart.
//!
//! Owns the `impl` of these on [`super::Engine`] and [`Request`]. Uses
//! [`super::machine`], [`crate::alerts::silences`] and the storage API.

use super::machine::{Input, Phase};
use super::{Engine, Loc};
use crate::alerts::message;
use crate::alerts::silences::{AckContext, Silence, Silences, ack_event};
use crate::domain::{AlertEvent, DeviceName, SensorName, Timestamp};
use crate::storage::StorageError;
use crate::storage::alert_acks::{Acked, AckedRow, NewAck};
use crate::storage::alerts::AlertKey;
use tokio::sync::oneshot;

/// A request to the engine (sender: the HTTP API; its closing ends nothing: the engine
/// runs until the commit stream closes).
#[derive(Debug)]
pub enum Request {
    /// Acknowledge a firing alert; answered with the stored event, or
    /// [`StorageError::NotFiring`].
    Ack {
        ack: NewAck,
        reply: oneshot::Sender<Result<AlertEvent, StorageError>>,
    },
    /// Silences were added or ended: read them again, then answer.
    SilencesChanged { reply: oneshot::Sender<()> },
}

/// A slot by owned names, for walking slots while changing them.
type Owned = (DeviceName, Option<SensorName>, usize);

impl Engine {
    pub(super) async fn on_request(&mut self, r: Request) {
        match r {
            Request::Ack { ack, reply } => {
                let done = self.acknowledge(ack).await;
                let _ = reply.send(done);
            }
            Request::SilencesChanged { reply } => {
                self.reload_silences().await;
                let _ = reply.send(());
            }
        }
    }

    /// Whether an active silence covers the alert `key` at `now`.
    pub(super) fn is_silenced(&self, key: &AlertKey, now: Timestamp) -> bool {
        self.silences
            .covering(&key.rule, &key.device, key.sensor.as_deref(), now)
            .is_some()
    }

    /// Where this hub holds the machine of `key`, if it does.
    fn find(&self, key: &AlertKey) -> Option<Owned> {
        let rule = self
            .matcher
            .rules()
            .iter()
            .position(|r| r.name == key.rule)?;
        let device = DeviceName::parse(&key.device).ok()?;
        let sensor = match &key.sensor {
            Some(s) => Some(SensorName::parse(s).ok()?),
            None => None,
        };
        let slots = match &sensor {
            Some(s) => self.series.get(&device)?.get(s)?,
            None => self.devices.get(&device)?,
        };
        let k = slots.iter().position(|s| s.rule == rule)?;
        Some((device, sensor, k))
    }

    async fn acknowledge(&mut self, ack: NewAck) -> Result<AlertEvent, StorageError> {
        let key = ack.key.clone();
        let now = ack.ts;
        let silenced = self.is_silenced(&key, now);
        let at = self.find(&key);
        let (unit, condition) = match &at {
            Some((d, s, k)) => {
                let loc = Loc {
                    device: d,
                    sensor: s.as_ref(),
                    k: *k,
                };
                let unit = self.slot(loc).unit.as_ref().map(|u| u.as_str().to_owned());
                (unit, Some(message::condition(&self.rule(loc))))
            }
            None => (None, None),
        };
        let dashboard = self.delivery.dashboard_url.clone();
        let cx = AckContext {
            unit,
            condition,
            dashboard_url: &dashboard,
            silenced,
        };
        let make = |row: &AckedRow| ack_event(&ack, row, cx);
        let targets = self.targets(silenced).to_vec();
        let (version, event) = match self.store.acknowledge_alert(&ack, make, &targets).await? {
            Acked::Done { version, event } => (version, *event),
            Acked::NotFiring => return Err(StorageError::NotFiring),
        };
        if let Some((d, s, k)) = &at {
            let loc = Loc {
                device: d,
                sensor: s.as_ref(),
                k: *k,
            };
            if self.slot(loc).machine.phase == Phase::Firing {
                self.slot_mut(loc).version = Some(version);
                self.step(loc, Input::Acknowledged);
            } else {
                self.adopt(loc, &key).await;
            }
        }
        self.announce(event.clone());
        Ok(event)
    }

    /// Reads the active silences, then claims the end of each silence that ended and
    /// announces what still fires under it.
    pub(super) async fn reload_silences(&mut self) {
        let now = Timestamp::now();
        match self.store.active_silences(now).await {
            Ok(rows) => self.silences = Silences::of(&rows),
            Err(e) => {
                tracing::warn!(error = %e, "alerts: cannot read silences; retrying at the next poll");
                return;
            }
        }
        let ended = match self.store.ended_silences(now).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "alerts: cannot read ended silences; retrying at the next poll");
                return;
            }
        };
        for row in ended {
            match self.store.claim_silence_end(row.id).await {
                Ok(true) => {
                    if let Some(s) = Silence::of(&row) {
                        self.silence_ended(&s, now).await;
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, silence = row.id, "alerts: cannot claim a silence's end; retrying at the next poll");
                }
            }
        }
    }

    /// Every firing machine `s` covered that no active silence covers is told the
    /// silence ended.
    async fn silence_ended(&mut self, s: &Silence, now: Timestamp) {
        let rules = self.matcher.rules();
        let under = |rule: usize, d: &DeviceName, sensor: Option<&SensorName>| {
            let name = &rules[rule].name;
            let sensor = sensor.map(SensorName::as_str);
            s.covers(name, d.as_str(), sensor)
                && self
                    .silences
                    .covering(name, d.as_str(), sensor, now)
                    .is_none()
        };
        let mut due: Vec<Owned> = Vec::new();
        for (d, sensors) in &self.series {
            for (sn, slots) in sensors {
                for (k, slot) in slots.iter().enumerate() {
                    if slot.machine.phase == Phase::Firing && under(slot.rule, d, Some(sn)) {
                        due.push((d.clone(), Some(sn.clone()), k));
                    }
                }
            }
        }
        for (d, slots) in &self.devices {
            for (k, slot) in slots.iter().enumerate() {
                if slot.machine.phase == Phase::Firing && under(slot.rule, d, None) {
                    due.push((d.clone(), None, k));
                }
            }
        }
        for (d, sn, k) in due {
            let at = Loc {
                device: &d,
                sensor: sn.as_ref(),
                k,
            };
            let actions = self.step(at, Input::SilenceEnded { now });
            self.act(at, actions, now).await;
        }
    }
}
