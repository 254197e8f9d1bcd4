//! The shared read queries: raw points, series, bucket summaries and the `rollup_state`
//! row, in SQL both backends run (`$N` parameters work on SQLite too).
//!
//! Owns [`SummaryQuery`] and the statements that read `readings`, `series` and the
//! rollup tables for queries. Every raw read merges hot rows with the series'
//! compressed blocks ([`crate::storage::blocks`]), so compaction changes no answer. Runs on the read pool. Uses [`super::plan`] for the SQL of
//! bucket queries, [`crate::storage::db`] for the pools and
//! [`crate::storage::horizons`] for what the rollups may answer.

use super::plan::{Need, Source, plan, summaries_sql};
use super::values;
use crate::domain::{SensorName, Timestamp, ValueKind};
use crate::storage::blocks::merge::{self, merge_sorted};
use crate::storage::blocks::reads::Order;
use crate::storage::db::{Db, Dialect};
use crate::storage::rollup::{Level, Summary};
use crate::storage::{Point, RangeQuery, SeriesRow, StorageError};
use sqlx::{AssertSqlSafe, ColumnIndex, Decode, Encode, Executor, Row, Type};

/// Summaries of `[from, to)` for buckets of `every` µs: segments merged, at most `limit`.
pub struct SummaryQuery {
    pub series: i64,
    pub from: i64,
    pub to: i64,
    pub every: i64,
    pub limit: usize,
    pub need: Need,
}

/// Bucket start and summary.
pub type BucketSummary = (i64, Summary);

impl<DB> Db<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> i64: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> f64: Decode<'r, DB> + Type<DB>,
    for<'r> bool: Decode<'r, DB> + Type<DB>,
    for<'r> &'r str: Encode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// Whether the rollups summarise every stored reading (see the `rollup_state` table).
    pub async fn rollups_complete(&self) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar("SELECT complete FROM rollup_state")
            .fetch_one(&self.read)
            .await
    }

    /// `rollup_state`: whether the rollups are complete, and the (minute, hour) horizons.
    pub async fn rollup_state(&self) -> Result<(bool, [i64; 2]), sqlx::Error> {
        let (complete, minute, hour) =
            sqlx::query_as("SELECT complete, minute_horizon, hour_horizon FROM rollup_state")
                .fetch_one(&self.read)
                .await?;
        Ok((complete, [minute, hour]))
    }

    /// A series' sensors, by name.
    pub async fn series_of(&self, device_id: i64) -> Result<Vec<SeriesRow>, StorageError> {
        let rows: Vec<(i64, String, Option<String>)> = sqlx::query_as(
            "SELECT id, sensor, unit FROM series WHERE device_id = $1 ORDER BY sensor",
        )
        .bind(device_id)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, sensor, unit)| {
                let sensor = SensorName::parse(&sensor).ok()?;
                Some(SeriesRow { id, sensor, unit })
            })
            .collect())
    }

    /// Raw points of a series, as values of its type.
    pub async fn query_points(&self, q: RangeQuery) -> Result<Vec<Point>, StorageError> {
        let kind = self.series_kind(q.series).await?;
        let rows = self.query_raw(q).await?;
        self.decode_points(kind, rows).await
    }

    /// `(ts, stored value)` rows as points of a series of `kind`.
    pub async fn decode_points(
        &self,
        kind: ValueKind,
        rows: Vec<(i64, f64)>,
    ) -> Result<Vec<Point>, StorageError> {
        let texts = match kind {
            ValueKind::Text => self.texts(rows.iter().map(|r| r.1)).await?,
            _ => Default::default(),
        };
        Ok(rows
            .into_iter()
            .map(|(ts, v)| Point {
                ts: Timestamp::from_micros(ts),
                value: values::decode(kind, v, |id| texts.get(&id).cloned()),
            })
            .collect())
    }

    /// The newest `limit` points of `[from, to)`, newest first.
    pub async fn query_newest(&self, q: RangeQuery) -> Result<Vec<Point>, StorageError> {
        let kind = self.series_kind(q.series).await?;
        let limit = q.limit.min(i64::MAX as usize);
        let (from, to) = (q.from.as_micros(), q.to.as_micros());
        let mut hot: Vec<(i64, f64)> = sqlx::query_as(
            "SELECT ts, value FROM readings WHERE series_id = $1 AND ts >= $2 AND ts < $3
             ORDER BY ts DESC LIMIT $4",
        )
        .bind(q.series)
        .bind(from)
        .bind(to)
        .bind(limit as i64)
        .fetch_all(&self.read)
        .await?;
        let cold = self
            .block_points(q.series, from, to, Order::Newest, limit)
            .await?;
        hot.reverse();
        let mut rows = merge_sorted(hot, cold);
        rows.reverse();
        rows.truncate(limit);
        self.decode_points(kind, rows).await
    }

    /// Raw rows of `[start, to)` (the cursor applied), at most `limit`, hot rows and
    /// compressed blocks merged.
    async fn query_raw(&self, q: RangeQuery) -> Result<Vec<(i64, f64)>, StorageError> {
        let limit = q.limit.min(i64::MAX as usize);
        let (from, to) = (q.start_us(), q.to.as_micros());
        let hot = self.hot_rows(q.series, from, to, limit).await?;
        let cold = self
            .block_points(q.series, from, to, Order::Oldest, limit)
            .await?;
        let mut rows = merge_sorted(hot, cold);
        rows.truncate(limit);
        Ok(rows)
    }

    async fn hot_rows(
        &self,
        series: i64,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<(i64, f64)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT ts, value FROM readings WHERE series_id = $1 AND ts >= $2 AND ts < $3
             ORDER BY ts LIMIT $4",
        )
        .bind(series)
        .bind(from)
        .bind(to)
        .bind(limit.min(i64::MAX as usize) as i64)
        .fetch_all(&self.read)
        .await
    }

    /// The readings of `[from, to)` where the value changes: the first, each one that
    /// differs from the one before, and the last (state timelines keep every transition).
    pub async fn transitions(&self, q: RangeQuery) -> Result<Vec<Point>, StorageError> {
        let kind = self.series_kind(q.series).await?;
        let (from, to) = (q.start_us(), q.to.as_micros());
        let cold = self
            .block_points(q.series, from, to, Order::Oldest, usize::MAX)
            .await?;
        if !cold.is_empty() {
            let hot = self.hot_rows(q.series, from, to, usize::MAX).await?;
            let rows = merge::transitions(&merge_sorted(hot, cold));
            return self.decode_points(kind, rows).await;
        }
        let rows: Vec<(i64, f64)> = sqlx::query_as(
            "SELECT ts, value FROM (
               SELECT ts, value, lag(value) OVER (ORDER BY ts) AS prev,
                      lead(ts) OVER (ORDER BY ts) AS next
               FROM readings WHERE series_id = $1 AND ts >= $2 AND ts < $3) t
             WHERE prev IS NULL OR prev <> value OR next IS NULL ORDER BY ts",
        )
        .bind(q.series)
        .bind(from)
        .bind(to)
        .fetch_all(&self.read)
        .await?;
        self.decode_points(kind, rows).await
    }

    /// Summaries per [`plan`], from rollups as far as they answer: up to the writer's
    /// horizons in a hub, up to the stored ones in another process, not at all when the
    /// rollups are incomplete.
    pub async fn summaries(&self, q: &SummaryQuery) -> Result<Vec<BucketSummary>, StorageError> {
        let rollups = match self.rollups.for_queries() {
            Some(rollups) => rollups,
            None => {
                let (complete, horizons) = self.rollup_state().await?;
                self.rollups.read(complete, horizons)
            }
        };
        // Raw segments that reach into compressed blocks are summarised here, from hot
        // rows and blocks merged; the rest in one statement. Minute rows leave out the
        // readings of sparse blocks (`blocks::compact`): those are decoded and added.
        let mut rows: Vec<BucketSummary> = Vec::new();
        let mut segments = Vec::new();
        for seg in plan(q.from, q.to, q.every, rollups) {
            if seg.source == Source::Rollup(Level::Minute) {
                let cold = self.sparse_block_points(q.series, seg.from, seg.to).await?;
                rows.extend(merge::bucket_summaries(&cold, q.every, q.limit));
            }
            if seg.source == Source::Raw {
                let cold = self
                    .block_points(q.series, seg.from, seg.to, Order::Oldest, usize::MAX)
                    .await?;
                if !cold.is_empty() {
                    let hot = self
                        .hot_rows(q.series, seg.from, seg.to, usize::MAX)
                        .await?;
                    let points = merge_sorted(hot, cold);
                    rows.extend(merge::bucket_summaries(&points, q.every, q.limit));
                    continue;
                }
            }
            segments.push(seg);
        }
        if !segments.is_empty() {
            let sql = summaries_sql(&segments, q.every, q.need);
            let mut query = sqlx::query(AssertSqlSafe(sql))
                .bind(q.series)
                .bind(q.every)
                .bind(q.limit.min(i64::MAX as usize) as i64);
            for seg in &segments {
                query = query.bind(seg.from).bind(seg.to);
            }
            for row in query.fetch_all(&self.read).await? {
                rows.push(decode(&row, q.need)?);
            }
        }
        rows.sort_by_key(|r| r.0);
        let mut out: Vec<BucketSummary> = Vec::with_capacity(rows.len());
        for (b, s) in rows {
            match out.last_mut() {
                Some((last, acc)) if *last == b => acc.merge(&s),
                _ => out.push((b, s)),
            }
        }
        out.truncate(q.limit);
        Ok(out)
    }

    /// `None`: no such device; `Some(None)`: the device has no such sensor.
    pub async fn find_series(
        &self,
        device: &str,
        sensor: &str,
    ) -> Result<Option<Option<i64>>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT s.id FROM devices d LEFT JOIN series s ON s.device_id = d.id AND s.sensor = $2
             WHERE d.name = $1",
        )
        .bind(device)
        .bind(sensor)
        .fetch_optional(&self.read)
        .await
    }

    /// One integer (or NULL) from each statement.
    pub async fn scalars(&self, sqls: &[&'static str]) -> Result<Vec<Option<i64>>, sqlx::Error> {
        let mut out = Vec::with_capacity(sqls.len());
        for sql in sqls {
            out.push(sqlx::query_scalar(*sql).fetch_one(&self.read).await?);
        }
        Ok(out)
    }

    pub async fn series_ids(&self) -> Result<Vec<i64>, sqlx::Error> {
        sqlx::query_scalar("SELECT id FROM series ORDER BY id")
            .fetch_all(&self.read)
            .await
    }
}

fn decode<R: Row>(row: &R, need: Need) -> Result<BucketSummary, sqlx::Error>
where
    usize: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
{
    let mut s = Summary {
        n: row.try_get(1)?,
        sum: row.try_get(2)?,
        min: f64::NAN,
        max: f64::NAN,
        first_ts: 0,
        last_ts: 0,
        first: f64::NAN,
        last: f64::NAN,
        min_ts: 0,
        max_ts: 0,
    };
    if need >= Need::Basic {
        (s.min, s.max) = (row.try_get(3)?, row.try_get(4)?);
        (s.first_ts, s.last_ts) = (row.try_get(5)?, row.try_get(6)?);
        (s.min_ts, s.max_ts) = (s.first_ts, s.first_ts);
    }
    if need >= Need::Ends {
        (s.first, s.last) = (row.try_get(7)?, row.try_get(8)?);
    }
    if need >= Need::All {
        (s.min_ts, s.max_ts) = (row.try_get(9)?, row.try_get(10)?);
    }
    Ok((row.try_get(0)?, s))
}
