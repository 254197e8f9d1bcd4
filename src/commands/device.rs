//! The device's side of commands, whatever its transport (docs/commands.md): taking its
//! commands while it is connected, acknowledging them and answering them. Each answer
//! is stored (conditionally) before it is announced, and the dispatcher is told.

use super::shell::{Deliver, Input};
use super::{CommandError, CommandsHandle, announce};
use crate::domain::{DeviceName, Timestamp};
use crate::protocol::commands::{CommandAnswer, CommandId, CommandStatus};
use crate::protocol::frames::{DeviceFrame, HubFrame};
use crate::protocol::ingest::{ErrorCode, Reply};
use crate::storage::commands::{Changed, CommandRow, CommandState, Transition};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::Value as Json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;

/// The terminal state a device's answer stores.
fn transition(answer: CommandAnswer) -> Transition {
    let state = match answer.status {
        CommandStatus::Ok => CommandState::Succeeded,
        CommandStatus::Error => CommandState::Failed,
        CommandStatus::Rejected => CommandState::Rejected,
    };
    Transition::Finish {
        state,
        result: answer.result.map(Json::Object),
        error: answer.error,
    }
}

/// A device connection's claim on its commands: they arrive on `commands` while it
/// lives; dropping it tells the dispatcher the connection closed.
pub struct Attachment {
    pub commands: mpsc::Receiver<Arc<CommandRow>>,
    devices: Vec<DeviceName>,
    connection: u64,
    inputs: mpsc::Sender<Input>,
}

impl Drop for Attachment {
    fn drop(&mut self) {
        for d in self.devices.drain(..) {
            let input = Input::Disconnected {
                device: d.to_string(),
                connection: self.connection,
            };
            if let Err(mpsc::error::TrySendError::Full(input)) = self.inputs.try_send(input) {
                let inputs = self.inputs.clone();
                tokio::spawn(async move { inputs.send(input).await });
            }
        }
    }
}

static CONNECTIONS: AtomicU64 = AtomicU64::new(1);

impl CommandsHandle {
    /// `devices` (a device, and for a gateway those it acts for) are connected and take
    /// their commands on the returned attachment until it is dropped.
    pub async fn attach(&self, devices: Vec<DeviceName>) -> Attachment {
        let (tx, rx): (Deliver, _) = mpsc::channel(self.settings.window + 1);
        let connection = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        for d in &devices {
            let input = Input::Connected {
                device: d.to_string(),
                connection,
                deliver: tx.clone(),
            };
            let _ = self.inputs.send(input).await;
        }
        Attachment {
            commands: rx,
            devices,
            connection,
            inputs: self.inputs.clone(),
        }
    }

    /// The device acknowledged `id`: `received` (unchanged when it already was, or
    /// ended). `may` says whether the caller may answer for the command's device.
    pub async fn ack(
        &self,
        id: &str,
        may: impl Fn(&str) -> bool,
    ) -> Result<CommandRow, CommandError> {
        let row = self.answerable(id, &may).await?;
        let row = self.apply(id, &Transition::Receive, row).await?;
        if row.state == CommandState::Received {
            let _ = self.inputs.send(Input::Acked(row.id.clone())).await;
        }
        Ok(row)
    }

    /// The device's answer: stored once; a command already ended is left as it is.
    pub async fn answer(
        &self,
        id: &str,
        answer: CommandAnswer,
        may: impl Fn(&str) -> bool,
    ) -> Result<CommandRow, CommandError> {
        let transition = transition(answer);
        let row = self.answerable(id, &may).await?;
        let row = self.apply(id, &transition, row).await?;
        if row.state.is_terminal() {
            let _ = self.inputs.send(Input::Settled(row.id.clone())).await;
        }
        Ok(row)
    }

    /// A device connection's command frame (`command_ack`, `command_result`), whatever
    /// the transport: the frame to answer with, once the change is stored (`None`: an
    /// acknowledgement taken needs no answer). `answers_for`: the devices the
    /// connection may answer for. Unknown ids, and ids of other devices' commands, get
    /// the `unknown_command` nack; a storage failure the `unavailable` one (resend).
    pub fn on_frame(
        &self,
        frame: CommandFrame,
        answers_for: Arc<[DeviceName]>,
    ) -> BoxFuture<'static, Option<HubFrame>> {
        let handle = self.clone();
        async move {
            let may = |d: &str| answers_for.iter().any(|x| x.as_str() == d);
            let outcome = match &frame {
                CommandFrame::Ack(id) => handle.ack(id.as_str(), may).await.map(|_| None),
                CommandFrame::Result { id, answer } => handle
                    .answer(id.as_str(), answer.clone(), may)
                    .await
                    .map(|_| Some(HubFrame::ResultStored(id.clone()))),
            };
            outcome.unwrap_or_else(|e| Some(refusal(frame.id(), e)))
        }
        .boxed()
    }

    /// The command, when it exists, the caller may answer for it, and it was sent.
    async fn answerable(
        &self,
        id: &str,
        may: &impl Fn(&str) -> bool,
    ) -> Result<CommandRow, CommandError> {
        let row = self.get(id).await?;
        if !may(&row.device) {
            return Err(CommandError::NotYours(row.device));
        }
        if row.state == CommandState::Queued {
            return Err(CommandError::NotSent(row.id));
        }
        Ok(row)
    }

    /// Stores `t`; a change applied is announced. Returns the command as stored.
    async fn apply(
        &self,
        id: &str,
        t: &Transition,
        seen: CommandRow,
    ) -> Result<CommandRow, CommandError> {
        match self.commits.apply(id, t.clone(), Timestamp::now()).await? {
            Changed::Done(row) => {
                announce(&self.metrics, &self.changes, row.clone());
                Ok(row)
            }
            Changed::Unchanged(row) => Ok(row),
            Changed::Missing => Err(CommandError::NotFound(seen.id)),
        }
    }
}

/// A device's frame about one of its commands.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandFrame {
    Ack(CommandId),
    Result {
        id: CommandId,
        answer: CommandAnswer,
    },
}

impl TryFrom<DeviceFrame> for CommandFrame {
    type Error = DeviceFrame;

    /// The command frame, or the frame as it was when it is not one.
    fn try_from(frame: DeviceFrame) -> Result<Self, DeviceFrame> {
        match frame {
            DeviceFrame::CommandAck(id) => Ok(Self::Ack(id)),
            DeviceFrame::CommandResult { id, answer } => Ok(Self::Result { id, answer }),
            other => Err(other),
        }
    }
}

impl CommandFrame {
    fn id(&self) -> &CommandId {
        match self {
            Self::Ack(id) | Self::Result { id, .. } => id,
        }
    }
}

/// The nack for a command frame the hub could not take.
fn refusal(id: &CommandId, e: CommandError) -> HubFrame {
    match e {
        CommandError::Storage(e) => HubFrame::Reply(Reply::Nack {
            nack: None,
            error: ErrorCode::Unavailable,
            detail: format!("command {id}: storage failed ({e}); send it again later"),
        }),
        // Another device's command is not this one's to know of.
        CommandError::NotYours(_) | CommandError::NotFound(_) => {
            HubFrame::unknown_command(format!("no command {id} for this device"))
        }
        e => HubFrame::unknown_command(e.to_string()),
    }
}
