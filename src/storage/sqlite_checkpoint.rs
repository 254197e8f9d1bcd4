//! SQLite WAL checkpoints off the commit path.
//!
//! By default SQLite copies the WAL back into the database file (and fsyncs it) inside
//! whichever commit pushes the WAL past 1,000 pages: at 10,000 readings a second that
//! is several times a second, each a latency spike for the readings of that commit, and
//! the same hot pages are copied again each time. Here a thread with its own connection
//! runs a `PASSIVE` checkpoint (it never blocks the writer or readers) every
//! `checkpoint_interval`; the writer's connection keeps an automatic checkpoint only as
//! a backstop at [`BACKSTOP_PAGES`], and the WAL file is truncated back to
//! [`WAL_SIZE_LIMIT`] after it.
//!
//! Owns [`Checkpointer`]. Started and stopped by [`super::sqlite_commit`].

use super::StorageError;
use std::sync::mpsc;
use std::time::Duration;

/// The writer connection's own automatic checkpoint (pages), when this runs: it then
/// finds little left to copy and lets the next commit restart the WAL from its start.
pub const BACKSTOP_PAGES: u32 = 10_000;
/// Bytes the WAL file is truncated back to after a checkpoint.
pub const WAL_SIZE_LIMIT: u64 = 64 << 20;

/// The checkpoint thread; it ends when this is closed.
pub(crate) struct Checkpointer {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Checkpointer {
    /// Starts checkpointing `file` every `interval` on its own connection.
    pub fn start(file: &str, interval: Duration) -> Result<Self, StorageError> {
        let conn = rusqlite::Connection::open(file)?;
        conn.execute_batch(&format!("PRAGMA journal_size_limit = {WAL_SIZE_LIMIT};"))?;
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("telehub-sqlite-checkpoint".into())
            .spawn(move || run(conn, interval, stopped))
            .map_err(StorageError::Thread)?;
        Ok(Self { stop, thread })
    }

    /// Stops the thread after its current checkpoint.
    pub fn close(self) -> std::thread::JoinHandle<()> {
        drop(self.stop);
        self.thread
    }
}

fn run(conn: rusqlite::Connection, interval: Duration, stopped: mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
        // (busy, WAL frames, frames copied); busy only means a reader or the backstop
        // holds it this time: the next round copies what is left.
        let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        });
        match done {
            Ok((_, wal, copied)) => tracing::trace!(wal, copied, "WAL checkpoint"),
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; retrying next round"),
        }
    }
}
