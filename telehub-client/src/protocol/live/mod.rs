//! Live feed messages (docs/protocol.md §3): subscription patterns and client commands (with
//! `resume`, and `alerts`) in, reading/status/alert/lagged/resumed/error frames out.
//!
//! Outgoing frames are built here and nowhere else: a reading is serialized once
//! ([`reading_object`]) and shared by every client that receives it; [`frames`] packs a
//! client's readings into `{"readings":[...],"epoch":E,"offset":N}` frames without
//! parsing them again. [`decode`] reads every one of these frames back.

mod decode;
pub use decode::{LiveFrame, LiveReading, LiveStatus};

use crate::domain::{AlertEvent, StatusEvent, StoredReading, Timestamp};
use bytes::Bytes;
use serde_json::Value;

/// A subscription pattern: whole segments, `*` alone for everything ([`Pattern::parse`]).
pub use crate::domain::Pattern;

/// A command from a dashboard client.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientCommand {
    Subscribe {
        patterns: Vec<Pattern>,
        resume: Option<ResumeFrom>,
    },
    Unsubscribe(Vec<Pattern>),
    /// `{"alerts": true}`: also send `{"alert": {...}}` events (protocol.md §9); `false` stops them.
    Alerts(bool),
    /// `{"commands": true}`: also send `{"command": {...}}` on every state change of a
    /// command (docs/commands.md); `false` stops them.
    Commands(bool),
}

/// `"resume": {"epoch": "E", "offset": N}`: the position of the last reading a client saw.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeFrom {
    pub epoch: String,
    pub offset: u64,
}

/// Parses `{"subscribe": [...]}` (optionally with `"resume": {...}`) or
/// `{"unsubscribe": [...]}`.
pub fn parse_command(text: &str, max_patterns: usize) -> Result<ClientCommand, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(mut o) = v else {
        return Err("expected an object with `subscribe` or `unsubscribe`".into());
    };
    for (key, make) in [
        ("alerts", ClientCommand::Alerts as fn(bool) -> ClientCommand),
        ("commands", ClientCommand::Commands),
    ] {
        if let Some(a) = o.remove(key) {
            return match (a, o.is_empty()) {
                (Value::Bool(on), true) => Ok(make(on)),
                (_, true) => Err(format!("{key}: expected true or false")),
                (_, false) => Err(format!("`{key}` goes alone in its command")),
            };
        }
    }
    let resume = match o.remove("resume") {
        None => None,
        Some(r) => Some(
            serde_json::from_value::<ResumeFrom>(r)
                .map_err(|e| format!("resume: expected {{\"epoch\": E, \"offset\": N}}: {e}"))?,
        ),
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
                .and_then(|p| Pattern::parse(p).map_err(|e| e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    match key.as_str() {
        "subscribe" => Ok(ClientCommand::Subscribe { patterns, resume }),
        "unsubscribe" if resume.is_none() => Ok(ClientCommand::Unsubscribe(patterns)),
        "unsubscribe" => Err("resume goes with subscribe".into()),
        other => Err(format!(
            "unknown command `{}`; expected subscribe or unsubscribe",
            clip(other)
        )),
    }
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
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

/// An `{"alert":{...}}` frame (protocol.md §9).
pub fn alert_frame(ev: &AlertEvent) -> Bytes {
    Bytes::from(serde_json::json!({"alert": ev}).to_string())
}

/// A `{"command":{...}}` frame: a command as stored after a change (docs/commands.md).
pub fn command_frame(command: &impl serde::Serialize) -> Bytes {
    Bytes::from(serde_json::json!({ "command": command }).to_string())
}

/// The answer to a command that could not be carried out.
pub fn error_frame(detail: &str) -> String {
    serde_json::json!({"error": "invalid_command", "detail": detail}).to_string()
}

/// `{"resumed": true}`, or `{"resumed": false, "epoch": E, "offset": M}` (live from M).
pub fn resumed_frame(not_resumed: Option<(&str, u64)>) -> String {
    match not_resumed {
        None => r#"{"resumed":true}"#.to_owned(),
        Some((epoch, offset)) => {
            serde_json::json!({"resumed": false, "epoch": epoch, "offset": offset}).to_string()
        }
    }
}

/// Packs what a client takes into frames: `status` frames as they are, then
/// `{"lagged":N}` when readings were lost before these, then the readings (each with its
/// hub-wide offset, in order) in `{"readings":[...],"epoch":E,"offset":N}` frames of at
/// most `per_frame`, where N is the offset of the frame's last reading. Every frame is
/// UTF-8 JSON.
pub fn frames(
    epoch: &str,
    status: Vec<Bytes>,
    lagged: u64,
    readings: &[(u64, Bytes)],
    per_frame: usize,
) -> Vec<Bytes> {
    let mut out = status;
    if lagged > 0 {
        out.push(Bytes::from(format!("{{\"lagged\":{lagged}}}")));
    }
    let tail = |offset: u64| format!("],\"epoch\":\"{epoch}\",\"offset\":{offset}}}");
    for chunk in readings.chunks(per_frame.max(1)) {
        let size: usize = chunk.iter().map(|(_, b)| b.len() + 1).sum();
        let mut buf = Vec::with_capacity(size + 64);
        buf.extend_from_slice(b"{\"readings\":[");
        for (i, (_, object)) in chunk.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(object);
        }
        let (last, _) = chunk.last().expect("chunks are not empty");
        buf.extend_from_slice(tail(*last).as_bytes());
        out.push(Bytes::from(buf));
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
            ClientCommand::Subscribe {
                patterns: vec![Pattern::ALL],
                resume: None
            }
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
        assert_eq!(
            parse_command(r#"{"alerts":true}"#, 10).unwrap(),
            ClientCommand::Alerts(true)
        );
        assert!(parse_command(r#"{"alerts":1}"#, 10).is_err());
        assert_eq!(
            parse_command(r#"{"commands":true}"#, 10).unwrap(),
            ClientCommand::Commands(true)
        );
        assert!(parse_command(r#"{"commands":true,"alerts":true}"#, 10).is_err());
    }

    #[test]
    fn readings_share_frames_after_status_and_lagged_and_carry_their_last_offset() {
        let r = |o: u64, s: &'static str| (o, Bytes::from_static(s.as_bytes()));
        let f: Vec<Bytes> = frames(
            "e1",
            vec![Bytes::from_static(b"{\"status\":0}")],
            7,
            &[r(3, "1"), r(5, "2"), r(9, "3")],
            2,
        );
        assert_eq!(
            f,
            [
                &br#"{"status":0}"#[..],
                br#"{"lagged":7}"#,
                br#"{"readings":[1,2],"epoch":"e1","offset":5}"#,
                br#"{"readings":[3],"epoch":"e1","offset":9}"#,
            ]
        );
        assert_eq!(resumed_frame(None), r#"{"resumed":true}"#);
        let v: Value = serde_json::from_str(&resumed_frame(Some(("e2", 4)))).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"resumed": false, "epoch": "e2", "offset": 4})
        );
    }

    #[test]
    fn subscribe_may_carry_a_resume_position() {
        assert_eq!(
            parse_command(
                r#"{"subscribe":["*"],"resume":{"epoch":"e","offset":3}}"#,
                10
            )
            .unwrap(),
            ClientCommand::Subscribe {
                patterns: vec![Pattern::ALL],
                resume: Some(ResumeFrom {
                    epoch: "e".into(),
                    offset: 3
                })
            }
        );
        assert!(parse_command(r#"{"subscribe":["*"],"resume":{"epoch":"e"}}"#, 10).is_err());
        assert!(
            parse_command(
                r#"{"unsubscribe":["*"],"resume":{"epoch":"e","offset":1}}"#,
                10
            )
            .is_err()
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
