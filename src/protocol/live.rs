//! Live feed messages (contract §3): subscription patterns and client commands in,
//! reading/status/lagged frames out.

use crate::domain::{DeviceName, SensorName};
use serde_json::Value;

/// A `DEVICE/SENSOR` pattern; `None` stands for a `*` segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    pub device: Option<DeviceName>,
    pub sensor: Option<SensorName>,
}

impl Pattern {
    pub const ALL: Pattern = Pattern {
        device: None,
        sensor: None,
    };

    /// `"*"`, `"boiler-1/*"`, `"*/temperature"`, `"boiler-1/temperature"`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "*" {
            return Ok(Self::ALL);
        }
        let (d, sn) = s
            .split_once('/')
            .ok_or_else(|| format!("{:?}: expected DEVICE/SENSOR, `*` for any segment", clip(s)))?;
        let seg =
            |x: &str| -> Result<Option<String>, String> { Ok((x != "*").then(|| x.to_owned())) };
        let device = seg(d)?
            .map(|x| DeviceName::parse(&x).map_err(|e| format!("{:?}: device {e}", clip(s))))
            .transpose()?;
        let sensor = seg(sn)?
            .map(|x| SensorName::parse(&x).map_err(|e| format!("{:?}: sensor {e}", clip(s))))
            .transpose()?;
        Ok(Self { device, sensor })
    }

    pub fn matches_device(&self, device: &str) -> bool {
        self.device.as_ref().is_none_or(|d| d.as_str() == device)
    }

    pub fn matches(&self, device: &str, sensor: &str) -> bool {
        self.matches_device(device) && self.sensor.as_ref().is_none_or(|s| s.as_str() == sensor)
    }
}

/// A command from a dashboard client.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientCommand {
    Subscribe(Vec<Pattern>),
    Unsubscribe(Vec<Pattern>),
}

/// Parses `{"subscribe": [...]}` or `{"unsubscribe": [...]}`.
pub fn parse_command(text: &str, max_patterns: usize) -> Result<ClientCommand, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(mut o) = v else {
        return Err("expected an object with `subscribe` or `unsubscribe`".into());
    };
    if o.len() != 1 {
        return Err("expected exactly one of `subscribe` or `unsubscribe`".into());
    }
    let (key, list) = o
        .iter_mut()
        .next()
        .map(|(k, v)| (k.clone(), v.take()))
        .expect("one entry");
    let Value::Array(items) = list else {
        return Err(format!("{key}: expected an array of patterns"));
    };
    if items.len() > max_patterns {
        return Err(format!(
            "{key}: {} patterns; at most {max_patterns}",
            items.len()
        ));
    }
    let patterns = items
        .iter()
        .map(|p| {
            p.as_str()
                .ok_or_else(|| format!("{key}: patterns are strings"))
                .and_then(Pattern::parse)
        })
        .collect::<Result<Vec<_>, _>>()?;
    match key.as_str() {
        "subscribe" => Ok(ClientCommand::Subscribe(patterns)),
        "unsubscribe" => Ok(ClientCommand::Unsubscribe(patterns)),
        other => Err(format!(
            "unknown command `{}`; expected subscribe or unsubscribe",
            clip(other)
        )),
    }
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn patterns_match_whole_segments() {
        let p = Pattern::parse("boiler-1/*").unwrap();
        assert!(p.matches("boiler-1", "temperature"));
        assert!(!p.matches("boiler-10", "temperature"));
        let p = Pattern::parse("*/temperature").unwrap();
        assert!(p.matches("x", "temperature") && !p.matches("x", "temp"));
        assert!(Pattern::parse("*").unwrap().matches("a", "b"));
        assert!(Pattern::parse("boiler").is_err());
        assert!(Pattern::parse("a b/c").is_err());
    }

    #[test]
    fn commands_parse_or_explain() {
        assert_eq!(
            parse_command(r#"{"subscribe":["*"]}"#, 10).unwrap(),
            ClientCommand::Subscribe(vec![Pattern::ALL])
        );
        assert!(
            parse_command(r#"{"subscribe":["*","*"]}"#, 1)
                .unwrap_err()
                .contains("at most 1")
        );
        assert!(
            parse_command(r#"{"watch":["*"]}"#, 10)
                .unwrap_err()
                .contains("unknown command")
        );
        assert!(parse_command(r#"{"subscribe":[1]}"#, 10).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,100}") {
            let _ = parse_command(&s, 100);
            let _ = Pattern::parse(&s);
        }
    }
}
