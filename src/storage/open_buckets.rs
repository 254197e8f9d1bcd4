//! Open rollup buckets: per series and level, the newest recent bucket's summary the
//! storage writer holds in memory and writes once — when the series moves on to a later
//! bucket, the bucket falls behind the others, the writer idles or stops — instead of
//! upserting it in every commit (a 1,000-device fleet committing every few milliseconds
//! would otherwise rewrite each series' minute and hour rows each time).
//!
//! Owns [`OpenBuckets`] (the writer's state) and [`Staged`] (what one commit does to it).
//! Uses [`super::rollup`] for summaries and [`super::horizons`] for the horizons the
//! open buckets imply. Only a hub that is the single writer of its database holds
//! buckets back ([`super::Store::single_writer`]: SQLite); the hubs of a cluster share
//! PostgreSQL, and there every commit writes its rollup rows.
//!
//! Exactness: for every (series, bucket), the stored rollup row plus what is held here
//! summarise exactly the committed readings, and no bucket below a level's horizon is
//! held here.
//!
//! The writer only stages a commit's changes here ([`OpenBuckets::stage`]) and applies
//! them once the transaction is committed ([`OpenBuckets::apply`]): a failed commit
//! leaves this state as it was.

use super::horizons::{NO_HORIZON, must_store};
use super::rollup::{Level, RollupDelta, RollupRow, Summary, floor};
use std::collections::HashMap;

/// Series held back at most, per level; beyond, everything is written.
const MAX_OPEN: usize = 100_000;

/// One level's open buckets: series → (bucket, summary of what is not stored yet).
#[derive(Debug)]
struct LevelBuckets {
    level: Level,
    open: HashMap<i64, (i64, Summary)>,
}

/// What one commit does to one level.
#[derive(Debug)]
struct StagedLevel {
    /// Rows to upsert now, one per (series, bucket).
    upserts: Vec<RollupRow>,
    /// New open state of the series this commit touched (`None`: written out).
    set: HashMap<i64, Option<(i64, Summary)>>,
    horizon: i64,
}

impl LevelBuckets {
    /// Buckets before this one are written whatever happens, so that a late reading, a
    /// series that stopped sending or one catching up on old data do not hold the
    /// horizon back: one bucket before the newest open one, or before the current one by
    /// the clock if that is earlier (a device whose clock runs ahead changes nothing).
    /// Relative to the data, a whole fleet sending buffered readings keeps its buckets
    /// open too.
    fn cutoff(&self, delta: &[RollupRow], now: i64) -> i64 {
        let w = self.level.width_us();
        let newest = (self.open.values().map(|o| o.0))
            .chain(delta.iter().map(|r| r.bucket))
            .max()
            .unwrap_or(i64::MIN);
        newest.min(floor(now, w)).saturating_sub(w)
    }

    fn stage(&self, delta: &[RollupRow], now: i64, flush_all: bool) -> StagedLevel {
        let flush_all = flush_all || self.open.len() > MAX_OPEN;
        let cutoff = self.cutoff(delta, now);
        let mut set: HashMap<i64, Option<(i64, Summary)>> = HashMap::new();
        let mut upserts = Vec::new();
        for r in delta {
            if flush_all || r.bucket < cutoff {
                upserts.push(*r);
                continue;
            }
            let current = match set.get(&r.series) {
                Some(s) => *s,
                None => self.open.get(&r.series).copied(),
            };
            let next = match current {
                None => (r.bucket, r.s),
                Some((b, mut s)) if b == r.bucket => {
                    s.merge(&r.s);
                    (b, s)
                }
                Some((b, s)) if b < r.bucket => {
                    upserts.push(row(r.series, b, s));
                    (r.bucket, r.s)
                }
                // A late reading for a bucket before the open one: written now.
                Some(open) => {
                    upserts.push(*r);
                    open
                }
            };
            set.insert(r.series, Some(next));
        }
        // Open buckets of other series that fell behind (or everything, when asked).
        for (&series, &(b, s)) in &self.open {
            if (flush_all || b < cutoff) && !set.contains_key(&series) {
                upserts.push(row(series, b, s));
                set.insert(series, None);
            }
        }
        let horizon = self
            .open
            .iter()
            .filter(|(series, _)| !set.contains_key(series))
            .map(|(_, &(b, _))| b)
            .chain(set.values().flatten().map(|&(b, _)| b))
            .min()
            .unwrap_or(NO_HORIZON);
        StagedLevel {
            upserts: merge_by_key(upserts),
            set,
            horizon,
        }
    }

    fn apply(&mut self, staged: StagedLevel) {
        for (series, state) in staged.set {
            match state {
                Some(open) => self.open.insert(series, open),
                None => self.open.remove(&series),
            };
        }
    }
}

/// The writer's open buckets of both levels, and the horizons as stored.
#[derive(Debug)]
pub struct OpenBuckets {
    levels: [LevelBuckets; 2],
    stored: [i64; 2],
}

/// What one commit writes: rows per level and the horizons after it.
#[derive(Debug)]
pub struct Staged {
    levels: [StagedLevel; 2],
    /// The horizons to store with this commit, when they change.
    pub store_horizons: Option<[i64; 2]>,
}

impl Staged {
    /// Rows to upsert per level, one per (series, bucket).
    pub fn levels(&self) -> [(Level, &[RollupRow]); 2] {
        [
            (Level::Minute, &self.levels[0].upserts),
            (Level::Hour, &self.levels[1].upserts),
        ]
    }

    /// (minute, hour) horizons once this commit is applied.
    pub fn horizons(&self) -> [i64; 2] {
        [self.levels[0].horizon, self.levels[1].horizon]
    }
}

impl OpenBuckets {
    /// Nothing held back; `stored` are the horizons `rollup_state` holds.
    pub fn new(stored: [i64; 2]) -> Self {
        let level = |level| LevelBuckets {
            level,
            open: HashMap::new(),
        };
        Self {
            levels: [level(Level::Minute), level(Level::Hour)],
            stored,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.levels.iter().all(|l| l.open.is_empty())
    }

    /// Routes a commit's rollup rows at wall-clock time `now` (µs): into open buckets, or
    /// to be written now together with the open buckets this commit closes. With
    /// `flush_all`, everything is written and the horizons are lifted.
    pub fn stage(&self, delta: &RollupDelta, now: i64, flush_all: bool) -> Staged {
        let [m, h] = &self.levels;
        let levels = [
            m.stage(&delta.minute, now, flush_all),
            h.stage(&delta.hour, now, flush_all),
        ];
        let horizons = [levels[0].horizon, levels[1].horizon];
        let store = must_store(horizons, self.stored);
        Staged {
            levels,
            store_horizons: store.then_some(horizons),
        }
    }

    /// Makes a committed [`Staged`] this state.
    pub fn apply(&mut self, staged: Staged) {
        if let Some(h) = staged.store_horizons {
            self.stored = h;
        }
        let [m, h] = staged.levels;
        self.levels[0].apply(m);
        self.levels[1].apply(h);
    }
}

fn row(series: i64, bucket: i64, s: Summary) -> RollupRow {
    RollupRow { series, bucket, s }
}

/// Combines rows of the same (series, bucket) (a flushed open bucket and a row of the
/// same bucket from this commit), so that each is upserted once.
fn merge_by_key(rows: Vec<RollupRow>) -> Vec<RollupRow> {
    let mut index: HashMap<(i64, i64), usize> = HashMap::with_capacity(rows.len());
    let mut out: Vec<RollupRow> = Vec::with_capacity(rows.len());
    for r in rows {
        match index.entry((r.series, r.bucket)) {
            std::collections::hash_map::Entry::Occupied(e) => out[*e.get()].s.merge(&r.s),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(out.len());
                out.push(r);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::RowValues;
    use proptest::prelude::*;

    const M: i64 = 60_000_000;

    type Table = HashMap<(i64, i64), Summary>;

    fn add(t: &mut Table, r: &RollupRow) {
        t.entry((r.series, r.bucket))
            .and_modify(|s| s.merge(&r.s))
            .or_insert(r.s);
    }

    proptest! {
        /// Whatever the order readings arrive in and the clock: stored rows plus open
        /// buckets equal the rollups of everything committed, nothing is held back below
        /// a horizon, and a final flush stores everything and lifts the horizons.
        #[test]
        fn stored_plus_open_buckets_always_equal_the_readings(
            commits in prop::collection::vec(
                (prop::collection::vec((0i64..4, 0i64..200 * M, -8i32..8), 0..30), 0i64..4 * M, any::<bool>()),
                1..25,
            ),
        ) {
            let mut open = OpenBuckets::new([NO_HORIZON; 2]);
            let (mut stored, mut truth) = ([Table::new(), Table::new()], [Table::new(), Table::new()]);
            let mut now = 100 * M;
            for (i, (rows, tick, fail)) in commits.iter().enumerate() {
                now += tick;
                // Distinct timestamps per series, as the readings table guarantees.
                let fresh: Vec<RowValues> = rows
                    .iter()
                    .enumerate()
                    .map(|(k, &(series, ts, v))| RowValues { series, ts: ts + (i * 64 + k) as i64, value: f64::from(v) / 4.0 })
                    .collect();
                let delta = RollupDelta::of_inserted(&fresh, &[], &[]);
                let staged = open.stage(&delta, now, i + 1 == commits.len());
                if *fail {
                    continue; // a failed commit: nothing stored, nothing applied
                }
                for (t, rows) in truth.iter_mut().zip([&delta.minute, &delta.hour]) {
                    rows.iter().for_each(|r| add(t, r));
                }
                for (t, (_, rows)) in stored.iter_mut().zip(staged.levels()) {
                    rows.iter().for_each(|r| add(t, r));
                }
                let horizons = staged.horizons();
                open.apply(staged);
                for l in 0..2 {
                    let mut sum = stored[l].clone();
                    for (&series, &(bucket, s)) in &open.levels[l].open {
                        prop_assert!(bucket >= horizons[l], "held back below the horizon");
                        prop_assert!(bucket >= open.stored[l], "held back below the stored horizon");
                        add(&mut sum, &row(series, bucket, s));
                    }
                    prop_assert_eq!(&sum, &truth[l]);
                }
            }
            if !commits.last().unwrap().2 {
                prop_assert!(open.is_empty());
                prop_assert_eq!(open.stored, [NO_HORIZON; 2]);
                prop_assert_eq!(&stored, &truth);
            }
        }
    }

    #[test]
    fn a_series_moving_on_writes_its_closed_bucket_once() {
        let r = |series, ts| RowValues {
            series,
            ts,
            value: 1.0,
        };
        let now = 10 * M + 5;
        let mut open = OpenBuckets::new([NO_HORIZON; 2]);
        let mut written = 0;
        for ts in [9 * M + 1, 9 * M + 2, 9 * M + 3, 10 * M + 1] {
            let delta = RollupDelta::of_inserted(&[r(1, ts)], &[], &[]);
            let staged = open.stage(&delta, now, false);
            written += staged.levels()[0].1.len();
            assert_eq!(staged.horizons()[0], ts / M * M);
            open.apply(staged);
        }
        assert_eq!(written, 1, "minute 9 written when minute 10 began");
        // An old bucket is written at once and does not move the horizon.
        let delta = RollupDelta::of_inserted(&[r(1, 3 * M)], &[], &[]);
        let staged = open.stage(&delta, now, false);
        assert_eq!(staged.levels()[0].1.len(), 1);
        assert_eq!(staged.horizons()[0], 10 * M);
        assert!(staged.store_horizons.is_none());
    }
}
