//! Alert rules (docs/protocol.md §9): the JSON a client sends (or the CLI builds), parsed into a
//! typed [`Rule`] and checked once. Every error says what to fix.
//!
//! Duration bounds (docs/alerts.md): `for` is at most [`MAX_DURATION`] (30 days), and for
//! `no_data` and `offline` at least [`MIN_WAIT`] (1 s); `repeat` is at most 30 days and at
//! least `[alerts] min_repeat` (default 1 min), checked by [`Rule::check_new`] when a rule
//! is added (HTTP, `alert add`, `alert import`), so a rule stored by an older release
//! still loads.

use crate::domain::{DeviceName, LabelError, Labels, NameError, PatternError, Value, ValueKind};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A rule's pattern: globs in each segment; devices only for `offline` rules
/// ([`Pattern::parse_glob`], [`Pattern::parse_devices`]).
pub use crate::domain::{Pattern, Segment};

/// Why a rule was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    #[error("invalid rule: {0}")]
    Json(String),
    #[error("name {0:?} {1}")]
    Name(String, NameError),
    #[error("pattern {0}")]
    Pattern(PatternError),
    #[error("unknown kind {0:?}; expected threshold, no_data or offline")]
    UnknownKind(String),
    #[error("unknown op {0:?}; expected one of > >= < <= == !=")]
    UnknownOp(String),
    #[error("a {kind} rule needs `{field}`")]
    Missing {
        kind: &'static str,
        field: &'static str,
    },
    #[error("`{field}` does not apply to a {kind} rule; remove it")]
    NotAllowed {
        kind: &'static str,
        field: &'static str,
    },
    #[error("{field}: {text:?} is not a duration; use e.g. 30s, 5m, 1h")]
    Duration { field: &'static str, text: String },
    #[error("value: {0}")]
    Value(String),
    #[error("op {0} compares numbers; use == or != for booleans and strings")]
    OrderOnNonNumber(&'static str),
    #[error("clear: {0}")]
    Clear(String),
    #[error("labels: {0}")]
    Labels(LabelError),
    #[error("severity: at most 32 letters, digits, . _ : -")]
    Severity,
    #[error("{field}: {text} is {side} {bound}; {hint}")]
    OutOfRange {
        field: &'static str,
        text: String,
        side: &'static str,
        bound: String,
        hint: &'static str,
    },
}

/// The longest `for` or `repeat` a rule may have.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);
/// The shortest `for` of a `no_data` or `offline` rule.
pub const MIN_WAIT: Duration = Duration::from_secs(1);

fn too_long(field: &'static str, d: Duration) -> RuleError {
    RuleError::OutOfRange {
        field,
        text: humantime::format_duration(d).to_string(),
        side: "over",
        bound: "30 days".into(),
        hint: "give a shorter duration",
    }
}

/// A comparison of a reading with a rule's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Op {
    const ALL: [Op; 6] = [Op::Gt, Op::Ge, Op::Lt, Op::Le, Op::Eq, Op::Ne];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }

    pub fn parse(s: &str) -> Result<Self, RuleError> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| RuleError::UnknownOp(s.chars().take(16).collect()))
    }

    /// `reading op limit`; `None` when their types differ (the rule does not apply).
    pub fn test(self, reading: &Value, limit: &Value) -> Option<bool> {
        match (reading, limit) {
            (Value::Number(a), Value::Number(b)) => Some(match self {
                Op::Gt => a > b,
                Op::Ge => a >= b,
                Op::Lt => a < b,
                Op::Le => a <= b,
                Op::Eq => a == b,
                Op::Ne => a != b,
            }),
            (a, b) if a.kind() == b.kind() => match self {
                Op::Eq => Some(a == b),
                Op::Ne => Some(a != b),
                _ => None,
            },
            _ => None,
        }
    }
}

/// What a rule watches.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `reading op value`, held for `hold` (reading time); resolved when a reading no
    /// longer meets `op clear` (or `op value` without `clear`).
    Threshold {
        op: Op,
        value: Value,
        hold: Duration,
        clear: Option<Value>,
    },
    /// No reading stored for `after` (hub clock).
    NoData { after: Duration },
    /// Device disconnected for `after`.
    Offline { after: Duration },
}

/// A checked rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub pattern: Pattern,
    pub condition: Condition,
    pub severity: Option<String>,
    pub repeat: Option<Duration>,
    /// Only devices carrying every one of these labels (empty: every device).
    pub labels: Labels,
    /// The rule as given, normalised: what is stored and listed.
    pub spec: RuleSpec,
}

/// The protocol.md §9 JSON of a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    pub pattern: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub hold: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<String>,
    /// protocol.md §14: `{"site": "plant-a"}`, matching only devices with those labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<serde_json::Value>,
}

impl Rule {
    /// Parses a rule's JSON text.
    pub fn from_json(text: &str) -> Result<Self, RuleError> {
        let spec: RuleSpec =
            serde_json::from_str(text).map_err(|e| RuleError::Json(e.to_string()))?;
        Self::from_spec(spec)
    }

    pub fn from_spec(spec: RuleSpec) -> Result<Self, RuleError> {
        DeviceName::parse(&spec.name).map_err(|e| RuleError::Name(spec.name.clone(), e))?;
        let kind: &'static str = match spec.kind.as_str() {
            "threshold" => "threshold",
            "no_data" => "no_data",
            "offline" => "offline",
            other => return Err(RuleError::UnknownKind(other.chars().take(32).collect())),
        };
        let pattern = match kind {
            "offline" => Pattern::parse_devices(&spec.pattern),
            _ => Pattern::parse_glob(&spec.pattern),
        }
        .map_err(RuleError::Pattern)?;
        let not_allowed = |field| RuleError::NotAllowed { kind, field };
        let missing = |field| RuleError::Missing { kind, field };
        let condition = if kind == "threshold" {
            threshold(&spec)?
        } else {
            if spec.op.is_some() {
                return Err(not_allowed("op"));
            }
            if spec.value.is_some() {
                return Err(not_allowed("value"));
            }
            if spec.clear.is_some() {
                return Err(not_allowed("clear"));
            }
            let after = duration("for", spec.hold.as_deref().ok_or(missing("for"))?)?;
            if after < MIN_WAIT {
                return Err(RuleError::OutOfRange {
                    field: "for",
                    text: humantime::format_duration(after).to_string(),
                    side: "under",
                    bound: "1s".into(),
                    hint: "a series or device is only checked that often",
                });
            }
            if after > MAX_DURATION {
                return Err(too_long("for", after));
            }
            match kind {
                "no_data" => Condition::NoData { after },
                _ => Condition::Offline { after },
            }
        };
        if let Some(s) = &spec.severity
            && (s.is_empty()
                || s.len() > 32
                || !s
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
        {
            return Err(RuleError::Severity);
        }
        let repeat = spec
            .repeat
            .as_deref()
            .map(|r| duration("repeat", r))
            .transpose()?;
        if repeat.is_some_and(|r| r.is_zero()) {
            return Err(RuleError::Duration {
                field: "repeat",
                text: "0".into(),
            });
        }
        if let Some(r) = repeat.filter(|r| *r > MAX_DURATION) {
            return Err(too_long("repeat", r));
        }
        let labels = match &spec.labels {
            Some(l) => Labels::from_json(l).map_err(RuleError::Labels)?,
            None => Labels::default(),
        };
        Ok(Self {
            name: spec.name.clone(),
            pattern,
            condition,
            severity: spec.severity.clone(),
            repeat,
            labels,
            spec,
        })
    }

    /// The bound a rule being added must also keep: `repeat` at least `min_repeat`
    /// (`[alerts] min_repeat`), so no rule can notify more often than that.
    pub fn check_new(&self, min_repeat: Duration) -> Result<(), RuleError> {
        match self.repeat {
            Some(r) if r < min_repeat => Err(RuleError::OutOfRange {
                field: "repeat",
                text: humantime::format_duration(r).to_string(),
                side: "under",
                bound: humantime::format_duration(min_repeat).to_string(),
                hint: "notifications repeat at most that often (alerts.min_repeat)",
            }),
            _ => Ok(()),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self.condition {
            Condition::Threshold { .. } => "threshold",
            Condition::NoData { .. } => "no_data",
            Condition::Offline { .. } => "offline",
        }
    }

    /// The normalised JSON stored and listed.
    pub fn spec_json(&self) -> String {
        serde_json::to_string(&self.spec).expect("a spec serializes")
    }
}

fn threshold(spec: &RuleSpec) -> Result<Condition, RuleError> {
    let missing = |field| RuleError::Missing {
        kind: "threshold",
        field,
    };
    let op = Op::parse(spec.op.as_deref().ok_or(missing("op"))?)?;
    let value = Value::from_json(spec.value.as_ref().ok_or(missing("value"))?)
        .map_err(|e| RuleError::Value(format!("{e}")))?;
    if value.kind() != ValueKind::Number && !matches!(op, Op::Eq | Op::Ne) {
        return Err(RuleError::OrderOnNonNumber(op.as_str()));
    }
    let hold = spec
        .hold
        .as_deref()
        .map(|h| duration("for", h))
        .transpose()?
        .unwrap_or(Duration::ZERO);
    if hold > MAX_DURATION {
        return Err(too_long("for", hold));
    }
    let clear = match &spec.clear {
        None => None,
        Some(c) => {
            let Some(c) = c.as_f64().filter(|c| c.is_finite()) else {
                return Err(RuleError::Clear("expected a number".into()));
            };
            let v = value.as_f64().ok_or_else(|| {
                RuleError::Clear("only numeric thresholds (> >= < <=) have a clear level".into())
            })?;
            let other_side = match op {
                Op::Gt | Op::Ge => c <= v,
                Op::Lt | Op::Le => c >= v,
                Op::Eq | Op::Ne => {
                    return Err(RuleError::Clear("only > >= < <= have a clear level".into()));
                }
            };
            if !other_side {
                return Err(RuleError::Clear(format!(
                    "{c} is not on the other side of {} {v}; a clear level must be past the threshold the other way (hysteresis)",
                    op.as_str()
                )));
            }
            Some(Value::Number(c))
        }
    };
    Ok(Condition::Threshold {
        op,
        value,
        hold,
        clear,
    })
}

/// A duration such as `5m`; `0` is allowed here (callers refuse it where it makes no sense).
fn duration(field: &'static str, text: &str) -> Result<Duration, RuleError> {
    let t = text.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(t).map_err(|_| RuleError::Duration {
        field,
        text: text.chars().take(32).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> Result<Rule, RuleError> {
        Rule::from_json(json)
    }

    #[test]
    fn the_contract_examples_parse() {
        let r = rule(r#"{"name": "freezer-warm", "pattern": "freezer-*/temperature", "kind": "threshold",
            "op": ">", "value": -15, "for": "5m", "clear": -17, "severity": "critical", "repeat": "1h"}"#)
        .unwrap();
        assert!(r.pattern.matches_series("freezer-1", "temperature"));
        assert!(!r.pattern.matches_series("fridge-1", "temperature"));
        assert_eq!(r.repeat, Some(Duration::from_secs(3600)));
        let r = rule(
            r#"{"name": "silent", "pattern": "*/temperature", "kind": "no_data", "for": "10m"}"#,
        )
        .unwrap();
        assert_eq!(
            r.condition,
            Condition::NoData {
                after: Duration::from_secs(600)
            }
        );
        let r = rule(r#"{"name": "gone", "pattern": "boiler-*", "kind": "offline", "for": "2m"}"#)
            .unwrap();
        assert!(r.pattern.device.matches("boiler-7") && r.pattern.sensor.is_none());
    }

    #[test]
    fn bad_rules_say_what_to_fix() {
        let cases = [
            (
                r#"{"name":"a","pattern":"x/y","kind":"threshold","op":"=>","value":1}"#,
                "unknown op",
            ),
            (
                r#"{"name":"a","pattern":"x/y","kind":"spike","for":"1m"}"#,
                "unknown kind",
            ),
            (
                r#"{"name":"a","pattern":"x/y","kind":"no_data","for":"soon"}"#,
                "not a duration",
            ),
            (
                r#"{"name":"a","pattern":"x y/z","kind":"no_data","for":"1m"}"#,
                "pattern",
            ),
            (
                r#"{"name":"a","pattern":"xy","kind":"no_data","for":"1m"}"#,
                "DEVICE/SENSOR",
            ),
            (
                r#"{"name":"a","pattern":"x/y","kind":"threshold","op":">","value":true}"#,
                "compares numbers",
            ),
            (
                r#"{"name":"a","pattern":"x/y","kind":"threshold","op":">","value":5,"clear":6}"#,
                "other side",
            ),
            (
                r#"{"name":"a","pattern":"x/y","kind":"threshold","value":5}"#,
                "needs `op`",
            ),
            (
                r#"{"name":"a","pattern":"x/y","kind":"no_data"}"#,
                "needs `for`",
            ),
            (
                r#"{"name":"a b","pattern":"x/y","kind":"no_data","for":"1m"}"#,
                "name",
            ),
            (
                r#"{"name":"a","pattern":"x/y","kind":"no_data","for":"1m","wat":1}"#,
                "unknown field",
            ),
        ];
        for (json, want) in cases {
            let e = rule(json).unwrap_err().to_string();
            assert!(e.contains(want), "{json}: {e}");
        }
    }

    #[test]
    fn durations_out_of_bounds_are_refused_with_the_bound() {
        let cases = [
            (
                r#"{"name":"a","pattern":"x/y","kind":"no_data","for":"0"}"#,
                "for: 0s is under 1s",
            ),
            (
                r#"{"name":"a","pattern":"x","kind":"offline","for":"10ms"}"#,
                "for: 10ms is under 1s",
            ),
            (
                r#"{"name":"a","pattern":"x/y","kind":"no_data","for":"31days"}"#,
                "is over 30 days",
            ),
            (
                r#"{"name":"a","pattern":"x/y","kind":"threshold","op":">","value":1,"for":"1year"}"#,
                "over 30 days",
            ),
            (
                r#"{"name":"a","pattern":"x","kind":"offline","for":"1m","repeat":"40days"}"#,
                "over 30 days",
            ),
        ];
        for (json, want) in cases {
            let e = rule(json).unwrap_err().to_string();
            assert!(e.contains(want), "{json}: {e}");
        }
        let fast = rule(r#"{"name":"a","pattern":"x","kind":"offline","for":"1m","repeat":"1ns"}"#)
            .unwrap();
        let e = fast.check_new(Duration::from_secs(60)).unwrap_err();
        assert!(e.to_string().contains("repeat: 1ns is under 1m"), "{e}");
        let ok = rule(r#"{"name":"a","pattern":"x","kind":"offline","for":"1m","repeat":"1m"}"#)
            .unwrap();
        assert_eq!(ok.check_new(Duration::from_secs(60)), Ok(()));
        let at_once =
            rule(r#"{"name":"a","pattern":"x/y","kind":"threshold","op":">","value":1,"for":"0"}"#);
        assert!(at_once.is_ok(), "a threshold `for` of 0 fires at once");
    }

    #[test]
    fn globs_match_any_run_of_characters() {
        let s = Segment::parse("a*b*c").unwrap();
        assert!(s.matches("abc") && s.matches("a-x-b-y-c") && !s.matches("acb"));
        assert!(Segment::parse("*-1").unwrap().matches("dev-1"));
        assert!(!Segment::parse("dev-*").unwrap().matches("de"));
        assert!(!Segment::parse("ab*ab").unwrap().matches("ab"));
    }

    #[test]
    fn equality_applies_to_booleans_and_strings_only_of_their_kind() {
        let t = Value::text("idle").unwrap();
        assert_eq!(Op::Eq.test(&t, &t), Some(true));
        assert_eq!(
            Op::Ne.test(&Value::Bool(true), &Value::Bool(false)),
            Some(true)
        );
        assert_eq!(Op::Eq.test(&Value::Number(1.0), &t), None);
        assert_eq!(Op::Gt.test(&t, &t), None);
    }
}
