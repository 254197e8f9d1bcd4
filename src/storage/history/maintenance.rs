//! Maintenance SQL of the history tables: rebuilding rollups from raw readings (hot rows
//! and compressed blocks), and the
//! bounded deletes of retention; and the hub's start-up step that makes the rollups
//! match the setting ([`Store::prepare_rollups`]).
//!
//! Owns [`Table`] and every statement that rewrites `rollup_1m`, `rollup_1h` and
//! `rollup_state` outside the writer's commits. Runs on the write pool (on SQLite the
//! writer's own connection, one short statement at a time). Uses [`super::plan`] for
//! the rebuild's SQL, [`crate::storage::horizons`] and [`crate::storage::db`].

use super::plan::{Need, Segment, Source, segment_sql};
use crate::domain::Timestamp;
use crate::storage::blocks::{codec, merge};
use crate::storage::db::{Db, Dialect, RowsAffected};
use crate::storage::horizons::NO_HORIZON;
use crate::storage::rollup::{self, Level};
use crate::storage::{StorageError, Store};
use sqlx::{AssertSqlSafe, ColumnIndex, Decode, Encode, Executor, Type};

/// A table retention deletes from, with its time column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Raw,
    Rollup(Level),
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::Raw => "readings",
            Table::Rollup(l) => l.table(),
        }
    }

    fn key(self) -> &'static str {
        match self {
            Table::Raw => "ts",
            Table::Rollup(_) => "bucket",
        }
    }
}

impl Store {
    /// Makes the rollups match the setting before the writer starts: with rollups on,
    /// rebuilds them from raw data if they are not complete (after the migration that
    /// added them, or a run with rollups off), or from the horizons on if a writer held
    /// buckets back when it stopped (a crash); with rollups off, marks them incomplete
    /// so queries read raw data.
    pub async fn prepare_rollups(&self, enabled: bool) -> Result<(), StorageError> {
        let (complete, [minute, hour]) = dispatch!(self, db => db.rollup_state().await)?;
        match (enabled, complete) {
            (true, false) => {
                // A fresh database has nothing to rebuild: no word about it then.
                if dispatch!(self, db => db.has_series().await)? {
                    tracing::info!("rebuilding rollups from raw readings (once)…");
                }
                let started = std::time::Instant::now();
                dispatch!(self, db => db.rebuild_rollups(i64::MIN).await)?;
                tracing::info!(took = ?started.elapsed(), "rollups rebuilt");
            }
            (true, true) if minute.min(hour) != NO_HORIZON => {
                let from = rollup::floor(minute.min(hour), Level::Hour.width_us());
                let since = Timestamp::from_micros(from);
                tracing::info!(%since, "rebuilding the rollups the writer held back when it stopped");
                dispatch!(self, db => db.rebuild_rollups(from).await)?;
            }
            (false, true) => dispatch!(self, db => db.abandon_rollups().await)?,
            _ => {}
        }
        let state = dispatch!(self, db => &db.rollups);
        state.set_complete(enabled);
        if enabled {
            state.set_horizons([NO_HORIZON; 2]);
        }
        Ok(())
    }

    /// Deletes at most `limit` rows of `table` for `series` older than `cutoff` (µs), in
    /// one short statement on the writer's connection; returns how many.
    pub async fn delete_before(
        &self,
        table: Table,
        series: i64,
        cutoff: i64,
        limit: usize,
    ) -> Result<u64, StorageError> {
        Ok(dispatch!(self, db => db.delete_before(table, series, cutoff, limit).await)?)
    }

    /// Records that raw readings before `horizon` (µs) are gone.
    pub async fn advance_raw_horizon(&self, horizon: i64) -> Result<(), StorageError> {
        Ok(dispatch!(self, db => db.advance_raw_horizon(horizon).await)?)
    }
}

impl<DB> Db<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> i64: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> f64: Encode<'r, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// Whether any series exists (a fresh database has none).
    pub async fn has_series(&self) -> Result<bool, sqlx::Error> {
        let any: Option<i64> = sqlx::query_scalar("SELECT id FROM series LIMIT 1")
            .fetch_optional(&self.read)
            .await?;
        Ok(any.is_some())
    }

    pub async fn rebuild_rollups(&self, from: i64) -> Result<(), sqlx::Error> {
        let mut tx = self.begin_write().await?;
        let horizon: i64 = sqlx::query_scalar("SELECT raw_horizon FROM rollup_state")
            .fetch_one(&mut *tx)
            .await?;
        let horizon = horizon.max(from);
        let series: Vec<i64> = sqlx::query_scalar("SELECT id FROM series ORDER BY id")
            .fetch_all(&mut *tx)
            .await?;
        for (level, source) in [
            (Level::Minute, Source::Raw),
            (Level::Hour, Source::Rollup(Level::Minute)),
        ] {
            let t = level.table();
            sqlx::query(AssertSqlSafe(format!("DELETE FROM {t} WHERE bucket >= $1")))
                .bind(horizon)
                .execute(&mut *tx)
                .await?;
            let all = Segment {
                source,
                from: horizon,
                to: i64::MAX,
            };
            let sql = format!(
                "INSERT INTO {t} ({}) SELECT $1, q.* FROM ({}) q",
                rollup::COLUMNS,
                segment_sql(&all, level.width_us(), Need::All, 4, 5)
            );
            for id in &series {
                sqlx::query(AssertSqlSafe(sql.clone()))
                    .bind(*id)
                    .bind(level.width_us())
                    .bind(i64::MAX)
                    .bind(horizon)
                    .bind(i64::MAX)
                    .execute(&mut *tx)
                    .await?;
            }
            // Minute rows hold what no sparse block holds (see `blocks::compact`); the
            // hours hold every reading: the sparse blocks' hours are added here.
            let in_minute_rollups = level == Level::Minute;
            add_block_summaries(&mut tx, horizon, level, in_minute_rollups).await?;
        }
        sqlx::query(
            "UPDATE rollup_state SET complete = TRUE, minute_horizon = $1, hour_horizon = $1",
        )
        .bind(NO_HORIZON)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Marks the rollups incomplete (the writer stops maintaining them).
    pub async fn abandon_rollups(&self) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE rollup_state SET complete = FALSE")
            .execute(&self.write)
            .await
            .map(drop)
    }

    /// Deletes at most `limit` of a series' rows older than `cutoff`; returns how many.
    pub async fn delete_before(
        &self,
        table: Table,
        series: i64,
        cutoff: i64,
        limit: usize,
    ) -> Result<u64, sqlx::Error> {
        let (t, k) = (table.name(), table.key());
        let sql = format!(
            "DELETE FROM {t} WHERE series_id = $1 AND {k} IN
               (SELECT {k} FROM {t} WHERE series_id = $1 AND {k} < $2 ORDER BY {k} LIMIT $3)"
        );
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(series)
            .bind(cutoff)
            .bind(limit.min(i64::MAX as usize) as i64)
            .execute(&self.write)
            .await?;
        Ok(done.rows())
    }

    /// Records that every raw reading before `horizon` has been deleted.
    pub async fn advance_raw_horizon(&self, horizon: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE rollup_state SET raw_horizon = $1 WHERE raw_horizon < $1")
            .bind(horizon)
            .execute(&self.write)
            .await
            .map(drop)
    }
}

/// Adds the `level` summaries of compressed readings at or after `horizon` to its
/// rollup table (combined with what is there), a few blocks at a time: of the blocks
/// kept in the minute rollups (`in_minute_rollups`) or of the others.
async fn add_block_summaries<DB>(
    tx: &mut sqlx::Transaction<'static, DB>,
    horizon: i64,
    level: Level,
    in_minute_rollups: bool,
) -> Result<(), sqlx::Error>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> i64: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> f64: Encode<'r, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let which = ["NOT in_minute_rollups", "in_minute_rollups"][usize::from(in_minute_rollups)];
    let sql = format!(
        "SELECT series_id, start_ts, data FROM reading_blocks
         WHERE end_ts >= $1 AND {which} AND (series_id > $2 OR (series_id = $2 AND start_ts > $3))
         ORDER BY series_id, start_ts LIMIT 64"
    );
    let mut after = (i64::MIN, i64::MIN);
    loop {
        let page: Vec<(i64, i64, Vec<u8>)> = sqlx::query_as(AssertSqlSafe(sql.clone()))
            .bind(horizon)
            .bind(after.0)
            .bind(after.1)
            .fetch_all(&mut **tx)
            .await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = (last.0, last.1);
        for (series, _, data) in page {
            let block = codec::decode(&data).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            let points: Vec<(i64, f64)> = block.pairs().filter(|p| p.0 >= horizon).collect();
            let summaries = merge::bucket_summaries(&points, level.width_us(), usize::MAX);
            upsert_summaries(tx, level, series, &summaries).await?;
        }
    }
}

/// Upserts `summaries` of `series` into `level`'s table, each combined with the stored
/// row of its bucket (see [`rollup::upsert_set`]).
pub(crate) async fn upsert_summaries<DB>(
    tx: &mut sqlx::Transaction<'static, DB>,
    level: Level,
    series: i64,
    summaries: &[merge::BucketSummary],
) -> Result<(), sqlx::Error>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> i64: Encode<'r, DB> + Type<DB>,
    for<'r> f64: Encode<'r, DB> + Type<DB>,
{
    let t = level.table();
    let upsert = format!(
        "INSERT INTO {t} ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) {}",
        rollup::COLUMNS,
        rollup::upsert_set(t)
    );
    for (bucket, s) in summaries {
        sqlx::query(AssertSqlSafe(upsert.clone()))
            .bind(series)
            .bind(*bucket)
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
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
