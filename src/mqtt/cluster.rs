//! Cluster mode: hubs that share one database and one broker share the live stream.
//!
//! Each hub publishes, on `<cluster_topic>/<hub id>`, what its own writer committed,
//! its devices' status changes, and every `presence_interval` the devices online on it.
//! Every hub subscribes to `<cluster_topic>/+`, skips its own topic, and feeds the rest
//! into its live fan-out. A reading is committed by exactly one hub (the database keeps
//! one copy of each (device, sensor, ts)), so each dashboard sees it once; a per-hub
//! sequence number drops the repeats QoS 1 may deliver after a reconnect.
//!
//! [`Presence`] remembers which devices are online on which other hub, for
//! `/v1/devices`. A hub that says goodbye (shutdown), whose last will the broker sends
//! (crash, lost connection), or that is silent for three presence intervals is
//! forgotten, and its devices go offline unless online elsewhere.

use super::Context;
use crate::domain::{
    DeviceName, NameError, Reading, SensorName, StatusEvent, StoredReading, Timestamp, Unit, Value,
};
use parking_lot::Mutex;
use rumqttc::Publish;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// `<cluster_topic>/<hub id>`.
pub fn topic(cluster_topic: &str, hub_id: &str) -> String {
    format!("{cluster_topic}/{hub_id}")
}

/// A reading on the cluster topic: device, sensor, ts (µs since the epoch), value, unit.
type WireReading = (String, String, i64, Value, Option<String>);

/// A device status change on the cluster topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireStatus {
    pub device: String,
    pub online: bool,
    /// µs since the epoch.
    pub ts: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Body {
    Readings(Vec<WireReading>),
    Status(WireStatus),
    /// Every device online on the sending hub.
    Presence(Vec<String>),
    /// The sending hub is leaving (always `true`).
    Gone(bool),
}

/// One message on a hub's cluster topic: `{"seq": 7, "readings": [...]}` and so on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterMessage {
    /// Per sending hub, from 1; 0 for the last will.
    pub seq: u64,
    #[serde(flatten)]
    pub body: Body,
}

impl ClusterMessage {
    pub fn gone() -> Self {
        Self {
            seq: 0,
            body: Body::Gone(true),
        }
    }
    pub fn readings(seq: u64, rows: &[StoredReading]) -> Self {
        let rows = rows
            .iter()
            .map(|s| {
                let r = &s.reading;
                let unit = r.unit.as_ref().map(|u| u.as_str().to_owned());
                (
                    s.device.to_string(),
                    r.sensor.to_string(),
                    r.ts.as_micros(),
                    r.value.clone(),
                    unit,
                )
            })
            .collect();
        Self {
            seq,
            body: Body::Readings(rows),
        }
    }
    pub fn status(seq: u64, ev: &StatusEvent) -> Self {
        Self {
            seq,
            body: Body::Status(WireStatus {
                device: ev.device.to_string(),
                online: ev.online,
                ts: ev.ts.as_micros(),
            }),
        }
    }
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("cluster messages serialize")
    }
}

/// Parses wire readings back into domain types; a bad one fails the whole message.
fn decode_readings(rows: Vec<WireReading>) -> Result<Vec<StoredReading>, NameError> {
    rows.into_iter()
        .map(|(device, sensor, ts, value, unit)| {
            Ok(StoredReading {
                device: DeviceName::parse(&device)?,
                reading: Reading {
                    sensor: SensorName::parse(&sensor)?,
                    value,
                    ts: Timestamp::from_micros(ts),
                    unit: unit.map(|u| Unit::parse(&u)).transpose()?,
                },
            })
        })
        .collect()
}

struct RemoteHub {
    online: HashSet<DeviceName>,
    last_seq: u64,
    heard: Instant,
}

/// Devices online on other hubs, by hub id. Owner: the cluster inbox task; `/v1/devices`
/// reads it.
#[derive(Default)]
pub struct Presence {
    hubs: Mutex<HashMap<String, RemoteHub>>,
}

impl Presence {
    pub fn is_online(&self, device: &str) -> bool {
        let Ok(device) = DeviceName::parse(device) else {
            return false;
        };
        let hubs = self.hubs.lock();
        hubs.values().any(|h| h.online.contains(&device))
    }
}

/// Receives other hubs' cluster messages and feeds them into this hub's live fan-out.
/// Ends when the hub shuts down.
pub async fn inbox(
    hub: Context,
    presence: Arc<Presence>,
    mut rx: mpsc::Receiver<Publish>,
    presence_interval: Duration,
) {
    let mut expire = tokio::time::interval(presence_interval);
    let shutdown = hub.shutdown.clone();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            p = rx.recv() => match p {
                Some(p) => receive(&hub, &presence, p),
                None => break,
            },
            _ = expire.tick() => {
                let silent: Vec<String> = {
                    let hubs = presence.hubs.lock();
                    hubs.iter()
                        .filter(|(_, h)| h.heard.elapsed() > presence_interval * 3)
                        .map(|(id, _)| id.clone())
                        .collect()
                };
                for id in silent {
                    tracing::info!(hub = %id, "cluster: hub silent for three presence intervals; its devices are offline");
                    forget(&hub, &presence, &id);
                }
            }
        }
    }
}

fn receive(hub: &Context, presence: &Presence, p: Publish) {
    let Some(id) = p.topic.rsplit('/').next().map(str::to_owned) else {
        return;
    };
    let msg: ClusterMessage = match serde_json::from_slice(&p.payload) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(topic = %crate::domain::untrusted(&p.topic), error = %e, "cluster: unreadable message ignored; do all hubs run the same version?");
            return;
        }
    };
    if let Body::Gone(_) = msg.body {
        tracing::info!(hub = %id, "cluster: hub left");
        return forget(hub, presence, &id);
    }
    {
        let mut hubs = presence.hubs.lock();
        let h = hubs.entry(id.clone()).or_insert_with(|| RemoteHub {
            online: HashSet::new(),
            last_seq: 0,
            heard: Instant::now(),
        });
        h.heard = Instant::now();
        if msg.seq <= h.last_seq {
            hub.metrics.mqtt.cluster_duplicates.inc();
            return;
        }
        h.last_seq = msg.seq;
    }
    match msg.body {
        Body::Readings(rows) => match decode_readings(rows) {
            Ok(batch) => {
                hub.metrics.mqtt.cluster_readings.inc_by(batch.len() as u64);
                hub.live.deliver_remote(&Arc::new(batch));
            }
            Err(e) => {
                tracing::warn!(hub = %id, error = %e, "cluster: readings with an invalid field ignored")
            }
        },
        Body::Status(s) => {
            let Ok(device) = DeviceName::parse(&s.device) else {
                return;
            };
            let ev = StatusEvent {
                device,
                online: s.online,
                ts: Timestamp::from_micros(s.ts),
            };
            set_online(hub, presence, &id, ev);
        }
        Body::Presence(names) => {
            let now: HashSet<DeviceName> = names
                .iter()
                .filter_map(|n| DeviceName::parse(n).ok())
                .collect();
            let before = presence.hubs.lock()[&id].online.clone();
            for d in now.difference(&before) {
                set_online(hub, presence, &id, event(d, true));
            }
            for d in before.difference(&now) {
                set_online(hub, presence, &id, event(d, false));
            }
        }
        Body::Gone(_) => unreachable!("handled above"),
    }
}

fn event(device: &DeviceName, online: bool) -> StatusEvent {
    StatusEvent {
        device: device.clone(),
        online,
        ts: Timestamp::now(),
    }
}

/// Records `ev` for hub `id`, and tells dashboards when the device's cluster-wide state
/// changed (online here or on any hub before, offline everywhere after).
fn set_online(hub: &Context, presence: &Presence, id: &str, ev: StatusEvent) {
    let local = hub.sessions.is_online(ev.device.as_str());
    let changed = {
        let mut hubs = presence.hubs.lock();
        let elsewhere = hubs
            .iter()
            .any(|(h, r)| h != id && r.online.contains(&ev.device));
        let Some(r) = hubs.get_mut(id) else { return };
        let was = r.online.contains(&ev.device);
        if ev.online {
            r.online.insert(ev.device.clone());
        } else {
            r.online.remove(&ev.device);
        }
        was != ev.online && !local && !elsewhere
    };
    if changed {
        hub.live.deliver_remote_status(&ev);
    }
}

/// Drops hub `id`, sending offline status for its devices not online elsewhere.
fn forget(hub: &Context, presence: &Presence, id: &str) {
    let devices: Vec<DeviceName> = {
        let hubs = presence.hubs.lock();
        match hubs.get(id) {
            Some(h) => h.online.iter().cloned().collect(),
            None => return,
        }
    };
    for d in devices {
        set_online(hub, presence, id, event(&d, false));
    }
    presence.hubs.lock().remove(id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_in_a_compact_form() {
        let rows = vec![StoredReading {
            device: DeviceName::parse("boiler-1").unwrap(),
            reading: Reading {
                sensor: SensorName::parse("temperature").unwrap(),
                value: (21.5).into(),
                ts: Timestamp::from_micros(1_795_255_200_250_000),
                unit: Some(Unit::parse("Cel").unwrap()),
            },
        }];
        let m = ClusterMessage::readings(3, &rows);
        let text = String::from_utf8(m.encode()).unwrap();
        assert_eq!(
            text,
            r#"{"seq":3,"readings":[["boiler-1","temperature",1795255200250000,21.5,"Cel"]]}"#
        );
        let back: ClusterMessage = serde_json::from_str(&text).unwrap();
        let Body::Readings(r) = back.body else {
            panic!()
        };
        let decoded = decode_readings(r).unwrap();
        assert_eq!(decoded[0].reading, rows[0].reading);
        assert_eq!(
            String::from_utf8(ClusterMessage::gone().encode()).unwrap(),
            r#"{"seq":0,"gone":true}"#
        );
    }

    #[test]
    fn invalid_names_from_the_wire_are_refused() {
        let rows = vec![("bad name".to_owned(), "t".to_owned(), 0, 1.0.into(), None)];
        assert!(decode_readings(rows).is_err());
    }
}
