//! Silences and acknowledgements as the operator asks for them (contract §16): the
//! request bodies parsed into typed values at the edge, and which active silence covers
//! an alert — pure, no I/O.
//!
//! A silence's pattern is `DEVICE/SENSOR` with globs (`freezer-*/temperature`), or
//! `DEVICE` (`freezer-*`, every alert of those devices, `offline` included); `*` covers
//! everything. With `rule` it covers that rule's alerts only.
//!
//! Owns [`SilenceRequest`], [`AckRequest`], [`Silence`], [`Silences`],
//! [`OperatorError`] and the `acknowledged` event ([`ack_event`]). Uses `domain`, [`super::rules`] names and the storage row types.

use super::message;
use crate::domain::{
    AlertEvent, AlertState, DeviceName, Pattern, PatternError, SensorName, Timestamp,
    parse_duration,
};
use crate::storage::alert_acks::{AckedRow, NewAck, NewSilence, SilenceRow};
use crate::storage::alerts::AlertKey;
use serde::Deserialize;
use std::time::Duration;

/// The longest comment kept (characters).
pub const MAX_COMMENT: usize = 1000;
/// The longest a silence may last.
pub const MAX_SILENCE: Duration = Duration::from_secs(366 * 24 * 3600);

/// Why an ack or silence request was refused (HTTP 400, CLI exit 2).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OperatorError {
    #[error("invalid body: {0}")]
    Json(String),
    #[error("pattern {0}")]
    Pattern(PatternError),
    #[error("device: {0}")]
    Device(String),
    #[error("sensor: {0}")]
    Sensor(String),
    #[error("rule: {0}")]
    Rule(String),
    #[error("give exactly one of `until` (RFC 3339) and `for` (a duration such as 2h)")]
    UntilOrFor,
    #[error("for: {0}")]
    For(String),
    #[error("until: {0}")]
    Until(String),
    #[error(
        "a silence ends at most 366 days ahead and after now; pick an earlier `until` or a shorter `for`"
    )]
    OutOfRange,
    #[error("comment: at most {MAX_COMMENT} characters")]
    CommentTooLong,
}

fn comment(text: String) -> Result<String, OperatorError> {
    if text.chars().count() > MAX_COMMENT {
        return Err(OperatorError::CommentTooLong);
    }
    Ok(text)
}

fn rule_name(r: &str) -> Result<String, OperatorError> {
    DeviceName::parse(r)
        .map(|n| n.as_str().to_owned())
        .map_err(|e| OperatorError::Rule(e.to_string()))
}

/// A silence's pattern: `DEVICE/SENSOR` (globs) or `DEVICE` (devices only).
pub fn parse_pattern(s: &str) -> Result<Pattern, OperatorError> {
    let parsed = if s.contains('/') {
        Pattern::parse_glob(s)
    } else {
        Pattern::parse_devices(s)
    };
    parsed.map_err(OperatorError::Pattern)
}

/// `POST /v1/alerts/ack`: `{"rule", "device", "sensor" (absent for offline), "comment"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct AckRequest {
    pub key: AlertKey,
    pub comment: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    rule: String,
    device: String,
    #[serde(default)]
    sensor: Option<String>,
    #[serde(default)]
    comment: String,
}

impl AckRequest {
    pub fn from_json(body: &[u8]) -> Result<Self, OperatorError> {
        let b: AckBody = serde_json::from_slice(body).map_err(|e| {
            OperatorError::Json(crate::domain::untrusted(&e.to_string()).to_string())
        })?;
        Self::new(&b.rule, &b.device, b.sensor.as_deref(), b.comment)
    }

    pub fn new(
        rule: &str,
        device: &str,
        sensor: Option<&str>,
        text: String,
    ) -> Result<Self, OperatorError> {
        let device = DeviceName::parse(device).map_err(|e| OperatorError::Device(e.to_string()))?;
        let sensor = sensor
            .map(|s| SensorName::parse(s).map_err(|e| OperatorError::Sensor(e.to_string())))
            .transpose()?;
        Ok(Self {
            key: AlertKey {
                rule: rule_name(rule)?,
                device: device.as_str().to_owned(),
                sensor: sensor.map(|s| s.as_str().to_owned()),
            },
            comment: comment(text)?,
        })
    }
}

/// What an `acknowledged` event says beyond the acknowledgement and its row.
pub struct AckContext<'a> {
    /// The series' unit, when this hub knows it.
    pub unit: Option<String>,
    /// The rule's condition in words, when this hub knows the rule.
    pub condition: Option<String>,
    pub dashboard_url: &'a str,
    pub silenced: bool,
}

/// The `acknowledged` event of `ack` on the firing row it found (contract §16).
pub fn ack_event(ack: &NewAck, row: &AckedRow, cx: AckContext<'_>) -> AlertEvent {
    let k = &ack.key;
    AlertEvent {
        id: 0,
        rule: k.rule.clone(),
        device: k.device.clone(),
        sensor: k.sensor.clone(),
        state: AlertState::Acknowledged,
        severity: row.severity.clone(),
        value: row.value.clone(),
        unit: cx.unit,
        condition: cx.condition,
        ts: ack.ts,
        since: row.since,
        url: Some(message::series_link(
            cx.dashboard_url,
            &k.device,
            k.sensor.as_deref(),
            row.since,
            ack.ts,
        )),
        by: Some(ack.by.clone()),
        comment: Some(ack.comment.clone()),
        silenced: cx.silenced,
    }
}

/// How long a silence lasts: until a time, or for a duration from now.
#[derive(Debug, Clone, PartialEq)]
pub enum Ends {
    Until(Timestamp),
    For(Duration),
}

impl Ends {
    /// From the two optional fields; exactly one must be given.
    pub fn parse(until: Option<&str>, dur: Option<&str>) -> Result<Self, OperatorError> {
        match (until, dur) {
            (Some(u), None) => Timestamp::parse_rfc3339(u)
                .map(Ends::Until)
                .map_err(|e| OperatorError::Until(e.to_string())),
            (None, Some(d)) => parse_duration(d)
                .map(Ends::For)
                .map_err(|e| OperatorError::For(e.to_string())),
            _ => Err(OperatorError::UntilOrFor),
        }
    }

    /// When the silence ends, made at `now`: after now and at most [`MAX_SILENCE`] ahead.
    pub fn at(&self, now: Timestamp) -> Result<Timestamp, OperatorError> {
        let until = match self {
            Ends::Until(t) => *t,
            Ends::For(d) if *d > MAX_SILENCE => return Err(OperatorError::OutOfRange),
            Ends::For(d) => now.saturating_add(*d),
        };
        if until <= now || until > now.saturating_add(MAX_SILENCE) {
            return Err(OperatorError::OutOfRange);
        }
        Ok(until)
    }
}

/// `POST /v1/silences`: `{"pattern", "rule" (optional), "until" or "for", "comment"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct SilenceRequest {
    pub pattern: Pattern,
    pub rule: Option<String>,
    pub ends: Ends,
    pub comment: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceBody {
    pattern: String,
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    until: Option<String>,
    #[serde(default, rename = "for")]
    dur: Option<String>,
    #[serde(default)]
    comment: String,
}

impl SilenceRequest {
    pub fn from_json(body: &[u8]) -> Result<Self, OperatorError> {
        let b: SilenceBody = serde_json::from_slice(body).map_err(|e| {
            OperatorError::Json(crate::domain::untrusted(&e.to_string()).to_string())
        })?;
        Self::new(
            &b.pattern,
            b.rule.as_deref(),
            Ends::parse(b.until.as_deref(), b.dur.as_deref())?,
            b.comment,
        )
    }

    pub fn new(
        pattern: &str,
        rule: Option<&str>,
        ends: Ends,
        text: String,
    ) -> Result<Self, OperatorError> {
        Ok(Self {
            pattern: parse_pattern(pattern)?,
            rule: rule.map(rule_name).transpose()?,
            ends,
            comment: comment(text)?,
        })
    }

    /// The row to store, made at `now` by the token named `by`.
    pub fn to_new(&self, by: &str, now: Timestamp) -> Result<NewSilence, OperatorError> {
        Ok(NewSilence {
            pattern: self.pattern.to_string(),
            rule: self.rule.clone(),
            until: self.ends.at(now)?,
            comment: self.comment.clone(),
            by: by.to_owned(),
        })
    }
}

/// An active silence, as the engine matches it.
#[derive(Debug, Clone, PartialEq)]
pub struct Silence {
    pub id: i64,
    pub pattern: Pattern,
    pub rule: Option<String>,
    pub until: Timestamp,
}

impl Silence {
    /// A stored row; `None` if its pattern no longer parses (it then covers nothing).
    pub fn of(row: &SilenceRow) -> Option<Self> {
        Some(Self {
            id: row.id,
            pattern: parse_pattern(&row.pattern).ok()?,
            rule: row.rule.clone(),
            until: row.until,
        })
    }

    /// Whether it covers the alert of `rule` on `device` (and `sensor`; `None`: offline).
    pub fn covers(&self, rule: &str, device: &str, sensor: Option<&str>) -> bool {
        if self.rule.as_deref().is_some_and(|r| r != rule) || !self.pattern.matches_device(device) {
            return false;
        }
        match (&self.pattern.sensor, sensor) {
            (None, _) => true,
            (Some(seg), Some(s)) => seg.matches(s),
            (Some(seg), None) => *seg == crate::domain::Segment::Any,
        }
    }
}

/// The active silences.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Silences(Vec<Silence>);

impl Silences {
    pub fn of(rows: &[SilenceRow]) -> Self {
        Self(rows.iter().filter_map(Silence::of).collect())
    }

    /// The oldest silence active at `now` covering the alert, if any.
    pub fn covering(
        &self,
        rule: &str,
        device: &str,
        sensor: Option<&str>,
        now: Timestamp,
    ) -> Option<i64> {
        self.0
            .iter()
            .find(|s| s.until > now && s.covers(rule, device, sensor))
            .map(|s| s.id)
    }
}

#[cfg(test)]
mod tests;
