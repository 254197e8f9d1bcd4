//! The device's side of commands, whatever its transport (docs/commands.md): taking its
//! commands while it is connected, acknowledging them and answering them. Each answer
//! is stored (conditionally) before it is announced, and the dispatcher is told.

use super::shell::{Deliver, Input};
use super::{CommandError, CommandsHandle, announce};
use crate::domain::{DeviceName, Timestamp};
use crate::storage::commands::{Changed, CommandRow, CommandState, Transition};
use serde_json::Value as Json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;

/// The largest `result` object of an answer, serialized.
pub const MAX_RESULT_BYTES: usize = 64 * 1024;

/// A device's answer to a command: `{"status": "ok" | "error" | "rejected", "result":
/// {...}, "error": "text"}`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    pub status: String,
    #[serde(default)]
    pub result: Option<Json>,
    #[serde(default)]
    pub error: Option<String>,
}

impl Answer {
    /// The terminal state this answer stores, checked.
    fn transition(self) -> Result<Transition, CommandError> {
        let state = match self.status.as_str() {
            "ok" => CommandState::Succeeded,
            "error" => CommandState::Failed,
            "rejected" => CommandState::Rejected,
            other => {
                return Err(CommandError::Invalid(format!(
                    "status: {:?}; expected ok, error or rejected",
                    other.chars().take(32).collect::<String>()
                )));
            }
        };
        let result = match self.result {
            None | Some(Json::Null) => None,
            Some(r @ Json::Object(_)) if r.to_string().len() <= MAX_RESULT_BYTES => Some(r),
            Some(Json::Object(_)) => {
                return Err(CommandError::Invalid(format!(
                    "result: at most {MAX_RESULT_BYTES} bytes"
                )));
            }
            Some(_) => {
                return Err(CommandError::Invalid(
                    "result: expected a JSON object or null".into(),
                ));
            }
        };
        let error = self.error.map(|e| e.chars().take(1024).collect());
        Ok(Transition::Finish {
            state,
            result,
            error,
        })
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
        answer: Answer,
        may: impl Fn(&str) -> bool,
    ) -> Result<CommandRow, CommandError> {
        let transition = answer.transition()?;
        let row = self.answerable(id, &may).await?;
        let row = self.apply(id, &transition, row).await?;
        if row.state.is_terminal() {
            let _ = self.inputs.send(Input::Settled(row.id.clone())).await;
        }
        Ok(row)
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
        match self.store.change_command(id, t, Timestamp::now()).await? {
            Changed::Done(row) => {
                announce(&self.metrics, &self.changes, row.clone());
                Ok(row)
            }
            Changed::Unchanged(row) => Ok(row),
            Changed::Missing => Err(CommandError::NotFound(seen.id)),
        }
    }
}
