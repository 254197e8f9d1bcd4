//! Outgoing MQTT messages: egress (each reading this hub's writer committed, on
//! `publish_topic` as `{"ts","value","unit"}`), alert events this hub's engine stored
//! (on `[alerts] mqtt_topic`, the protocol.md §9 event JSON) and, in cluster mode, the hub's commits,
//! status changes and presence on its cluster topic.
//!
//! Owner of one bounded queue (`publish_queue` messages). It takes committed batches
//! and status events as they come, and hands the queue's head to the client, waiting
//! only for the client's request channel. While the broker is away that channel fills,
//! the queue fills, and the oldest messages are dropped and counted
//! (`telehub_mqtt_publish_dropped_total{stream}`): memory stays bounded and the writer
//! never waits. At shutdown it sends what the last commits stored (within the grace),
//! says goodbye to the cluster, and disconnects.

use super::Context;
use super::cluster::{self, ClusterMessage};
use super::{BrokerStatus, MqttSettings};
use crate::domain::{AlertEvent, CommittedBatch, StatusEvent, StoredReading};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use rumqttc::{AsyncClient, QoS};
use serde::Serialize;
use std::collections::VecDeque;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;

struct Message {
    topic: String,
    payload: Vec<u8>,
    stream: &'static str,
    /// Readings it carries, for `published` (egress only).
    readings: u64,
}

/// The egress payload of one reading.
#[derive(Serialize)]
struct EgressPayload<'a> {
    ts: crate::domain::Timestamp,
    value: &'a crate::domain::Value,
    unit: Option<&'a str>,
}

pub struct Outbox {
    hub: Context,
    client: AsyncClient,
    queue: VecDeque<Message>,
    capacity: usize,
    qos: QoS,
    publish_topic: String,
    cluster: Option<String>,
    cluster_max: usize,
    seq: u64,
    presence_interval: std::time::Duration,
}

impl Outbox {
    pub fn new(hub: Context, client: AsyncClient, s: &MqttSettings, hub_id: String) -> Self {
        Self {
            hub,
            client,
            queue: VecDeque::new(),
            capacity: s.publish_queue,
            qos: super::qos(s.qos),
            publish_topic: s.publish_topic.clone(),
            cluster: s.cluster.then(|| cluster::topic(&s.cluster_topic, &hub_id)),
            cluster_max: s.cluster_max_readings,
            seq: 0,
            presence_interval: s.presence_interval,
        }
    }

    pub async fn run(
        mut self,
        mut committed: broadcast::Receiver<CommittedBatch>,
        mut events: broadcast::Receiver<StatusEvent>,
        alerts: super::Alerts,
        mut broker: watch::Receiver<BrokerStatus>,
    ) {
        let super::Alerts {
            events: mut alert_events,
            topic: alert_topic,
        } = alerts;
        let mut alerts_open = !alert_topic.is_empty();
        let mut sending: Option<BoxFuture<'static, (Message, bool)>> = None;
        let mut presence = tokio::time::interval(self.presence_interval);
        let mut writer_open = true;
        let mut connected = broker.borrow().connected;
        loop {
            if !writer_open && !broker.borrow().connected {
                // Shutting down without a broker: nothing more can go out.
                let left = self.queue.len() + usize::from(sending.is_some());
                if left > 0 {
                    tracing::warn!(
                        messages = left,
                        "mqtt: broker unreachable at shutdown; outgoing messages dropped"
                    );
                }
                for m in self.queue.drain(..) {
                    self.hub.metrics.mqtt.dropped(m.stream, 1);
                }
                if sending.is_some() {
                    self.hub.metrics.mqtt.dropped("egress", 1);
                }
                return;
            }
            if sending.is_none() {
                match self.queue.pop_front() {
                    Some(m) => sending = Some(self.send(m)),
                    None if !writer_open => break,
                    None => {}
                }
            }
            tokio::select! {
                biased;
                r = committed.recv(), if writer_open => match r {
                    Ok(batch) => self.committed(&batch),
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(batches = n, "mqtt: egress fell behind the writer; batches dropped");
                        self.hub.metrics.mqtt.dropped("egress", n);
                    }
                    // The writer has flushed and ended: send what is queued, then stop.
                    Err(RecvError::Closed) => writer_open = false,
                },
                a = alert_events.recv(), if writer_open && alerts_open => match a {
                    Ok(ev) => self.push_alert(&alert_topic, &ev),
                    Err(RecvError::Lagged(n)) => self.hub.metrics.mqtt.dropped("alerts", n),
                    Err(RecvError::Closed) => alerts_open = false,
                },
                Ok(ev) = events.recv(), if writer_open && self.cluster.is_some() => {
                    let m = ClusterMessage::status(self.next_seq(), &ev);
                    self.push_cluster(m);
                }
                Ok(()) = broker.changed(), if self.cluster.is_some() => {
                    // Announce this hub's devices on every (re)connect.
                    let now = broker.borrow_and_update().connected;
                    if now && !connected {
                        self.push_presence();
                    }
                    connected = now;
                }
                _ = presence.tick(), if writer_open && self.cluster.is_some() => self.push_presence(),
                (m, ok) = async { sending.as_mut().expect("checked").await }, if sending.is_some() => {
                    sending = None;
                    if !ok {
                        self.hub.metrics.mqtt.dropped(m.stream, 1);
                    } else if m.readings > 0 {
                        self.hub.metrics.mqtt.published.inc_by(m.readings);
                    }
                }
            }
        }
        if let Some(topic) = &self.cluster {
            let _ = self
                .client
                .publish(
                    topic.clone(),
                    self.qos,
                    false,
                    ClusterMessage::gone().encode(),
                )
                .await;
        }
        let _ = self.client.disconnect().await;
    }

    fn send(&self, m: Message) -> BoxFuture<'static, (Message, bool)> {
        let client = self.client.clone();
        let qos = self.qos;
        async move {
            let ok = client
                .publish(m.topic.clone(), qos, false, m.payload.clone())
                .await
                .is_ok();
            (m, ok)
        }
        .boxed()
    }

    fn committed(&mut self, batch: &[StoredReading]) {
        if !self.publish_topic.is_empty() {
            for s in batch {
                let r = &s.reading;
                let topic = self
                    .publish_topic
                    .replace("{device}", s.device.as_str())
                    .replace("{sensor}", r.sensor.as_str());
                let payload = EgressPayload {
                    ts: r.ts,
                    value: &r.value,
                    unit: r.unit.as_ref().map(|u| u.as_str()),
                };
                self.push(Message {
                    topic,
                    payload: serde_json::to_vec(&payload).expect("serializes"),
                    stream: "egress",
                    readings: 1,
                });
            }
        }
        if self.cluster.is_some() {
            for chunk in batch.chunks(self.cluster_max) {
                let m = ClusterMessage::readings(self.next_seq(), chunk);
                self.push_cluster(m);
            }
        }
    }

    /// Queues an alert event on `topic` (`{rule}`, `{device}`, `{sensor}` replaced).
    fn push_alert(&mut self, topic: &str, ev: &AlertEvent) {
        let topic = topic
            .replace("{rule}", &ev.rule)
            .replace("{device}", &ev.device)
            .replace("{sensor}", ev.sensor.as_deref().unwrap_or("-"));
        self.push(Message {
            topic,
            payload: serde_json::to_vec(ev).expect("serializes"),
            stream: "alerts",
            readings: 0,
        });
    }

    fn push_presence(&mut self) {
        let online = self.hub.sessions.online_devices();
        let m = ClusterMessage {
            seq: self.next_seq(),
            body: cluster::Body::Presence(online.iter().map(|d| d.to_string()).collect()),
        };
        self.push_cluster(m);
    }

    fn push_cluster(&mut self, m: ClusterMessage) {
        let topic = self.cluster.clone().expect("cluster mode");
        self.push(Message {
            topic,
            payload: m.encode(),
            stream: "cluster_out",
            readings: 0,
        });
    }

    /// Queues `m`; when full, drops the oldest message (counted).
    fn push(&mut self, m: Message) {
        if self.queue.len() >= self.capacity
            && let Some(old) = self.queue.pop_front()
        {
            self.hub.metrics.mqtt.dropped(old.stream, 1);
        }
        self.queue.push_back(m);
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}
