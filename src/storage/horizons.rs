//! Rollup horizons: how far the rollup tables can be trusted, and this process's cache
//! of it.
//!
//! Owns [`NO_HORIZON`], the rule for when the writer stores a horizon
//! ([`must_store`]), and [`RollupState`], the cached `rollup_state` row (whether the
//! rollups are complete, and the horizons the hub's writer keeps). Uses [`super::rollup`]
//! only; the statements that read and write `rollup_state` are in the shared SQL layer
//! ([`super::history::queries`], [`super::commit`], [`super::history::maintenance`]).
//!
//! Each rollup level has a *horizon*: no bucket below it is held back by the writer
//! ([`super::open_buckets`]), so rollup rows below it are complete, and queries read
//! finer sources from it on ([`super::history::plan`]). The horizons are stored in
//! `rollup_state` in the writer's transaction; after a crash, what was held back is
//! rebuilt from raw readings from the stored horizons on (`Store::prepare_rollups`).

use super::rollup::Level;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, Ordering};

/// No bucket is held back: rollup rows are complete everywhere.
pub const NO_HORIZON: i64 = i64::MAX;

/// How many buckets a stored horizon may lag behind the writer's before it is stored.
const STORE_LAG: i64 = 5;

/// Whether a commit whose (minute, hour) horizons are `new` stores them, given the
/// `stored` ones. A stored horizon must never be above a held-back bucket, so a lower
/// one is stored with the commit that lowers it. A higher one may wait (lower is exact,
/// it only makes other processes' queries and a rebuild after a crash read a little
/// more): it is stored once it lifts or runs [`STORE_LAG`] buckets ahead, not at each
/// commit.
pub fn must_store(new: [i64; 2], stored: [i64; 2]) -> bool {
    let widths = [Level::Minute.width_us(), Level::Hour.width_us()];
    let lower = |(new, old): (i64, i64)| new < old;
    let lifted = |((new, old), w): ((i64, i64), i64)| {
        new == NO_HORIZON && old != NO_HORIZON
            || new != NO_HORIZON && old.saturating_add(STORE_LAG * w) < new
    };
    let pairs = || new.into_iter().zip(stored);
    pairs().any(lower) || pairs().zip(widths).any(lifted)
}

/// Whether the rollups are complete, as this process last read or set it (it changes only
/// when a hub starts, see `Store::prepare_rollups`); unknown until first read. In a hub,
/// also the horizons its storage writer keeps. Atomics only: readers never wait and
/// nothing can be poisoned.
#[derive(Debug, Clone, Default)]
pub struct RollupState(Arc<Cached>);

#[derive(Debug, Default)]
struct Cached {
    /// 0: unknown, 1: incomplete, 2: complete.
    complete: AtomicU8,
    /// The horizons below are this process's writer's (a hub); otherwise read them.
    live: AtomicBool,
    horizons: [AtomicI64; 2],
}

impl RollupState {
    pub fn complete(&self) -> Option<bool> {
        match self.0.complete.load(Ordering::Relaxed) {
            0 => None,
            v => Some(v == 2),
        }
    }

    pub fn set_complete(&self, complete: bool) {
        let v = if complete { 2 } else { 1 };
        self.0.complete.store(v, Ordering::Relaxed);
    }

    /// What a query may read rollups up to, if this process knows it: `Some(None)`, no
    /// rollups (incomplete); `Some(Some(horizons))`, the writer's horizons; `None`, read
    /// `rollup_state` (another process's writer keeps them) and [`Self::read`] it.
    pub fn for_queries(&self) -> Option<Option<[i64; 2]>> {
        match (self.complete(), self.live_horizons()) {
            (Some(false), _) => Some(None),
            (Some(true), Some(horizons)) => Some(Some(horizons)),
            _ => None,
        }
    }

    /// Remembers a `rollup_state` row just read; returns what queries may read, as
    /// [`Self::for_queries`].
    pub fn read(&self, complete: bool, horizons: [i64; 2]) -> Option<[i64; 2]> {
        self.set_complete(complete);
        complete.then_some(horizons)
    }

    /// (minute, hour) horizons, when this process's writer keeps them.
    fn live_horizons(&self) -> Option<[i64; 2]> {
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
