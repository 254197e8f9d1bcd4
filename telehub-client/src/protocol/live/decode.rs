//! The live feed's frames as a client reads them (`telehub tail`, tests): the decoder
//! beside the encoder in [`super`], so the two cannot drift; the round trip is tested
//! below.

use serde::Deserialize;
use serde_json::{Map, Value};

/// A frame of the live feed, as the hub sends it (protocol.md §3).
#[derive(Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum LiveFrame {
    Readings {
        readings: Vec<LiveReading>,
        epoch: Option<String>,
        offset: Option<u64>,
    },
    Resumed {
        resumed: bool,
        epoch: Option<String>,
        offset: Option<u64>,
    },
    Status {
        status: LiveStatus,
    },
    Lagged {
        lagged: u64,
    },
    /// `{"alert": {…}}` (to clients that sent `{"alerts": true}`).
    Alert {
        alert: Map<String, Value>,
    },
    /// `{"command": {…}}`: a command as stored after a change (to clients that sent
    /// `{"commands": true}`).
    Command {
        command: Map<String, Value>,
    },
    Error {
        error: String,
        detail: String,
    },
}

impl LiveFrame {
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// One reading of a `readings` frame. `ts` is kept as the hub wrote it.
#[derive(Debug, Deserialize, PartialEq)]
pub struct LiveReading {
    pub device: String,
    pub sensor: String,
    pub ts: String,
    pub value: crate::domain::Value,
    pub unit: Option<String>,
}

/// A `status` frame's device, online or not.
#[derive(Debug, Deserialize, PartialEq)]
pub struct LiveStatus {
    pub device: String,
    pub online: bool,
    pub ts: String,
}

#[cfg(test)]
mod tests {
    use super::super::{command_frame, error_frame, frames, resumed_frame, status_frame};
    use super::*;
    use crate::domain::{DeviceName, StatusEvent, Timestamp};
    use bytes::Bytes;
    use proptest::prelude::*;

    fn parse(b: &[u8]) -> LiveFrame {
        LiveFrame::parse(std::str::from_utf8(b).unwrap()).unwrap()
    }

    #[test]
    fn what_the_hub_writes_the_decoder_reads() {
        let ev = StatusEvent {
            device: DeviceName::parse("boiler-1").unwrap(),
            online: true,
            ts: Timestamp::from_micros(1_795_255_200_000_000),
        };
        assert_eq!(
            parse(&status_frame(&ev)),
            LiveFrame::Status {
                status: LiveStatus {
                    device: "boiler-1".into(),
                    online: true,
                    ts: "2026-11-21T10:00:00.000000Z".into()
                }
            }
        );
        assert_eq!(
            parse(resumed_frame(Some(("e", 3))).as_bytes()),
            LiveFrame::Resumed {
                resumed: false,
                epoch: Some("e".into()),
                offset: Some(3)
            }
        );
        assert!(matches!(
            parse(error_frame("bad").as_bytes()),
            LiveFrame::Error { .. }
        ));
        let c = command_frame(&serde_json::json!({"id": "c_1", "state": "sent"}));
        let LiveFrame::Command { command } = parse(&c) else {
            panic!("a command frame")
        };
        assert_eq!(command["state"], "sent");
    }

    proptest! {
        #[test]
        fn readings_frames_round_trip(
            rs in prop::collection::vec(("[a-z]{1,8}", "[a-z]{1,8}", -1e9f64..1e9), 1..10),
            lagged in 0u64..5,
            per_frame in 1usize..4,
        ) {
            let objects: Vec<(u64, Bytes)> = rs.iter().enumerate().map(|(i, (d, s, v))| {
                let o = serde_json::json!({"device": d, "sensor": s, "ts": "t", "value": v});
                (i as u64 + 1, Bytes::from(o.to_string()))
            }).collect();
            let mut got = Vec::new();
            let mut saw_lagged = 0;
            for f in frames("e1", vec![], lagged, &objects, per_frame) {
                match parse(&f) {
                    LiveFrame::Readings { readings, epoch, offset } => {
                        prop_assert_eq!(epoch.as_deref(), Some("e1"));
                        got.extend(readings);
                        prop_assert_eq!(offset, Some(got.len() as u64));
                    }
                    LiveFrame::Lagged { lagged } => saw_lagged = lagged,
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
            prop_assert_eq!(saw_lagged, lagged);
            prop_assert_eq!(got.len(), rs.len());
            for (g, (d, s, v)) in got.iter().zip(&rs) {
                prop_assert_eq!((&g.device, &g.sensor), (d, s));
                prop_assert_eq!(&g.value, &crate::domain::Value::Number(*v));
            }
        }
    }
}
