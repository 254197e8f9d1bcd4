//! State signals: a door opened for a minute, a defrost, a burner cycle — a state that is
//! *active* now and then, as a pure function of (seed, time) like [`super::signal`].
//!
//! An [`Episodes`] process starts an episode at each event of an [`Events`] process (its
//! own, or the spikes of a sibling measurement, so a defrost coincides with the freezer
//! temperature's jump) and keeps it running for a drawn time between `min` and `max`.
//! The state is active while any episode runs. Its changes are known to the microsecond,
//! so a simulated device reports them at the moment they happen, whatever its sampling
//! period, and a restart or a backfill reports exactly the same changes again.

use super::signal::Events;
use crate::domain::{Reading, SensorName, Timestamp, Value};
use std::time::Duration;

/// When a state's episodes start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Timing {
    /// Its own events.
    Own(Events),
    /// The spikes of the named measurement of the same device (same seed), so the state
    /// and the measurement tell one story.
    SpikesOf(&'static str),
}

/// What a state reports: a boolean (`true` while active), or one of two texts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StateValues {
    Bool,
    Text {
        active: &'static str,
        idle: &'static str,
    },
}

/// A state sensor of a [`super::Kind`]: name, timing, shortest and longest episode, values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StateRow {
    pub name: &'static str,
    pub timing: Timing,
    pub min: Duration,
    pub max: Duration,
    pub values: StateValues,
}

/// One state of a simulated device.
#[derive(Debug, Clone)]
pub(super) struct StateSensor {
    pub(super) name: SensorName,
    pub(super) episodes: Episodes,
    pub(super) values: StateValues,
    pub(super) seed: u64,
}

impl StateSensor {
    pub(super) fn reading(&self, ts: Timestamp, active: bool) -> Reading {
        let value = match self.values {
            StateValues::Bool => Value::Bool(active),
            StateValues::Text { active: a, idle } => {
                Value::text(if active { a } else { idle }).expect("built-in texts are valid")
            }
        };
        Reading {
            sensor: self.name.clone(),
            value,
            ts,
            unit: None,
        }
    }
}

/// Episodes of an active state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Episodes {
    /// When episodes start.
    pub events: Events,
    /// The shortest and the longest episode.
    pub min: Duration,
    pub max: Duration,
}

impl Episodes {
    /// Whether an episode runs at `ts`.
    pub fn active_at(&self, seed: u64, ts: Timestamp) -> bool {
        let t = ts.as_micros();
        self.runs(seed, t, t)
            .iter()
            .any(|&(start, end)| start <= t && t < end)
    }

    /// The changes in `(after, to]`, in time order: when the state became active (`true`)
    /// or idle again (`false`). They alternate.
    pub fn changes(&self, seed: u64, after: Timestamp, to: Timestamp) -> Vec<(Timestamp, bool)> {
        let (after, to) = (after.as_micros(), to.as_micros());
        self.runs(seed, after, to)
            .into_iter()
            .flat_map(|(start, end)| [(start, true), (end, false)])
            .filter(|&(t, _)| after < t && t <= to)
            .map(|(t, active)| (Timestamp::from_micros(t), active))
            .collect()
    }

    /// The runs of overlapping episodes that touch `[from, to]` (microseconds): sorted,
    /// merged, as half-open `[start, end)` intervals.
    fn runs(&self, seed: u64, from: i64, to: i64) -> Vec<(i64, i64)> {
        let min = self.min.as_secs_f64();
        let max = self.max.as_secs_f64().max(min);
        // An episode started this many slots before `from` may still run at `from`; one
        // more slot back tells whether that one merely continues an earlier run.
        let back = (max / self.events.every_s()).ceil() as i64 + 1;
        let first = self.events.slot(from as f64 / 1e6) - back;
        let last = self.events.slot(to as f64 / 1e6);
        let mut runs: Vec<(i64, i64)> = Vec::new();
        for k in first..=last {
            let Some(start) = self.events.start(seed, k) else {
                continue;
            };
            let length = min + self.events.draw(seed, k) * (max - min);
            let (start, end) = (micros(start), micros(start + length));
            match runs.last_mut() {
                Some(run) if start <= run.1 => run.1 = run.1.max(end),
                _ => runs.push((start, end)),
            }
        }
        runs.retain(|&(start, end)| end >= from && start <= to);
        runs
    }
}

fn micros(seconds: f64) -> i64 {
    (seconds * 1e6).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOOR: Episodes = Episodes {
        events: Events {
            every: Duration::from_secs(600),
            chance: 0.6,
        },
        min: Duration::from_secs(5),
        max: Duration::from_secs(60),
    };
    const DAY: i64 = 86_400_000_000;

    fn at(us: i64) -> Timestamp {
        Timestamp::from_micros(1_795_219_200_000_000 + us)
    }

    #[test]
    fn changes_alternate_and_agree_with_active_at() {
        let changes = DOOR.changes(3, at(0), at(DAY));
        assert!(
            changes.len() >= 2 * 40,
            "{} changes in a day",
            changes.len()
        );
        let mut state = DOOR.active_at(3, at(0));
        for &(ts, active) in &changes {
            assert_ne!(active, state, "a change at {ts:?} changes the state");
            assert_eq!(DOOR.active_at(3, ts), active, "active from the change on");
            let before = Timestamp::from_micros(ts.as_micros() - 1);
            assert_eq!(DOOR.active_at(3, before), state, "not before it");
            state = active;
        }
    }

    #[test]
    fn episodes_last_between_min_and_max_unless_they_overlap() {
        let changes = DOOR.changes(5, at(0), at(DAY));
        let lengths: Vec<i64> = changes
            .windows(2)
            .filter(|w| w[0].1)
            .map(|w| w[1].0.as_micros() - w[0].0.as_micros())
            .collect();
        assert!(lengths.iter().all(|&l| l >= 5_000_000), "{lengths:?}");
        let within = lengths.iter().filter(|&&l| l <= 60_000_000).count();
        assert!(within * 10 >= lengths.len() * 9, "{lengths:?}");
        let open: i64 = lengths.iter().sum();
        assert!(open < DAY / 20, "mostly idle: active {open} µs of a day");
    }

    #[test]
    fn split_windows_give_the_same_changes_as_one() {
        let whole = DOOR.changes(9, at(0), at(DAY / 4));
        let step = 2_000_000;
        let pieces: Vec<_> = (0..DAY / 4 / step)
            .flat_map(|k| DOOR.changes(9, at(k * step), at((k + 1) * step)))
            .collect();
        assert_eq!(whole, pieces);
        assert_ne!(whole, DOOR.changes(10, at(0), at(DAY / 4)), "seeds differ");
    }
}
