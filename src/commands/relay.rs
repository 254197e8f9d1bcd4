//! The relay: a transport that takes the commands of devices with no connection that
//! opted in (today MQTT's `commands_topic`, docs/commands.md). The dispatcher hands it
//! each command to send, already checked against storage, on [`Relay::commands`]; the
//! relay reports whether it handed the command over ([`RelayReports`]), and only a
//! reported hand-over is stored as `sent` (then announced).
//!
//! Channels: commands in (`mpsc`, bounded by the capacity the relay asks for; sender:
//! the dispatcher, which counts a full queue as "not sent" and tries again after
//! `ack_timeout`); reports out (the dispatcher's input queue). Dropping the relay
//! closes its queue; the dispatcher then tries again later, the same way.

use super::CommandsHandle;
use super::shell::Input;
use crate::storage::commands::CommandRow;
use std::sync::Arc;
use tokio::sync::mpsc;

/// What a relay holds: the commands to send, and where to report.
pub struct Relay {
    pub commands: mpsc::Receiver<Arc<CommandRow>>,
    pub reports: RelayReports,
}

/// Where a relay reports its sends.
#[derive(Clone)]
pub struct RelayReports(mpsc::Sender<Input>);

/// A relay's report on one command it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub id: String,
    /// The command's sends before this one (as it was given).
    pub attempts: i64,
    /// Handed over (for MQTT: the broker acknowledged the publish).
    pub published: bool,
}

impl Report {
    /// The report on `row`, as it was given to the relay.
    pub fn of(row: &CommandRow, published: bool) -> Self {
        Self {
            id: row.id.clone(),
            attempts: row.attempts,
            published,
        }
    }
}

/// Room reserved in the dispatcher's queue for one report.
pub struct ReportPermit<'a>(mpsc::Permit<'a, Input>);

impl ReportPermit<'_> {
    pub fn send(self, r: Report) {
        self.0.send(Input::Relayed {
            id: r.id,
            attempts: r.attempts,
            published: r.published,
        });
    }
}

impl RelayReports {
    /// Waits for room in the dispatcher's queue; `None` once the dispatcher ended.
    pub async fn reserve(&self) -> Option<ReportPermit<'_>> {
        self.0.reserve().await.ok().map(ReportPermit)
    }
}

impl CommandsHandle {
    /// Makes this hub's relay: from now on, the commands of devices with no connection
    /// go to it, at most `capacity` waiting.
    pub async fn relay(&self, capacity: usize) -> Relay {
        let (tx, commands) = mpsc::channel(capacity.max(1));
        let _ = self.inputs.send(Input::Relay(tx)).await;
        Relay {
            commands,
            reports: RelayReports(self.inputs.clone()),
        }
    }
}
