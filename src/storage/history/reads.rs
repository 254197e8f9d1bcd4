//! One history read, the planner every reader calls (`/v1/readings`, `telehub query`,
//! `/query`): raw points, buckets (from the rollups, see [`super::plan`]) or an M4
//! downsample, with the limits that keep each answer bounded.
//!
//! Owns [`HistoryRead`] (what to read, typed), [`Shape`], [`HistoryLimits`], [`History`]
//! (the answer) and [`HistoryError`]. Several series in one read are read as one: raw
//! points merged by time, buckets summarising every series' readings (their rollup
//! summaries merged, so a mean is over all readings, not a mean of means). Buckets are
//! aligned to the Unix epoch plus `offset`; an offset that is not a multiple of the
//! bucket width is answered from finer buckets (their greatest common divisor) merged.

use super::queries::{BucketSummary, SummaryQuery};
use super::values;
use crate::domain::{Timestamp, ValueKind};
use crate::storage::rollup::{self, Level, Summary};
use crate::storage::{Agg, Bucket, Point, RangeQuery, StorageError, Store};
use std::collections::BTreeMap;

/// What to read: series (one or several, read as one), `[from, to)`, and how.
#[derive(Debug, Clone)]
pub struct HistoryRead {
    pub series: Vec<i64>,
    pub from: Timestamp,
    pub to: Timestamp,
    pub shape: Shape,
}

impl HistoryRead {
    /// Buckets of `every_us` (no offset) of `q`'s one series over its range, at most `q.limit`.
    pub fn buckets(q: &RangeQuery, every_us: i64, agg: Agg) -> Self {
        Self {
            series: vec![q.series],
            from: q.from,
            to: q.to,
            shape: Shape::Buckets {
                every_us,
                offset_us: 0,
                agg,
                limit: q.limit,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Stored readings strictly after `after` (when paging), at most `limit`.
    Raw {
        after: Option<Timestamp>,
        limit: usize,
    },
    /// Buckets of `every_us` starting at multiples of it plus `offset_us`, at most
    /// `limit` (the first ones); empty buckets are left out.
    Buckets {
        every_us: i64,
        offset_us: i64,
        agg: Agg,
        limit: usize,
    },
    /// The newest `limit` readings (of all series together), oldest first.
    Newest { limit: usize },
    /// One bucket for the whole range, at `from` (an aggregate without time buckets).
    Total { agg: Agg },
    /// At most `max_points` points by M4 (one series).
    Downsample { max_points: usize },
}

/// Caps of a read that does not page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Buckets a range may span (`http.max_buckets`).
    pub max_buckets: usize,
}

impl HistoryLimits {
    /// For readers that page through any range in bounded memory (`telehub query`).
    pub const PAGED: Self = Self {
        max_buckets: usize::MAX,
    };
}

/// The answer to a [`HistoryRead`].
#[derive(Debug, Clone, PartialEq)]
pub enum History {
    Points(Vec<Point>),
    Buckets(Vec<Bucket>),
}

/// Why a read was refused; each says what to change.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{n} buckets; at most {max} per query: use a larger `every` or a shorter range")]
    TooManyBuckets { n: i64, max: usize },
    #[error(
        "an offset of {offset_us} µs splits the range into {n} pieces, at most {max}: use an offset that is a multiple of a larger duration"
    )]
    OffsetTooFine { offset_us: i64, n: i64, max: usize },
    #[error("the series hold different value types ({0} and {1}); read them one at a time")]
    MixedKinds(ValueKind, ValueKind),
    #[error("downsampling reads one series at a time")]
    DownsampleSeveral,
    #[error("bucket width and offset must be positive")]
    BadWidth,
    /// An aggregate the series' type lacks (the `invalid_query` detail), or a storage failure.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl Store {
    /// Answers `read` within `limits`.
    pub async fn history(
        &self,
        read: &HistoryRead,
        limits: HistoryLimits,
    ) -> Result<History, HistoryError> {
        let (from, to) = (read.from.as_micros(), read.to.as_micros());
        match read.shape {
            Shape::Raw { after, limit } => {
                let mut points = Vec::new();
                for &series in &read.series {
                    let q = RangeQuery {
                        series,
                        from: read.from,
                        to: read.to,
                        after,
                        limit,
                    };
                    points.extend(self.query_points(q).await?);
                }
                points.sort_by_key(|p| p.ts);
                points.truncate(limit);
                Ok(History::Points(points))
            }
            Shape::Newest { limit } => {
                let mut points = Vec::new();
                for &series in &read.series {
                    let q = RangeQuery {
                        series,
                        from: read.from,
                        to: read.to,
                        after: None,
                        limit,
                    };
                    points.extend(dispatch!(self, db => db.query_newest(q).await)?);
                }
                points.sort_by_key(|p| std::cmp::Reverse(p.ts));
                points.truncate(limit);
                points.reverse();
                Ok(History::Points(points))
            }
            Shape::Downsample { max_points } => {
                let [series] = read.series[..] else {
                    return Err(HistoryError::DownsampleSeveral);
                };
                let q = RangeQuery {
                    series,
                    from: read.from,
                    to: read.to,
                    after: None,
                    limit: usize::MAX,
                };
                Ok(History::Points(self.downsample(q, max_points).await?))
            }
            Shape::Buckets {
                every_us,
                offset_us,
                agg,
                limit,
            } => {
                if every_us <= 0 {
                    return Err(HistoryError::BadWidth);
                }
                let n = (to - from) / every_us;
                if n as usize > limits.max_buckets {
                    return Err(HistoryError::TooManyBuckets {
                        n,
                        max: limits.max_buckets,
                    });
                }
                let offset = offset_us.rem_euclid(every_us);
                let width = gcd(every_us, offset);
                let pieces = (to - from) / width;
                if offset != 0 && pieces as usize > limits.max_buckets.saturating_mul(10) {
                    return Err(HistoryError::OffsetTooFine {
                        offset_us,
                        n: pieces,
                        max: limits.max_buckets.saturating_mul(10),
                    });
                }
                let start = |b: i64| (b - offset).div_euclid(every_us) * every_us + offset;
                let fine_limit = limit.saturating_mul((every_us / width) as usize);
                self.buckets(read, width, fine_limit, agg, start, limit)
                    .await
            }
            Shape::Total { agg } => {
                let width = rollup::ceil((to - from).max(1), Level::Hour.width_us());
                self.buckets(read, width, usize::MAX, agg, |_| from, 1)
                    .await
            }
        }
    }

    /// Buckets of `agg`: summaries of `width` per series, merged into the bucket that
    /// `start` gives each, at most `limit`.
    async fn buckets(
        &self,
        read: &HistoryRead,
        width: i64,
        fine_limit: usize,
        agg: Agg,
        start: impl Fn(i64) -> i64,
        limit: usize,
    ) -> Result<History, HistoryError> {
        let mut kind = None;
        for &series in &read.series {
            let k = self.series_kind(series).await?;
            agg.check(k)?;
            match kind {
                Some(first) if first != k => return Err(HistoryError::MixedKinds(first, k)),
                _ => kind = Some(k),
            }
        }
        let Some(kind) = kind else {
            return Ok(History::Buckets(Vec::new()));
        };
        let mut merged: BTreeMap<i64, Summary> = BTreeMap::new();
        for &series in &read.series {
            let q = SummaryQuery {
                series,
                from: read.from.as_micros(),
                to: read.to.as_micros(),
                every: width,
                limit: fine_limit,
                need: agg.need(),
            };
            let rows: Vec<BucketSummary> = dispatch!(self, db => db.summaries(&q).await)?;
            for (b, s) in rows {
                merged
                    .entry(start(b))
                    .and_modify(|acc| acc.merge(&s))
                    .or_insert(s);
            }
        }
        let rows: Vec<(i64, Summary)> = merged.into_iter().take(limit).collect();
        let kind_out = agg.result_kind(kind);
        let texts = match kind_out {
            ValueKind::Text => {
                let ids = rows.iter().map(|(_, s)| agg.of(s));
                dispatch!(self, db => db.texts(ids).await).map_err(StorageError::from)?
            }
            _ => Default::default(),
        };
        Ok(History::Buckets(
            rows.into_iter()
                .map(|(b, s)| Bucket {
                    ts: Timestamp::from_micros(b),
                    value: values::decode(kind_out, agg.of(&s), |id| texts.get(&id).cloned()),
                    count: s.n,
                })
                .collect(),
        ))
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::gcd;

    #[test]
    fn offsets_are_read_from_the_widest_buckets_that_fit_them() {
        assert_eq!(gcd(60, 0), 60);
        assert_eq!(gcd(3_600, 900), 900);
        assert_eq!(gcd(10, 3), 1);
    }
}
