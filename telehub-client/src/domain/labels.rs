//! Device labels (protocol.md §14): at most [`MAX_LABELS`] `key=value` pairs per device,
//! keys `^[a-z][a-z0-9_]{0,31}$`, values 1 to 64 printable characters. Parsed once here
//! from every place they arrive (an API body, `k=v` on the command line, a `k:v`
//! selector in a query string, a stored row), so the API, the CLI and storage agree.
//!
//! One key has a meaning to the hub: [`PRESENCE_TIMEOUT`] (`presence_timeout=10m`), a
//! device's own presence timeout (protocol.md §17), whose value must be a duration.

use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::time::Duration;

/// The most labels a device may carry.
pub const MAX_LABELS: usize = 16;
/// The longest label key, in characters.
pub const MAX_LABEL_KEY_CHARS: usize = 32;
/// The longest label value, in characters.
pub const MAX_LABEL_VALUE_CHARS: usize = 64;

/// The label key whose value overrides `[presence] timeout` for its device.
pub const PRESENCE_TIMEOUT: &str = "presence_timeout";
/// The range a `presence_timeout` label may take.
pub const PRESENCE_TIMEOUT_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(30 * 24 * 3600);

/// Why a label was refused: each says the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error(
        "label key {0:?}: a lowercase letter, then up to 31 lowercase letters, digits or _ (e.g. site, line_2)"
    )]
    Key(String),
    #[error("label {key}: the value must be 1 to 64 printable characters (no control characters)")]
    Value { key: String },
    #[error("label presence_timeout: {0:?} is not a duration from 1s to 30d (e.g. 10m, 1h30m)")]
    PresenceTimeout(String),
    #[error("label {0}: expected a string value")]
    NotAString(String),
    #[error("at most {MAX_LABELS} labels per device; {0} given")]
    TooMany(usize),
    #[error("{0:?}: expected KEY{1}VALUE (e.g. site{1}plant-a)")]
    Pair(String, char),
    #[error("labels: expected a JSON object of string values, e.g. {{\"site\": \"plant-a\"}}")]
    NotAnObject,
}

/// A label key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct LabelKey(String);

impl LabelKey {
    pub fn parse(s: &str) -> Result<Self, LabelError> {
        let mut chars = s.chars();
        let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && s.len() <= MAX_LABEL_KEY_CHARS
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(LabelError::Key(clip(s)))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A label value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct LabelValue(String);

impl LabelValue {
    pub fn parse(key: &LabelKey, s: &str) -> Result<Self, LabelError> {
        let n = s.chars().count();
        if n == 0 || n > MAX_LABEL_VALUE_CHARS || s.chars().any(char::is_control) {
            return Err(LabelError::Value { key: key.0.clone() });
        }
        if key.0 == PRESENCE_TIMEOUT && presence_timeout(s).is_none() {
            return Err(LabelError::PresenceTimeout(clip(s)));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One `key=value` (command line) or `key:value` (query string) pair.
pub fn parse_pair(s: &str, sep: char) -> Result<(LabelKey, LabelValue), LabelError> {
    let (k, v) = s
        .split_once(sep)
        .ok_or_else(|| LabelError::Pair(clip(s), sep))?;
    let key = LabelKey::parse(k)?;
    let value = LabelValue::parse(&key, v)?;
    Ok((key, value))
}

/// A device's labels, or a selector's (every pair must match): at most [`MAX_LABELS`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels(BTreeMap<LabelKey, LabelValue>);

impl Labels {
    /// From pairs; a key given twice keeps its last value.
    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (LabelKey, LabelValue)>,
    ) -> Result<Self, LabelError> {
        let map: BTreeMap<_, _> = pairs.into_iter().collect();
        if map.len() > MAX_LABELS {
            return Err(LabelError::TooMany(map.len()));
        }
        Ok(Self(map))
    }

    /// A JSON object of string values (an API body, an alert rule, a stored row).
    pub fn from_json(v: &serde_json::Value) -> Result<Self, LabelError> {
        let obj = v.as_object().ok_or(LabelError::NotAnObject)?;
        if obj.len() > MAX_LABELS {
            return Err(LabelError::TooMany(obj.len()));
        }
        let pairs = obj
            .iter()
            .map(|(k, v)| {
                let key = LabelKey::parse(k)?;
                let s = v.as_str().ok_or_else(|| LabelError::NotAString(clip(k)))?;
                let value = LabelValue::parse(&key, s)?;
                Ok((key, value))
            })
            .collect::<Result<Vec<_>, LabelError>>()?;
        Self::from_pairs(pairs)
    }

    /// These labels with `set` applied and the keys in `remove` taken away.
    pub fn edited(&self, set: &Labels, remove: &[LabelKey]) -> Result<Self, LabelError> {
        let mut map = self.0.clone();
        for k in remove {
            map.remove(k);
        }
        map.extend(set.0.iter().map(|(k, v)| (k.clone(), v.clone())));
        Self::from_pairs(map)
    }

    /// Whether every pair of `selector` is one of these labels.
    pub fn has_all(&self, selector: &Labels) -> bool {
        selector.0.iter().all(|(k, v)| self.0.get(k) == Some(v))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&LabelKey, &LabelValue)> {
        self.0.iter()
    }

    pub fn get(&self, key: &str) -> Option<&LabelValue> {
        self.0.get(&LabelKey(key.to_owned()))
    }

    /// The device's own presence timeout, from its [`PRESENCE_TIMEOUT`] label.
    pub fn presence_timeout(&self) -> Option<Duration> {
        presence_timeout(self.get(PRESENCE_TIMEOUT)?.as_str())
    }

    /// `k=v,k=v` (for a table cell).
    pub fn to_pairs_text(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{}={}", k.0, v.0))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// A `presence_timeout` value as a duration, when it is one in range.
fn presence_timeout(s: &str) -> Option<Duration> {
    super::parse_duration(s)
        .ok()
        .filter(|d| PRESENCE_TIMEOUT_RANGE.contains(d))
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn keys_and_values_follow_the_rules() {
        assert!(LabelKey::parse("site").is_ok());
        assert!(LabelKey::parse("line_2").is_ok());
        assert!(LabelKey::parse(&format!("a{}", "b".repeat(31))).is_ok());
        for bad in ["", "2line", "Site", "si-te", "si te", &"a".repeat(33)] {
            assert!(LabelKey::parse(bad).is_err(), "{bad:?}");
        }
        let k = LabelKey::parse("site").unwrap();
        assert!(LabelValue::parse(&k, "plant a/3:x").is_ok());
        assert!(LabelValue::parse(&k, &"é".repeat(64)).is_ok());
        assert!(LabelValue::parse(&k, &"é".repeat(65)).is_err());
        assert!(LabelValue::parse(&k, "").is_err());
        assert!(LabelValue::parse(&k, "a\nb").is_err());
    }

    #[test]
    fn a_presence_timeout_label_must_be_a_duration_in_range() {
        let k = LabelKey::parse(PRESENCE_TIMEOUT).unwrap();
        for ok in ["1s", "10m", "1h 30m", "30days"] {
            assert!(LabelValue::parse(&k, ok).is_ok(), "{ok:?}");
        }
        for bad in ["soon", "0s", "500ms", "31d", "10"] {
            let e = LabelValue::parse(&k, bad).unwrap_err();
            assert!(
                e.to_string().contains("duration from 1s to 30d"),
                "{bad:?}: {e}"
            );
        }
        let labels = Labels::from_json(&json!({"site": "a", "presence_timeout": "90s"})).unwrap();
        assert_eq!(labels.presence_timeout(), Some(Duration::from_secs(90)));
        assert_eq!(Labels::default().presence_timeout(), None);
    }

    #[test]
    fn pairs_split_at_the_first_separator() {
        let (k, v) = parse_pair("site=a=b", '=').unwrap();
        assert_eq!((k.as_str(), v.as_str()), ("site", "a=b"));
        let (k, v) = parse_pair("site:plant-a", ':').unwrap();
        assert_eq!((k.as_str(), v.as_str()), ("site", "plant-a"));
        assert_eq!(
            parse_pair("site", '='),
            Err(LabelError::Pair("site".into(), '='))
        );
    }

    #[test]
    fn a_json_object_of_at_most_16_strings_is_labels() {
        let l = Labels::from_json(&json!({"site": "a", "line": "3"})).unwrap();
        assert_eq!(l.to_pairs_text(), "line=3,site=a");
        assert_eq!(
            serde_json::to_value(&l).unwrap(),
            json!({"line": "3", "site": "a"})
        );
        let many: serde_json::Map<_, _> = (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert_eq!(
            Labels::from_json(&serde_json::Value::Object(many)),
            Err(LabelError::TooMany(17))
        );
        assert_eq!(
            Labels::from_json(&json!({"site": 3})),
            Err(LabelError::NotAString("site".into()))
        );
        assert_eq!(Labels::from_json(&json!([1])), Err(LabelError::NotAnObject));
    }

    #[test]
    fn edits_set_then_remove_and_selectors_need_every_pair() {
        let l = Labels::from_json(&json!({"site": "a", "line": "3"})).unwrap();
        let set = Labels::from_json(&json!({"model": "x"})).unwrap();
        let e = l.edited(&set, &[LabelKey::parse("line").unwrap()]).unwrap();
        assert_eq!(e.to_pairs_text(), "model=x,site=a");
        assert!(e.has_all(&Labels::from_json(&json!({"site": "a"})).unwrap()));
        assert!(!e.has_all(&Labels::from_json(&json!({"site": "a", "line": "3"})).unwrap()));
        assert!(e.has_all(&Labels::default()));
    }

    proptest! {
        #[test]
        fn an_accepted_pair_round_trips(s in "\\PC{0,80}") {
            if let Ok((k, v)) = parse_pair(&s, '=') {
                let text = format!("{}={}", k.as_str(), v.as_str());
                prop_assert_eq!(text.as_str(), s.as_str());
                let json = serde_json::to_value(Labels::from_pairs([(k.clone(), v.clone())]).unwrap()).unwrap();
                let back = Labels::from_json(&json).unwrap();
                prop_assert_eq!(back.get(k.as_str()), Some(&v));
            }
        }

        #[test]
        fn keys_are_accepted_exactly_by_the_rule(s in "[a-zA-Z0-9_ -]{0,40}") {
            let rule = s.len() <= 32
                && s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            prop_assert_eq!(LabelKey::parse(&s).is_ok(), rule);
        }
    }
}
