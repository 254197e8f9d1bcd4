//! The bridge's side of `/v1/ingest` (protocol.md §2), on the shared device client's pieces:
//! [`Target`] (the `--hub` rule of protocol.md §2, TLS with an optional CA file, the gateway's
//! token) opens sockets, [`FrameBuilder`] writes messages, [`parse_reply`] reads replies.
//!
//! The bridge keeps its own buffer and send loop ([`super::forward`]) rather than a
//! [`crate::client::DeviceClient`], because it must batch per device (a refusal of one
//! device's readings never drops another's, protocol.md §6) and split a refused batch to find
//! the one bad reading; the client batches readings of all devices together.

use crate::client::{ClientConfig, ClientError};
use crate::config::SerialPortSettings;
use crate::domain::{DeviceName, Reading};
use crate::protocol::ingest::encode::{FrameBuilder, parse_reply};
use crate::protocol::ingest::{DeviceReading, ErrorCode, Reply};

pub use crate::client::{Target, Ws as HubSocket};

/// Prepares connections to the hub of `s` (checks the address, loads the CA file).
pub fn target(s: &SerialPortSettings) -> Result<Target, ClientError> {
    let mut c = ClientConfig::new(s.hub.clone(), s.token.clone());
    c.ca_file = s.ca_file.clone();
    let target = Target::new(&c)?;
    Ok(if s.commands {
        target.taking_commands()
    } else {
        target
    })
}

/// One protocol.md §2 message: `{"id": 7, "readings": [...]}`, every reading with its `ts` (so a
/// resend is stored once) and `device` when it is not the gateway's own.
pub fn encode_message(id: u64, device: Option<&DeviceName>, readings: &[Reading]) -> String {
    let mut b = FrameBuilder::new(Some(id), usize::MAX, usize::MAX);
    for r in readings {
        b.push(&DeviceReading {
            device: device.cloned(),
            reading: r.clone(),
        });
    }
    b.finish()
}

/// The hub's answer to one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Stored,
    Refused { code: ErrorCode, detail: String },
}

/// Reads `{"ack": 7, "stored": 2}` or `{"nack": 7, "error": "...", "detail": "..."}`;
/// `None` for anything else (or a reply without id, which the bridge never causes).
pub fn decode_reply(text: &str) -> Option<(u64, Outcome)> {
    match parse_reply(text).ok()? {
        Reply::Ack { ack, .. } => Some((ack?, Outcome::Stored)),
        Reply::Nack {
            nack,
            error,
            detail,
        } => Some((
            nack?,
            Outcome::Refused {
                code: error,
                detail,
            },
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{SensorName, Timestamp};
    use crate::protocol::ingest::{ParseLimits, parse_message};

    #[test]
    fn messages_read_back_as_the_same_readings_and_replies_are_understood() {
        let r = Reading {
            sensor: SensorName::parse("t").unwrap(),
            value: (21.5).into(),
            ts: Timestamp::parse_rfc3339("2026-11-21T10:00:00.25Z").unwrap(),
            unit: None,
        };
        let d = DeviceName::parse("pump-3").unwrap();
        let text = encode_message(7, Some(&d), std::slice::from_ref(&r));
        let limits = ParseLimits {
            max_readings: 10,
            max_clock_skew: std::time::Duration::from_secs(300),
            now: r.ts,
        };
        let m = parse_message(&text, &limits).unwrap();
        assert_eq!(m.id, Some(7));
        assert_eq!(m.readings[0].device.as_ref(), Some(&d));
        assert_eq!(m.readings[0].reading, r);
        assert_eq!(
            decode_reply(r#"{"ack":7,"stored":1}"#),
            Some((7, Outcome::Stored))
        );
        assert!(matches!(
            decode_reply(r#"{"nack":8,"error":"forbidden_device","detail":"x"}"#),
            Some((
                8,
                Outcome::Refused {
                    code: ErrorCode::ForbiddenDevice,
                    ..
                }
            ))
        ));
        assert_eq!(decode_reply(r#"{"ack":null,"stored":0}"#), None);
    }
}
