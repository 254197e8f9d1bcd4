//! Commands on the device's side (docs/commands.md, docs/client-library.md): with
//! [`CommandsConfig`] set, the client connects with `?commands=1`, acknowledges each
//! `{"command": …}` at once, runs the caller's handler, and sends its answer until the hub
//! confirms it with `result_stored` — on the same connection after `resend_after`, and
//! on every new connection.
//!
//! [`Book`] is the bookkeeping, apart from I/O: which ids run now, which were executed
//! (with their answers, the newest `remember` of them, so a command the hub sends again
//! is answered again and not executed twice), and which answers the hub has not
//! confirmed. With persistence on it is saved beside the outbox ([`Book::snapshot`]),
//! so a restarted device neither runs a command twice nor forgets an answer.
//!
//! Desired configuration (protocol.md §14) rides the same channel: with
//! [`CommandsConfig::config`] set, each `{"config": …}` is applied by that handler at
//! once and answered with `{"config_reported": …}` (what it applied); a report the hub
//! did not store is repaired on reconnect, when the hub sends the version again.
//!
//! Owned by the client's [`CommandSide`] (one `std` mutex, never held across an
//! `.await`); a handler runs in its own task and, when done, records its answer
//! and wakes the session through `done`.

use crate::protocol::commands::{CommandAnswer, CommandId, ConfigDocument, DeviceCommand};
use crate::protocol::frames::DeviceFrame;
use crate::protocol::ingest::ParseLimits;
use futures_util::future::BoxFuture;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// What runs a command: given the command, its answer (`ok`, `error` or `rejected`,
/// with an optional `result` object).
pub type CommandHandler =
    Arc<dyn Fn(DeviceCommand) -> BoxFuture<'static, CommandAnswer> + Send + Sync>;

/// What applies a desired configuration: given the desired document, the state the
/// device now has (reported to the hub with the same version).
pub type ConfigHandler = Arc<
    dyn Fn(
            &serde_json::Map<String, serde_json::Value>,
        ) -> serde_json::Map<String, serde_json::Value>
        + Send
        + Sync,
>;

/// Commands for this client (off unless set in [`super::ClientConfig::commands`]).
#[derive(Clone)]
pub struct CommandsConfig {
    pub handler: CommandHandler,
    /// Executed ids remembered, with their answers (the oldest forgotten first).
    pub remember: usize,
    /// An answer the hub has not confirmed is sent again after this long.
    pub resend_after: Duration,
    /// An answer is sent at most this many times on open connections, then given up
    /// (the hub no longer knows the command, or refuses the answer).
    pub max_sends: u32,
    /// Handlers running at once at most; a command beyond it is not acknowledged (the
    /// hub sends it again later).
    pub max_running: usize,
    /// Applies desired configurations (none: `{"config": …}` frames are ignored).
    pub config: Option<ConfigHandler>,
}

impl CommandsConfig {
    /// The defaults: 1 000 ids remembered, answers resent every 5 s up to 20 times,
    /// 16 handlers at once.
    pub fn new(handler: CommandHandler) -> Self {
        Self {
            handler,
            remember: 1000,
            resend_after: Duration::from_secs(5),
            max_sends: 20,
            max_running: 16,
            config: None,
        }
    }
}

impl std::fmt::Debug for CommandsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandsConfig")
            .field("remember", &self.remember)
            .field("resend_after", &self.resend_after)
            .field("max_running", &self.max_running)
            .finish_non_exhaustive()
    }
}

/// What to do with a command the hub handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// New: acknowledge it and run the handler.
    Execute,
    /// Already executed (or running): acknowledge it; its answer is (or will be) sent.
    Known,
    /// Too many running: leave it unacknowledged.
    Busy,
}

/// An answer the hub has not confirmed.
#[derive(Debug, Clone)]
struct Unstored {
    answer: CommandAnswer,
    last_sent: Option<Instant>,
    sends: u32,
}

/// The device's command bookkeeping (see the module header).
#[derive(Debug, Default)]
pub(super) struct Book {
    executed: HashMap<CommandId, CommandAnswer>,
    order: VecDeque<CommandId>,
    running: HashSet<CommandId>,
    unstored: HashMap<CommandId, Unstored>,
    /// Bumped by every change worth saving.
    version: u64,
}

impl Book {
    pub fn on_command(&mut self, id: &CommandId, max_running: usize) -> Decision {
        if self.running.contains(id) {
            return Decision::Known;
        }
        if let Some(answer) = self.executed.get(id) {
            // Answer it again (its earlier answer may have been lost).
            let answer = answer.clone();
            self.unstored
                .entry(id.clone())
                .or_insert(Unstored {
                    answer,
                    last_sent: None,
                    sends: 0,
                })
                .last_sent = None;
            return Decision::Known;
        }
        if self.running.len() >= max_running {
            return Decision::Busy;
        }
        self.running.insert(id.clone());
        Decision::Execute
    }

    /// The handler answered `id`.
    pub fn finished(&mut self, id: CommandId, answer: CommandAnswer, remember: usize) {
        self.running.remove(&id);
        self.unstored.insert(
            id.clone(),
            Unstored {
                answer: answer.clone(),
                last_sent: None,
                sends: 0,
            },
        );
        self.remember(id, answer, remember);
        self.version += 1;
    }

    fn remember(&mut self, id: CommandId, answer: CommandAnswer, remember: usize) {
        if self.executed.insert(id.clone(), answer).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > remember.max(1) {
            if let Some(old) = self.order.pop_front() {
                self.executed.remove(&old);
            }
        }
    }

    /// The hub stored the answer to `id`.
    pub fn stored(&mut self, id: &CommandId) {
        if self.unstored.remove(id).is_some() {
            self.version += 1;
        }
    }

    /// A new connection: every unconfirmed answer goes out again at once.
    pub fn connected(&mut self) {
        for u in self.unstored.values_mut() {
            u.last_sent = None;
        }
    }

    /// The answers to send now (marked sent); those sent `max_sends` times are given up.
    pub fn due(&mut self, now: Instant, cfg: &CommandsConfig) -> Vec<DeviceFrame> {
        let mut out = Vec::new();
        let mut given_up = Vec::new();
        for (id, u) in &mut self.unstored {
            if u.last_sent.is_some_and(|t| t + cfg.resend_after > now) {
                continue;
            }
            if u.sends >= cfg.max_sends {
                given_up.push(id.clone());
                continue;
            }
            u.last_sent = Some(now);
            u.sends += 1;
            out.push(DeviceFrame::CommandResult {
                id: id.clone(),
                answer: u.answer.clone(),
            });
        }
        for id in given_up {
            tracing::warn!(%id, "the hub never confirmed this command's answer; giving up on it");
            self.unstored.remove(&id);
            self.version += 1;
        }
        out
    }

    /// When the next answer is due again, if any waits.
    pub fn next_due(&self, cfg: &CommandsConfig) -> Option<Instant> {
        self.unstored
            .values()
            .filter_map(|u| u.last_sent.map(|t| t + cfg.resend_after))
            .min()
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// The saved form: one line per executed id, oldest first: `U` (answer not
    /// confirmed) or `S`, a space, and the `command_result` frame.
    pub fn snapshot(&self) -> String {
        let mut out = String::new();
        for id in &self.order {
            let Some(answer) = self.executed.get(id) else {
                continue;
            };
            let mark = if self.unstored.contains_key(id) {
                'U'
            } else {
                'S'
            };
            let frame = DeviceFrame::CommandResult {
                id: id.clone(),
                answer: answer.clone(),
            };
            out.push(mark);
            out.push(' ');
            out.push_str(&frame.to_json());
            out.push('\n');
        }
        out
    }

    /// Reads [`Book::snapshot`]; lines that do not parse are skipped and counted.
    pub fn restore(text: &str, remember: usize) -> (Self, usize) {
        let limits = ParseLimits {
            max_readings: 1,
            max_clock_skew: Duration::ZERO,
            now: crate::domain::Timestamp::now(),
        };
        let (mut book, mut skipped) = (Book::default(), 0);
        for line in text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            let parsed = line
                .split_once(' ')
                .and_then(|(mark, frame)| Some((mark, DeviceFrame::parse(frame, &limits).ok()?)));
            match parsed {
                Some((mark @ ("U" | "S"), DeviceFrame::CommandResult { id, answer })) => {
                    if mark == "U" {
                        book.unstored.insert(
                            id.clone(),
                            Unstored {
                                answer: answer.clone(),
                                last_sent: None,
                                sends: 0,
                            },
                        );
                    }
                    book.remember(id, answer, remember);
                }
                _ => skipped += 1,
            }
        }
        (book, skipped)
    }
}

/// The client's command side: its settings, its book, and the wake-up of a session
/// when a handler finished.
pub(super) struct CommandSide {
    pub cfg: CommandsConfig,
    book: Mutex<Book>,
    pub done: Notify,
}

impl CommandSide {
    pub fn new(cfg: CommandsConfig, book: Book) -> Arc<Self> {
        Arc::new(Self {
            cfg,
            book: Mutex::new(book),
            done: Notify::new(),
        })
    }

    pub fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A desired configuration from the hub: the report to send once it is applied
    /// (none without a configuration handler).
    pub fn apply_config(&self, desired: &ConfigDocument) -> Option<ConfigDocument> {
        let apply = self.cfg.config.as_ref()?;
        Some(ConfigDocument {
            version: desired.version,
            document: apply(&desired.document),
        })
    }

    /// A command from the hub: whether to acknowledge it; a new one starts its handler.
    pub fn take(self: &Arc<Self>, command: DeviceCommand) -> bool {
        let decision = self.book().on_command(&command.id, self.cfg.max_running);
        match decision {
            Decision::Busy => {
                tracing::debug!(id = %command.id, "too many commands running; leaving this one for later");
                false
            }
            Decision::Known => {
                self.done.notify_one();
                true
            }
            Decision::Execute => {
                let id = command.id.clone();
                let run = (self.cfg.handler)(command);
                let side = self.clone();
                tokio::spawn(async move {
                    let answer = run.await;
                    side.book().finished(id, answer, side.cfg.remember);
                    side.done.notify_one();
                });
                true
            }
        }
    }
}

#[cfg(test)]
#[path = "commands_tests.rs"]
mod tests;
