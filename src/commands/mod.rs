//! Commands (docs/commands.md): the hub talks back to devices. This module owns their
//! lifecycle — creation, cancel, waiting for an answer — and their dispatch.
//!
//! - [`request`]: what an operator asks for, checked once (name, params, ttl, wait, ids).
//! - [`changes`]: state changes asked for together are stored in one transaction.
//! - [`dispatch`]: the pure state machine: per-device FIFO with `window`, resends on
//!   reconnect and after `ack_timeout`, `max_attempts`, expiry by a deadline heap.
//! - [`shell`]: the one task owning the machine: it stores each decided state change
//!   conditionally, then announces it.
//! - [`device`]: the device's side, for every transport: attach to take commands,
//!   acknowledge, answer.
//! - [`relay`]: a transport for devices with no connection (MQTT's `commands_topic`):
//!   it takes their commands and reports what it handed over.
//!
//! Every state change is stored before it is announced: [`CommandsHandle::changes`]
//! (a `broadcast` of each command as stored after a change; senders: the handle and the
//! shell; receivers: the live fan-out and requests waiting for an answer). Commands
//! created on this hub reach the shell at once (`mpsc`, bounded by `commands.queue`;
//! the request waits when it is full); those created by the CLI or another hub are
//! found by polling storage every `commands.poll_interval`.
//!
//! May use: `domain`, `protocol`, `config`, `storage`, `metrics`.

pub mod changes;
pub mod device;
pub mod dispatch;
pub mod relay;
pub mod request;
pub mod shell;

use crate::config::CommandSettings;
use crate::domain::{DeviceName, Timestamp};
use crate::metrics::Metrics;
use crate::storage::commands::{Changed, CommandRow, CommandState, OpenBounds, Transition};
use crate::storage::{StorageError, Store};
use request::Spec;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// Why a command request was refused.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A bad request: says which field and why.
    #[error("{0}")]
    Invalid(String),
    #[error("no command {0}")]
    NotFound(String),
    /// A device answering for a command of a device it does not act for.
    #[error("this command is for device {0}; a device token answers only its own commands")]
    NotYours(String),
    /// An acknowledgement or answer for a command that was never sent.
    #[error("command {0} was not sent yet")]
    NotSent(String),
    /// Cancel of a command that already ended.
    #[error("command {id} is already {}; terminal states never change", state.as_str())]
    Terminal { id: String, state: CommandState },
    /// Storage refused or failed (an unknown device is [`StorageError::NoSuchDevice`]).
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Creates one command per device, all or none, within the `[commands]` bounds.
pub async fn create(
    store: &Store,
    settings: &CommandSettings,
    devices: &[DeviceName],
    spec: &Spec,
) -> Result<Vec<CommandRow>, CommandError> {
    let new = spec.commands_for(devices, Timestamp::now());
    let bounds = OpenBounds {
        per_device: settings.max_open_per_device as i64,
        total: settings.max_open as i64,
    };
    Ok(store.create_commands(&new, bounds).await?)
}

/// Cancels an open command; a terminal one is [`CommandError::Terminal`].
pub async fn cancel(store: &Store, id: &str) -> Result<CommandRow, CommandError> {
    match store
        .change_command(id, &Transition::Cancel, Timestamp::now())
        .await?
    {
        Changed::Done(row) => Ok(row),
        Changed::Unchanged(row) => Err(CommandError::Terminal {
            id: row.id,
            state: row.state,
        }),
        Changed::Missing => Err(CommandError::NotFound(id.to_owned())),
    }
}

/// What request handlers (and, later, transports) need of the running dispatcher.
#[derive(Clone)]
pub struct CommandsHandle {
    store: Store,
    settings: CommandSettings,
    metrics: Arc<Metrics>,
    inputs: mpsc::Sender<shell::Input>,
    changes: broadcast::Sender<Arc<CommandRow>>,
    /// Stores state changes, batched.
    commits: changes::Changes,
}

impl CommandsHandle {
    pub fn settings(&self) -> &CommandSettings {
        &self.settings
    }

    /// Every command as stored after each change this hub made or saw.
    pub fn changes(&self) -> broadcast::Receiver<Arc<CommandRow>> {
        self.changes.subscribe()
    }

    /// Creates one command per device (stored, then announced and queued for dispatch).
    pub async fn create(
        &self,
        devices: &[DeviceName],
        spec: &Spec,
    ) -> Result<Vec<CommandRow>, CommandError> {
        let rows = create(&self.store, &self.settings, devices, spec).await?;
        for row in &rows {
            announce(&self.metrics, &self.changes, row.clone());
        }
        let _ = self.inputs.send(shell::Input::Created(rows.clone())).await;
        Ok(rows)
    }

    /// Cancels an open command (stored, then announced; the dispatcher drops it).
    pub async fn cancel(&self, id: &str) -> Result<CommandRow, CommandError> {
        let row = cancel(&self.store, id).await?;
        announce(&self.metrics, &self.changes, row.clone());
        let _ = self
            .inputs
            .send(shell::Input::Settled(row.id.clone()))
            .await;
        Ok(row)
    }

    pub async fn get(&self, id: &str) -> Result<CommandRow, CommandError> {
        self.store
            .command(id)
            .await?
            .ok_or_else(|| CommandError::NotFound(id.to_owned()))
    }

    /// The command once it is terminal, or as it is when `wait` ends.
    pub async fn wait_terminal(
        &self,
        id: &str,
        wait: Duration,
    ) -> Result<CommandRow, CommandError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut changes = self.changes();
        loop {
            let row = self.get(id).await?;
            if row.state.is_terminal() || tokio::time::Instant::now() >= deadline {
                return Ok(row);
            }
            // Changes this hub makes wake us at once; another hub's are seen by the poll.
            let poll = tokio::time::Instant::now() + self.settings.poll_interval;
            tokio::select! {
                _ = tokio::time::sleep_until(deadline.min(poll)) => {}
                _ = async {
                    loop {
                        match changes.recv().await {
                            Ok(c) if c.id == id && c.state.is_terminal() => return,
                            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
                            _ => {}
                        }
                    }
                } => {}
            }
        }
    }
}

/// Counts a stored change and tells whoever listens.
fn announce(metrics: &Metrics, changes: &broadcast::Sender<Arc<CommandRow>>, row: CommandRow) {
    metrics.commands.changed(row.state.as_str());
    let _ = changes.send(Arc::new(row));
}

/// The running dispatcher.
pub struct Running {
    pub handle: CommandsHandle,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Waits for the dispatcher to end (at shutdown).
    pub async fn finish(self) {
        let _ = self.task.await;
    }
}

/// Starts the dispatcher: it loads the open commands from storage, then runs until
/// `shutdown`. `backlog` bounds the announcements a slow listener may fall behind by.
pub async fn start(
    store: Store,
    settings: &CommandSettings,
    metrics: Arc<Metrics>,
    backlog: usize,
    shutdown: CancellationToken,
) -> Result<Running, StorageError> {
    let (inputs, rx) = mpsc::channel(settings.queue);
    let (changes, _) = broadcast::channel(backlog);
    let commits = changes::Changes::start(store.clone(), settings.queue, settings.commit_batch);
    let handle = CommandsHandle {
        store: store.clone(),
        settings: settings.clone(),
        metrics: metrics.clone(),
        inputs,
        changes: changes.clone(),
        commits: commits.clone(),
    };
    let shell = shell::Shell::load(store, settings, metrics, changes, commits).await?;
    let task = tokio::spawn(shell.run(rx, shutdown));
    Ok(Running { handle, task })
}
