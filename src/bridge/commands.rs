//! Commands through the bridge (docs/commands.md, protocol.md §6). The bridge connects
//! with `?commands=1` as its gateway, so the hub hands it the commands of every device
//! it acts for: each `{"command": …}` becomes a `!cmd` line on the port. The devices'
//! `!ack` and `!res` lines become `command_ack` and `command_result` frames to the hub.
//! The bridge runs nothing itself: the devices do, and dedupe ids (the hub may send a
//! command again).
//!
//! Desired configurations (docs/device-config.md) take the same way: each `{"config":
//! …}` becomes a `!cfg` line, each device's `!cfgok` a `config_reported` frame (sent
//! once; the hub sends the configuration again on the next connection while the device
//! has not reported it).
//!
//! Owns [`Relay`], kept by the forwarder task: the device frames waiting for the hub
//! (while it is away too), and the results written and not yet confirmed by
//! `result_stored`, which go out again on every new connection. Both are bounded by
//! `command_queue` (the oldest dropped and logged). Lines for the port go to the reader
//! task, which owns the port, on a channel of `command_queue` lines (a full one drops
//! the command: the hub sends it again after its `ack_timeout`).

use super::result_log::ResultLog;
use crate::protocol::commands::CommandId;
use crate::protocol::frames::{DeviceFrame, HubFrame};
use crate::protocol::ingest::DeviceReading;
use crate::protocol::serial::commands::{AnswerLine, CommandLine};
use crate::protocol::serial::config::{ConfigKind, ConfigLine};
use std::collections::VecDeque;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// What the port's reader hands the forwarder: one good line.
#[derive(Debug)]
pub enum PortLine {
    Readings(Vec<DeviceReading>),
    Answer(AnswerLine),
    /// A `!cfgok` line (the reader refuses a `!cfg`: only the bridge writes those).
    Config(ConfigLine),
}

/// The forwarder's side of commands.
pub struct Relay {
    to_port: mpsc::Sender<String>,
    capacity: usize,
    /// Device frames not yet written to the hub, oldest first.
    waiting: VecDeque<DeviceFrame>,
    /// Results written to the hub and not yet confirmed.
    unconfirmed: VecDeque<(CommandId, DeviceFrame)>,
    /// Where results are kept until confirmed, when the port has a state file.
    log: Option<ResultLog>,
}

impl Relay {
    /// `recovered`: the results `log` held from before a restart, sent first.
    pub fn new(
        to_port: mpsc::Sender<String>,
        capacity: usize,
        log: Option<ResultLog>,
        recovered: Vec<DeviceFrame>,
    ) -> Self {
        Self {
            to_port,
            capacity,
            waiting: recovered.into(),
            unconfirmed: VecDeque::new(),
            log,
        }
    }

    /// Syncs the results file to disk (every second and on exit).
    pub fn sync(&mut self) {
        if let Some(log) = &mut self.log {
            log.sync();
        }
    }

    /// A device's `!ack` or `!res`: to the hub as soon as it is connected.
    pub fn from_port(&mut self, answer: AnswerLine) {
        let frame = match answer {
            AnswerLine::Ack(id) => DeviceFrame::CommandAck(id),
            AnswerLine::Result { id, answer } => {
                let frame = DeviceFrame::CommandResult { id, answer };
                if let Some(log) = &mut self.log {
                    log.add(&frame);
                }
                frame
            }
        };
        self.queue_for_hub(frame);
    }

    /// A device's `!cfgok`: its `config_reported` to the hub as soon as it is connected.
    pub fn config_from_port(&mut self, line: ConfigLine) {
        self.queue_for_hub(DeviceFrame::ConfigReported {
            device: line.device,
            doc: line.doc,
        });
    }

    fn queue_for_hub(&mut self, frame: DeviceFrame) {
        if self.waiting.len() >= self.capacity {
            self.waiting.pop_front();
            warn!(
                "command answers waiting for the hub are over command_queue; the oldest was dropped (the device answers it again when the hub resends the command)"
            );
        }
        self.waiting.push_back(frame);
    }

    /// A frame from the hub that is not a reply to a message: a command goes to the
    /// port, `result_stored` ends a result's resends. `false` when it is neither.
    pub fn from_hub(&mut self, text: &str) -> bool {
        match HubFrame::parse(text) {
            Ok(HubFrame::Command(c)) => {
                let line = CommandLine::of(&c).format() + "\r\n";
                if self.to_port.try_send(line).is_err() {
                    warn!(command = %c.id, "the port's command queue is full or closed; the hub sends the command again later");
                }
                true
            }
            Ok(HubFrame::Config { device, doc }) => {
                let version = doc.version;
                let line = ConfigLine {
                    kind: ConfigKind::Desired,
                    device,
                    doc,
                };
                if self.to_port.try_send(line.format() + "\r\n").is_err() {
                    warn!(
                        version,
                        "the port's command queue is full or closed; the hub sends the configuration again on the next connection"
                    );
                }
                true
            }
            Ok(HubFrame::ConfigStored(version)) => {
                debug!(version, "the hub stored a reported configuration");
                true
            }
            Ok(HubFrame::ResultStored(id)) => {
                self.unconfirmed.retain(|(i, _)| *i != id);
                self.waiting
                    .retain(|f| !matches!(f, DeviceFrame::CommandResult { id: i, .. } if *i == id));
                if let Some(log) = &mut self.log {
                    let waiting = self
                        .waiting
                        .iter()
                        .filter(|f| matches!(f, DeviceFrame::CommandResult { .. }));
                    log.stored(&id, waiting.chain(self.unconfirmed.iter().map(|(_, f)| f)));
                }
                true
            }
            Ok(HubFrame::Reply(r)) => {
                debug!(reply = ?r, "the hub did not take a command answer");
                true
            }
            _ => false,
        }
    }

    /// A new connection to the hub: every unconfirmed result is sent again.
    pub fn connected(&mut self) {
        for (_, frame) in self.unconfirmed.drain(..).rev() {
            self.waiting.push_front(frame);
        }
    }

    /// The next frame to write to the hub (a result is kept until confirmed).
    pub fn next_frame(&mut self) -> Option<String> {
        let frame = self.waiting.pop_front()?;
        let text = frame.to_json();
        if let DeviceFrame::CommandResult { id, .. } = &frame {
            self.unconfirmed.retain(|(i, _)| i != id);
            if self.unconfirmed.len() >= self.capacity {
                self.unconfirmed.pop_front();
            }
            self.unconfirmed.push_back((id.clone(), frame));
        }
        Some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::commands::{CommandAnswer, CommandStatus};

    fn id(s: &str) -> CommandId {
        CommandId::parse(s).unwrap()
    }

    fn result(s: &str) -> AnswerLine {
        AnswerLine::Result {
            id: id(s),
            answer: CommandAnswer {
                status: CommandStatus::Ok,
                result: None,
                error: None,
            },
        }
    }

    #[test]
    fn results_are_sent_again_on_each_connection_until_the_hub_confirms_them() {
        let (tx, mut rx) = mpsc::channel(4);
        let mut r = Relay::new(tx, 8, None, Vec::new());
        r.from_port(AnswerLine::Ack(id("c_1")));
        r.from_port(result("c_1"));
        r.from_port(result("c_2"));
        let sent: Vec<_> = std::iter::from_fn(|| r.next_frame()).collect();
        assert_eq!(sent.len(), 3);
        assert!(sent[0].contains("command_ack"), "{sent:?}");
        r.connected();
        assert!(r.from_hub(r#"{"result_stored": "c_1"}"#));
        let again: Vec<_> = std::iter::from_fn(|| r.next_frame()).collect();
        assert_eq!(again.len(), 1, "{again:?}");
        assert!(again[0].contains("c_2"), "{again:?}");
        r.connected();
        assert_eq!(r.next_frame(), again.first().cloned(), "until confirmed");
        let cmd = r#"{"command": {"id": "c_3", "device": "pump-3", "name": "reboot", "params": {}, "expires": "2030-01-01T00:00:00Z"}}"#;
        assert!(r.from_hub(cmd));
        let line = rx.try_recv().unwrap();
        assert!(
            line.starts_with("!cmd c_3 reboot device=pump-3 {}*"),
            "{line}"
        );
    }

    #[test]
    fn configurations_go_to_the_port_and_reports_to_the_hub() {
        let (tx, mut rx) = mpsc::channel(4);
        let mut r = Relay::new(tx, 8, None, Vec::new());
        let cfg = r#"{"config": {"version": 2, "desired": {"interval_s": 5}, "device": "pump-3"}}"#;
        assert!(r.from_hub(cfg));
        let line = rx.try_recv().unwrap();
        assert!(
            line.starts_with(r#"!cfg 2 device=pump-3 {"interval_s":5}*"#),
            "{line}"
        );
        let ok = ConfigLine::parse(br#"!cfgok 2 device=pump-3 {"interval_s":5}"#, false).unwrap();
        r.config_from_port(ok);
        let sent = r.next_frame().unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&sent).unwrap(),
            serde_json::json!({"config_reported": {"version": 2, "state": {"interval_s": 5}, "device": "pump-3"}})
        );
        assert!(r.from_hub(r#"{"config_stored": 2}"#));
    }
}
