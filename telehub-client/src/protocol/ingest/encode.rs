//! The device side of protocol.md §2: the frames a device sends and the replies it reads back.
//!
//! [`FrameBuilder`] packs readings into one message `{"id": N, "readings": [...]}` while
//! it stays within a reading count and a byte budget (the hub's `max_frame_bytes`);
//! [`parse_reply`] reads the hub's answer into a [`Reply`]. [`crate::client`] speaks
//! through these two; the tests check the round trip through [`super::parse_message`].

use super::{DeviceReading, ErrorCode, Reply};
use serde::Deserialize;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

/// The wire form of one reading: `sensor`, `value`, `ts` (RFC 3339, microseconds),
/// and `unit` / `device` only when set.
impl Serialize for DeviceReading {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = &self.reading;
        let n = 3 + usize::from(r.unit.is_some()) + usize::from(self.device.is_some());
        let mut m = s.serialize_map(Some(n))?;
        m.serialize_entry("sensor", &r.sensor)?;
        m.serialize_entry("value", &r.value)?;
        m.serialize_entry("ts", &r.ts)?;
        if let Some(u) = &r.unit {
            m.serialize_entry("unit", u)?;
        }
        if let Some(d) = &self.device {
            m.serialize_entry("device", d)?;
        }
        m.end()
    }
}

impl ErrorCode {
    /// Whether a message refused with this code should be sent again later
    /// (`unavailable`, `rate_limited`); any other refusal is final.
    pub fn means_resend_later(self) -> bool {
        matches!(self, ErrorCode::Unavailable | ErrorCode::RateLimited)
    }
}

/// Builds one protocol.md §2 text frame, reading by reading, within a count and a byte budget.
#[derive(Debug)]
pub struct FrameBuilder {
    text: String,
    scratch: Vec<u8>,
    count: usize,
    max_readings: usize,
    max_bytes: usize,
}

/// `]}` closes every frame.
const CLOSING: usize = 2;

impl FrameBuilder {
    /// Starts a message with `id`; it will hold at most `max_readings` readings and
    /// `max_bytes` bytes, except that the first reading is always taken.
    pub fn new(id: Option<u64>, max_readings: usize, max_bytes: usize) -> Self {
        let text = match id {
            Some(id) => format!("{{\"id\":{id},\"readings\":["),
            None => String::from("{\"readings\":["),
        };
        Self {
            text,
            scratch: Vec::with_capacity(128),
            count: 0,
            max_readings: max_readings.max(1),
            max_bytes,
        }
    }

    /// Adds `r` when it fits; `false` means the message is full and `r` was not added.
    pub fn push(&mut self, r: &DeviceReading) -> bool {
        if self.count >= self.max_readings {
            return false;
        }
        self.scratch.clear();
        serde_json::to_writer(&mut self.scratch, r).expect("readings always serialize");
        let sep = usize::from(self.count > 0);
        if self.count > 0 && self.text.len() + sep + self.scratch.len() + CLOSING > self.max_bytes {
            return false;
        }
        if sep == 1 {
            self.text.push(',');
        }
        self.text
            .push_str(std::str::from_utf8(&self.scratch).expect("serde_json writes UTF-8"));
        self.count += 1;
        true
    }

    /// Readings added so far.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The finished frame.
    pub fn finish(mut self) -> String {
        self.text.push_str("]}");
        self.text
    }
}

/// A reply frame that is not a protocol.md §2 reply.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("not a reply from the hub: {0}")]
pub struct BadReply(pub String);

/// Reads one reply frame. A `nack` with an error code this build does not know is
/// read as a final refusal (`invalid_reading`), its code kept in the detail, so a
/// newer hub never makes a device resend forever.
pub fn parse_reply(text: &str) -> Result<Reply, BadReply> {
    let v: Value = serde_json::from_str(text).map_err(|_| BadReply(clip(text)))?;
    reply_from_value(v).map_err(|_| BadReply(clip(text)))
}

/// [`parse_reply`] of a frame already read as JSON.
pub fn reply_from_value(v: Value) -> Result<Reply, BadReply> {
    if let Ok(reply) = Reply::deserialize(&v) {
        return Ok(reply);
    }
    #[derive(serde::Deserialize)]
    struct AnyNack {
        nack: Option<u64>,
        error: String,
        #[serde(default)]
        detail: String,
    }
    match AnyNack::deserialize(&v) {
        Ok(n) => Ok(Reply::Nack {
            nack: n.nack,
            error: ErrorCode::InvalidReading,
            detail: format!("{}: {}", n.error, n.detail),
        }),
        Err(_) => Err(BadReply(clip(&v.to_string()))),
    }
}

fn clip(text: &str) -> String {
    text.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{DeviceName, Reading, SensorName, Timestamp, Unit};
    use crate::protocol::ingest::{ParseLimits, parse_message};
    use std::time::Duration;

    fn reading(i: i64, unit: Option<&str>, device: Option<&str>) -> DeviceReading {
        DeviceReading {
            device: device.map(|d| DeviceName::parse(d).unwrap()),
            reading: Reading {
                sensor: SensorName::parse("temperature").unwrap(),
                value: (21.5 + i as f64 / 3.0).into(),
                ts: Timestamp::from_micros(1_795_255_200_250_001 + i),
                unit: unit.map(|u| Unit::parse(u).unwrap()),
            },
        }
    }

    fn limits() -> ParseLimits {
        ParseLimits {
            max_readings: 1000,
            max_clock_skew: Duration::from_secs(300),
            now: Timestamp::from_micros(1_795_255_300_000_000),
        }
    }

    #[test]
    fn frames_round_trip_through_the_hub_parser() {
        let rs = vec![
            reading(0, Some("Cel"), None),
            reading(1, None, Some("boiler-2")),
            reading(2, Some(""), None),
        ];
        let mut b = FrameBuilder::new(Some(17), 10, 64 * 1024);
        for r in &rs {
            assert!(b.push(r));
        }
        let frame = b.finish();
        let msg = parse_message(&frame, &limits()).unwrap();
        assert_eq!(msg.id, Some(17));
        assert_eq!(msg.readings, rs);
        let no_id = FrameBuilder::new(None, 1, 1024);
        assert!(no_id.is_empty());
    }

    #[test]
    fn frames_stay_within_their_count_and_byte_budget() {
        let mut b = FrameBuilder::new(Some(1), 3, 64 * 1024);
        assert!((0..3).all(|i| b.push(&reading(i, None, None))));
        assert!(!b.push(&reading(3, None, None)));
        assert_eq!(b.len(), 3);

        let budget = 300;
        let mut b = FrameBuilder::new(Some(u64::MAX), 1000, budget);
        let mut i = 0;
        while b.push(&reading(i, Some("Cel"), Some("a-rather-long-device-name"))) {
            i += 1;
        }
        assert!(!b.is_empty());
        let frame = b.finish();
        assert!(frame.len() <= budget, "{} > {budget}", frame.len());
        assert_eq!(
            parse_message(&frame, &limits()).unwrap().readings.len(),
            i as usize
        );
    }

    #[test]
    fn the_first_reading_is_taken_even_over_budget() {
        let mut b = FrameBuilder::new(Some(1), 10, 10);
        assert!(b.push(&reading(0, None, None)));
        assert!(!b.push(&reading(1, None, None)));
    }

    #[test]
    fn every_reply_the_hub_sends_is_read_back() {
        let mut replies = vec![
            Reply::Ack {
                ack: Some(17),
                stored: 2,
            },
            Reply::Ack {
                ack: None,
                stored: 0,
            },
        ];
        for code in ErrorCode::ALL {
            replies.push(Reply::Nack {
                nack: Some(3),
                error: code,
                detail: "why".into(),
            });
        }
        for r in replies {
            assert_eq!(parse_reply(&r.to_json()).unwrap(), r);
        }
    }

    #[test]
    fn unknown_codes_are_final_and_garbage_is_an_error() {
        let r = parse_reply(r#"{"nack": 4, "error": "quota_exceeded", "detail": "x"}"#).unwrap();
        let Reply::Nack {
            nack,
            error,
            detail,
        } = r
        else {
            panic!("a nack")
        };
        assert_eq!((nack, error), (Some(4), ErrorCode::InvalidReading));
        assert!(!error.means_resend_later());
        assert!(detail.starts_with("quota_exceeded"));
        assert!(parse_reply("[1,2]").is_err());
        assert!(parse_reply(r#"{"hello": 1}"#).is_err());
        assert!(ErrorCode::Unavailable.means_resend_later());
        assert!(ErrorCode::RateLimited.means_resend_later());
    }
}
