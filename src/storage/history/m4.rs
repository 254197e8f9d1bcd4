//! M4 downsampling for charts: per time column, the first, minimum, maximum and last
//! reading, so that a chart of a few thousand points keeps every extreme.
//!
//! Owns the column width ([`m4_every`]) and the choice of points ([`m4_points`]); pure.
//! The columns' summaries come from the bucket queries ([`super::queries`]). Uses
//! [`crate::storage::rollup`] for level widths.

use super::queries::BucketSummary;
use crate::domain::{Timestamp, Value};
use crate::storage::Point;
use crate::storage::rollup::{self, Level};

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
                    value: Value::Number(value),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000;

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
}
