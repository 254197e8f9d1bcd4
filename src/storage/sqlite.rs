//! The SQLite backend (embedded default): WAL journal, a deliberate `synchronous`
//! level, one write connection (the writer task's) and a small read pool.
//!
//! Owns opening a SQLite database, its migrations, its disk usage, and its
//! [`Dialect`]: readings and rollups inserted in multi-row chunks of four fixed sizes
//! (so only four statement shapes are ever prepared), possible duplicates inserted one
//! by one with `INSERT OR IGNORE`, id lists passed as JSON (`json_each`). Uses
//! [`super::db`], [`super::rollup`] and the settings in [`crate::config`].

use super::db::{Db, DbQuery, Dialect, UPSERT_SERIES};
use super::rollup::{self, Level, RollupRow};
use super::series::SeriesKey;
use super::stats::DiskPart;
use super::{OpenMode, RowValues, StorageError};
use crate::config::{DatabaseSettings, SqliteSync};
use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, Sqlite};
use std::str::FromStr;

/// Rows buffered between a read connection's thread and the query's task.
const READ_ROW_BUFFER: usize = 4096;

/// Rows per multi-row INSERT; a batch is cut into chunks of these sizes so that only
/// four distinct statements are ever prepared.
const CHUNKS: [usize; 4] = [512, 64, 8, 1];

/// Opens with one write connection and a read pool of `max_connections`; with
/// [`OpenMode::Create`] the file and its folder are created when missing.
pub async fn open(s: &DatabaseSettings, mode: OpenMode) -> Result<Db<Sqlite>, StorageError> {
    let open_err = |source| StorageError::Open {
        url: s.url.clone(),
        source,
    };
    let opts = SqliteConnectOptions::from_str(&s.url)
        .map_err(open_err)?
        .create_if_missing(mode == OpenMode::Create)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(match s.sqlite_synchronous {
            SqliteSync::Full => SqliteSynchronous::Full,
            SqliteSync::Normal => SqliteSynchronous::Normal,
        })
        .busy_timeout(s.busy_timeout)
        .foreign_keys(true)
        .pragma("cache_size", "-16000");
    let file = opts.get_filename();
    let in_memory = file.as_os_str().is_empty() || file.to_str() == Some(":memory:");
    if mode == OpenMode::Existing && !in_memory && !file.exists() {
        return Err(StorageError::Missing(file.display().to_string()));
    }
    if let Some(dir) = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && mode == OpenMode::Create)
    {
        std::fs::create_dir_all(dir).map_err(|e| open_err(sqlx::Error::Io(e)))?;
    }
    let pool = |n: u32| {
        SqlitePoolOptions::new()
            .max_connections(n)
            .acquire_timeout(s.busy_timeout)
    };
    let write = pool(1).connect_with(opts.clone()).await.map_err(open_err)?;
    // sqlx hands rows from each connection's thread to the query's task through a
    // channel of this many rows; its default of 50 makes a 1,440-bucket answer
    // ping-pong between threads ~30 times. Bounded: ~1 MB per running query.
    let read = pool(s.max_connections.max(1))
        .connect_with(opts.row_buffer_size(READ_ROW_BUFFER))
        .await
        .map_err(open_err)?;
    Ok(Db::new(write, read))
}

impl Db<Sqlite> {
    pub async fn migrate(&self) -> Result<(), StorageError> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.write)
            .await?;
        Ok(())
    }

    /// Sizes of the database file and its WAL and shared-memory files.
    pub async fn disk_usage(&self) -> Result<Vec<DiskPart>, StorageError> {
        let file: String = sqlx::query("PRAGMA database_list")
            .fetch_one(&self.read)
            .await?
            .get(2);
        Ok(["", "-wal", "-shm"]
            .iter()
            .map(|suffix| {
                let name = format!("{file}{suffix}");
                let bytes = std::fs::metadata(&name).map_or(0, |m| m.len());
                DiskPart { name, bytes }
            })
            .collect())
    }
}

impl Dialect for Sqlite {
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const LOCK_ROWS: &'static str = "";

    /// Two statements: SQLite has no `INSERT` in a `WITH`.
    async fn resolve_series(
        tx: &mut SqliteConnection,
        key: &SeriesKey,
        unit: Option<&str>,
        kind: &str,
    ) -> Result<(i64, String, Option<i64>), sqlx::Error> {
        let (id, kind): (i64, String) = sqlx::query_as(UPSERT_SERIES)
            .bind(key.device_id)
            .bind(key.sensor.as_str())
            .bind(unit)
            .bind(kind)
            .fetch_one(&mut *tx)
            .await?;
        let max_ts = sqlx::query_scalar("SELECT max(ts) FROM readings WHERE series_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        Ok((id, kind, max_ts))
    }

    async fn insert_fresh(
        tx: &mut SqliteConnection,
        rows: &[RowValues],
    ) -> Result<u64, sqlx::Error> {
        exec_chunked(tx, rows, insert_sql, |q, r| {
            q.bind(r.series).bind(r.ts).bind(r.value)
        })
        .await
    }

    /// One `INSERT OR IGNORE` per row: its `rows_affected` says whether it was new.
    async fn insert_maybe(
        tx: &mut SqliteConnection,
        rows: &[(usize, RowValues)],
    ) -> Result<Vec<bool>, sqlx::Error> {
        let mut inserted = Vec::with_capacity(rows.len());
        for (_, r) in rows {
            let done = sqlx::query(
                "INSERT OR IGNORE INTO readings (series_id, ts, value) VALUES ($1, $2, $3)",
            )
            .bind(r.series)
            .bind(r.ts)
            .bind(r.value)
            .execute(&mut *tx)
            .await?;
            inserted.push(done.rows_affected() == 1);
        }
        Ok(inserted)
    }

    async fn upsert_rollups(
        tx: &mut SqliteConnection,
        level: Level,
        rows: &[RollupRow],
    ) -> Result<(), sqlx::Error> {
        let sql = |n| upsert_sql(level.table(), n);
        exec_chunked(tx, rows, sql, bind_rollup).await.map(drop)
    }

    fn in_ids(column: &str, n: usize) -> String {
        format!("{column} IN (SELECT value FROM json_each(${n}))")
    }

    fn bind_ids<'q>(q: DbQuery<'q, Sqlite>, ids: &[i64]) -> DbQuery<'q, Sqlite> {
        q.bind(serde_json::to_string(ids).expect("ids serialise"))
    }
}

type SqliteQuery = Query<'static, Sqlite, SqliteArguments>;

/// Runs a multi-row statement over `rows` in chunks of [`CHUNKS`] sizes (so only four
/// distinct statements are prepared per kind); `sql(n)` is the statement for `n` rows.
/// Returns the rows affected.
async fn exec_chunked<T>(
    tx: &mut SqliteConnection,
    rows: &[T],
    sql: impl Fn(usize) -> String,
    bind: impl Fn(SqliteQuery, &T) -> SqliteQuery,
) -> Result<u64, sqlx::Error> {
    let (mut rest, mut affected) = (rows, 0);
    for size in CHUNKS {
        if rest.len() < size {
            continue;
        }
        let sql = sql(size);
        while rest.len() >= size {
            let (chunk, tail) = rest.split_at(size);
            let q = chunk
                .iter()
                .fold(sqlx::query(AssertSqlSafe(sql.clone())), &bind);
            affected += q.execute(&mut *tx).await?.rows_affected();
            rest = tail;
        }
    }
    Ok(affected)
}

fn values(head: &str, per_row: usize, rows: usize) -> String {
    let tuple = format!("({})", vec!["?"; per_row].join(","));
    let mut sql = String::from(head);
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&tuple);
    }
    sql
}

fn insert_sql(rows: usize) -> String {
    values(
        "INSERT OR IGNORE INTO readings (series_id, ts, value) VALUES ",
        3,
        rows,
    )
}

pub(super) fn upsert_sql(table: &str, rows: usize) -> String {
    let head = format!("INSERT INTO {table} ({}) VALUES ", rollup::COLUMNS);
    values(&head, 12, rows) + &rollup::upsert_set(table)
}

fn bind_rollup(q: SqliteQuery, r: &RollupRow) -> SqliteQuery {
    let s = &r.s;
    q.bind(r.series)
        .bind(r.bucket)
        .bind(s.n)
        .bind(s.sum)
        .bind(s.min)
        .bind(s.max)
        .bind(s.first_ts)
        .bind(s.last_ts)
        .bind(s.first)
        .bind(s.last)
        .bind(s.min_ts)
        .bind(s.max_ts)
}
