//! Planning a bucket query: which source answers which part of the range, and the SQL
//! for one part.
//!
//! Owns [`plan`] (a range split into [`Segment`]s), [`Need`] (the summary fields a query
//! reads) and the SQL of a segment ([`segment_sql`], [`summaries_sql`]). Pure: no I/O.
//! Uses [`crate::storage::rollup`] for levels and bucket arithmetic.
//!
//! A bucket query of width `every` over `[from, to)` is split into time segments, each
//! answered by the coarsest source whose buckets fit `every` exactly: hour rollups where
//! `every` is a multiple of 1 h, minute rollups where it is a multiple of 1 min, raw
//! readings for everything else, including the partial rollup buckets at the range's
//! edges, and the buckets the writer holds back (from each level's horizon on, see
//! [`crate::storage::horizons`]).

use crate::storage::Agg;
use crate::storage::rollup::{self, Level, Summary};

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
/// `rollups` are the (minute, hour) horizons (see [`crate::storage::horizons`]): a level answers
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::horizons::NO_HORIZON;
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
