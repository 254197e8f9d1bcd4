//! Rollups: per series, 1-minute and 1-hour [`Summary`]s of the readings, kept in the
//! tables `rollup_1m` and `rollup_1h`.
//!
//! The storage writer maintains them with the readings: it folds the rows a transaction
//! really inserted into one [`Summary`] per (series, bucket) here, in Rust
//! ([`RollupDelta::of_inserted`]); [`super::open_buckets`] holds open buckets back, and
//! the commit upserts the rest in the same transaction, combining with what is stored
//! ([`upsert_set`]). A resend that stores nothing changes nothing; late rows combine by
//! timestamp.
//!
//! Owns [`Summary`], [`Level`], the rollup columns and the shared upsert clause. Pure;
//! uses only [`super::RowValues`].

use super::RowValues;
use std::collections::HashMap;

/// A rollup granularity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Minute,
    Hour,
}

impl Level {
    /// Coarsest first: the order the query planner tries them in.
    pub const ALL: [Level; 2] = [Level::Hour, Level::Minute];

    pub const fn width_us(self) -> i64 {
        match self {
            Level::Minute => 60_000_000,
            Level::Hour => 3_600_000_000,
        }
    }

    pub const fn table(self) -> &'static str {
        match self {
            Level::Minute => "rollup_1m",
            Level::Hour => "rollup_1h",
        }
    }
}

/// What a set of readings of one series adds up to. Every field combines exactly
/// with [`Summary::merge`], whatever the order the readings arrive in (`sum` up to
/// floating-point rounding). Times are µs; ties go to the earliest time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: i64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub first_ts: i64,
    pub last_ts: i64,
    pub first: f64,
    pub last: f64,
    /// Earliest time at which `min` occurs.
    pub min_ts: i64,
    /// Earliest time at which `max` occurs.
    pub max_ts: i64,
}

impl Summary {
    pub fn of(ts: i64, value: f64) -> Self {
        Self {
            n: 1,
            sum: value,
            min: value,
            max: value,
            first_ts: ts,
            last_ts: ts,
            first: value,
            last: value,
            min_ts: ts,
            max_ts: ts,
        }
    }

    /// Adds the readings `other` summarises (disjoint from ours).
    pub fn merge(&mut self, other: &Summary) {
        self.n += other.n;
        self.sum += other.sum;
        if other.min < self.min || (other.min == self.min && other.min_ts < self.min_ts) {
            (self.min, self.min_ts) = (other.min, other.min_ts);
        }
        if other.max > self.max || (other.max == self.max && other.max_ts < self.max_ts) {
            (self.max, self.max_ts) = (other.max, other.max_ts);
        }
        if other.first_ts < self.first_ts {
            (self.first, self.first_ts) = (other.first, other.first_ts);
        }
        if other.last_ts > self.last_ts {
            (self.last, self.last_ts) = (other.last, other.last_ts);
        }
    }
}

/// One row of a rollup table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RollupRow {
    pub series: i64,
    pub bucket: i64,
    pub s: Summary,
}

/// The rollup rows one writer transaction adds, one per (series, bucket) and level.
#[derive(Debug, Default)]
pub struct RollupDelta {
    pub minute: Vec<RollupRow>,
    pub hour: Vec<RollupRow>,
}

impl RollupDelta {
    /// Folds the rows a transaction inserted: every `fresh` row, and the `maybe` rows
    /// whose flag in `maybe_inserted` is true.
    pub(crate) fn of_inserted(
        fresh: &[RowValues],
        maybe: &[(usize, RowValues)],
        maybe_inserted: &[bool],
    ) -> Self {
        let inserted = maybe
            .iter()
            .zip(maybe_inserted)
            .filter(|(_, ok)| **ok)
            .map(|((_, r), _)| r);
        let minute = fold(
            fresh.iter().chain(inserted).map(|r| RollupRow {
                series: r.series,
                bucket: floor(r.ts, Level::Minute.width_us()),
                s: Summary::of(r.ts, r.value),
            }),
            Level::Minute,
        );
        let hour = fold(minute.iter().copied(), Level::Hour);
        Self { minute, hour }
    }

    pub fn is_empty(&self) -> bool {
        self.minute.is_empty()
    }

    pub fn levels(&self) -> [(Level, &[RollupRow]); 2] {
        [(Level::Minute, &self.minute), (Level::Hour, &self.hour)]
    }
}

/// Combines rows into one per (series, bucket of `level`), in order of first appearance.
/// Consecutive rows of the same bucket (the common case: a device's message) skip the map.
fn fold(rows: impl Iterator<Item = RollupRow>, level: Level) -> Vec<RollupRow> {
    use std::collections::hash_map::Entry;
    let width = level.width_us();
    let mut out: Vec<RollupRow> = Vec::new();
    let mut index: HashMap<(i64, i64), usize> = HashMap::new();
    let mut last: Option<((i64, i64), usize)> = None;
    for mut row in rows {
        row.bucket = floor(row.bucket, width);
        let key = (row.series, row.bucket);
        let i = match last {
            Some((k, i)) if k == key => {
                out[i].s.merge(&row.s);
                i
            }
            _ => match index.entry(key) {
                Entry::Occupied(e) => {
                    out[*e.get()].s.merge(&row.s);
                    *e.get()
                }
                Entry::Vacant(e) => {
                    out.push(row);
                    *e.insert(out.len() - 1)
                }
            },
        };
        last = Some((key, i));
    }
    out
}

/// `t` rounded down to a multiple of `width` (timestamps are after 2000, so positive).
pub const fn floor(t: i64, width: i64) -> i64 {
    t.div_euclid(width) * width
}

/// `t` rounded up to a multiple of `width`.
pub const fn ceil(t: i64, width: i64) -> i64 {
    floor(t, width) + if t.rem_euclid(width) == 0 { 0 } else { width }
}

/// Columns of a rollup row, in the order the upserts and the queries use.
pub const COLUMNS: &str =
    "series_id, bucket, n, sum_v, min_v, max_v, first_ts, last_ts, first_v, last_v, min_ts, max_ts";

/// `ON CONFLICT` clause combining an incoming row (`excluded`) with the stored one;
/// `{t}` is the table. Right-hand sides read the stored row's old values (SQL semantics),
/// and the same text works on SQLite and PostgreSQL.
pub fn upsert_set(t: &str) -> String {
    format!(
        " ON CONFLICT (series_id, bucket) DO UPDATE SET
          n = {t}.n + excluded.n,
          sum_v = {t}.sum_v + excluded.sum_v,
          min_v = CASE WHEN excluded.min_v < {t}.min_v THEN excluded.min_v ELSE {t}.min_v END,
          min_ts = CASE WHEN excluded.min_v < {t}.min_v
                          OR (excluded.min_v = {t}.min_v AND excluded.min_ts < {t}.min_ts)
                        THEN excluded.min_ts ELSE {t}.min_ts END,
          max_v = CASE WHEN excluded.max_v > {t}.max_v THEN excluded.max_v ELSE {t}.max_v END,
          max_ts = CASE WHEN excluded.max_v > {t}.max_v
                          OR (excluded.max_v = {t}.max_v AND excluded.max_ts < {t}.max_ts)
                        THEN excluded.max_ts ELSE {t}.max_ts END,
          first_v = CASE WHEN excluded.first_ts < {t}.first_ts THEN excluded.first_v ELSE {t}.first_v END,
          first_ts = CASE WHEN excluded.first_ts < {t}.first_ts THEN excluded.first_ts ELSE {t}.first_ts END,
          last_v = CASE WHEN excluded.last_ts > {t}.last_ts THEN excluded.last_v ELSE {t}.last_v END,
          last_ts = CASE WHEN excluded.last_ts > {t}.last_ts THEN excluded.last_ts ELSE {t}.last_ts END"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fold_all(points: &[(i64, f64)]) -> Summary {
        let mut s = Summary::of(points[0].0, points[0].1);
        for &(t, v) in &points[1..] {
            s.merge(&Summary::of(t, v));
        }
        s
    }

    proptest! {
        /// Summaries of any split of the readings, merged in any order, equal the summary
        /// of all of them: what lets late data and several segments combine exactly.
        #[test]
        fn merging_is_independent_of_order_and_grouping(
            raw in prop::collection::btree_map(0i64..10_000, -8i32..8, 1..60),
            cut in 0usize..60,
            rotate in 0usize..60,
        ) {
            let mut points: Vec<(i64, f64)> = raw.into_iter().map(|(t, v)| (t, v as f64 / 4.0)).collect();
            let whole = fold_all(&points);
            let n = points.len();
            points.rotate_left(rotate % n);
            let (a, b) = points.split_at(cut % n);
            let mut s = if a.is_empty() { fold_all(b) } else { fold_all(a) };
            if !a.is_empty() && !b.is_empty() {
                s.merge(&fold_all(b));
            }
            prop_assert_eq!(s, whole);
        }
    }

    #[test]
    fn a_batch_folds_into_one_row_per_series_and_bucket() {
        let r = |series, ts, value| RowValues { series, ts, value };
        let fresh = [r(1, 61_000_000, 1.0), r(2, 5, 7.0), r(1, 60_000_000, 3.0)];
        let maybe = [(3, r(1, 10, 9.0)), (4, r(1, 11, 8.0))];
        let d = RollupDelta::of_inserted(&fresh, &maybe, &[false, true]);
        let keys: Vec<_> = d
            .minute
            .iter()
            .map(|r| (r.series, r.bucket, r.s.n))
            .collect();
        assert_eq!(keys, vec![(1, 60_000_000, 2), (2, 0, 1), (1, 0, 1)]);
        let hour: Vec<_> = d
            .hour
            .iter()
            .map(|r| (r.series, r.s.n, r.s.first))
            .collect();
        assert_eq!(
            hour,
            vec![(1, 3, 8.0), (2, 1, 7.0)],
            "the skipped resend counts nowhere"
        );
    }
}
