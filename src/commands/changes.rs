//! Batched commits of command state changes (docs/commands.md): every change asked for
//! while a commit runs goes into the next one, one transaction for all of them (on
//! SQLite with `synchronous = full`: one fsync instead of one per change). Each change
//! is still the conditional update of [`crate::storage::commands`], applied in the
//! order asked; each caller gets its own [`Changed`] once the transaction committed,
//! so a change is still stored before anyone announces it.
//!
//! Channel: change requests in (`mpsc`, bounded by `commands.queue`; senders: the
//! [`super::CommandsHandle`] clones and the dispatcher; callers wait while it is full),
//! each answered on its own `oneshot`. The task ends when every sender is dropped.

use crate::domain::Timestamp;
use crate::storage::commands::{Changed, Transition};
use crate::storage::{StorageError, Store};
use tokio::sync::{mpsc, oneshot};

/// One change asked for, and where its outcome goes.
struct Request {
    id: String,
    transition: Transition,
    now: Timestamp,
    done: oneshot::Sender<Result<Changed, StorageError>>,
}

/// Where command state changes are sent to be stored together.
#[derive(Clone)]
pub struct Changes {
    requests: mpsc::Sender<Request>,
}

impl Changes {
    /// Starts the committing task: at most `max_batch` changes per transaction.
    pub fn start(store: Store, queue: usize, max_batch: usize) -> Self {
        let (requests, rx) = mpsc::channel(queue.max(1));
        tokio::spawn(commit_loop(store, rx, max_batch.max(1)));
        Self { requests }
    }

    /// Stores `t` on command `id` (if it is still where `t` expects) in the next
    /// commit; the command as it is once that committed.
    pub async fn apply(
        &self,
        id: &str,
        transition: Transition,
        now: Timestamp,
    ) -> Result<Changed, StorageError> {
        let (done, outcome) = oneshot::channel();
        let request = Request {
            id: id.to_owned(),
            transition,
            now,
            done,
        };
        if self.requests.send(request).await.is_err() {
            return Err(StorageError::WriterUnavailable);
        }
        outcome
            .await
            .unwrap_or(Err(StorageError::WriterUnavailable))
    }
}

async fn commit_loop(store: Store, mut rx: mpsc::Receiver<Request>, max_batch: usize) {
    let mut batch = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        let changes: Vec<(&str, &Transition, Timestamp)> = batch
            .iter()
            .map(|r| (r.id.as_str(), &r.transition, r.now))
            .collect();
        match store.change_commands(&changes).await {
            Ok(outcomes) => {
                for (r, outcome) in batch.drain(..).zip(outcomes) {
                    let _ = r.done.send(Ok(outcome));
                }
            }
            // The whole transaction failed: each change alone, so each caller gets
            // its own outcome (and error).
            Err(_) => {
                for r in batch.drain(..) {
                    let outcome = store.change_command(&r.id, &r.transition, r.now).await;
                    let _ = r.done.send(outcome);
                }
            }
        }
    }
}
