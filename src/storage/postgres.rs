//! The PostgreSQL backend: one connection pool shared by queries, the writer and
//! maintenance.
//!
//! Owns opening a PostgreSQL database, its migrations, its disk usage, and its
//! [`Dialect`]: fresh readings loaded with binary `COPY` ([`super::pg_copy`]), other
//! readings and rollups inserted in bulk from `UNNEST` arrays (one statement per batch,
//! not one per row), possible duplicates learnt from `RETURNING`,
//! id lists bound as arrays (`ANY`). Uses [`super::db`], [`super::rollup`] and the
//! settings in [`crate::config`].

use super::db::{Db, DbQuery, Dialect, UPSERT_SERIES};
use super::pg_copy;
use super::rollup::{self, Level, RollupRow};
use super::series::SeriesKey;
use super::stats::{DiskPart, TABLES};
use super::{RowValues, StorageError};
use crate::config::DatabaseSettings;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Postgres, Row};
use std::collections::HashSet;
use std::str::FromStr;

/// Inserts readings from three arrays (`$1` series ids, `$2` times, `$3` values),
/// skipping those already stored.
const INSERT_READINGS: &str = "INSERT INTO readings (series_id, ts, value)
     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::float8[]) ON CONFLICT DO NOTHING";

/// Fresh rows from which a `COPY` beats one `UNNEST` insert. A `COPY` costs three round
/// trips with its savepoint, and sqlx 0.9.0 leaves Nagle's algorithm on (sqlx issue
/// 4335): the `CopyDone` that follows the data waits for the server's delayed ACK, up
/// to 40 ms on Linux. Measured: 200 rows made PostgreSQL's latency at 10,000
/// readings/s go from 2–3 ms (p50) to 93 ms; batches of thousands of rows still gain.
const COPY_MIN_ROWS: usize = 5_000;

/// Opens a pool of `max_connections` (at least two: the writer and one query).
pub async fn open(s: &DatabaseSettings) -> Result<Db<Postgres>, StorageError> {
    let open_err = |source| StorageError::Open {
        url: crate::config::redact_url(&s.url),
        source,
    };
    let opts = PgConnectOptions::from_str(&s.url).map_err(open_err)?;
    let pool = match PgPoolOptions::new()
        .max_connections(s.max_connections.max(2))
        .acquire_timeout(s.busy_timeout)
        .connect_with(opts.clone())
        .await
    {
        Ok(pool) => pool,
        // The pool retries until its timeout and then says only "pool timed out": one
        // direct attempt names the cause (connection refused, no such host, bad password).
        Err(sqlx::Error::PoolTimedOut) => {
            let direct = tokio::time::timeout(s.busy_timeout, PgConnection::connect_with(&opts));
            return Err(open_err(match direct.await {
                Ok(Err(cause)) => cause,
                _ => sqlx::Error::PoolTimedOut,
            }));
        }
        Err(e) => return Err(open_err(e)),
    };
    Ok(Db::new(pool.clone(), pool))
}

impl Db<Postgres> {
    pub async fn migrate(&self) -> Result<(), StorageError> {
        sqlx::migrate!("./migrations/postgres")
            .run(&self.write)
            .await?;
        Ok(())
    }

    /// `pg_total_relation_size` (table, indexes, TOAST) of each of telehub's tables.
    pub async fn disk_usage(&self) -> Result<Vec<DiskPart>, StorageError> {
        let rows = sqlx::query(
            "SELECT t, pg_total_relation_size(to_regclass(t)) FROM unnest($1::text[]) t
             WHERE to_regclass(t) IS NOT NULL",
        )
        .bind(&TABLES[..])
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| DiskPart {
                name: r.get(0),
                bytes: r.get::<i64, _>(1).max(0) as u64,
            })
            .collect())
    }
}

impl Dialect for Postgres {
    const LOCK_ROWS: &'static str = " FOR UPDATE SKIP LOCKED";

    /// One round trip: the upsert and the newest timestamp in one statement.
    async fn resolve_series(
        tx: &mut PgConnection,
        key: &SeriesKey,
        unit: Option<&str>,
        kind: &str,
    ) -> Result<(i64, String, Option<i64>), sqlx::Error> {
        let sql = format!(
            "WITH s AS ({UPSERT_SERIES})
             SELECT s.id, s.kind, (SELECT max(ts) FROM readings r WHERE r.series_id = s.id) FROM s"
        );
        sqlx::query_as(AssertSqlSafe(sql))
            .bind(key.device_id)
            .bind(key.sensor.as_str())
            .bind(unit)
            .bind(kind)
            .fetch_one(tx)
            .await
    }

    /// A binary `COPY` from [`COPY_MIN_ROWS`] rows on (see [`pg_copy`]); fewer, or some
    /// stored already by another writer: one `UNNEST` insert.
    async fn insert_fresh(tx: &mut PgConnection, rows: &[RowValues]) -> Result<u64, sqlx::Error> {
        if rows.is_empty() {
            return Ok(0);
        }
        if rows.len() >= COPY_MIN_ROWS
            && let Some(n) = pg_copy::copy_fresh(tx, rows).await?
        {
            return Ok(n);
        }
        let (s, t, v) = columns(rows.iter());
        let done = sqlx::query(INSERT_READINGS)
            .bind(s)
            .bind(t)
            .bind(v)
            .execute(tx)
            .await?;
        Ok(done.rows_affected())
    }

    async fn insert_maybe(
        tx: &mut PgConnection,
        rows: &[(usize, RowValues)],
    ) -> Result<Vec<bool>, sqlx::Error> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let (s, t, v) = columns(rows.iter().map(|(_, r)| r));
        let sql = format!("{INSERT_READINGS} RETURNING series_id, ts");
        let mut new: HashSet<(i64, i64)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(s)
            .bind(t)
            .bind(v)
            .fetch_all(tx)
            .await?
            .into_iter()
            .collect();
        // The first of several equal keys is the one stored.
        Ok(rows
            .iter()
            .map(|(_, r)| new.remove(&(r.series, r.ts)))
            .collect())
    }

    /// One `INSERT .. SELECT FROM UNNEST .. ON CONFLICT DO UPDATE` for all of a level's
    /// rows (one row per bucket, so no row is updated twice by the statement).
    async fn upsert_rollups(
        tx: &mut PgConnection,
        level: Level,
        rows: &[RollupRow],
    ) -> Result<(), sqlx::Error> {
        if rows.is_empty() {
            return Ok(());
        }
        let ints = |f: fn(&RollupRow) -> i64| rows.iter().map(f).collect::<Vec<i64>>();
        let floats = |f: fn(&RollupRow) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
        let table = level.table();
        let sql = format!(
            "INSERT INTO {table} ({}) SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[],
               $4::float8[], $5::float8[], $6::float8[], $7::bigint[], $8::bigint[], $9::float8[],
               $10::float8[], $11::bigint[], $12::bigint[]) {}",
            rollup::COLUMNS,
            rollup::upsert_set(table)
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(ints(|r| r.series))
            .bind(ints(|r| r.bucket))
            .bind(ints(|r| r.s.n))
            .bind(floats(|r| r.s.sum))
            .bind(floats(|r| r.s.min))
            .bind(floats(|r| r.s.max))
            .bind(ints(|r| r.s.first_ts))
            .bind(ints(|r| r.s.last_ts))
            .bind(floats(|r| r.s.first))
            .bind(floats(|r| r.s.last))
            .bind(ints(|r| r.s.min_ts))
            .bind(ints(|r| r.s.max_ts))
            .execute(tx)
            .await
            .map(drop)
    }

    fn in_ids(column: &str, n: usize) -> String {
        format!("{column} = ANY(${n})")
    }

    fn bind_ids<'q>(q: DbQuery<'q, Postgres>, ids: &[i64]) -> DbQuery<'q, Postgres> {
        q.bind(ids)
    }
}

/// Rows as the three column arrays [`INSERT_READINGS`] takes.
fn columns<'a>(rows: impl Iterator<Item = &'a RowValues>) -> (Vec<i64>, Vec<i64>, Vec<f64>) {
    let (mut s, mut t, mut v) = (Vec::new(), Vec::new(), Vec::new());
    for r in rows {
        s.push(r.series);
        t.push(r.ts);
        v.push(r.value);
    }
    (s, t, v)
}
