//! The writer's one handle on storage: which backend runs its transactions, and how.
//!
//! SQLite runs each transaction whole on a dedicated thread with one synchronous
//! connection ([`super::sqlite_commit`]), so a transaction costs one thread hand-off
//! instead of one per statement; PostgreSQL runs [`store_batch`] on a pooled connection's
//! transaction ([`super::pg_commit`]). After each commit the rollup horizons are lifted.
//!
//! Owns [`Committer`] (the backend choice). Uses [`super::commit`] and the backends'
//! modules; the writer task ([`super::writer`]) uses this module, never the other way round.

use super::batch::Batch;
use super::commit::store_batch;
use super::db::Db;
use super::horizons::RollupState;
use super::open_buckets::OpenBuckets;
use super::sqlite_commit::SqliteCommitter;
use super::{StorageError, Store};
use sqlx::Postgres;
use std::time::Duration;

/// Runs writer transactions on a backend: the writer task's one handle on storage.
pub(crate) struct Committer {
    backend: Backend,
    /// This process's view of the rollup horizons, lifted after each commit.
    rollups: RollupState,
}

enum Backend {
    Sqlite(SqliteCommitter),
    Postgres(Db<Postgres>),
}

impl Committer {
    /// For SQLite, opens the commit thread's connection (with the write pool's pragmas)
    /// and, unless `checkpoint_interval` is 0, the checkpoint thread's.
    pub async fn start(store: &Store, checkpoint_interval: Duration) -> Result<Self, StorageError> {
        let (backend, rollups) = match store {
            Store::Sqlite(db) => (
                Backend::Sqlite(SqliteCommitter::start(db, checkpoint_interval).await?),
                db.rollups.clone(),
            ),
            Store::Postgres(db) => (Backend::Postgres(db.clone()), db.rollups.clone()),
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
            Backend::Postgres(db) => {
                let mut tx = db.begin_write().await?;
                let flags = store_batch(&mut tx, batch, open.as_ref(), &self.rollups).await?;
                tx.commit().await?;
                flags
            }
        };
        if let Some(staged) = &batch.staged {
            self.rollups.set_horizons(staged.horizons());
        }
        Ok(flags)
    }

    /// Waits for the commit thread (SQLite) to close its connection.
    pub async fn close(self) {
        if let Backend::Sqlite(c) = self.backend {
            c.close().await;
        }
    }
}
