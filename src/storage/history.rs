//! Long-range history: bucketed queries answered from rollups, M4 downsampling, the
//! rollup rebuild and retention deletes. The SQL here is shared by both backends
//! (`$N` parameters work on SQLite too); [`History`] runs it on either pool.
//!
//! A bucket query of width `every` over `[from, to)` is split by [`plan`] into time
//! segments, each answered by the coarsest source whose buckets fit `every` exactly:
//! hour rollups where `every` is a multiple of 1 h, minute rollups where it is a
//! multiple of 1 min, raw readings for everything else, including the partial rollup
//! buckets at the range's edges. Each segment yields a [`Summary`] per bucket; summaries
//! of the same bucket from neighbouring segments are merged, so the result equals a
//! `GROUP BY` over the raw readings.

use super::pending::NO_HORIZON;
use super::rollup::{self, Level, Summary};
use super::{Agg, Point};
use crate::domain::Timestamp;
use sqlx::{
    AssertSqlSafe, ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, Ordering};

/// Where a segment's summaries come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Raw,
    Rollup(Level),
}

/// A time range `[from, to)` (µs) answered by one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub source: Source,
    pub from: i64,
    pub to: i64,
}

/// Splits `[from, to)` into segments for buckets of `every` µs: the whole buckets of the
/// coarsest rollup whose width divides `every`, then finer sources for the edges.
/// `rollups` are the (minute, hour) horizons (see [`super::pending`]): a level answers
/// only buckets before its horizon. `None` (rollups not complete, see `rollup_state`):
/// everything is raw.
pub fn plan(from: i64, to: i64, every: i64, rollups: Option<[i64; 2]>) -> Vec<Segment> {
    let levels: Vec<(Level, i64)> = match rollups {
        None => Vec::new(),
        Some([minute, hour]) => Level::ALL
            .into_iter()
            .filter(|l| every % l.width_us() == 0)
            .map(|l| match l {
                Level::Minute => (l, minute),
                Level::Hour => (l, hour),
            })
            .collect(),
    };
    let mut out = Vec::new();
    split(from, to, &levels, &mut out);
    out
}

fn split(from: i64, to: i64, levels: &[(Level, i64)], out: &mut Vec<Segment>) {
    if from >= to {
        return;
    }
    let Some(((level, horizon), finer)) = levels.split_first() else {
        out.push(Segment {
            source: Source::Raw,
            from,
            to,
        });
        return;
    };
    let w = level.width_us();
    let (a, b) = (rollup::ceil(from, w), rollup::floor(to.min(*horizon), w));
    if a >= b {
        return split(from, to, finer, out);
    }
    split(from, a, finer, out);
    out.push(Segment {
        source: Source::Rollup(*level),
        from: a,
        to: b,
    });
    split(b, to, finer, out);
}

/// Which [`Summary`] fields a query needs beyond count, sum, min, max and the first and
/// last times (the others cost an extra lookup per bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    /// Only count and sum (avg, sum, count): the narrowest rows, the fewest aggregates.
    Sum,
    Basic,
    /// Plus the first and last values.
    Ends,
    /// Plus when the minimum and maximum occur (for M4).
    All,
}

impl Agg {
    pub fn need(self) -> Need {
        match self {
            Agg::First | Agg::Last => Need::Ends,
            Agg::Min | Agg::Max => Need::Basic,
            Agg::Avg | Agg::Sum | Agg::Count => Need::Sum,
        }
    }

    /// The aggregate's value for a bucket.
    pub fn of(self, s: &Summary) -> f64 {
        match self {
            Agg::Avg => s.sum / s.n as f64,
            Agg::Min => s.min,
            Agg::Max => s.max,
            Agg::Sum => s.sum,
            Agg::Count => s.n as f64,
            Agg::First => s.first,
            Agg::Last => s.last,
        }
    }
}

/// SQL giving one row per bucket of `seg`: bucket start, n, sum, then (unless `need` is
/// [`Need::Sum`]) min, max, first and last time, then (per `need`) first and last value,
/// then min and max time. Parameters: `$1` series, `$2` bucket width, `$3` row limit,
/// `${lo}` and `${hi}` the segment's bounds.
pub fn segment_sql(seg: &Segment, every: i64, need: Need, lo: usize, hi: usize) -> String {
    let extra = match need {
        Need::Sum | Need::Basic => 0,
        Need::Ends => 2,
        Need::All => 4,
    };
    let sum_only = need == Need::Sum;
    let (table, key, aggs, lookups) = match seg.source {
        Source::Rollup(l) if every == l.width_us() => {
            // The stored rows are the buckets: a plain range scan of what `need` asks for.
            let basic = if sum_only {
                ""
            } else {
                ", min_v, max_v, first_ts, last_ts"
            };
            let cols = [", first_v, last_v", ", min_ts, max_ts"][..extra / 2].concat();
            return format!(
                "SELECT (bucket / $2) * $2, n, sum_v{basic}{cols}
                 FROM {} WHERE series_id = $1 AND bucket >= ${lo} AND bucket < ${hi}
                 ORDER BY bucket LIMIT $3",
                l.table()
            );
        }
        Source::Raw => (
            "readings",
            "ts",
            [
                "count(*) AS n, sum(value) AS s",
                ", min(value) AS mn, max(value) AS mx, min(ts) AS fts, max(ts) AS lts",
            ],
            [
                "SELECT value FROM readings WHERE series_id = $1 AND ts = g.fts".to_owned(),
                "SELECT value FROM readings WHERE series_id = $1 AND ts = g.lts".to_owned(),
                "SELECT min(ts) FROM readings WHERE series_id = $1
                   AND ts >= g.fts AND ts <= g.lts AND value = g.mn"
                    .to_owned(),
                "SELECT min(ts) FROM readings WHERE series_id = $1
                   AND ts >= g.fts AND ts <= g.lts AND value = g.mx"
                    .to_owned(),
            ],
        ),
        Source::Rollup(l) => {
            let (t, w) = (l.table(), l.width_us());
            let rows = format!(
                "FROM {t} WHERE series_id = $1 AND bucket >= (g.fts / {w}) * {w} AND bucket <= (g.lts / {w}) * {w}"
            );
            (
                t,
                "bucket",
                [
                    "CAST(sum(n) AS BIGINT) AS n, sum(sum_v) AS s",
                    ", min(min_v) AS mn, max(max_v) AS mx, min(first_ts) AS fts, max(last_ts) AS lts",
                ],
                [
                    format!(
                        "SELECT first_v FROM {t} WHERE series_id = $1 AND bucket = (g.fts / {w}) * {w}"
                    ),
                    format!(
                        "SELECT last_v FROM {t} WHERE series_id = $1 AND bucket = (g.lts / {w}) * {w}"
                    ),
                    format!("SELECT min(min_ts) {rows} AND min_v = g.mn"),
                    format!("SELECT min(max_ts) {rows} AND max_v = g.mx"),
                ],
            )
        }
    };
    // Raw edges hold up to a minute of readings each (6,000 at 100 Hz), and every
    // aggregate costs per reading: only those the query needs.
    let [sum, basic] = aggs;
    let (aggs, basic_cols) = match sum_only {
        true => (sum.to_owned(), ""),
        false => (format!("{sum}{basic}"), ", g.mn, g.mx, g.fts, g.lts"),
    };
    let cols: String = lookups[..extra]
        .iter()
        .map(|l| format!(", ({l})"))
        .collect();
    let range = format!("FROM {table} WHERE series_id = $1 AND {key} >= ${lo} AND {key} < ${hi}");
    if seg.from.div_euclid(every) == (seg.to - 1).div_euclid(every) {
        // One bucket (an edge of a rollup segment, typically): a plain aggregate, no sort.
        return format!(
            "SELECT g.b, g.n, g.s{basic_cols}{cols} FROM (
               SELECT (${lo} / $2) * $2 AS b, {aggs} {range}) g WHERE g.n > 0 LIMIT $3"
        );
    }
    format!(
        "SELECT g.b, g.n, g.s{basic_cols}{cols} FROM (
           SELECT ({key} / $2) * $2 AS b, {aggs} {range}
           GROUP BY ({key} / $2) * $2 ORDER BY b LIMIT $3) g"
    )
}

/// One statement for all segments (one round trip): `$4`, `$5` bound the first segment,
/// `$6`, `$7` the second, and so on. Rows are not ordered across segments.
pub fn summaries_sql(segments: &[Segment], every: i64, need: Need) -> String {
    segments
        .iter()
        .enumerate()
        .map(|(i, seg)| {
            let sql = segment_sql(seg, every, need, 4 + 2 * i, 5 + 2 * i);
            format!("SELECT * FROM ({sql}) s{i}")
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// Whether the rollups are complete, as this process last read or set it (it changes only
/// when a hub starts, see `Store::prepare_rollups`); unknown until first read. In a hub,
/// also the horizons its storage writer keeps (see [`super::pending`]).
#[derive(Debug, Clone, Default)]
pub struct RollupFlag(Arc<FlagState>);

#[derive(Debug, Default)]
struct FlagState {
    complete: AtomicU8,
    /// The horizons below are this process's writer's (a hub); otherwise read them.
    live: AtomicBool,
    horizons: [AtomicI64; 2],
}

impl RollupFlag {
    pub fn get(&self) -> Option<bool> {
        match self.0.complete.load(Ordering::Relaxed) {
            0 => None,
            v => Some(v == 2),
        }
    }
    pub fn set(&self, complete: bool) {
        let v = if complete { 2 } else { 1 };
        self.0.complete.store(v, Ordering::Relaxed);
    }

    /// (minute, hour) horizons, when this process's writer keeps them.
    pub fn horizons(&self) -> Option<[i64; 2]> {
        self.0.live.load(Ordering::Acquire).then(|| {
            let [m, h] = &self.0.horizons;
            [m.load(Ordering::Acquire), h.load(Ordering::Acquire)]
        })
    }

    /// The horizons as committed: from now on this process's writer keeps them.
    pub fn set_horizons(&self, horizons: [i64; 2]) {
        for (a, h) in self.0.horizons.iter().zip(horizons) {
            a.store(h, Ordering::Release);
        }
        self.0.live.store(true, Ordering::Release);
    }

    /// Before a commit that may hold back buckets from `horizons` on: queries stop
    /// reading rollups there before that commit is visible (lower is always exact).
    pub fn lower_horizons(&self, horizons: [i64; 2]) {
        for (a, h) in self.0.horizons.iter().zip(horizons) {
            a.fetch_min(h, Ordering::AcqRel);
        }
    }
}

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

/// The M4 column width for at most `max_points` points over `[from, to)`: columns are
/// aligned to the epoch like buckets, at most `max_points / 4` of them touch the range,
/// and a width of a minute or more is rounded up to whole minutes (hours) so rollups
/// answer it.
pub fn m4_every(from: i64, to: i64, max_points: usize) -> i64 {
    let columns = (max_points / 4).max(2) as i64;
    let w = ((to - from) + columns - 2) / (columns - 1);
    let w = w.max(1);
    match Level::ALL.into_iter().find(|l| w >= l.width_us()) {
        Some(l) => rollup::ceil(w, l.width_us()),
        None => w,
    }
}

/// Each column's first, minimum, maximum and last point, in time order, without repeats.
pub fn m4_points(columns: &[BucketSummary]) -> Vec<Point> {
    let mut out = Vec::with_capacity(columns.len() * 4);
    for (_, s) in columns {
        let mut four = [
            (s.first_ts, s.first),
            (s.min_ts, s.min),
            (s.max_ts, s.max),
            (s.last_ts, s.last),
        ];
        four.sort_by_key(|p| p.0);
        for (i, (ts, value)) in four.into_iter().enumerate() {
            if i == 0 || ts != four[i - 1].0 {
                out.push(Point {
                    ts: Timestamp::from_micros(ts),
                    value,
                });
            }
        }
    }
    out
}

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

/// `rows_affected` for each backend's query result.
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

/// History queries and maintenance on one pool of either backend.
pub struct History<'a, DB: Database>(pub &'a Pool<DB>);

impl<DB> History<'_, DB>
where
    DB: Database,
    DB::QueryResult: RowsAffected,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> i64: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> f64: Decode<'r, DB> + Type<DB>,
    for<'r> bool: Decode<'r, DB> + Type<DB>,
    for<'r> &'r str: Encode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// Whether the rollups summarise every stored reading (see the `rollup_state` table).
    pub async fn rollups_complete(&self) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar("SELECT complete FROM rollup_state")
            .fetch_one(self.0)
            .await
    }

    /// `rollup_state`: whether the rollups are complete, and the (minute, hour) horizons.
    pub async fn rollup_state(&self) -> Result<(bool, [i64; 2]), sqlx::Error> {
        let row = sqlx::query("SELECT complete, minute_horizon, hour_horizon FROM rollup_state")
            .fetch_one(self.0)
            .await?;
        Ok((row.try_get(0)?, [row.try_get(1)?, row.try_get(2)?]))
    }

    /// Summaries per [`plan`]; `rollups` as there.
    pub async fn summaries(
        &self,
        q: &SummaryQuery,
        rollups: Option<[i64; 2]>,
    ) -> Result<Vec<BucketSummary>, sqlx::Error> {
        let segments = plan(q.from, q.to, q.every, rollups);
        if segments.is_empty() {
            return Ok(Vec::new());
        }
        let sql = summaries_sql(&segments, q.every, q.need);
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(q.series)
            .bind(q.every)
            .bind(q.limit.min(i64::MAX as usize) as i64);
        for seg in &segments {
            query = query.bind(seg.from).bind(seg.to);
        }
        let mut rows = query
            .fetch_all(self.0)
            .await?
            .iter()
            .map(|row| decode(row, q.need))
            .collect::<Result<Vec<_>, _>>()?;
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

    /// Rebuilds the rollups of every reading at or after `from` (hour-aligned, or
    /// `i64::MIN` for all) and the raw horizon from raw data, in one transaction, and
    /// marks them complete with nothing held back. Older rollups are kept: their raw data
    /// is gone (or they are complete already).
    pub async fn rebuild_rollups(&self, from: i64) -> Result<(), sqlx::Error> {
        let mut tx = self.0.begin().await?;
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
            .execute(self.0)
            .await
            .map(drop)
    }

    /// `None`: no such device; `Some(None)`: the device has no such sensor.
    pub async fn find_series(
        &self,
        device: &str,
        sensor: &str,
    ) -> Result<Option<Option<i64>>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT s.id FROM devices d LEFT JOIN series s ON s.device_id = d.id AND s.sensor = $2
             WHERE d.name = $1",
        )
        .bind(device)
        .bind(sensor)
        .fetch_optional(self.0)
        .await?;
        row.map(|r| r.try_get::<Option<i64>, _>(0)).transpose()
    }

    /// One integer (or NULL) from each statement.
    pub async fn scalars(&self, sqls: &[&'static str]) -> Result<Vec<Option<i64>>, sqlx::Error> {
        let mut out = Vec::with_capacity(sqls.len());
        for sql in sqls {
            out.push(sqlx::query_scalar(*sql).fetch_one(self.0).await?);
        }
        Ok(out)
    }

    pub async fn series_ids(&self) -> Result<Vec<i64>, sqlx::Error> {
        sqlx::query_scalar("SELECT id FROM series ORDER BY id")
            .fetch_all(self.0)
            .await
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
            .execute(self.0)
            .await?;
        Ok(done.rows())
    }

    /// Records that every raw reading before `horizon` has been deleted.
    pub async fn advance_raw_horizon(&self, horizon: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE rollup_state SET raw_horizon = $1 WHERE raw_horizon < $1")
            .bind(horizon)
            .execute(self.0)
            .await
            .map(drop)
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const M: i64 = 60_000_000;
    const H: i64 = 60 * M;

    #[test]
    fn an_unaligned_day_uses_hours_inside_minutes_then_raw_at_the_edges() {
        let (from, to) = (10 * H + 5 * M + 7, 34 * H + 2 * M + 9);
        let kinds = |horizons| -> Vec<_> {
            plan(from, to, H, Some(horizons))
                .iter()
                .map(|s| (s.source, s.from, s.to))
                .collect()
        };
        assert_eq!(
            kinds([NO_HORIZON; 2]),
            vec![
                (Source::Raw, from, 10 * H + 6 * M),
                (Source::Rollup(Level::Minute), 10 * H + 6 * M, 11 * H),
                (Source::Rollup(Level::Hour), 11 * H, 34 * H),
                (Source::Rollup(Level::Minute), 34 * H, 34 * H + 2 * M),
                (Source::Raw, 34 * H + 2 * M, to),
            ]
        );
        assert_eq!(plan(from, to, H, None).len(), 1, "no rollups: all raw");
        let all = Some([NO_HORIZON; 2]);
        assert_eq!(plan(from, to, 90_000_000, all).len(), 1, "90 s: raw");
        // Buckets held back by the writer are read from finer sources.
        assert_eq!(
            kinds([33 * H + 7 * M, 30 * H])[2..],
            [
                (Source::Rollup(Level::Hour), 11 * H, 30 * H),
                (Source::Rollup(Level::Minute), 30 * H, 33 * H + 7 * M),
                (Source::Raw, 33 * H + 7 * M, to),
            ]
        );
    }

    #[test]
    fn m4_columns_fit_the_point_budget() {
        for (span, n) in [(1, 8), (1000, 9), (30 * 24 * H, 1000), (H + 7, 10_000)] {
            let every = m4_every(5 * H + 3, 5 * H + 3 + span, n);
            let columns = (5 * H + 3 + span - 1) / every - (5 * H + 3) / every + 1;
            assert!(
                columns * 4 <= n as i64,
                "span {span} n {n}: {columns} columns"
            );
        }
    }

    proptest! {
        #[test]
        fn plans_cover_the_range_with_aligned_rollup_segments(
            from in 0i64..100 * H, len in 1i64..50 * H, k in 1i64..100, unit in 0usize..3,
            held in prop::option::of((0i64..150 * 60, 0i64..150)),
        ) {
            let every = k * [1_000_000, M, H][unit];
            let horizons = held.map_or([NO_HORIZON; 2], |(m, h)| [m * M, h * H]);
            let segs = plan(from, from + len, every, Some(horizons));
            prop_assert_eq!(segs[0].from, from);
            prop_assert_eq!(segs[segs.len() - 1].to, from + len);
            for w in segs.windows(2) {
                prop_assert_eq!(w[0].to, w[1].from);
            }
            for s in &segs {
                prop_assert!(s.from < s.to);
                if let Source::Rollup(l) = s.source {
                    let w = l.width_us();
                    prop_assert!(every % w == 0 && s.from % w == 0 && s.to % w == 0);
                    let horizon = horizons[usize::from(l == Level::Hour)];
                    prop_assert!(s.to <= horizon, "a held-back bucket read from {l:?}");
                }
            }
        }
    }
}
