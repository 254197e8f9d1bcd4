//! Simulated devices, for `firmware-sim run` and `telehub serve --demo`.
//!
//! - [`signal`]: the shape of one sensor's values (daily cycle, drift, noise, spikes),
//!   a pure function of (seed, time).
//! - [`Kind`]: what a device is (room, boiler, freezer, outdoor station) and so which
//!   sensors it has, with their units and plausible signals.
//! - [`SimDevice`]: one device's sensors and seed; [`play`] feeds its readings into a
//!   [`ReadingSender`] at a fixed pace, on the device's own (possibly skewed) clock.
//!
//! Everything is deterministic given a seed: the same device, seed and timestamp give
//! the same reading.
//!
//! May use: `domain`, `protocol`, `client`.

pub mod signal;

use crate::client::{Closed, ReadingSender};
use crate::domain::{Reading, SensorName, Timestamp, Unit};
use crate::protocol::ingest::DeviceReading;
use signal::{Signal, Spikes, hash_name, mix};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a simulated device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// temperature, humidity, co2
    Room,
    /// flow temperature, return temperature, pressure
    Boiler,
    /// temperature (with defrost cycles), compressor power
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

    /// The sensors of this kind: name, SenML unit, signal.
    pub fn sensors(self) -> &'static [SensorRow] {
        sensor_table(self)
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
        every: Duration::from_secs(every_min * 60),
        chance,
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
    // Burner cycles push the flow temperature up for a few minutes.
    const BOILER: &[SensorRow] = &[
        ("temperature", "Cel", sig(62.0, 6.0, 7.0, 0.4, 2.0, spikes(60, 0.5, 10.0, 5), 20.0, 95.0, 1)),
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

/// One sensor of a simulated device.
#[derive(Debug, Clone)]
struct SimSensor {
    name: SensorName,
    unit: Unit,
    signal: Signal,
    seed: u64,
}

/// A simulated device: its sensors, each with its own seed.
#[derive(Debug, Clone)]
pub struct SimDevice {
    kind: Kind,
    sensors: Vec<SimSensor>,
}

impl SimDevice {
    /// The device `name` of `kind`; `seed` picks one of many plausible histories.
    pub fn new(name: &str, kind: Kind, seed: u64) -> Self {
        let device_seed = mix(hash_name(name) ^ mix(seed));
        let sensors = kind
            .sensors()
            .iter()
            .map(|&(n, u, signal)| SimSensor {
                name: SensorName::parse(n).expect("built-in sensor names are valid"),
                unit: Unit::parse(u).expect("built-in units are valid"),
                signal,
                seed: device_seed ^ hash_name(n),
            })
            .collect();
        Self { kind, sensors }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Sensors per device (readings per tick).
    pub fn sensor_count(&self) -> usize {
        self.sensors.len()
    }

    /// One reading per sensor at `ts`.
    pub fn readings_at(&self, ts: Timestamp) -> impl Iterator<Item = Reading> + '_ {
        self.sensors.iter().map(move |s| Reading {
            sensor: s.name.clone(),
            value: s.signal.value_at(s.seed, ts).into(),
            ts,
            unit: Some(s.unit.clone()),
        })
    }

    /// Readings at every multiple of `step` in `[from, to)` (aligned, so a repeat
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
                self.readings_at(Timestamp::from_micros(us))
                    .collect::<Vec<_>>()
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

/// Samples `device` every `pace.period` until `stop`, pushing one reading per sensor
/// into `sender` with the device clock's timestamp. Timestamps are `first + k·period`,
/// so they never repeat within a run. After a stall, missed samples are taken at once.
pub async fn play(
    device: &SimDevice,
    sender: &ReadingSender,
    pace: Pace,
    stop: CancellationToken,
) -> Result<(), Closed> {
    let period_us = (pace.period.as_micros() as i64).max(1);
    let device_now = Timestamp::now()
        .as_micros()
        .saturating_add(pace.clock_skew_us);
    let first = if pace.align {
        device_now.div_euclid(period_us) * period_us + period_us
    } else {
        device_now
    };
    let start = tokio::time::Instant::now() + Duration::from_micros((first - device_now) as u64);
    for k in 0i64.. {
        let due = start + Duration::from_micros((k * period_us) as u64);
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            _ = stop.cancelled() => break,
        }
        let ts = Timestamp::from_micros(first + k * period_us);
        sender.push_all(device.readings_at(ts).map(|reading| DeviceReading {
            device: None,
            reading,
        }))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_suggest_kinds_and_others_mix() {
        assert_eq!(Kind::for_name("demo-boiler-1"), Kind::Boiler);
        assert_eq!(Kind::for_name("Freezer"), Kind::Freezer);
        assert_eq!(Kind::for_name("room-kitchen"), Kind::Room);
        let kinds: std::collections::HashSet<_> = (1..=40)
            .map(|i| Kind::for_name(&format!("sim-{i}")))
            .collect();
        assert_eq!(kinds.len(), 4, "a fleet gets every kind");
        assert_eq!(Kind::for_name("sim-7"), Kind::for_name("sim-7"));
    }

    #[test]
    fn every_kind_has_units_and_valid_names() {
        for k in Kind::ALL {
            let d = SimDevice::new("x", k, 0);
            assert!(d.sensor_count() >= 2);
            let rs: Vec<_> = d.readings_at(Timestamp::now()).collect();
            assert!(
                rs.iter()
                    .all(|r| r.unit.is_some() && r.value.as_f64().is_some_and(f64::is_finite))
            );
        }
    }

    #[test]
    fn devices_are_deterministic_per_name_and_seed() {
        let ts = Timestamp::from_micros(1_795_255_200_000_000);
        let values = |name, seed| -> Vec<crate::domain::Value> {
            SimDevice::new(name, Kind::Room, seed)
                .readings_at(ts)
                .map(|r| r.value)
                .collect()
        };
        assert_eq!(values("a", 1), values("a", 1));
        assert_ne!(values("a", 1), values("b", 1));
        assert_ne!(values("a", 1), values("a", 2));
    }

    #[test]
    fn history_is_aligned_to_the_step() {
        let d = SimDevice::new("r", Kind::Freezer, 0);
        let from = Timestamp::from_micros(1_795_255_201_000_000);
        let to = from.saturating_add(Duration::from_secs(300));
        let h = d.history(from, to, Duration::from_secs(30));
        assert_eq!(h.len(), 10 * d.sensor_count());
        assert!(h.iter().all(|r| r.ts.as_micros() % 30_000_000 == 0));
        assert!(h.iter().all(|r| r.ts >= from && r.ts < to));
    }
}
