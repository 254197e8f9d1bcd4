//! Signal shapes: a value is a pure function of (seed, time) — a daily cycle, a slow
//! drift, white noise and occasional decaying spikes, clamped and rounded. Any instant
//! can be computed on its own, and the same seed and time always give the same value,
//! so a simulator may restart or backfill history and send exactly what it sent before.

use crate::domain::Timestamp;
use std::f64::consts::TAU;
use std::time::Duration;

const DAY_S: f64 = 86_400.0;

/// Occasional events: time is cut into slots of `every`; a slot holds one event with
/// probability `chance`, starting at a random moment within it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Events {
    pub every: Duration,
    pub chance: f64,
}

impl Events {
    /// The slot length in seconds (at least one).
    pub fn every_s(&self) -> f64 {
        self.every.as_secs_f64().max(1.0)
    }

    /// The slot holding `t` (Unix seconds).
    pub fn slot(&self, t: f64) -> i64 {
        (t / self.every_s()).floor() as i64
    }

    /// When slot `k`'s event starts (Unix seconds) for `seed`, if the slot has one.
    pub fn start(&self, seed: u64, k: i64) -> Option<f64> {
        let h = slot_hash(seed, k);
        let every = self.every_s();
        (unit(h, 3) < self.chance).then(|| k as f64 * every + unit(h, 4) * every)
    }

    /// A uniform number in `[0, 1)` belonging to slot `k`'s event (its length, say).
    pub fn draw(&self, seed: u64, k: i64) -> f64 {
        unit(slot_hash(seed, k), 7)
    }
}

fn slot_hash(seed: u64, k: i64) -> u64 {
    seed ^ mix(k as u64 ^ 0x5151_5151)
}

/// Occasional jumps of `height` (one per event) that decay exponentially.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spikes {
    pub events: Events,
    /// The jump (negative for a dip).
    pub height: f64,
    /// Time constant of the decay.
    pub decay: Duration,
}

/// The shape of one sensor's signal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Signal {
    pub base: f64,
    /// Amplitude of the daily cycle, and the UTC hour of its peak.
    pub daily: f64,
    pub peak_hour: f64,
    /// Standard deviation of the white noise.
    pub noise: f64,
    /// Amplitude of the slow drift (periods of several days).
    pub drift: f64,
    pub spikes: Option<Spikes>,
    pub min: f64,
    pub max: f64,
    /// Values are rounded to this many decimal places.
    pub decimals: i32,
}

impl Signal {
    /// The value at `ts` for `seed`.
    pub fn value_at(&self, seed: u64, ts: Timestamp) -> f64 {
        let t = ts.as_micros() as f64 / 1e6;
        let hour = t.rem_euclid(DAY_S) / 3600.0;
        let daily = self.daily * (TAU * (hour - self.peak_hour) / 24.0).cos();
        let (p1, p2) = (unit(seed, 1) * TAU, unit(seed, 2) * TAU);
        let drift = self.drift
            * (0.6 * (TAU * t / (3.3 * DAY_S) + p1).sin()
                + 0.4 * (TAU * t / (11.7 * DAY_S) + p2).sin());
        let noise = self.noise * gaussian(seed ^ mix(ts.as_micros() as u64));
        let spike = self.spikes.map_or(0.0, |s| spike_at(&s, seed, t));
        let v = (self.base + daily + drift + noise + spike).clamp(self.min, self.max);
        let scale = 10f64.powi(self.decimals);
        (v * scale).round() / scale
    }
}

/// The sum of the decaying spikes that started in recent slots.
fn spike_at(s: &Spikes, seed: u64, t: f64) -> f64 {
    let every = s.events.every_s();
    let decay = s.decay.as_secs_f64().max(1e-3);
    let slot = s.events.slot(t);
    // Slots further back than ~8 decay constants contribute nothing visible.
    let back = ((8.0 * decay / every).ceil() as i64).clamp(1, 16);
    (slot - back..=slot)
        .filter_map(|k| {
            let start = s.events.start(seed, k)?;
            (t >= start).then(|| s.height * (-(t - start) / decay).exp())
        })
        .sum()
}

/// SplitMix64's finaliser: a well-mixed 64-bit hash of `x`.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A uniform number in `[0, 1)` drawn from `seed` and a stream number.
fn unit(seed: u64, stream: u64) -> f64 {
    (mix(seed ^ mix(stream)) >> 11) as f64 / (1u64 << 53) as f64
}

/// A standard normal number (Box–Muller) drawn from `seed`.
fn gaussian(seed: u64) -> f64 {
    let u1 = 1.0 - unit(seed, 5); // (0, 1]
    let u2 = unit(seed, 6);
    (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()
}

/// FNV-1a: a stable hash of a name (std's hasher may change between releases).
pub(crate) fn hash_name(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOM: Signal = Signal {
        base: 21.0,
        daily: 1.5,
        peak_hour: 16.0,
        noise: 0.1,
        drift: 0.5,
        spikes: Some(Spikes {
            events: Events {
                every: Duration::from_secs(3600),
                chance: 0.5,
            },
            height: -3.0,
            decay: Duration::from_secs(600),
        }),
        min: -40.0,
        max: 60.0,
        decimals: 2,
    };

    fn at(s: i64) -> Timestamp {
        Timestamp::from_micros((1_795_219_200 + s) * 1_000_000)
    }

    #[test]
    fn the_same_seed_and_time_give_the_same_value() {
        for s in [0, 1, 3600, 86_399] {
            assert_eq!(ROOM.value_at(7, at(s)), ROOM.value_at(7, at(s)));
        }
        let differs = (0..100).any(|s| ROOM.value_at(7, at(s)) != ROOM.value_at(8, at(s)));
        assert!(differs, "another seed gives another series");
    }

    #[test]
    fn values_are_plausible_rounded_and_clamped() {
        let vals: Vec<f64> = (0..2880).map(|i| ROOM.value_at(3, at(i * 30))).collect();
        assert!(
            vals.iter().all(|v| (10.0..30.0).contains(v)),
            "room temperatures"
        );
        assert!(
            vals.iter()
                .all(|v| (v * 100.0 - (v * 100.0).round()).abs() < 1e-6)
        );
        let mean = vals.iter().sum::<f64>() / vals.len() as f64;
        assert!((mean - 21.0).abs() < 1.5, "mean {mean}");
        let clamped = Signal {
            min: 0.0,
            max: 1.0,
            ..ROOM
        };
        assert!((0..100).all(|i| clamped.value_at(1, at(i)) <= 1.0));
    }

    #[test]
    fn the_daily_cycle_peaks_at_its_hour() {
        let smooth = Signal {
            noise: 0.0,
            drift: 0.0,
            spikes: None,
            ..ROOM
        };
        let peak = smooth.value_at(1, at(16 * 3600));
        let trough = smooth.value_at(1, at(4 * 3600));
        assert_eq!((peak, trough), (22.5, 19.5));
    }

    #[test]
    fn spikes_happen_now_and_then_and_decay() {
        let s = ROOM.spikes.unwrap();
        let dips: Vec<f64> = (0..24 * 60)
            .map(|m| spike_at(&s, 9, (m * 60) as f64))
            .collect();
        assert!(
            dips.iter().any(|d| *d < -2.0),
            "some spike reaches near full height"
        );
        assert!(dips.iter().filter(|d| d.abs() < 0.01).count() > dips.len() / 4);
        assert!(dips.iter().all(|d| *d <= 0.0 && *d >= -6.0));
    }
}
