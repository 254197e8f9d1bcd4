//! PostgreSQL's statements of a writer transaction: [`CommitTx`] on a pooled
//! connection's transaction, one round trip per statement. Fresh readings are loaded
//! with binary `COPY` ([`super::pg_copy`]) in large batches; other readings and rollups
//! are inserted in bulk from `UNNEST` arrays (one statement per batch, not one per
//! row); which possible duplicates were new is learnt from `RETURNING`.
//!
//! Owns the PostgreSQL [`CommitTx`]. Uses [`super::commit`], [`super::pg_copy`] and
//! [`super::rollup`].

use super::commit::{CommitTx, Param};
use super::db::UPSERT_SERIES;
use super::pg_copy;
use super::rollup::{self, Level, RollupRow};
use super::series::SeriesKey;
use super::{RowValues, StorageError};
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Postgres, Transaction};
use std::collections::HashSet;

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

impl CommitTx for Transaction<'_, Postgres> {
    async fn resolve_series(
        &mut self,
        key: &SeriesKey,
        unit: Option<&str>,
        kind: &str,
    ) -> Result<(i64, String, Option<i64>), StorageError> {
        Ok(resolve_series(self, key, unit, kind).await?)
    }

    async fn update(
        &mut self,
        sql: &'static str,
        first: Param<'_>,
        second: i64,
    ) -> Result<(), StorageError> {
        let q = sqlx::query(sql);
        let q = match first {
            Param::Text(t) => q.bind(t),
            Param::Int(i) => q.bind(i),
        };
        q.bind(second).execute(&mut **self).await?;
        Ok(())
    }

    async fn text_id(&mut self, text: &str) -> Result<i64, StorageError> {
        Ok(sqlx::query_scalar(super::commit::TEXT_ID)
            .bind(text)
            .fetch_one(&mut **self)
            .await?)
    }

    async fn count_series(
        &mut self,
        sql: &'static str,
        device_id: i64,
        sensor: Option<&str>,
    ) -> Result<i64, StorageError> {
        let q = sqlx::query_scalar(sql).bind(device_id);
        let q = match sensor {
            Some(s) => q.bind(s),
            None => q,
        };
        Ok(q.fetch_one(&mut **self).await?)
    }

    async fn insert_fresh(&mut self, rows: &[RowValues]) -> Result<u64, StorageError> {
        Ok(insert_fresh(self, rows).await?)
    }

    async fn blocks_between(
        &mut self,
        series: i64,
        lo: i64,
        hi: i64,
    ) -> Result<Vec<(i64, i64, Vec<u8>)>, StorageError> {
        sqlx::query("SELECT id FROM series WHERE id = $1 FOR SHARE")
            .bind(series)
            .fetch_optional(&mut **self)
            .await?;
        Ok(sqlx::query_as(super::commit::BLOCKS_BETWEEN)
            .bind(series)
            .bind(lo)
            .bind(hi)
            .fetch_all(&mut **self)
            .await?)
    }

    async fn insert_maybe(
        &mut self,
        rows: &[(usize, RowValues)],
    ) -> Result<Vec<bool>, StorageError> {
        Ok(insert_maybe(self, rows).await?)
    }

    async fn upsert_rollups(
        &mut self,
        level: Level,
        rows: &[RollupRow],
    ) -> Result<(), StorageError> {
        Ok(upsert_rollups(self, level, rows).await?)
    }

    async fn touch_devices(&mut self, ids: &[i64], now_us: i64) -> Result<(), StorageError> {
        sqlx::query("UPDATE devices SET last_seen_us = $1 WHERE id = ANY($2)")
            .bind(now_us)
            .bind(ids)
            .execute(&mut **self)
            .await?;
        Ok(())
    }
}

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
