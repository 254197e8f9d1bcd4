//! The dispatcher's task: the one owner of the [`Dispatch`] machine. It feeds the
//! machine events (commands created here or found in storage, connections, answers,
//! deadlines), stores each [`Action`] as a conditional state change, and only when
//! that change was applied announces it and hands a sent command to the device's
//! transport. A change another hub (or the CLI) made first settles the command here.
//!
//! Channels: [`Input`]s in (`mpsc`, bounded by `commands.queue`; senders: the
//! [`super::CommandsHandle`] clones; all of them dropping, or shutdown, ends the task);
//! changes out (`broadcast`); each connected device's delivery queue (`mpsc`, bounded by
//! `commands.window` + 1: the machine never has more than `window` in flight); the
//! relay's queue (see [`super::relay`]).
//!
//! A pass takes every input waiting (at most `commands.commit_batch`); the changes of
//! its actions are stored together ([`super::changes`]: one
//! transaction with whatever else is being stored), each still conditional; each is
//! announced only once that transaction committed.
//!
//! A send over a connection is stored (`sent`) first, then handed over. A send through
//! the relay is checked against storage first (still open, not expired, not sent by
//! anyone else meanwhile), handed over, and stored `sent` only when the relay reports
//! it published ([`Input::Relayed`]; for MQTT, the broker's PUBACK).

use super::announce;
use super::changes::Changes;
use super::dispatch::{Action, Dispatch, Limits, Open, Stage};
use crate::config::CommandSettings;
use crate::domain::Timestamp;
use crate::metrics::Metrics;
use crate::storage::commands::{Changed, CommandRow, CommandState, Transition};
use crate::storage::{StorageError, Store};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// Open commands read from storage per statement.
const PAGE: i64 = 1000;
/// How far back (in `seq`) each poll looks again: on PostgreSQL a command may commit
/// after one created later did, so a poll from the last `seq` seen alone could miss it.
const LOOKBACK: i64 = 256;

/// Where a connected device's commands go: its transport's queue.
pub type Deliver = mpsc::Sender<Arc<CommandRow>>;

/// An event for the dispatcher.
#[derive(Debug)]
pub enum Input {
    /// Commands this hub just stored.
    Created(Vec<CommandRow>),
    /// A command this hub made terminal (canceled, answered).
    Settled(String),
    /// A connection of `device` that opted in to commands opened: it gets its
    /// commands on `deliver` until it closes.
    Connected {
        device: String,
        connection: u64,
        deliver: Deliver,
    },
    Disconnected {
        device: String,
        connection: u64,
    },
    /// The device acknowledged the command (stored `received`).
    Acked(String),
    /// A relay takes the commands of devices with no connection, on this queue.
    Relay(Deliver),
    /// The relay handed over (`published`) the command it was given after `attempts`
    /// sends, or could not.
    Relayed {
        id: String,
        attempts: i64,
        published: bool,
    },
}

pub struct Shell {
    store: Store,
    metrics: Arc<Metrics>,
    changes: broadcast::Sender<Arc<CommandRow>>,
    machine: Dispatch,
    poll_interval: Duration,
    /// The newest `seq` seen.
    last_seq: i64,
    /// Each connected device's open connections, newest last.
    connections: HashMap<String, Vec<(u64, Deliver)>>,
    relay: Option<Deliver>,
    commits: Changes,
    /// Inputs taken together into one pass (`commands.commit_batch`).
    batch: usize,
}

impl Shell {
    /// The machine with every open command in storage.
    pub async fn load(
        store: Store,
        settings: &CommandSettings,
        metrics: Arc<Metrics>,
        changes: broadcast::Sender<Arc<CommandRow>>,
        commits: Changes,
    ) -> Result<Self, StorageError> {
        let limits = Limits {
            window: settings.window,
            ack_timeout: settings.ack_timeout,
            max_attempts: settings.max_attempts,
        };
        let last_seq = store.last_command_seq().await?;
        let mut shell = Self {
            store,
            metrics,
            changes,
            machine: Dispatch::new(limits),
            poll_interval: settings.poll_interval,
            last_seq,
            connections: HashMap::new(),
            relay: None,
            commits,
            batch: settings.commit_batch.max(1),
        };
        shell.find_open(0).await?;
        Ok(shell)
    }

    pub async fn run(mut self, mut inputs: mpsc::Receiver<Input>, shutdown: CancellationToken) {
        let mut poll = tokio::time::interval(self.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let due = self.machine.next_due().map(until);
            let actions = tokio::select! {
                _ = shutdown.cancelled() => break,
                input = inputs.recv() => match input {
                    Some(input) => self.take_waiting(input, &mut inputs).await,
                    None => break,
                },
                _ = tokio::time::sleep(due.unwrap_or_default()), if due.is_some() => {
                    self.machine.tick(Timestamp::now())
                }
                _ = poll.tick() => {
                    let from = self.last_seq.saturating_sub(LOOKBACK);
                    match self.find_open(from).await {
                        Ok(actions) => actions,
                        Err(e) => {
                            tracing::warn!(error = %e, "commands: cannot look for new commands");
                            Vec::new()
                        }
                    }
                }
            };
            self.execute(actions).await;
            self.metrics.commands.open.set(self.machine.len() as i64);
        }
    }

    /// Adds the open commands after `after` that the machine does not hold yet.
    async fn find_open(&mut self, mut after: i64) -> Result<Vec<Action>, StorageError> {
        let mut actions = Vec::new();
        loop {
            let rows = self.store.open_commands(after, PAGE).await?;
            let now = Timestamp::now();
            for row in &rows {
                self.last_seq = self.last_seq.max(row.seq);
                actions.extend(self.machine.add(open_of(row), now));
            }
            match rows.last() {
                Some(last) if rows.len() as i64 == PAGE => after = last.seq,
                _ => return Ok(actions),
            }
        }
    }

    /// Takes `first` and every input already waiting behind it (at most `batch`), so
    /// that the actions they cause are stored in one pass: one commit for a whole
    /// burst of answers, not one each (beside a full ingest load, each commit waits for
    /// a turn at SQLite's write lock).
    async fn take_waiting(
        &mut self,
        first: Input,
        inputs: &mut mpsc::Receiver<Input>,
    ) -> Vec<Action> {
        let mut actions = self.take(first).await;
        for _ in 1..self.batch {
            match inputs.try_recv() {
                Ok(input) => actions.extend(self.take(input).await),
                Err(_) => break,
            }
        }
        actions
    }

    async fn take(&mut self, input: Input) -> Vec<Action> {
        match input {
            Input::Relayed {
                id,
                attempts,
                published,
            } => self.relayed(id, attempts, published).await,
            input => self.apply(input),
        }
    }

    fn apply(&mut self, input: Input) -> Vec<Action> {
        let now = Timestamp::now();
        match input {
            Input::Created(rows) => rows
                .iter()
                .flat_map(|row| {
                    self.last_seq = self.last_seq.max(row.seq);
                    self.machine.add(open_of(row), now)
                })
                .collect(),
            Input::Settled(id) => self.machine.settled(&id, now),
            Input::Connected {
                device,
                connection,
                deliver,
            } => {
                let conns = self.connections.entry(device.clone()).or_default();
                conns.push((connection, deliver));
                self.machine.connect(&device, now)
            }
            Input::Disconnected { device, connection } => {
                if let Some(conns) = self.connections.get_mut(&device) {
                    conns.retain(|(c, _)| *c != connection);
                    if conns.is_empty() {
                        self.connections.remove(&device);
                    }
                }
                self.machine.disconnect(&device, now)
            }
            Input::Acked(id) => {
                self.machine.acked(&id);
                Vec::new()
            }
            Input::Relay(deliver) => {
                self.relay = Some(deliver);
                self.machine.set_relay(true, now)
            }
            Input::Relayed { .. } => Vec::new(), // stored by `relayed`, not here
        }
    }

    /// Stores each action's change; what was applied is announced (and a sent command
    /// handed to its device). The machine's follow-ups are carried out too.
    async fn execute(&mut self, actions: Vec<Action>) {
        let mut queue = VecDeque::from(actions);
        while !queue.is_empty() {
            // Every change of this round goes to the same commit(s).
            let mut stored = Vec::new();
            for action in queue.drain(..).collect::<Vec<_>>() {
                match &action {
                    Action::Send {
                        id,
                        device,
                        attempts,
                    } if !self.connections.contains_key(device) && self.relay.is_some() => {
                        let follow = self
                            .relay_send(id, i64::from(*attempts), Timestamp::now())
                            .await;
                        queue.extend(follow);
                    }
                    _ => stored.push(action),
                }
            }
            let now = Timestamp::now();
            let commits = self.commits.clone();
            let outcomes = futures_util::future::join_all(stored.iter().map(|a| {
                let (id, transition) = transition_of(a);
                let commits = commits.clone();
                async move { commits.apply(id, transition, now).await }
            }))
            .await;
            for (action, outcome) in stored.into_iter().zip(outcomes) {
                self.stored(action, outcome, now, &mut queue);
            }
        }
    }

    /// Acts on the stored outcome of `action`: announced (and a send handed over), or
    /// the machine's follow-ups queued.
    fn stored(
        &mut self,
        action: Action,
        outcome: Result<Changed, StorageError>,
        now: Timestamp,
        queue: &mut VecDeque<Action>,
    ) {
        match outcome {
            Ok(Changed::Done(row)) => {
                // Announced before it is handed over, so `sent` is told before
                // anything the device answers.
                self.announce_change(&row, now);
                if let Action::Send { device, .. } = &action {
                    self.deliver(device, &row);
                }
            }
            Ok(Changed::Unchanged(row)) if matches!(action, Action::Send { .. }) => {
                queue.extend(self.not_sendable(&row, now));
            }
            Ok(Changed::Missing) => queue.extend(self.machine.settled(action.id(), now)),
            Ok(Changed::Unchanged(_)) => {}
            Err(e) => {
                // A send is retried at its ack deadline; an expiry or give-up at the
                // next start, when the command is loaded again.
                tracing::warn!(error = %e, command = %action.id(), "commands: cannot store a state change");
            }
        }
    }

    /// Announces a stored change (and a first send's latency).
    fn announce_change(&self, row: &CommandRow, now: Timestamp) {
        if row.state == CommandState::Sent && row.attempts == 1 {
            let waited = now.as_micros() - row.created.as_micros();
            self.metrics.commands.send_latency(waited);
        }
        announce(&self.metrics, &self.changes, row.clone());
    }

    /// A send storage refused: changed elsewhere first (canceled, answered, sent by
    /// another hub), or it expired between the machine's clock and the statement's.
    fn not_sendable(&mut self, row: &CommandRow, now: Timestamp) -> Vec<Action> {
        let mut out = Vec::new();
        if !row.state.is_terminal() && row.expires <= now {
            out.push(Action::Expire { id: row.id.clone() });
        }
        out.extend(self.machine.settled(&row.id, now));
        out
    }

    /// Hands the send of `id` (after `attempts` sends) to the relay when storage still
    /// has it where the machine expects; the follow-up actions.
    async fn relay_send(&mut self, id: &str, attempts: i64, now: Timestamp) -> Vec<Action> {
        let row = match self.store.command(id).await {
            Ok(Some(row)) => row,
            Ok(None) => return self.machine.settled(id, now),
            Err(e) => {
                tracing::warn!(error = %e, command = %id, "commands: cannot read a command to relay");
                self.machine.unsent(id, attempts as u32, now);
                return Vec::new();
            }
        };
        let sendable = matches!(row.state, CommandState::Queued | CommandState::Sent)
            && row.attempts == attempts
            && row.expires > now;
        if !sendable {
            return self.not_sendable(&row, now);
        }
        let relay = self.relay.as_ref().expect("checked by the caller");
        if relay.try_send(Arc::new(row)).is_err() {
            tracing::debug!(command = %id, "commands: the relay's queue is full or closed; tried again later");
            self.machine.unsent(id, attempts as u32, now);
        }
        Vec::new()
    }

    /// The relay's report on a send: published → stored `sent` (conditionally), then
    /// announced; not published → tried again later.
    async fn relayed(&mut self, id: String, attempts: i64, published: bool) -> Vec<Action> {
        let now = Timestamp::now();
        if !published {
            self.machine.unsent(&id, attempts as u32, now);
            return Vec::new();
        }
        match self
            .commits
            .apply(&id, Transition::Send { attempts }, now)
            .await
        {
            Ok(Changed::Done(row)) => {
                self.announce_change(&row, now);
                // A connection may have taken it over meanwhile: the machine follows storage.
                if !self.machine.knows(&id) {
                    return self.machine.add(open_of(&row), now);
                }
                Vec::new()
            }
            Ok(Changed::Unchanged(row)) => {
                if row.state.is_terminal() {
                    self.machine.settled(&id, now)
                } else {
                    Vec::new() // sent again meanwhile (over a connection): that send counts
                }
            }
            Ok(Changed::Missing) => self.machine.settled(&id, now),
            Err(e) => {
                tracing::warn!(error = %e, command = %id, "commands: cannot store a relayed send");
                self.machine.unsent(&id, attempts as u32, now);
                Vec::new()
            }
        }
    }

    /// Hands a sent command to the device's newest connection.
    fn deliver(&mut self, device: &str, row: &CommandRow) {
        let Some((_, tx)) = self.connections.get(device).and_then(|c| c.last()) else {
            return; // gone meanwhile: resent when it reconnects
        };
        if tx.try_send(Arc::new(row.clone())).is_err() {
            tracing::debug!(command = %row.id, "commands: the device's queue is closed or full");
        }
    }
}

/// The stored change an action asks for.
fn transition_of(action: &Action) -> (&str, Transition) {
    match action {
        Action::Send { id, attempts, .. } => (
            id,
            Transition::Send {
                attempts: i64::from(*attempts),
            },
        ),
        Action::Expire { id } => (id, Transition::Expire),
        Action::GiveUp { id, attempts } => (
            id,
            Transition::GiveUp {
                attempts: i64::from(*attempts),
                error: format!("no acknowledgement after {attempts} sends (commands.max_attempts)"),
            },
        ),
    }
}

/// A stored open command as the machine holds it.
fn open_of(row: &CommandRow) -> Open {
    Open {
        id: row.id.clone(),
        device: row.device.clone(),
        seq: row.seq,
        expires: row.expires,
        attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
        stage: match row.state {
            CommandState::Sent => Stage::Sent,
            CommandState::Received => Stage::Received,
            _ => Stage::Queued,
        },
    }
}

/// How long from now until `t` (zero when past).
fn until(t: Timestamp) -> Duration {
    let us = t.as_micros().saturating_sub(Timestamp::now().as_micros());
    Duration::from_micros(us.max(0) as u64)
}
