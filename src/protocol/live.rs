//! Live feed messages (contract §3): subscription patterns and client commands in,
//! reading/status/lagged/error frames out.
//!
//! Outgoing frames are built here and nowhere else: a reading is serialized once
//! ([`reading_object`]) and shared by every client that receives it; [`frames`] packs a
//! client's queued items into `{"readings":[...]}` frames without parsing them again.

use crate::domain::{DeviceName, SensorName, StatusEvent, StoredReading, Timestamp};
use bytes::Bytes;
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

/// One pre-serialized outgoing item, as queued for a dashboard client.
#[derive(Debug, Clone)]
pub enum Item {
    /// A reading object `{"device":...}`, shared by every client that receives it.
    Reading(Bytes),
    /// A complete frame (`{"status":...}`).
    Frame(Bytes),
}

#[derive(serde::Serialize)]
struct ReadingOut<'a> {
    device: &'a str,
    sensor: &'a str,
    ts: Timestamp,
    value: &'a crate::domain::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<&'a str>,
}

/// A stored reading as the object that goes inside a `{"readings":[...]}` frame.
pub fn reading_object(s: &StoredReading) -> Bytes {
    let r = &s.reading;
    let out = ReadingOut {
        device: s.device.as_str(),
        sensor: r.sensor.as_str(),
        ts: r.ts,
        value: &r.value,
        unit: r.unit.as_ref().map(|u| u.as_str()),
    };
    Bytes::from(serde_json::to_vec(&out).expect("a reading serializes"))
}

/// A `{"status":{...}}` frame.
pub fn status_frame(ev: &StatusEvent) -> Bytes {
    let v = serde_json::json!({"status": {"device": ev.device, "online": ev.online, "ts": ev.ts}});
    Bytes::from(v.to_string())
}

/// The answer to a command that could not be carried out.
pub fn error_frame(detail: &str) -> String {
    serde_json::json!({"error": "invalid_command", "detail": detail}).to_string()
}

/// Packs drained items into frames: consecutive readings share `{"readings":[...]}`
/// frames of at most `per_frame`; other frames keep their place; `{"lagged":N}` goes
/// last when readings were lost. Every frame is UTF-8 JSON.
pub fn frames(items: Vec<Item>, lagged: u64, per_frame: usize) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut in_frame = 0;
    let close = |buf: &mut Vec<u8>, out: &mut Vec<Bytes>, n: &mut usize| {
        if *n > 0 {
            buf.extend_from_slice(b"]}");
            out.push(Bytes::from(std::mem::take(buf)));
            *n = 0;
        }
    };
    for item in items {
        match item {
            Item::Reading(bytes) => {
                buf.extend_from_slice(if in_frame == 0 {
                    b"{\"readings\":["
                } else {
                    b","
                });
                buf.extend_from_slice(&bytes);
                in_frame += 1;
                if in_frame == per_frame {
                    close(&mut buf, &mut out, &mut in_frame);
                }
            }
            Item::Frame(bytes) => {
                close(&mut buf, &mut out, &mut in_frame);
                out.push(bytes);
            }
        }
    }
    close(&mut buf, &mut out, &mut in_frame);
    if lagged > 0 {
        out.push(Bytes::from(format!("{{\"lagged\":{lagged}}}")));
    }
    out
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

    #[test]
    fn readings_share_frames_and_status_keeps_its_place() {
        let r = |s: &'static str| Item::Reading(Bytes::from_static(s.as_bytes()));
        let items = vec![
            r("1"),
            r("2"),
            r("3"),
            Item::Frame(Bytes::from_static(b"{\"status\":0}")),
            r("4"),
        ];
        let f: Vec<Bytes> = frames(items, 7, 2);
        assert_eq!(
            f,
            [
                &br#"{"readings":[1,2]}"#[..],
                br#"{"readings":[3]}"#,
                br#"{"status":0}"#,
                br#"{"readings":[4]}"#,
                br#"{"lagged":7}"#
            ]
        );
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,100}") {
            let _ = parse_command(&s, 100);
            let _ = Pattern::parse(&s);
        }
    }
}
