//! Columns merged into rows, empty buckets filled as InfluxDB's `fill()` fills them,
//! and times written as `epoch` asks. Pure.

use crate::domain::{Timestamp, Value};
use crate::protocol::influxql::Fill;
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;

/// Rows: a time (µs) and one cell per column (`None`: no value).
pub type Rows = Vec<(i64, Vec<Option<Value>>)>;

/// `epoch=` precisions of `/query` times: the line protocol's `precision=` units, parsed alike.
pub use crate::protocol::line::Precision as Epoch;

/// A time as `epoch` writes it: an integer (truncated), or an RFC 3339 string.
pub fn time(us: i64, epoch: Option<Epoch>) -> Json {
    let per = match epoch {
        None => {
            let t = Timestamp::from_micros(us).to_datetime();
            return json!(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
        }
        Some(Epoch::Nanoseconds) => return json!(us.saturating_mul(1_000)),
        Some(Epoch::Microseconds) => 1,
        Some(Epoch::Milliseconds) => 1_000,
        Some(Epoch::Seconds) => 1_000_000,
        Some(Epoch::Minutes) => 60_000_000,
        Some(Epoch::Hours) => 3_600_000_000,
    };
    json!(us.div_euclid(per))
}

/// A cell as JSON; counts are integers.
pub fn cell(v: &Option<Value>, integer: bool) -> Json {
    match v {
        None => Json::Null,
        Some(Value::Number(n)) if integer => json!(*n as i64),
        Some(v) => serde_json::to_value(v).unwrap_or(Json::Null),
    }
}

/// Raw columns merged by time: one row per time any column has (sorted).
pub fn merge(columns: Vec<Vec<(i64, Value)>>) -> Rows {
    let n = columns.len();
    let mut rows: BTreeMap<i64, Vec<Option<Value>>> = BTreeMap::new();
    for (i, col) in columns.into_iter().enumerate() {
        for (t, v) in col {
            rows.entry(t).or_insert_with(|| vec![None; n])[i] = Some(v);
        }
    }
    rows.into_iter().collect()
}

/// Every bucket start from `first` to `last` (inclusive, step `every`), each column's
/// value or `fill`'s. `counts[i]`: column `i` is a count, which is 0 where empty
/// (`fill(null)`, as InfluxDB has it).
pub fn buckets(
    columns: Vec<Vec<(i64, Value)>>,
    (first, last, every): (i64, i64, i64),
    fill: Fill,
    counts: &[bool],
) -> Rows {
    let n = columns.len();
    let mut rows: Rows = Vec::new();
    let mut t = first;
    while t <= last {
        rows.push((t, vec![None; n]));
        t = match t.checked_add(every) {
            Some(t) => t,
            None => break,
        };
    }
    for (i, col) in columns.into_iter().enumerate() {
        for (t, v) in col {
            let k = (t - first).div_euclid(every);
            if let Some(row) = usize::try_from(k).ok().and_then(|k| rows.get_mut(k)) {
                row.1[i] = Some(v);
            }
        }
    }
    for (i, count) in counts.iter().enumerate().take(n) {
        fill_column(&mut rows, i, fill, *count);
    }
    if fill == Fill::None {
        rows.retain(|(_, cells)| cells.iter().any(Option::is_some));
    }
    rows
}

fn fill_column(rows: &mut Rows, i: usize, fill: Fill, count: bool) {
    match fill {
        Fill::None => {}
        Fill::Null if count => empty_cells(rows, i, |_, _| Some(Value::Number(0.0))),
        Fill::Null => {}
        Fill::Number(x) => empty_cells(rows, i, |_, _| Some(Value::Number(x))),
        Fill::Previous => {
            let mut last = None;
            for (_, cells) in rows.iter_mut() {
                match &cells[i] {
                    Some(v) => last = Some(v.clone()),
                    None => cells[i] = last.clone(),
                }
            }
        }
        Fill::Linear => {
            let known: Vec<(usize, i64, f64)> = rows
                .iter()
                .enumerate()
                .filter_map(|(k, (t, c))| Some((k, *t, c[i].as_ref()?.as_f64()?)))
                .collect();
            for w in known.windows(2) {
                let ((ka, ta, va), (kb, tb, vb)) = (w[0], w[1]);
                for row in &mut rows[ka + 1..kb] {
                    let f = (row.0 - ta) as f64 / (tb - ta) as f64;
                    row.1[i] = Some(Value::Number(va + (vb - va) * f));
                }
            }
        }
    }
}

fn empty_cells(rows: &mut Rows, i: usize, with: impl Fn(i64, usize) -> Option<Value>) {
    for (k, (t, cells)) in rows.iter_mut().enumerate() {
        if cells[i].is_none() {
            cells[i] = with(*t, k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn col(v: &[(i64, f64)]) -> Vec<(i64, Value)> {
        v.iter().map(|&(t, x)| (t, Value::Number(x))).collect()
    }

    fn values(rows: &Rows) -> Vec<Option<f64>> {
        rows.iter()
            .map(|(_, c)| c[0].as_ref().and_then(Value::as_f64))
            .collect()
    }

    #[test]
    fn fills_work_as_influxdbs() {
        let data = || vec![col(&[(10, 1.0), (40, 4.0)])];
        let grid = (0, 50, 10);
        let f = |fill| values(&buckets(data(), grid, fill, &[false]));
        assert_eq!(
            f(Fill::Null),
            [None, Some(1.0), None, None, Some(4.0), None]
        );
        assert_eq!(f(Fill::None), [Some(1.0), Some(4.0)]);
        assert_eq!(
            f(Fill::Number(-1.0)),
            [
                Some(-1.0),
                Some(1.0),
                Some(-1.0),
                Some(-1.0),
                Some(4.0),
                Some(-1.0)
            ]
        );
        assert_eq!(
            f(Fill::Previous),
            [None, Some(1.0), Some(1.0), Some(1.0), Some(4.0), Some(4.0)]
        );
        assert_eq!(
            f(Fill::Linear),
            [None, Some(1.0), Some(2.0), Some(3.0), Some(4.0), None]
        );
        let counts = values(&buckets(data(), grid, Fill::Null, &[true]));
        assert_eq!(
            counts,
            [
                Some(0.0),
                Some(1.0),
                Some(0.0),
                Some(0.0),
                Some(4.0),
                Some(0.0)
            ]
        );
    }

    #[test]
    fn times_follow_epoch() {
        let us = 1_795_255_200_123_456;
        assert_eq!(
            time(us, Some(Epoch::Milliseconds)),
            json!(1_795_255_200_123i64)
        );
        assert_eq!(time(us, Some(Epoch::Nanoseconds)), json!(us * 1000));
        assert_eq!(time(us, Some(Epoch::Seconds)), json!(1_795_255_200i64));
        assert_eq!(
            time(1_795_255_200_000_000, None),
            json!("2026-11-21T10:00:00Z")
        );
        assert_eq!(Epoch::parse("x"), None);
    }

    #[test]
    fn raw_columns_merge_by_time() {
        let rows = merge(vec![
            col(&[(1, 1.0), (3, 3.0)]),
            col(&[(2, 2.0), (3, 30.0)]),
        ]);
        let times: Vec<_> = rows.iter().map(|r| r.0).collect();
        assert_eq!(times, [1, 2, 3]);
        assert_eq!(rows[2].1[1], Some(Value::Number(30.0)));
        assert_eq!(rows[0].1[1], None);
    }

    proptest! {
        #[test]
        fn every_bucket_appears_once_and_data_stays_where_it_is(
            data in prop::collection::btree_map(0i64..100, -1e6f64..1e6, 0..30),
            fill in prop::sample::select(vec![Fill::Null, Fill::Previous, Fill::Linear, Fill::Number(7.0)]),
        ) {
            let c: Vec<(i64, Value)> = data.iter().map(|(&k, &v)| (k * 10, Value::Number(v))).collect();
            let rows = buckets(vec![c], (0, 990, 10), fill, &[false]);
            prop_assert_eq!(rows.len(), 100);
            for (k, (t, cells)) in rows.iter().enumerate() {
                prop_assert_eq!(*t, k as i64 * 10);
                if let Some(v) = data.get(&(k as i64)) {
                    prop_assert_eq!(cells[0].as_ref().and_then(Value::as_f64), Some(*v));
                }
            }
        }
    }
}
