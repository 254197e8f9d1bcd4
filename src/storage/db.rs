//! One opened database, and the seam between the two backends.
//!
//! Owns [`Db`] — a backend's pools and this process's [`RollupState`] — and
//! [`Dialect`], the few things SQLite and PostgreSQL do differently in telehub's shared
//! SQL: how a writing transaction begins (`BEGIN_WRITE`), locking claimed rows
//! (`LOCK_ROWS`) and matching an id list (`json_each` vs `ANY`). Opening, migrations and
//! disk usage are backend functions in [`super::sqlite`] and [`super::postgres`]; the
//! storage writer's statements are each backend's own ([`super::sqlite_commit`] on a
//! synchronous connection, [`super::pg_commit`] with `COPY` and arrays), run by the one
//! sequence in [`super::commit`].
//!
//! Everything else — registry, tokens, queries, history — is written once, generic over
//! the database (`$N` placeholders work on SQLite too), in impl blocks of [`Db`] bounded
//! by [`Dialect`] and by what sqlx needs to encode, decode and execute (Rust does not
//! carry a trait's where-clauses to its users, so each such block states them). Uses
//! [`super::horizons`] for types.

use super::horizons::RollupState;
use sqlx::query::Query;
use sqlx::{Database, IntoArguments, Pool};

/// A backend's pools and this process's view of its rollups.
pub struct Db<DB: Database> {
    /// Writes. SQLite: one connection for the registry, alerts and maintenance (short
    /// transactions; the storage writer has its own connection, `sqlite_commit`, and the
    /// two take turns at SQLite's write lock). PostgreSQL: the pool.
    pub write: Pool<DB>,
    /// Queries. SQLite: a small read pool; PostgreSQL: the same pool as `write`.
    pub read: Pool<DB>,
    /// Cached `rollup_state`: completeness and, in a hub, the writer's horizons.
    pub rollups: RollupState,
}

impl<DB: Database> Clone for Db<DB> {
    fn clone(&self) -> Self {
        Self {
            write: self.write.clone(),
            read: self.read.clone(),
            rollups: self.rollups.clone(),
        }
    }
}

impl<DB: Database> Db<DB> {
    pub fn new(write: Pool<DB>, read: Pool<DB>) -> Self {
        Self {
            write,
            read,
            rollups: RollupState::default(),
        }
    }

    /// A transaction on the write pool, begun with [`Dialect::BEGIN_WRITE`].
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, DB>, sqlx::Error>
    where
        DB: Dialect,
    {
        self.write.begin_with(DB::BEGIN_WRITE).await
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

/// `rows_affected` of a statement's result, on either backend.
pub trait RowsAffected {
    fn rows(&self) -> u64;
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows(&self) -> u64 {
        self.rows_affected()
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows(&self) -> u64 {
        self.rows_affected()
    }
}

/// A statement on `DB` with its arguments.
pub type DbQuery<'q, DB> = Query<'q, DB, <DB as Database>::Arguments>;

/// Upserts a series and returns its id: the statement both backends start from when
/// resolving one (`$1` device id, `$2` sensor, `$3` unit, kept when `NULL`, `$4` the
/// value type of a new series; an existing one keeps its own).
pub const UPSERT_SERIES: &str = "INSERT INTO series (device_id, sensor, unit, kind)
     VALUES ($1, $2, $3, $4)
     ON CONFLICT (device_id, sensor) DO UPDATE SET unit = coalesce(excluded.unit, series.unit)
     RETURNING id, kind";

/// What differs between the backends in the shared SQL layer (the writer's statements
/// are each backend's own: [`super::sqlite_commit`], [`super::pg_commit`]).
pub trait Dialect: Database<Arguments: IntoArguments<Self>, QueryResult: RowsAffected> {
    /// Opens a writing transaction: SQLite's `BEGIN IMMEDIATE` takes the write lock at
    /// once (waiting up to the busy timeout), so a transaction that reads before it
    /// writes cannot fail when the storage writer's own connection commits between
    /// the two; PostgreSQL's plain `BEGIN`.
    const BEGIN_WRITE: &'static str;

    /// Appended to a `SELECT` whose rows are claimed for work: `FOR UPDATE SKIP LOCKED`
    /// where several hubs may claim at once (PostgreSQL); nothing on SQLite, where one
    /// process writes at a time.
    const LOCK_ROWS: &'static str;

    /// An SQL condition: `column` is in the id list bound as parameter `$n` by
    /// [`Dialect::bind_ids`].
    fn in_ids(column: &str, n: usize) -> String;

    /// Binds an id list for [`Dialect::in_ids`].
    fn bind_ids<'q>(q: DbQuery<'q, Self>, ids: &[i64]) -> DbQuery<'q, Self>;
}
