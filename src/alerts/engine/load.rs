//! Loading the rules and restoring the stored states into machines.
//!
//! The rules' epoch (bumped by every rule change, over HTTP or by the CLI writing the
//! database, and by every change of a device's labels) is polled; when it moved, the rules, the stored `alert_state` rows and (for
//! `no_data` and `offline` rules) the device registry are read, and every slot is made
//! again: from its stored row when there is one (a firing alert stays firing, its
//! `repeat` counted from its last notification), else in `ok`. `no_data` waits start
//! from the series' newest stored reading (or carry over from the slots replaced);
//! `offline` waits from when the device was seen gone (or the hub's start).
//!
//! Owns the `impl` of loading on [`super::Engine`]. Uses [`super::machine`],
//! [`super::super::matcher`], [`super::super::rules`] and the storage API.

use super::machine::{Action, Input, Machine, Phase, Stored};
use super::{Engine, Loc, Slot, count_phase};
use crate::alerts::matcher::Matcher;
use crate::alerts::rules::{Condition, Rule};
use crate::domain::{DeviceName, SensorName, Timestamp};
use crate::storage::StorageError;
use crate::storage::alerts::{AlertKey, AlertStateRow};
use std::collections::HashMap;
use std::sync::Arc;

impl Engine {
    /// Reloads the rules when their epoch moved (a failure is logged and retried at the
    /// next poll).
    pub(super) async fn reload_if_changed(&mut self) {
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
        let labels = if Matcher::wants_labels(&rules) {
            self.store.labels_by_name().await?
        } else {
            HashMap::new()
        };
        let seen = self.no_data_seen();
        self.epoch = Some(epoch);
        self.series.clear();
        self.devices.clear();
        self.deadlines.clear();
        self.metrics.alerts.states.clear();
        self.metrics.alerts.rules.set(rules.len() as i64);
        self.matcher = Matcher::new(rules, labels);
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

    /// The last reading of every series with a `no_data` slot: its wait carries over
    /// to the slots that replace it.
    fn no_data_seen(&self) -> HashMap<(DeviceName, SensorName), Timestamp> {
        let rules = self.matcher.rules();
        let mut seen = HashMap::new();
        for (d, sensors) in &self.series {
            for (s, slots) in sensors {
                for slot in slots {
                    if matches!(rules[slot.rule].condition, Condition::NoData { .. }) {
                        seen.insert((d.clone(), s.clone()), slot.machine.last_seen);
                    }
                }
            }
        }
        seen
    }

    /// The slots of a series, created on first sight (from stored rows when present).
    /// `last_seen`: the newest stored reading, for no_data waits (default: now).
    pub(super) fn series_slots(
        &mut self,
        device: &DeviceName,
        sensor: &SensorName,
        last_seen: Option<Timestamp>,
    ) -> usize {
        if let Some(slots) = self.series.get(device).and_then(|m| m.get(sensor)) {
            return slots.len();
        }
        let now = Timestamp::now();
        let start = Input::Start {
            last_seen: last_seen.unwrap_or(now),
            disconnected: None,
        };
        let rules = self.matcher.series_rules(device.as_str(), sensor.as_str());
        let n = rules.len();
        self.series
            .entry(device.clone())
            .or_default()
            .insert(sensor.clone(), Vec::with_capacity(n));
        for i in rules {
            self.make_slot(i, device, Some(sensor), start.clone(), now);
        }
        n
    }

    /// The offline slots of a device, created on first sight.
    pub(super) fn device_slots(&mut self, device: &DeviceName) -> usize {
        if let Some(slots) = self.devices.get(device) {
            return slots.len();
        }
        let now = Timestamp::now();
        let start = Input::Start {
            last_seen: now,
            disconnected: self.disconnected.get(device).copied(),
        };
        let rules = self.matcher.device_rules(device.as_str());
        let n = rules.len();
        self.devices.insert(device.clone(), Vec::with_capacity(n));
        for i in rules {
            self.make_slot(i, device, None, start.clone(), now);
        }
        n
    }

    /// Appends the slot of rule `i` to its series (or device): from its stored row (taken
    /// from `persisted`) when there is one, then started.
    fn make_slot(
        &mut self,
        i: usize,
        device: &DeviceName,
        sensor: Option<&SensorName>,
        start: Input<'static>,
        now: Timestamp,
    ) {
        let rule = self.matcher.rules()[i].clone();
        let key = AlertKey {
            rule: rule.name.clone(),
            device: device.as_str().to_owned(),
            sensor: sensor.map(|s| s.as_str().to_owned()),
        };
        let mut slot = Slot {
            rule: i,
            version: None,
            machine: Machine::new(now),
            unit: None,
        };
        let mut actions = Vec::new();
        if let Some(row) = self.persisted.remove(&key) {
            slot.version = Some(row.version);
            actions.push(slot.machine.handle(&rule, Input::Resume(stored(row))));
        }
        actions.push(slot.machine.handle(&rule, start));
        count_phase(&self.metrics, &rule, Phase::Ok, slot.machine.phase);
        let slots = match sensor {
            Some(s) => self.series.get_mut(device).and_then(|m| m.get_mut(s)),
            None => self.devices.get_mut(device),
        };
        let slots = slots.expect("made by the caller");
        slots.push(slot);
        let at = Loc {
            device,
            sensor,
            k: slots.len() - 1,
        };
        for action in actions.into_iter().flatten() {
            debug_assert!(matches!(action, Action::Schedule { .. }), "{action:?}");
            if let Action::Schedule { at: when, due } = action {
                self.schedule(at, when, due);
            }
        }
    }
}

/// A stored row as the machine takes it.
pub(super) fn stored(row: AlertStateRow) -> Stored {
    Stored {
        firing: row.state == "firing",
        since: row.since,
        value: row.value,
        notified: row.notified,
        acknowledged: row.acknowledged.is_some(),
    }
}
