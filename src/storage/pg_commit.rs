//! PostgreSQL's statements of a writer transaction: [`PgTx`], a transaction on the
//! writer's connection, one round trip per statement. Fresh readings are loaded with
//! binary `COPY` ([`super::pg_copy`]) from `writer.copy_min_rows` on; other readings and
//! rollups are inserted in bulk from `UNNEST` arrays (one statement per batch, not one per
//! row); which possible duplicates were new is learnt from `RETURNING`. The transaction
//! ends with one statement ([`FINISH`]): the fresh rows not `COPY`'d, both rollup levels,
//! the horizons and `last_seen`, as data-modifying `WITH` parts — so a small commit is
//! `BEGIN`, that statement and `COMMIT`: three round trips.
//!
//! Owns [`PgTx`]. Uses [`super::commit`], [`super::pg_copy`] and [`super::rollup`].

use super::commit::{CommitTx, Finish, Param};
use super::db::UPSERT_SERIES;
use super::pg_copy;
use super::rollup::{self, Level, RollupRow};
use super::series::SeriesKey;
use super::{RowValues, StorageError};
use sqlx::postgres::{PgArguments, PgConnection};
use sqlx::query::Query;
use sqlx::{AssertSqlSafe, Postgres, Row, Transaction};
use std::collections::HashSet;
use std::sync::LazyLock;

/// Inserts readings from three arrays (`$1` series ids, `$2` times, `$3` values),
/// skipping those already stored.
const INSERT_READINGS: &str = "INSERT INTO readings (series_id, ts, value)
     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::float8[]) ON CONFLICT DO NOTHING";

/// A writer transaction's last statement ([`Finish`]), returning how many fresh rows it
/// inserted: [`INSERT_READINGS`] (`$1`–`$3`), the minute rollups (`$4`–`$15`), the hour
/// rollups (`$16`–`$27`), the horizons (`$28`, `$29`; stored if `$30`) and `last_seen`
/// (`$31` the time, `$32` the device ids). Each part writes another table and none reads
/// what another writes, so one snapshot for all of them changes nothing.
static FINISH: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH fresh AS ({INSERT_READINGS} RETURNING 1),
              minute AS ({}),
              hour AS ({}),
              horizons AS (UPDATE rollup_state
                           SET minute_horizon = $28::bigint, hour_horizon = $29::bigint
                           WHERE $30::boolean),
              seen AS (UPDATE devices SET last_seen_us = $31::bigint WHERE id = ANY($32::bigint[]))
         SELECT count(*) FROM fresh",
        upsert_rollups_sql(Level::Minute, 4),
        upsert_rollups_sql(Level::Hour, 16),
    )
});

/// A writer transaction on PostgreSQL.
pub(crate) struct PgTx<'c> {
    tx: Transaction<'c, Postgres>,
    /// `writer.copy_min_rows`.
    copy_min_rows: usize,
}

impl<'c> PgTx<'c> {
    /// Opens a transaction on `conn` that loads fresh rows with `COPY` from
    /// `copy_min_rows` on.
    pub async fn begin(conn: &'c mut PgConnection, copy_min_rows: usize) -> sqlx::Result<Self> {
        use sqlx::Connection;
        Ok(Self {
            tx: conn.begin().await?,
            copy_min_rows,
        })
    }

    pub async fn commit(self) -> sqlx::Result<()> {
        self.tx.commit().await
    }

    fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}

impl CommitTx for PgTx<'_> {
    async fn resolve_series(
        &mut self,
        key: &SeriesKey,
        unit: Option<&str>,
        kind: &str,
    ) -> Result<(i64, String, Option<i64>), StorageError> {
        Ok(resolve_series(self.conn(), key, unit, kind).await?)
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
        q.bind(second).execute(self.conn()).await?;
        Ok(())
    }

    async fn text_id(&mut self, text: &str) -> Result<i64, StorageError> {
        Ok(sqlx::query_scalar(super::commit::TEXT_ID)
            .bind(text)
            .fetch_one(self.conn())
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
        Ok(q.fetch_one(self.conn()).await?)
    }

    async fn insert_fresh(&mut self, rows: &[RowValues]) -> Result<u64, StorageError> {
        let copy_min_rows = self.copy_min_rows;
        Ok(insert_fresh(self.conn(), rows, copy_min_rows).await?)
    }

    async fn blocks_between(
        &mut self,
        series: i64,
        lo: i64,
        hi: i64,
    ) -> Result<Vec<(i64, i64, Vec<u8>)>, StorageError> {
        sqlx::query("SELECT id FROM series WHERE id = $1 FOR SHARE")
            .bind(series)
            .fetch_optional(self.conn())
            .await?;
        Ok(sqlx::query_as(super::commit::BLOCKS_BETWEEN)
            .bind(series)
            .bind(lo)
            .bind(hi)
            .fetch_all(self.conn())
            .await?)
    }

    async fn insert_maybe(
        &mut self,
        rows: &[(usize, RowValues)],
    ) -> Result<Vec<bool>, StorageError> {
        Ok(insert_maybe(self.conn(), rows).await?)
    }

    async fn upsert_rollups(
        &mut self,
        level: Level,
        rows: &[RollupRow],
    ) -> Result<(), StorageError> {
        Ok(upsert_rollups(self.conn(), level, rows).await?)
    }

    async fn touch_devices(&mut self, ids: &[i64], now_us: i64) -> Result<(), StorageError> {
        sqlx::query("UPDATE devices SET last_seen_us = $1 WHERE id = ANY($2)")
            .bind(now_us)
            .bind(ids)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// One statement, [`FINISH`]; before it, a `COPY` of the fresh rows when there are
    /// `copy_min_rows` of them (and none is stored already).
    async fn finish(&mut self, end: &Finish<'_>) -> Result<u64, StorageError> {
        let mut copied = 0;
        let mut fresh = end.fresh;
        if !fresh.is_empty()
            && fresh.len() >= self.copy_min_rows
            && let Some(n) = pg_copy::copy_fresh(self.conn(), fresh).await?
        {
            (copied, fresh) = (n, &[]);
        }
        let [(_, minute), (_, hour)] = end.rollups;
        let (horizons, store) = match end.horizons {
            Some(h) => (h, true),
            None => ([0, 0], false),
        };
        let (s, t, v) = columns(fresh.iter());
        let q = sqlx::query(AssertSqlSafe(FINISH.as_str()))
            .bind(s)
            .bind(t)
            .bind(v);
        let q = bind_rollups(bind_rollups(q, minute), hour)
            .bind(horizons[0])
            .bind(horizons[1])
            .bind(store)
            .bind(end.now_us)
            .bind(end.touched);
        let inserted: i64 = q.fetch_one(self.conn()).await?.get(0);
        Ok(copied + inserted.max(0) as u64)
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

/// A binary `COPY` from `copy_min_rows` rows on (see [`pg_copy`]); fewer, or some
/// stored already by another writer: one `UNNEST` insert.
async fn insert_fresh(
    tx: &mut PgConnection,
    rows: &[RowValues],
    copy_min_rows: usize,
) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    if rows.len() >= copy_min_rows
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
    let q = sqlx::query(AssertSqlSafe(upsert_rollups_sql(level, 1)));
    bind_rollups(q, rows).execute(tx).await.map(drop)
}

/// The upsert of `level`'s rollup rows from twelve arrays, parameters `$first` on, in
/// [`rollup::COLUMNS`] order (bound by [`bind_rollups`]).
fn upsert_rollups_sql(level: Level, first: usize) -> String {
    let types = [
        "bigint", "bigint", "bigint", "float8", "float8", "float8", "bigint", "bigint", "float8",
        "float8", "bigint", "bigint",
    ];
    let arrays: Vec<String> = (types.iter().enumerate())
        .map(|(i, t)| format!("${}::{t}[]", first + i))
        .collect();
    let table = level.table();
    format!(
        "INSERT INTO {table} ({}) SELECT * FROM UNNEST({}) {}",
        rollup::COLUMNS,
        arrays.join(", "),
        rollup::upsert_set(table)
    )
}

/// Binds `rows` as the twelve arrays of [`upsert_rollups_sql`].
fn bind_rollups<'q>(
    q: Query<'q, Postgres, PgArguments>,
    rows: &[RollupRow],
) -> Query<'q, Postgres, PgArguments> {
    let ints = |f: fn(&RollupRow) -> i64| rows.iter().map(f).collect::<Vec<i64>>();
    let floats = |f: fn(&RollupRow) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
    q.bind(ints(|r| r.series))
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
