//! Devices' answers to commands over MQTT (docs/commands.md): a publish on
//! `command_results_topic` is a `command_ack` or `command_result` frame (the WebSocket
//! frames) of the device its last topic level names. The worker parses it once and
//! hands it to the commands module, as a device socket does; the hub's answer
//! (`result_stored` once the result is stored, or the nack of a frame it could not
//! take) is published on `command_replies_topic` when that is set, at QoS 0 (the
//! commands connection chooses its QoS 1 packet ids itself; a lost reply only makes the
//! device send its answer again, which changes nothing).
//!
//! One worker, taking frames in arrival order from the commands connection
//! ([`super::commands`]); a frame that is not taken is counted in
//! `telehub_mqtt_command_frames_refused_total{reason}`. Anyone who may publish on the
//! results topic may answer for the device it names: the broker's ACL decides that.

use crate::commands::CommandsHandle;
use crate::commands::device::CommandFrame;
use crate::domain::{DeviceName, untrusted};
use crate::ingest::Pipeline;
use crate::metrics::Metrics;
use crate::protocol::frames::HubFrame;
use crate::protocol::ingest::{ErrorCode, Reply};
use rumqttc::{AsyncClient, Publish, QoS};
use std::sync::Arc;
use tokio::sync::mpsc;

/// What the worker uses.
pub struct Worker {
    pub commands: CommandsHandle,
    pub ingest: Arc<Pipeline>,
    pub metrics: Arc<Metrics>,
    /// Publishes the replies (the commands connection's client).
    pub client: AsyncClient,
    /// `command_replies_topic`; empty: no replies.
    pub replies_topic: String,
}

impl Worker {
    /// Runs until the commands connection ends.
    pub async fn run(self, mut frames: mpsc::Receiver<Publish>) {
        while let Some(p) = frames.recv().await {
            let Some(device) = device_of(&p.topic) else {
                self.metrics.mqtt.command_frame_refused("bad_topic");
                tracing::debug!(topic = %untrusted(&p.topic), "mqtt: a command frame on a topic that names no device");
                continue;
            };
            let reply = match self.frame(&p.payload) {
                Ok(frame) => {
                    let answers_for: Arc<[DeviceName]> = Arc::from([device.clone()]);
                    let reply = self.commands.on_frame(frame, answers_for).await;
                    if let Some(HubFrame::Reply(Reply::Nack { .. })) = reply {
                        self.metrics.mqtt.command_frame_refused("refused");
                    }
                    reply
                }
                Err(nack) => {
                    self.metrics.mqtt.command_frame_refused("invalid_json");
                    Some(nack)
                }
            };
            if let Some(reply) = reply {
                self.reply(&device, reply).await;
            }
        }
    }

    /// The command frame in `payload`, or the nack that refuses it.
    fn frame(&self, payload: &[u8]) -> Result<CommandFrame, HubFrame> {
        let nack = |detail: String| {
            HubFrame::Reply(Reply::Nack {
                nack: None,
                error: ErrorCode::InvalidJson,
                detail,
            })
        };
        let text = std::str::from_utf8(payload)
            .map_err(|_| nack("the payload is not UTF-8 text".into()))?;
        let frame = self.ingest.parse_frame(text).map_err(|r| nack(r.detail))?;
        CommandFrame::try_from(frame).map_err(|_| {
            nack("only command_ack and command_result frames are taken on this topic".into())
        })
    }

    /// Publishes the hub's answer to `device`, when replies are on.
    async fn reply(&self, device: &DeviceName, frame: HubFrame) {
        if self.replies_topic.is_empty() {
            return;
        }
        let topic = self.replies_topic.replace("{device}", device.as_str());
        let payload = frame.to_json();
        if let Err(e) = self
            .client
            .publish(topic, QoS::AtMostOnce, false, payload)
            .await
        {
            tracing::debug!(error = %e, "mqtt: a command reply was not published (the connection is closing)");
        }
    }
}

/// The device the topic's last level names.
pub(super) fn device_of(topic: &str) -> Option<DeviceName> {
    let last = topic.rsplit('/').next()?;
    DeviceName::parse(last).ok()
}

#[cfg(test)]
mod tests {
    use super::device_of;

    #[test]
    fn the_last_topic_level_names_the_device() {
        assert_eq!(
            device_of("telehub/command-results/boiler-1").map(|d| d.to_string()),
            Some("boiler-1".into())
        );
        assert!(device_of("telehub/command-results/").is_none());
        assert!(device_of("telehub/command-results/-bad").is_none());
    }
}
