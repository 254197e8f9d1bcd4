//! The writer's one handle on storage: which backend runs its transactions, and how.
//!
//! SQLite runs each transaction whole on a dedicated thread with one synchronous
//! connection ([`super::sqlite_commit`]), so a transaction costs one thread hand-off
//! instead of one per statement; PostgreSQL runs [`store_batch`] in a transaction
//! ([`super::pg_commit`]) on a connection the writer keeps from the pool between commits
//! (taking one from the pool each time costs a round trip: sqlx pings it first), and gives
//! back after a failed commit, for the pool to check or replace. After each commit the
//! rollup horizons are lifted.
//!
//! Owns [`Committer`] (the backend choice). Uses [`super::commit`] and the backends'
//! modules; the writer task ([`super::writer`]) uses this module, never the other way round.

use super::batch::Batch;
use super::commit::store_batch;
use super::db::Db;
use super::horizons::RollupState;
use super::open_buckets::OpenBuckets;
use super::pg_commit::PgTx;
use super::sqlite_commit::SqliteCommitter;
use super::{StorageError, Store};
use crate::config::WriterSettings;
use sqlx::Postgres;
use sqlx::pool::PoolConnection;

/// Runs writer transactions on a backend: the writer task's one handle on storage.
pub(crate) struct Committer {
    backend: Backend,
    /// This process's view of the rollup horizons, lifted after each commit.
    rollups: RollupState,
}

enum Backend {
    Sqlite(SqliteCommitter),
    Postgres {
        db: Db<Postgres>,
        /// The writer's connection; `None` until the next commit takes one.
        conn: Option<PoolConnection<Postgres>>,
        /// `writer.copy_min_rows`.
        copy_min_rows: usize,
    },
}

impl Committer {
    /// For SQLite, opens the commit thread's connection (with the write pool's pragmas)
    /// and, unless `checkpoint_interval` is 0, the checkpoint thread's.
    pub async fn start(store: &Store, settings: &WriterSettings) -> Result<Self, StorageError> {
        let (backend, rollups) = match store {
            Store::Sqlite(db) => (
                Backend::Sqlite(SqliteCommitter::start(db, settings.checkpoint_interval).await?),
                db.rollups.clone(),
            ),
            Store::Postgres(db) => (
                Backend::Postgres {
                    db: db.clone(),
                    conn: None,
                    copy_min_rows: settings.copy_min_rows,
                },
                db.rollups.clone(),
            ),
        };
        Ok(Self { backend, rollups })
    }

    /// Commits `batch` in one transaction; returns, per row in order, whether it was
    /// newly stored. `open` are the writer's open rollup buckets (`None`: rollups off);
    /// they are not changed (the writer applies a committed batch afterwards).
    pub async fn commit(
        &mut self,
        batch: &mut Batch,
        open: &mut Option<OpenBuckets>,
    ) -> Result<Vec<bool>, StorageError> {
        let flags = match &mut self.backend {
            Backend::Sqlite(c) => c.commit(batch, open, &self.rollups).await?,
            Backend::Postgres {
                db,
                conn,
                copy_min_rows,
            } => {
                let mut c = match conn.take() {
                    Some(c) => c,
                    None => db.write.acquire().await?,
                };
                let flags = pg_commit(&mut c, *copy_min_rows, batch, open, &self.rollups).await?;
                // Kept only after a commit went through: after a failure it goes back to
                // the pool, which checks it before anyone takes it again.
                *conn = Some(c);
                flags
            }
        };
        if let Some(staged) = &batch.staged {
            self.rollups.set_horizons(staged.horizons());
        }
        Ok(flags)
    }

    /// Waits for the commit thread (SQLite) to close its connection; gives the writer's
    /// connection back to the pool (PostgreSQL).
    pub async fn close(self) {
        if let Backend::Sqlite(c) = self.backend {
            c.close().await;
        }
    }
}

/// One PostgreSQL transaction of `batch` on `conn`.
async fn pg_commit(
    conn: &mut PoolConnection<Postgres>,
    copy_min_rows: usize,
    batch: &mut Batch,
    open: &Option<OpenBuckets>,
    rollups: &RollupState,
) -> Result<Vec<bool>, StorageError> {
    let mut tx = PgTx::begin(conn, copy_min_rows).await?;
    let flags = store_batch(&mut tx, batch, open.as_ref(), rollups).await?;
    tx.commit().await?;
    Ok(flags)
}
