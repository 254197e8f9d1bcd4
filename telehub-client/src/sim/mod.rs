//! Simulated devices, for `firmware-sim run` and `telehub serve --demo`.
//!
//! - [`signal`]: the shape of one sensor's values (daily cycle, drift, noise, spikes),
//!   a pure function of (seed, time).
//! - [`state`]: states that are active now and then (a door open, a defrost, a burner
//!   on), with their exact change times, also a pure function of (seed, time).
//! - [`Kind`]: what a device is (room, boiler, freezer, outdoor station) and so which
//!   measurements (units, plausible signals) and states (boolean or string) it has.
//! - [`SimDevice`]: one device's sensors and seed; [`play`] feeds its readings into a
//!   [`ReadingSender`] at a fixed pace, on the device's own (possibly skewed) clock;
//!   [`play_with`] at a pace commands may change.
//! - [`commands`]: what a simulated device does with commands (`set_interval`,
//!   `reboot`, `fail`).
//!
//! Measurements are sampled: one reading per sensor per sample. States are reported the
//! way state firmware does: at the moment they change, and again every [`STATE_EVERY`]
//! (60 s) and at the first sample, so a dashboard opened later finds the
//! current state in recent history.
//!
//! Everything is deterministic given a seed: the same device, seed and timestamps give
//! the same readings.
//!
//! May use: `domain`, `protocol`, `client`.

pub mod commands;
pub mod signal;
pub mod state;
#[cfg(test)]
mod tests;

use crate::client::{Closed, ReadingSender};
use crate::domain::{Reading, SensorName, Timestamp, Unit};
use crate::protocol::ingest::DeviceReading;
use signal::{Events, Signal, Spikes, hash_name, mix};
use state::{Episodes, StateRow, StateSensor, StateValues, Timing};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a simulated device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// temperature, humidity, co2
    Room,
    /// flow temperature, return temperature, pressure; `burner` on/off
    Boiler,
    /// temperature (with defrost cycles), compressor power; `door` open/closed, `mode`
    /// "cooling"/"defrost"
    Freezer,
    /// temperature, humidity, barometric pressure
    Outdoor,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Room, Kind::Boiler, Kind::Freezer, Kind::Outdoor];

    /// The kind a name suggests (`boiler-1` is a boiler); otherwise one picked by the
    /// name's hash, so a fleet `sim-1..N` is a stable mix.
    pub fn for_name(name: &str) -> Kind {
        let n = name.to_ascii_lowercase();
        let hints = [
            ("boiler", Kind::Boiler),
            ("freezer", Kind::Freezer),
            ("fridge", Kind::Freezer),
            ("outdoor", Kind::Outdoor),
            ("weather", Kind::Outdoor),
            ("room", Kind::Room),
            ("office", Kind::Room),
        ];
        hints
            .iter()
            .find(|(h, _)| n.contains(h))
            .map(|(_, k)| *k)
            .unwrap_or(Kind::ALL[(hash_name(name) % 4) as usize])
    }

    /// The measurements of this kind: name, SenML unit, signal.
    pub fn sensors(self) -> &'static [SensorRow] {
        sensor_table(self)
    }

    /// The states of this kind.
    pub fn states(self) -> &'static [StateRow] {
        state_table(self)
    }
}

/// A signal: base, daily amplitude, peak hour (UTC), noise σ, drift, spikes, min, max, decimals.
#[allow(clippy::too_many_arguments)]
#[rustfmt::skip]
const fn sig(base: f64, daily: f64, peak_hour: f64, noise: f64, drift: f64, spikes: Option<Spikes>, min: f64, max: f64, decimals: i32) -> Signal {
    Signal { base, daily, peak_hour, noise, drift, spikes, min, max, decimals }
}

/// Spikes: slot length and decay in minutes, the chance per slot, the height.
const fn spikes(every_min: u64, chance: f64, height: f64, decay_min: u64) -> Option<Spikes> {
    Some(Spikes {
        events: Events {
            every: Duration::from_secs(every_min * 60),
            chance,
        },
        height,
        decay: Duration::from_secs(decay_min * 60),
    })
}

/// A sensor of a [`Kind`]: name, SenML unit, signal.
pub type SensorRow = (&'static str, &'static str, Signal);

#[rustfmt::skip]
fn sensor_table(kind: Kind) -> &'static [SensorRow] {
    // Windows opened now and then; a shower's humidity; people in the room.
    const ROOM: &[SensorRow] = &[
        ("temperature", "Cel", sig(21.0, 1.2, 17.0, 0.05, 0.6, spikes(120, 0.15, -3.0, 20), -40.0, 60.0, 2)),
        ("humidity", "%RH", sig(45.0, 6.0, 7.0, 0.3, 5.0, spikes(360, 0.1, 15.0, 30), 5.0, 100.0, 1)),
        ("co2", "ppm", sig(650.0, 250.0, 15.0, 12.0, 60.0, spikes(180, 0.2, 400.0, 40), 400.0, 5000.0, 0)),
    ];
    // Burner cycles (about one per 15 minutes) push the flow temperature up.
    const BOILER: &[SensorRow] = &[
        ("temperature", "Cel", sig(62.0, 6.0, 7.0, 0.4, 2.0, spikes(15, 0.85, 8.0, 4), 20.0, 95.0, 1)),
        ("return_temperature", "Cel", sig(48.0, 5.0, 7.0, 0.3, 2.0, None, 15.0, 90.0, 1)),
        ("pressure", "bar", sig(1.6, 0.05, 15.0, 0.01, 0.1, None, 0.5, 3.0, 3)),
    ];
    // A defrost cycle about every eight hours.
    const FREEZER: &[SensorRow] = &[
        ("temperature", "Cel", sig(-18.5, 0.3, 15.0, 0.08, 0.3, spikes(480, 0.95, 9.0, 15), -30.0, 10.0, 2)),
        ("power", "W", sig(90.0, 10.0, 15.0, 6.0, 5.0, None, 0.0, 2000.0, 0)),
    ];
    const OUTDOOR: &[SensorRow] = &[
        ("temperature", "Cel", sig(11.0, 5.0, 15.0, 0.1, 4.0, None, -50.0, 60.0, 2)),
        ("humidity", "%RH", sig(70.0, 15.0, 5.0, 1.0, 8.0, None, 10.0, 100.0, 1)),
        ("pressure", "hPa", sig(1013.0, 0.8, 10.0, 0.05, 9.0, None, 900.0, 1090.0, 1)),
    ];
    match kind {
        Kind::Room => ROOM,
        Kind::Boiler => BOILER,
        Kind::Freezer => FREEZER,
        Kind::Outdoor => OUTDOOR,
    }
}

const fn state(
    name: &'static str,
    timing: Timing,
    min_s: u64,
    max_s: u64,
    values: StateValues,
) -> StateRow {
    let (min, max) = (Duration::from_secs(min_s), Duration::from_secs(max_s));
    StateRow {
        name,
        timing,
        min,
        max,
        values,
    }
}

#[rustfmt::skip]
fn state_table(kind: Kind) -> &'static [StateRow] {
    // The burner runs 3–8 minutes from each jump of the flow temperature.
    const BOILER: &[StateRow] = &[
        state("burner", Timing::SpikesOf("temperature"), 180, 480, StateValues::Bool),
    ];
    // The door opens for 5–60 s about four times an hour; a defrost (15–25 minutes)
    // starts with each jump of the temperature.
    const DOOR: Events = Events { every: Duration::from_secs(600), chance: 0.6 };
    const DEFROST: StateValues = StateValues::Text { active: "defrost", idle: "cooling" };
    const FREEZER: &[StateRow] = &[
        state("door", Timing::Own(DOOR), 5, 60, StateValues::Bool),
        state("mode", Timing::SpikesOf("temperature"), 900, 1500, DEFROST),
    ];
    match kind {
        Kind::Boiler => BOILER,
        Kind::Freezer => FREEZER,
        Kind::Room | Kind::Outdoor => &[],
    }
}

/// How often a state is reported when it does not change.
pub const STATE_EVERY: Duration = Duration::from_secs(60);

/// One measurement of a simulated device.
#[derive(Debug, Clone)]
struct SimSensor {
    name: SensorName,
    unit: Unit,
    signal: Signal,
    seed: u64,
}

/// A simulated device: its measurements and states, each with its own seed.
#[derive(Debug, Clone)]
pub struct SimDevice {
    kind: Kind,
    sensors: Vec<SimSensor>,
    states: Vec<StateSensor>,
}

impl SimDevice {
    /// The device `name` of `kind`; `seed` picks one of many plausible histories.
    pub fn new(name: &str, kind: Kind, seed: u64) -> Self {
        let device_seed = mix(hash_name(name) ^ mix(seed));
        let sensor_seed = |n: &str| device_seed ^ hash_name(n);
        let sensors: Vec<SimSensor> = kind
            .sensors()
            .iter()
            .map(|&(n, u, signal)| SimSensor {
                name: SensorName::parse(n).expect("built-in sensor names are valid"),
                unit: Unit::parse(u).expect("built-in units are valid"),
                signal,
                seed: sensor_seed(n),
            })
            .collect();
        let states = kind
            .states()
            .iter()
            .map(|row| {
                let (events, seed) = match row.timing {
                    Timing::Own(events) => (events, sensor_seed(row.name)),
                    Timing::SpikesOf(of) => {
                        let s = sensors.iter().find(|s| s.name.as_str() == of);
                        let spikes = s.and_then(|s| s.signal.spikes);
                        let spikes = spikes.expect("a state follows a measurement with spikes");
                        (spikes.events, sensor_seed(of))
                    }
                };
                StateSensor {
                    name: SensorName::parse(row.name).expect("built-in sensor names are valid"),
                    episodes: Episodes {
                        events,
                        min: row.min,
                        max: row.max,
                    },
                    values: row.values,
                    seed,
                }
            })
            .collect();
        Self {
            kind,
            sensors,
            states,
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Measurements per device (readings per sample, besides states).
    pub fn sensor_count(&self) -> usize {
        self.sensors.len()
    }

    /// The readings of the sample at `ts`, the previous sample having been at `prev`
    /// (`None`: this is the first): one per measurement at `ts`; for each state, every
    /// change in `(prev, ts]` at its own time, then its value at `ts` when this is the
    /// first sample or a multiple of [`STATE_EVERY`] lies in `(prev, ts]` (and no change
    /// already fell exactly on `ts`).
    pub fn sample(&self, prev: Option<Timestamp>, ts: Timestamp) -> Vec<Reading> {
        let mut out: Vec<Reading> = self
            .sensors
            .iter()
            .map(|s| Reading {
                sensor: s.name.clone(),
                value: s.signal.value_at(s.seed, ts).into(),
                ts,
                unit: Some(s.unit.clone()),
            })
            .collect();
        let every = STATE_EVERY.as_micros() as i64;
        let refresh = prev
            .is_none_or(|p| p.as_micros().div_euclid(every) != ts.as_micros().div_euclid(every));
        for st in &self.states {
            let changes = match prev {
                Some(p) if p < ts => st.episodes.changes(st.seed, p, ts),
                _ => Vec::new(),
            };
            let changed_at_ts = changes.last().is_some_and(|&(t, _)| t == ts);
            out.extend(changes.into_iter().map(|(t, active)| st.reading(t, active)));
            if refresh && !changed_at_ts {
                out.push(st.reading(ts, st.episodes.active_at(st.seed, ts)));
            }
        }
        out
    }

    /// Samples at every multiple of `step` in `[from, to)` (aligned, so a repeat
    /// sends the same timestamps again and the hub stores them once).
    pub fn history(&self, from: Timestamp, to: Timestamp, step: Duration) -> Vec<Reading> {
        let step = (step.as_micros() as i64).max(1);
        let first = from.as_micros().div_euclid(step) * step;
        let first = if first < from.as_micros() {
            first + step
        } else {
            first
        };
        (first..to.as_micros())
            .step_by(step as usize)
            .flat_map(|us| {
                let prev = (us > first).then(|| Timestamp::from_micros(us - step));
                self.sample(prev, Timestamp::from_micros(us))
            })
            .collect()
    }
}

/// How fast a simulated device samples, and on what clock.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Time between two samples (one reading per sensor each).
    pub period: Duration,
    /// The device clock minus the true time, in microseconds (negative: behind).
    pub clock_skew_us: i64,
    /// Sample at multiples of `period` (restarts then repeat timestamps, which the hub
    /// dedupes) rather than starting at once.
    pub align: bool,
}

/// Samples `device` every `pace.period` until `stop`, pushing its readings
/// ([`SimDevice::sample`]) into `sender` with the device clock's timestamps. Sample times
/// are `first + k·period`, so they never repeat within a run. After a stall, missed
/// samples are taken at once.
pub async fn play(
    device: &SimDevice,
    sender: &ReadingSender,
    pace: Pace,
    stop: CancellationToken,
) -> Result<(), Closed> {
    let (_keep, period) = tokio::sync::watch::channel(pace.period);
    play_with(device, sender, pace, period, stop).await
}

/// [`play`], with the period taken from `period` as it changes (`set_interval`): the
/// next sample comes one new period after the last one.
pub async fn play_with(
    device: &SimDevice,
    sender: &ReadingSender,
    pace: Pace,
    mut period: tokio::sync::watch::Receiver<Duration>,
    stop: CancellationToken,
) -> Result<(), Closed> {
    let pace = Pace {
        period: *period.borrow_and_update(),
        ..pace
    };
    let mut period_us = (pace.period.as_micros() as i64).max(1);
    let device_now = Timestamp::now()
        .as_micros()
        .saturating_add(pace.clock_skew_us);
    let first = if pace.align {
        device_now.div_euclid(period_us) * period_us + period_us
    } else {
        device_now
    };
    let mut start =
        tokio::time::Instant::now() + Duration::from_micros((first - device_now) as u64);
    let (mut first, mut k, mut prev) = (first, 0i64, None);
    let mut period_open = true;
    loop {
        let due = start + Duration::from_micros((k * period_us) as u64);
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            _ = stop.cancelled() => break,
            changed = period.changed(), if period_open => {
                if changed.is_err() {
                    period_open = false;
                    continue;
                }
                let new_us = (period.borrow_and_update().as_micros() as i64).max(1);
                // Start over from the last sample (or the first one still due).
                if let Some(p) = prev {
                    let p: Timestamp = p;
                    let last_due = start + Duration::from_micros(((k - 1).max(0) * period_us) as u64);
                    first = p.as_micros() + new_us;
                    start = last_due + Duration::from_micros(new_us as u64);
                    k = 0;
                }
                period_us = new_us;
                continue;
            }
        }
        let ts = Timestamp::from_micros(first + k * period_us);
        let readings = device.sample(prev, ts).into_iter();
        sender.push_all(readings.map(|reading| DeviceReading {
            device: None,
            reading,
        }))?;
        prev = Some(ts);
        k += 1;
    }
    Ok(())
}
