//! Merging hot rows with the readings of decoded blocks, and what history queries derive
//! from merged points: state transitions and bucket summaries. Pure: no I/O.
//!
//! Owns [`merge_sorted`], [`transitions`] and [`bucket_summaries`]. Uses
//! [`crate::storage::rollup::Summary`].

use crate::storage::rollup::Summary;

/// Bucket start and summary (as [`crate::storage::history::BucketSummary`]).
pub type BucketSummary = (i64, Summary);

/// Merges two runs sorted by time whose timestamps never repeat across them (a reading
/// is either hot or in one block), ascending.
pub fn merge_sorted(a: Vec<(i64, f64)>, b: Vec<(i64, f64)>) -> Vec<(i64, f64)> {
    if b.is_empty() {
        return a;
    }
    if a.is_empty() {
        return b;
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].0 <= b[j].0 {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// The points where the value changes: the first, each one that differs from the one
/// before, and the last (as the SQL of `transitions` picks them from hot rows).
pub fn transitions(points: &[(i64, f64)]) -> Vec<(i64, f64)> {
    points
        .iter()
        .enumerate()
        .filter(|&(i, p)| i == 0 || i + 1 == points.len() || points[i - 1].1 != p.1)
        .map(|(_, p)| *p)
        .collect()
}

/// Summaries of sorted points in buckets of `every` µs (aligned to the epoch, as the
/// SQL's `(ts / every) * every` for times after 1970), ascending, at most `limit`.
pub fn bucket_summaries(points: &[(i64, f64)], every: i64, limit: usize) -> Vec<BucketSummary> {
    let mut out: Vec<BucketSummary> = Vec::new();
    for &(ts, v) in points {
        let b = (ts / every) * every;
        match out.last_mut() {
            Some((last, s)) if *last == b => s.merge(&Summary::of(ts, v)),
            _ => {
                if out.len() == limit {
                    break;
                }
                out.push((b, Summary::of(ts, v)));
            }
        }
    }
    out
}
