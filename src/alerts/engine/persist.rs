//! Carrying out a machine's transition: stored with its event and webhook outbox rows
//! in one transaction ([`crate::storage::Store::record_alert`]), then announced; and the
//! cluster's conflicts.
//!
//! What is stored: a threshold's `pending`, every `firing`, and every change out of
//! `firing` (the row is deleted). The waits of `offline` and `no_data` live in memory.
//!
//! Cluster (hubs sharing PostgreSQL): every change is conditional on the row's version,
//! so one hub decides it; a hub that loses the race adopts the stored row. A transition
//! that cannot be stored is decided again on the next reading (thresholds) or after
//! [`super::STORAGE_RETRY`] (deadlines).
//!
//! An event raised while an active silence covers its alert is stored with `silenced`
//! and no outbox rows, and announced nowhere.
//!
//! Owns the `impl` of storing on [`super::Engine`]. Uses [`super::machine`] and the
//! storage API.

use super::load::stored;
use super::machine::{Actions, Due, Input, Phase, Transition};
use super::{Engine, Loc, STORAGE_RETRY};
use crate::alerts::message;
use crate::alerts::rules::{Condition, Rule};
use crate::domain::{AlertEvent, Timestamp};
use crate::storage::alerts::{AlertKey, NewState, Recorded, StateChange};

/// Whether `t`, out of `from`, changes the stored row (see the module's header).
pub(super) fn is_stored(rule: &Rule, from: Phase, t: &Transition) -> bool {
    matches!(rule.condition, Condition::Threshold { .. })
        || t.to == Phase::Firing
        || from == Phase::Firing
}

impl Engine {
    /// Carries out transition `t` of the slot at `at`; returns what its machine asks
    /// next (nothing when it was not stored: the machine is left as it was).
    pub(super) async fn apply(&mut self, at: Loc<'_>, t: Transition) -> Actions {
        let rule = self.rule(at);
        let slot = self.slot(at);
        let now = Timestamp::now();
        let mut version = slot.version;
        if is_stored(&rule, slot.machine.phase, &t) {
            let key = AlertKey {
                rule: rule.name.clone(),
                device: at.device.as_str().to_owned(),
                sensor: at.sensor.map(|s| s.as_str().to_owned()),
            };
            let new = (t.to != Phase::Ok).then(|| NewState {
                state: t.to.label().expect("not ok"),
                severity: rule.severity.clone(),
                since: t.since,
                value: t.value.clone(),
                notified: slot.machine.notified_after(&t, now),
            });
            let silenced = self.is_silenced(&key, now);
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
                unit: slot.unit.as_ref().map(|u| u.as_str().to_owned()),
                condition: Some(message::condition(&rule)),
                ts,
                since: t.since,
                url: Some(message::series_link(
                    &self.delivery.dashboard_url,
                    &key.device,
                    key.sensor.as_deref(),
                    t.since,
                    ts,
                )),
                by: None,
                comment: None,
                silenced,
            });
            match self
                .store
                .record_alert(&change, event.as_ref(), self.targets(silenced))
                .await
            {
                Ok(Recorded::Done { version: v, event }) => {
                    version = (t.to != Phase::Ok).then_some(v);
                    if let Some(e) = event {
                        self.announce(*e);
                    }
                }
                Ok(Recorded::Conflict) => {
                    self.adopt(at, &key).await;
                    return Actions::default();
                }
                Err(e) => {
                    tracing::error!(error = %e, rule = %rule.name, device = %at.device, "alerts: cannot store a transition; it is decided again on the next reading or deadline");
                    if !matches!(rule.condition, Condition::Threshold { .. }) {
                        let when = now.saturating_add(STORAGE_RETRY);
                        self.schedule(at, when, Due::Condition);
                    }
                    return Actions::default();
                }
            }
        }
        self.slot_mut(at).version = version;
        self.step(at, Input::Done { transition: t, now })
    }

    /// A stored event goes out: to live clients, MQTT and (through the outbox rows stored
    /// with it) webhooks and email — unless it was silenced.
    pub(super) fn announce(&self, e: AlertEvent) {
        self.metrics.alerts.events.inc();
        if !e.silenced {
            let _ = self.out.events.send(e);
            self.out.wake_sender.notify_one();
        }
    }

    /// The outbox targets of an event: none when it is silenced.
    pub(super) fn targets(&self, silenced: bool) -> &[String] {
        if silenced {
            &[]
        } else {
            &self.delivery.targets[..]
        }
    }

    /// Another hub changed this row first: take what it stored.
    pub(super) async fn adopt(&mut self, at: Loc<'_>, key: &AlertKey) {
        let row = match self.store.alert_states().await {
            Ok(rows) => rows.into_iter().find(|r| r.key() == *key),
            Err(e) => {
                tracing::warn!(error = %e, "alerts: cannot re-read a state another hub changed");
                return;
            }
        };
        self.slot_mut(at).version = row.as_ref().map(|r| r.version);
        self.step(at, Input::Adopt(row.map(stored)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> Rule {
        Rule::from_json(json).expect("a valid rule")
    }

    fn to(phase: Phase) -> Transition {
        Transition {
            to: phase,
            since: Timestamp::from_micros(0),
            value: None,
            event: None,
        }
    }

    #[test]
    fn thresholds_store_every_change_and_waits_only_what_touches_firing() {
        let warm = rule(
            r#"{"name": "w", "pattern": "*/t", "kind": "threshold", "op": ">", "value": 1, "for": "1m"}"#,
        );
        assert!(is_stored(&warm, Phase::Ok, &to(Phase::Pending)));
        assert!(is_stored(&warm, Phase::Pending, &to(Phase::Ok)));
        let gone = rule(r#"{"name": "g", "pattern": "*", "kind": "offline", "for": "1m"}"#);
        assert!(!is_stored(&gone, Phase::Ok, &to(Phase::Pending)));
        assert!(!is_stored(&gone, Phase::Pending, &to(Phase::Ok)));
        assert!(is_stored(&gone, Phase::Pending, &to(Phase::Firing)));
        assert!(is_stored(&gone, Phase::Firing, &to(Phase::Ok)));
        let silent = rule(r#"{"name": "s", "pattern": "*/t", "kind": "no_data", "for": "1m"}"#);
        assert!(
            is_stored(&silent, Phase::Firing, &to(Phase::Firing)),
            "a repeat"
        );
    }
}
