//! Alert events (docs/protocol.md §9): a rule's series changed to `firing` or `resolved`,
//! or an operator acknowledged a firing alert (`acknowledged`, with `by` and `comment`).
//! Made and stored by the alert engine, then sent to live clients, MQTT and webhooks.

use super::{Timestamp, Value};
use serde::Serialize;

/// The state an event announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Firing,
    Resolved,
    Acknowledged,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
            Self::Acknowledged => "acknowledged",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Firing, Self::Resolved, Self::Acknowledged]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One stored alert event, as every channel sends it:
/// `{"id","rule","device","sensor","state","severity","value","unit","condition","ts","since","url"}`.
/// `sensor` is null for `offline` rules; `value` is null when no reading caused the
/// change (`no_data`, `offline`). `ts` is when the change happened (the reading's time for
/// thresholds, the hub clock otherwise); `since` is when the condition began. `unit` is the
/// series' unit when its readings carry one; `condition` the rule's condition in words
/// (`> 10 for 5m`, `no data for 10m`, `offline for 2m`); `url` the dashboard view of the
/// series around the event. The three are null for events stored by older releases.
/// An `acknowledged` event carries `by` (the token's name) and `comment`; other events
/// leave both out. `silenced` is `true` on an event raised while a silence matched its
/// series (stored, never delivered), and left out otherwise.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertEvent {
    pub id: i64,
    pub rule: String,
    pub device: String,
    pub sensor: Option<String>,
    pub state: AlertState,
    pub severity: Option<String>,
    pub value: Option<Value>,
    pub unit: Option<String>,
    pub condition: Option<String>,
    pub ts: Timestamp,
    pub since: Timestamp,
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub silenced: bool,
}
