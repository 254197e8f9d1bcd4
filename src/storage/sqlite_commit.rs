//! SQLite's writer transactions, each run whole on one dedicated thread.
//!
//! sqlx runs every SQLite statement as a round trip to its connection's worker thread;
//! a commit of a dozen statements cost a dozen thread hand-offs, most of the hub's CPU
//! at 10,000 small messages a second. Here the writer task sends the whole batch to a
//! thread that owns a synchronous connection (rusqlite, on the same libsqlite3 that sqlx
//! links) and gets the answer back: one hand-off each way per transaction. Statements
//! are prepared once and cached; rows go in key order, one cached single-row insert
//! each (what `sqlite3 .import` does).
//!
//! Its transactions begin `IMMEDIATE`, like those of the sqlx write pool's connection
//! (registry, alerts, commands, maintenance: [`super::db::Dialect::BEGIN_WRITE`]). The
//! two connections take turns at SQLite's write lock through the write pool: the writer
//! holds the pool's one connection while its transaction runs, so the pool's users queue
//! fairly (first come, first served) between its commits. Meeting at the lock itself
//! starved them: SQLite's busy handler sleeps with back-off (up to 100 ms) while a
//! writer under load takes the lock again the moment it lets go, so commands beside a
//! full ingest load moved at 1–188 a second.
//!
//! Owns [`SqliteCommitter`] and SQLite's [`CommitTx`]. Uses [`super::commit`],
//! [`super::batch`] and [`super::rollup`].

use super::batch::Batch;
use super::commit::{BLOCKS_BETWEEN, CommitTx, Param, TEXT_ID, store_batch};
use super::db::{Db, UPSERT_SERIES};
use super::horizons::RollupState;
use super::open_buckets::OpenBuckets;
use super::rollup::{self, Level, RollupRow};
use super::series::SeriesKey;
use super::sqlite_checkpoint::{BACKSTOP_PAGES, Checkpointer, WAL_SIZE_LIMIT};
use super::{RowValues, StorageError};
use rusqlite::{Transaction, TransactionBehavior, params};
use sqlx::{Row, Sqlite};
use std::pin::pin;
use std::sync::mpsc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::sync::oneshot;

/// Stores one reading unless its key is stored (`changes()` says which).
const INSERT_READING: &str =
    "INSERT OR IGNORE INTO readings (series_id, ts, value) VALUES ($1, $2, $3)";

/// Statements each connection keeps prepared (a commit uses about a dozen shapes).
const STATEMENT_CACHE: usize = 32;

/// What the thread gives back: the batch and open buckets it borrowed, and the result.
type Answer = (Batch, Option<OpenBuckets>, Result<Vec<bool>, StorageError>);

/// One transaction for the thread.
struct Job {
    batch: Batch,
    open: Option<OpenBuckets>,
    rollups: RollupState,
    reply: oneshot::Sender<Answer>,
}

/// The commit thread, and the checkpoint thread beside it.
pub(crate) struct SqliteCommitter {
    /// Capacity 1: the writer waits for each answer before it sends the next job.
    jobs: mpsc::SyncSender<Job>,
    thread: std::thread::JoinHandle<()>,
    checkpointer: Option<Checkpointer>,
    /// The write pool (one connection): held while a transaction runs, as the turn at
    /// SQLite's write lock.
    turn: sqlx::Pool<Sqlite>,
}

impl SqliteCommitter {
    /// Opens the thread's connection on `db`'s file with the write pool's settings
    /// (`synchronous`, busy timeout; WAL is the file's own, set when it was opened) and
    /// starts the thread; with a `checkpoint_interval`, also the checkpoint thread.
    pub async fn start(
        db: &Db<Sqlite>,
        checkpoint_interval: Duration,
    ) -> Result<Self, StorageError> {
        let write = &db.write;
        let file: String = sqlx::query("PRAGMA database_list")
            .fetch_one(write)
            .await?
            .get(2);
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(write)
            .await?;
        let busy_ms: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(write)
            .await?;
        let conn = rusqlite::Connection::open(&file)?;
        conn.execute_batch(&format!(
            "PRAGMA synchronous = {synchronous};
             PRAGMA busy_timeout = {busy_ms}; PRAGMA foreign_keys = ON;
             PRAGMA cache_size = -16000;"
        ))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let checkpointer = if checkpoint_interval.is_zero() {
            None
        } else {
            conn.execute_batch(&format!(
                "PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES};
                 PRAGMA journal_size_limit = {WAL_SIZE_LIMIT};"
            ))?;
            Some(Checkpointer::start(&file, checkpoint_interval)?)
        };
        let (jobs, rx) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("telehub-sqlite-commit".into())
            .spawn(move || serve(conn, rx))
            .map_err(StorageError::Thread)?;
        Ok(Self {
            jobs,
            thread,
            checkpointer,
            turn: write.clone(),
        })
    }

    /// Runs [`store_batch`] in one transaction on the thread. `batch` and `open` are
    /// lent to it and come back with the answer.
    pub async fn commit(
        &mut self,
        batch: &mut Batch,
        open: &mut Option<OpenBuckets>,
        rollups: &RollupState,
    ) -> Result<Vec<bool>, StorageError> {
        // Our turn at the write lock: the pool's connection is idle while we hold it.
        let _turn = self.turn.acquire().await?;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            batch: std::mem::take(batch),
            open: open.take(),
            rollups: rollups.clone(),
            reply,
        };
        self.jobs
            .send(job)
            .map_err(|_| StorageError::WriterUnavailable)?;
        let (b, o, result) = answer.await.map_err(|_| StorageError::WriterUnavailable)?;
        (*batch, *open) = (b, o);
        result
    }

    /// Ends the threads once they have finished their work, closing their connections.
    pub async fn close(self) {
        drop(self.jobs);
        let checkpointer = self.checkpointer.map(Checkpointer::close);
        let commit = self.thread;
        let _ = tokio::task::spawn_blocking(move || {
            let _ = commit.join();
            checkpointer.map(|c| c.join());
        })
        .await;
    }
}

/// The thread: one transaction per job until the writer hangs up.
fn serve(mut conn: rusqlite::Connection, jobs: mpsc::Receiver<Job>) {
    while let Ok(Job {
        mut batch,
        open,
        rollups,
        reply,
    }) = jobs.recv()
    {
        let result = transaction(&mut conn, &mut batch, open.as_ref(), &rollups);
        let _ = reply.send((batch, open, result));
    }
}

fn transaction(
    conn: &mut rusqlite::Connection,
    batch: &mut Batch,
    open: Option<&OpenBuckets>,
    rollups: &RollupState,
) -> Result<Vec<bool>, StorageError> {
    // Immediate: take the write lock at BEGIN, not halfway through.
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let flags = run_to_end(store_batch(&mut tx, batch, open, rollups))?;
    tx.commit()?;
    Ok(flags)
}

/// Runs a future whose every step is synchronous (this connection never waits on
/// anything but SQLite, inside its calls) to its end on this thread.
fn run_to_end<T>(future: impl Future<Output = T>) -> T {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => unreachable!("SQLite's commit steps never suspend"),
    }
}

impl CommitTx for Transaction<'_> {
    async fn resolve_series(
        &mut self,
        key: &SeriesKey,
        unit: Option<&str>,
        kind: &str,
    ) -> Result<(i64, String, Option<i64>), StorageError> {
        let (id, kind): (i64, String) = self.prepare_cached(UPSERT_SERIES)?.query_row(
            params![key.device_id, key.sensor.as_str(), unit, kind],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let max_ts = self
            .prepare_cached("SELECT max(ts) FROM readings WHERE series_id = $1")?
            .query_row([id], |r| r.get(0))?;
        Ok((id, kind, max_ts))
    }

    async fn update(
        &mut self,
        sql: &'static str,
        first: Param<'_>,
        second: i64,
    ) -> Result<(), StorageError> {
        let mut st = self.prepare_cached(sql)?;
        match first {
            Param::Text(t) => st.execute(params![t, second])?,
            Param::Int(i) => st.execute(params![i, second])?,
        };
        Ok(())
    }

    async fn text_id(&mut self, text: &str) -> Result<i64, StorageError> {
        Ok(self
            .prepare_cached(TEXT_ID)?
            .query_row([text], |r| r.get(0))?)
    }

    async fn count_series(
        &mut self,
        sql: &'static str,
        device_id: i64,
        sensor: Option<&str>,
    ) -> Result<i64, StorageError> {
        let mut st = self.prepare_cached(sql)?;
        Ok(match sensor {
            Some(s) => st.query_row(params![device_id, s], |r| r.get(0))?,
            None => st.query_row([device_id], |r| r.get(0))?,
        })
    }

    async fn insert_fresh(&mut self, rows: &[RowValues]) -> Result<u64, StorageError> {
        let mut st = self.prepare_cached(INSERT_READING)?;
        let mut inserted = 0;
        for r in rows {
            inserted += st.execute(params![r.series, r.ts, r.value])? as u64;
        }
        Ok(inserted)
    }

    async fn blocks_between(
        &mut self,
        series: i64,
        lo: i64,
        hi: i64,
    ) -> Result<Vec<(i64, i64, Vec<u8>)>, StorageError> {
        let mut st = self.prepare_cached(BLOCKS_BETWEEN)?;
        let rows = st.query_map(params![series, lo, hi], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    async fn insert_maybe(
        &mut self,
        rows: &[(usize, RowValues)],
    ) -> Result<Vec<bool>, StorageError> {
        let mut st = self.prepare_cached(INSERT_READING)?;
        let mut inserted = Vec::with_capacity(rows.len());
        for (_, r) in rows {
            inserted.push(st.execute(params![r.series, r.ts, r.value])? == 1);
        }
        Ok(inserted)
    }

    async fn upsert_rollups(
        &mut self,
        level: Level,
        rows: &[RollupRow],
    ) -> Result<(), StorageError> {
        let mut st = self.prepare_cached(&upsert_rollup_sql(level.table()))?;
        for r in rows {
            let s = &r.s;
            st.execute(params![
                r.series, r.bucket, s.n, s.sum, s.min, s.max, s.first_ts, s.last_ts, s.first,
                s.last, s.min_ts, s.max_ts
            ])?;
        }
        Ok(())
    }

    async fn touch_devices(&mut self, ids: &[i64], now_us: i64) -> Result<(), StorageError> {
        let mut st = self.prepare_cached("UPDATE devices SET last_seen_us = $1 WHERE id = $2")?;
        for id in ids {
            st.execute(params![now_us, id])?;
        }
        Ok(())
    }
}

/// Combines one row (`?` × 12, in [`rollup::COLUMNS`] order) with what `table` holds.
fn upsert_rollup_sql(table: &str) -> String {
    format!(
        "INSERT INTO {table} ({}) VALUES ({}) {}",
        rollup::COLUMNS,
        ["?"; 12].join(", "),
        rollup::upsert_set(table)
    )
}
