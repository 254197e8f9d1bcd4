//! Desired configurations over MQTT (docs/device-config.md), on the hub's main broker
//! connection, with `config_topic` set:
//!
//! - the [`Publisher`] publishes each device's desired configuration on `config_topic`,
//!   **retained** at QoS 1, as `{"version", "desired"}`: a device that subscribes late
//!   (it was offline, or just booted) gets the newest one from the broker. It finds new
//!   versions by polling storage every `device_config.poll_interval` (set on any hub or
//!   by the CLI), and each time the broker connection comes up it publishes again the
//!   configuration of every device that has not reported the desired version (the broker
//!   may have lost it, or it was set while the hub was away);
//! - the [`Reports`] worker takes devices' reports `{"version", "state"}` on
//!   `config_reported_topic` (the last level names the device), stores them as the
//!   WebSocket `config_reported` frame is stored, acknowledges the publish once stored,
//!   and answers `{"config_stored": N}` (or a nack) on `command_replies_topic` when set.
//!
//! Channels: reports in from the connection task (`mqtt.ingest_queue`, dropped and
//! counted when full); the publisher awaits room in the client's request channel and
//! never blocks the event loop. Anyone who may publish on the reported topic may report
//! for the device it names: the broker's ACL decides that.

use super::ingest::Received;
use super::{BrokerStatus, LogLimiter, MqttSettings};
use crate::devconfig::ConfigHandle;
use crate::devconfig::delivery::{LOOKBACK, poll_desired};
use crate::domain::{DeviceName, untrusted};
use crate::metrics::Metrics;
use crate::protocol::commands::ConfigDocument;
use crate::protocol::frames::HubFrame;
use crate::protocol::ingest::{ErrorCode, Reply};
use crate::storage::{StorageError, Store};
use rumqttc::{AsyncClient, QoS};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Unsynced devices read from storage per statement when republishing.
const PAGE: i64 = 1000;

/// Publishes desired configurations, retained.
pub struct Publisher {
    pub store: Store,
    pub client: AsyncClient,
    /// `config_topic`, `{device}` to fill in.
    pub topic: String,
    pub poll_interval: Duration,
    pub status: watch::Receiver<BrokerStatus>,
}

impl Publisher {
    /// Runs until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut last_seq = match self.store.last_config_seq().await {
            Ok(seq) => seq,
            Err(e) => {
                tracing::warn!(error = %e, "mqtt: cannot read where desired configurations end; republishing them all when the broker connects");
                0
            }
        };
        // History seqs published within the poll's lookback, not to publish them twice.
        let mut seen = BTreeSet::new();
        let mut connected = false;
        let mut poll = tokio::time::interval(self.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                changed = self.status.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let now = self.status.borrow_and_update().connected;
                    if now
                        && !connected
                        && let Err(e) = self.republish().await
                    {
                        tracing::warn!(error = %e, "mqtt: cannot read the configurations devices have not applied; they are published when next set");
                    }
                    connected = now;
                }
                _ = poll.tick() => {
                    // While disconnected, the versions are skipped: the reconnect
                    // republishes every one not applied.
                    let mut found = Vec::new();
                    let result = poll_desired(&self.store, &mut last_seq, |c| {
                        if seen.insert(c.cursor) {
                            found.push(c);
                        }
                    })
                    .await;
                    seen = seen.split_off(&last_seq.saturating_sub(LOOKBACK));
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "mqtt: cannot look for new desired configurations");
                    }
                    if connected {
                        for c in found {
                            self.publish(&c.device, c.version, c.desired).await;
                        }
                    }
                }
            }
        }
    }

    /// Publishes again the desired configuration of every device behind it.
    async fn republish(&self) -> Result<(), StorageError> {
        let mut after = 0;
        loop {
            let page = self.store.unsynced_configs(after, PAGE).await?;
            let full = page.len() as i64 == PAGE;
            for u in page {
                after = u.cursor;
                self.publish(&u.device, u.version, u.desired).await;
            }
            if !full {
                return Ok(());
            }
        }
    }

    async fn publish(
        &self,
        device: &str,
        version: u64,
        desired: serde_json::Map<String, serde_json::Value>,
    ) {
        let doc = ConfigDocument {
            version,
            document: desired,
        };
        let topic = self.topic.replace("{device}", device);
        let payload = doc.to_value("desired").to_string();
        if let Err(e) = self
            .client
            .publish(topic, QoS::AtLeastOnce, true, payload)
            .await
        {
            tracing::debug!(error = %e, "mqtt: a desired configuration was not published (the connection is closing)");
        }
    }
}

/// Stores devices' reports.
pub struct Reports {
    pub devconfig: ConfigHandle,
    pub client: AsyncClient,
    pub metrics: Arc<Metrics>,
    /// `command_replies_topic`; empty: no answers.
    pub replies_topic: String,
    /// The current broker connection.
    pub connection: Arc<AtomicU64>,
}

impl Reports {
    /// Runs until the connection task is gone.
    pub async fn run(self, mut reports: mpsc::Receiver<Received>) {
        let mut log = LogLimiter::default();
        while let Some(received) = reports.recv().await {
            let p = &received.publish;
            let Some(device) = super::command_results::device_of(&p.topic) else {
                self.metrics.mqtt.command_frame_refused("bad_topic");
                continue;
            };
            let reply = match report_of(&p.payload) {
                Ok(doc) => self.devconfig.on_reported(device.clone(), doc).await,
                Err(detail) => HubFrame::Reply(Reply::Nack {
                    nack: None,
                    error: ErrorCode::InvalidJson,
                    detail,
                }),
            };
            if let HubFrame::Reply(Reply::Nack { error, detail, .. }) = &reply {
                if *error == ErrorCode::Unavailable {
                    // Not stored: left unacknowledged, a kept session gets it again.
                    continue;
                }
                self.metrics.mqtt.command_frame_refused("config_report");
                if log.allow() {
                    tracing::warn!(%device, detail = %untrusted(detail), suppressed = log.take_suppressed(), "mqtt: a configuration report was refused, nothing stored");
                }
            }
            if received.connection == self.connection.load(Ordering::Acquire)
                && self.client.ack(p).await.is_err()
            {
                tracing::debug!("mqtt: connection task gone; acknowledgement not sent");
            }
            self.reply(&device, reply).await;
        }
    }

    async fn reply(&self, device: &DeviceName, frame: HubFrame) {
        if self.replies_topic.is_empty() {
            return;
        }
        let topic = self.replies_topic.replace("{device}", device.as_str());
        if let Err(e) = self
            .client
            .publish(topic, QoS::AtMostOnce, false, frame.to_json())
            .await
        {
            tracing::debug!(error = %e, "mqtt: a report's answer was not published (the connection is closing)");
        }
    }
}

/// `{"version": N, "state": {…}}`, or why not.
fn report_of(payload: &[u8]) -> Result<ConfigDocument, String> {
    let v = serde_json::from_slice(payload)
        .map_err(|e| format!("a configuration report must be JSON: {e}"))?;
    ConfigDocument::from_value(v, "state").map_err(|e| format!("config report: {e}"))
}

/// Whether `settings` turn configurations over MQTT on.
pub fn enabled(settings: &MqttSettings) -> bool {
    !settings.config_topic.is_empty()
}

#[cfg(test)]
mod tests {
    use super::report_of;

    #[test]
    fn a_report_is_a_version_and_a_state_object() {
        let doc = report_of(br#"{"version": 3, "state": {"interval_s": 5}}"#).unwrap();
        assert_eq!(doc.version, 3);
        assert_eq!(doc.document["interval_s"], 5);
        assert!(report_of(b"{").unwrap_err().contains("JSON"));
        assert!(report_of(br#"{"version": 3, "state": 1}"#).is_err());
        assert!(
            report_of(br#"{"state": {}}"#)
                .unwrap_err()
                .contains("version")
        );
    }
}
