//! Which rules apply to a series or a device, without testing every rule: rules are
//! indexed by their pattern's exact device segment, else by their exact sensor segment,
//! else kept in one bucket of patterns wildcarded in both. The engine asks once per
//! series and caches the answer, so a reading costs one lookup, not one per rule.
//! A rule with labels (protocol.md §14) applies only to devices carrying all of them;
//! the matcher holds the devices' labels as they were when the rules were loaded (a
//! label change makes the engine load them again).

use super::rules::{Condition, Rule};
use crate::domain::Labels;
use std::collections::HashMap;
use std::sync::Arc;

/// Rules by what their patterns name exactly.
#[derive(Default)]
pub struct Matcher {
    rules: Vec<Arc<Rule>>,
    /// Series rules (threshold, no_data) by exact device; then by exact sensor (device
    /// wildcarded); then the rest.
    by_device: HashMap<String, Vec<usize>>,
    by_sensor: HashMap<String, Vec<usize>>,
    series_rest: Vec<usize>,
    /// Device rules (offline) by exact device, then the rest.
    offline_by_device: HashMap<String, Vec<usize>>,
    offline_rest: Vec<usize>,
    /// The labels of each device that has any.
    labels: HashMap<String, Labels>,
}

impl Matcher {
    pub fn new(rules: Vec<Arc<Rule>>, labels: HashMap<String, Labels>) -> Self {
        let mut m = Matcher {
            labels,
            ..Matcher::default()
        };
        for (i, r) in rules.iter().enumerate() {
            let device = r.pattern.device.exact().map(str::to_owned);
            if matches!(r.condition, Condition::Offline { .. }) {
                match device {
                    Some(d) => m.offline_by_device.entry(d).or_default().push(i),
                    None => m.offline_rest.push(i),
                }
                continue;
            }
            let sensor = r.pattern.sensor.as_ref().and_then(|s| s.exact());
            match (device, sensor) {
                (Some(d), _) => m.by_device.entry(d).or_default().push(i),
                (None, Some(s)) => m.by_sensor.entry(s.to_owned()).or_default().push(i),
                (None, None) => m.series_rest.push(i),
            }
        }
        m.rules = rules;
        m
    }

    pub fn rules(&self) -> &[Arc<Rule>] {
        &self.rules
    }

    /// Indexes of the threshold and no_data rules whose pattern matches the series, in rule order.
    pub fn series_rules(&self, device: &str, sensor: &str) -> Vec<usize> {
        let empty = Vec::new();
        let mut out: Vec<usize> = [
            self.by_device.get(device).unwrap_or(&empty),
            self.by_sensor.get(sensor).unwrap_or(&empty),
            &self.series_rest,
        ]
        .into_iter()
        .flatten()
        .copied()
        .filter(|&i| self.rules[i].pattern.matches_series(device, sensor))
        .filter(|&i| self.labelled(i, device))
        .collect();
        out.sort_unstable();
        out
    }

    /// Indexes of the offline rules whose pattern matches the device.
    pub fn device_rules(&self, device: &str) -> Vec<usize> {
        let empty = Vec::new();
        let mut out: Vec<usize> = [
            self.offline_by_device.get(device).unwrap_or(&empty),
            &self.offline_rest,
        ]
        .into_iter()
        .flatten()
        .copied()
        .filter(|&i| self.rules[i].pattern.device.matches(device))
        .filter(|&i| self.labelled(i, device))
        .collect();
        out.sort_unstable();
        out
    }

    /// Whether `device` carries every label rule `i` asks for.
    fn labelled(&self, i: usize, device: &str) -> bool {
        let wanted = &self.rules[i].labels;
        wanted.is_empty() || self.labels.get(device).is_some_and(|l| l.has_all(wanted))
    }

    /// Whether any rule selects devices by label (loading then reads the labels).
    pub fn wants_labels(rules: &[Arc<Rule>]) -> bool {
        rules.iter().any(|r| !r.labels.is_empty())
    }

    pub fn has_offline_rules(&self) -> bool {
        !self.offline_by_device.is_empty() || !self.offline_rest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, pattern: &str, kind: &str) -> Arc<Rule> {
        let json = match kind {
            "offline" => {
                format!(r#"{{"name":"{name}","pattern":"{pattern}","kind":"offline","for":"1m"}}"#)
            }
            _ => format!(
                r#"{{"name":"{name}","pattern":"{pattern}","kind":"threshold","op":">","value":1}}"#
            ),
        };
        Arc::new(Rule::from_json(&json).unwrap())
    }

    #[test]
    fn finds_exactly_the_rules_whose_patterns_match() {
        let m = Matcher::new(
            vec![
                rule("a", "dev-1/temp", "threshold"),
                rule("b", "*/temp", "threshold"),
                rule("c", "dev-*/*", "threshold"),
                rule("d", "dev-2/*", "threshold"),
                rule("e", "dev-*", "offline"),
                rule("f", "dev-1", "offline"),
            ],
            HashMap::new(),
        );
        assert_eq!(m.series_rules("dev-1", "temp"), [0, 1, 2]);
        assert_eq!(m.series_rules("dev-2", "hum"), [2, 3]);
        assert_eq!(m.series_rules("other", "temp"), [1]);
        assert!(m.series_rules("other", "hum").is_empty());
        assert_eq!(m.device_rules("dev-1"), [4, 5]);
        assert_eq!(m.device_rules("dev-9"), [4]);
        assert!(m.device_rules("x").is_empty());
    }

    #[test]
    fn a_rule_with_labels_applies_only_to_devices_carrying_them() {
        let labelled = |name: &str, pattern: &str, kind: &str| {
            let mut spec = rule(name, pattern, kind).spec.clone();
            spec.labels = Some(serde_json::json!({"site": "a"}));
            Arc::new(Rule::from_spec(spec).unwrap())
        };
        let labels = |pairs: serde_json::Value| Labels::from_json(&pairs).unwrap();
        let m = Matcher::new(
            vec![
                labelled("a", "*/temp", "threshold"),
                labelled("b", "*", "offline"),
            ],
            HashMap::from([
                (
                    "in".to_owned(),
                    labels(serde_json::json!({"site": "a", "line": "1"})),
                ),
                ("out".to_owned(), labels(serde_json::json!({"site": "b"}))),
            ]),
        );
        assert_eq!(m.series_rules("in", "temp"), [0]);
        assert!(m.series_rules("out", "temp").is_empty());
        assert!(m.series_rules("bare", "temp").is_empty());
        assert_eq!(m.device_rules("in"), [1]);
        assert!(m.device_rules("out").is_empty());
    }
}
