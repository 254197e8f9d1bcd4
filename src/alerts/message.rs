//! The readable message of an alert event, the same facts for every channel people read
//! (Slack, Teams, email): rule, device, sensor, value with unit, the rule's condition,
//! since when, and the link to the dashboard view of the series. Pure: no I/O.
//!
//! Also what the engine writes into each event for it: the rule's condition in words
//! ([`condition`]) and the dashboard link ([`series_link`]).

use super::rules::{Condition, Rule};
use crate::domain::{AlertEvent, AlertState, Timestamp, Value};
use serde_json::json;
use std::time::Duration;

/// How much of the series before the condition began, and after the event, the link shows.
const LINK_MARGIN: Duration = Duration::from_secs(3600);

/// The rule's condition in words: `> 10 for 5m (clears at 8)`, `no data for 10m`,
/// `offline for 2m`.
pub fn condition(rule: &Rule) -> String {
    let human = |d: &Duration| humantime::format_duration(*d).to_string();
    match &rule.condition {
        Condition::Threshold {
            op,
            value,
            hold,
            clear,
        } => {
            let mut s = format!("{} {}", op.as_str(), shown(value));
            if !hold.is_zero() {
                s.push_str(&format!(" for {}", human(hold)));
            }
            if let Some(c) = clear {
                s.push_str(&format!(" (clears at {})", shown(c)));
            }
            s
        }
        Condition::NoData { after } => format!("no data for {}", human(after)),
        Condition::Offline { after } => format!("offline for {}", human(after)),
    }
}

/// The dashboard view of the event's series (its device when it has no sensor), from an
/// hour before the condition began to an hour after the event.
pub fn series_link(
    base: &str,
    device: &str,
    sensor: Option<&str>,
    since: Timestamp,
    ts: Timestamp,
) -> String {
    let base = base.trim_end_matches('/');
    let mut hash = format!("#device={device}");
    if let Some(s) = sensor {
        hash.push_str(&format!("&chart={device}/{s}"));
    }
    let from = since.saturating_sub(LINK_MARGIN).to_datetime();
    let to = ts.saturating_add(LINK_MARGIN).to_datetime();
    let iso = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    format!("{base}/{hash}&from={}&to={}", iso(from), iso(to))
}

/// A value as people read it (strings quoted).
fn shown(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Text(t) => format!("\"{t}\""),
    }
}

/// The facts of one event, in the order a message shows them.
pub struct Message {
    /// `FIRING freezer-warm: freezer-1/temperature`
    pub title: String,
    /// `(label, text)` lines: rule, device, sensor, value, condition, since.
    pub facts: Vec<(&'static str, String)>,
    pub url: Option<String>,
}

impl Message {
    pub fn of(e: &AlertEvent) -> Self {
        let state = match e.state {
            AlertState::Firing => "FIRING",
            AlertState::Resolved => "RESOLVED",
            AlertState::Acknowledged => "ACKNOWLEDGED",
        };
        let series = match &e.sensor {
            Some(s) => format!("{}/{s}", e.device),
            None => e.device.clone(),
        };
        let mut facts = Vec::new();
        let rule = match &e.severity {
            Some(sev) => format!("{} ({sev})", e.rule),
            None => e.rule.clone(),
        };
        facts.push(("Rule", rule));
        facts.push(("Device", e.device.clone()));
        if let Some(s) = &e.sensor {
            facts.push(("Sensor", s.clone()));
        }
        if let Some(v) = &e.value {
            let unit = e
                .unit
                .as_deref()
                .map(|u| format!(" {u}"))
                .unwrap_or_default();
            facts.push(("Value", format!("{}{unit}", shown(v))));
        }
        if let Some(c) = &e.condition {
            facts.push(("Condition", c.clone()));
        }
        facts.push(("Since", e.since.to_rfc3339()));
        if e.state == AlertState::Resolved {
            facts.push(("Resolved at", e.ts.to_rfc3339()));
        }
        if let Some(by) = &e.by {
            facts.push(("Acknowledged by", by.clone()));
            facts.push(("Acknowledged at", e.ts.to_rfc3339()));
        }
        if let Some(c) = e.comment.as_ref().filter(|c| !c.is_empty()) {
            facts.push(("Comment", c.clone()));
        }
        Self {
            title: format!("{state} {}: {series}", e.rule),
            facts,
            url: e.url.clone(),
        }
    }

    /// The message as plain text: the title, one `Label: text` line per fact, the link.
    pub fn text(&self) -> String {
        let mut out = self.title.clone();
        out.push('\n');
        for (k, v) in &self.facts {
            out.push_str(&format!("{k}: {v}\n"));
        }
        if let Some(u) = &self.url {
            out.push_str(&format!("View: {u}\n"));
        }
        out
    }

    /// A Slack incoming-webhook body: `text` (notifications, clients without blocks) and
    /// `blocks` (a header, the facts, the link).
    pub fn slack(&self) -> serde_json::Value {
        let fields: Vec<_> = self
            .facts
            .iter()
            .map(|(k, v)| json!({"type": "mrkdwn", "text": format!("*{k}:*\n{}", slack_escape(v))}))
            .collect();
        let mut blocks =
            vec![json!({"type": "header", "text": {"type": "plain_text", "text": self.title}})];
        // Slack takes at most 10 fields per section.
        for chunk in fields.chunks(10) {
            blocks.push(json!({"type": "section", "fields": chunk}));
        }
        if let Some(u) = &self.url {
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("<{u}|View the series on the dashboard>")}}));
        }
        json!({"text": self.text(), "blocks": blocks})
    }

    /// A Microsoft Teams message card.
    pub fn teams(&self) -> serde_json::Value {
        let facts: Vec<_> = self
            .facts
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect();
        let mut card = json!({
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": self.title,
            "title": self.title,
            "themeColor": if self.title.starts_with("FIRING") { "D32F2F" } else { "2E7D32" },
            "sections": [{"facts": facts}],
        });
        if let Some(u) = &self.url {
            card["potentialAction"] = json!([{
                "@type": "OpenUri",
                "name": "View on the dashboard",
                "targets": [{"os": "default", "uri": u}],
            }]);
        }
        card
    }
}

/// Slack mrkdwn treats `&`, `<` and `>` as control characters.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests;
