//! Simulated devices: kinds, determinism, sampling, and the states' plausibility.

use super::*;
use crate::domain::{Value, ValueKind};

const T0: i64 = 1_795_255_200_000_000;
const HOUR: Duration = Duration::from_secs(3600);

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_micros(T0 + seconds * 1_000_000)
}

/// The readings of `sensor`, in time order.
fn series<'a>(readings: &'a [Reading], sensor: &str) -> Vec<&'a Reading> {
    let mut out: Vec<&Reading> = readings
        .iter()
        .filter(|r| r.sensor.as_str() == sensor)
        .collect();
    out.sort_by_key(|r| r.ts);
    out
}

/// The changes of `sensor`: (time, new value) wherever a reading differs from the one before.
fn changes(readings: &[Reading], sensor: &str) -> Vec<(Timestamp, Value)> {
    series(readings, sensor)
        .windows(2)
        .filter(|w| w[0].value != w[1].value)
        .map(|w| (w[1].ts, w[1].value.clone()))
        .collect()
}

/// The `[start, end)` intervals over which `sensor` holds `value`, from its changes.
fn episodes(readings: &[Reading], sensor: &str, value: &Value) -> Vec<(i64, i64)> {
    let c = changes(readings, sensor);
    c.windows(2)
        .filter(|w| &w[0].1 == value)
        .map(|w| (w[0].0.as_micros(), w[1].0.as_micros()))
        .collect()
}

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
fn measurements_are_numbers_with_units_and_states_are_booleans_or_texts_without() {
    let expected = |k| match k {
        Kind::Boiler => vec![("burner", ValueKind::Bool)],
        Kind::Freezer => vec![("door", ValueKind::Bool), ("mode", ValueKind::Text)],
        Kind::Room | Kind::Outdoor => vec![],
    };
    for k in Kind::ALL {
        let d = SimDevice::new("x", k, 0);
        assert!(d.sensor_count() >= 2);
        let rs = d.sample(None, Timestamp::now());
        let (numbers, states) = rs.split_at(d.sensor_count());
        assert!(
            numbers
                .iter()
                .all(|r| r.unit.is_some() && r.value.as_f64().is_some_and(f64::is_finite))
        );
        let got: Vec<_> = states
            .iter()
            .map(|r| (r.sensor.as_str(), r.value.kind()))
            .collect();
        assert_eq!(got, expected(k), "the first sample reports every state");
        assert!(states.iter().all(|r| r.unit.is_none()));
        assert_eq!(k.states().len(), states.len());
    }
    let mode = SimDevice::new("f", Kind::Freezer, 0).sample(None, at(0));
    let text = mode.last().unwrap().value.clone();
    assert!(
        [
            Value::text("cooling").unwrap(),
            Value::text("defrost").unwrap()
        ]
        .contains(&text),
        "{text:?}"
    );
}

#[test]
fn devices_are_deterministic_per_name_and_seed() {
    let values = |name, seed| -> Vec<Reading> {
        SimDevice::new(name, Kind::Freezer, seed).history(
            at(0),
            at(6 * 3600),
            Duration::from_secs(30),
        )
    };
    assert_eq!(values("a", 1), values("a", 1));
    assert_ne!(values("a", 1), values("b", 1));
    assert_ne!(values("a", 1), values("a", 2));
    let (a, b) = (values("a", 1), values("a", 2));
    assert_ne!(
        changes(&a, "door"),
        changes(&b, "door"),
        "states differ too"
    );
}

#[test]
fn measurements_fall_on_the_step_and_states_on_their_changes() {
    let d = SimDevice::new("r", Kind::Freezer, 0);
    let from = Timestamp::from_micros(T0 + 1_000_000);
    let to = from.saturating_add(Duration::from_secs(300));
    let h = d.history(from, to, Duration::from_secs(30));
    for sensor in ["temperature", "power"] {
        let s = series(&h, sensor);
        assert_eq!(s.len(), 10);
        assert!(s.iter().all(|r| r.ts.as_micros() % 30_000_000 == 0));
    }
    assert!(h.iter().all(|r| r.ts >= from && r.ts < to));
    for state in ["door", "mode"] {
        let s = series(&h, state);
        assert_eq!(s[0].ts.as_micros(), T0 + 30_000_000, "at the first sample");
        // Repeats on the minute; changes at their own time (between samples).
        let repeats = s.iter().filter(|r| r.ts.as_micros() % 60_000_000 == 0);
        assert_eq!(repeats.count(), 5, "{state}: {s:?}");
    }
}

#[test]
fn state_changes_are_the_same_whatever_the_sampling_period() {
    for kind in [Kind::Freezer, Kind::Boiler] {
        let d = SimDevice::new("s", kind, 4);
        let fast = d.history(at(0), at(6 * 3600), Duration::from_secs(2));
        let slow = d.history(at(0), at(6 * 3600), Duration::from_secs(30));
        for s in kind.states() {
            let c = changes(&fast, s.name);
            assert!(!c.is_empty(), "{kind:?} {} changes in 6 h", s.name);
            assert_eq!(c, changes(&slow, s.name), "{kind:?} {}", s.name);
        }
    }
}

#[test]
fn unchanged_states_are_repeated_every_minute() {
    let d = SimDevice::new("f", Kind::Freezer, 2);
    let from = Timestamp::from_micros(T0 + 1_234_567);
    let h = d.history(from, from.saturating_add(HOUR), Duration::from_secs(2));
    for state in ["door", "mode"] {
        let s = series(&h, state);
        assert_eq!(s[0].ts, h[0].ts, "{state} is reported at the first sample");
        let gap = s
            .windows(2)
            .map(|w| w[1].ts.as_micros() - w[0].ts.as_micros());
        assert!(gap.max().unwrap() <= 60_000_000, "{state}");
        assert!(
            s.len() < 60 + 20,
            "{state}: {} readings in an hour",
            s.len()
        );
    }
}

#[test]
fn the_freezer_door_is_mostly_closed_and_opens_briefly_now_and_then() {
    let d = SimDevice::new("demo-freezer-1", Kind::Freezer, 0);
    let day = d.history(at(0), at(24 * 3600), Duration::from_secs(30));
    let open = episodes(&day, "door", &Value::Bool(true));
    assert!(
        (60..=115).contains(&open.len()),
        "{} openings a day",
        open.len()
    );
    let lengths: Vec<i64> = open.iter().map(|(a, b)| b - a).collect();
    assert!(
        lengths
            .iter()
            .all(|&l| (5_000_000..=120_000_000).contains(&l)),
        "{lengths:?}"
    );
    let total: i64 = lengths.iter().sum();
    assert!(
        total < 86_400_000_000 / 20,
        "open {} s a day",
        total / 1_000_000
    );
}

#[test]
fn the_freezer_defrosts_when_its_temperature_jumps() {
    let d = SimDevice::new("demo-freezer-1", Kind::Freezer, 0);
    let days = d.history(at(0), at(3 * 24 * 3600), Duration::from_secs(30));
    let defrost = Value::text("defrost").unwrap();
    let runs = episodes(&days, "mode", &defrost);
    assert!(
        (5..=10).contains(&runs.len()),
        "{} defrosts in 3 days",
        runs.len()
    );
    let temperature = |ts: i64| {
        d.sample(None, Timestamp::from_micros(ts))[0]
            .value
            .as_f64()
            .unwrap()
    };
    for &(start, end) in &runs {
        assert!((900_000_000..=3_000_000_000).contains(&(end - start)));
        let (before, during) = (
            temperature(start - 60_000_000),
            temperature(start + 60_000_000),
        );
        assert!(during > before + 5.0, "{before} → {during} at a defrost");
    }
}

#[test]
fn the_boiler_burner_cycles_with_the_flow_temperature() {
    let d = SimDevice::new("demo-boiler-1", Kind::Boiler, 0);
    let day = d.history(at(0), at(24 * 3600), Duration::from_secs(30));
    let on = episodes(&day, "burner", &Value::Bool(true));
    assert!(
        (55..=100).contains(&on.len()),
        "{} burner cycles a day",
        on.len()
    );
    let total: i64 = on.iter().map(|(a, b)| b - a).sum();
    let share = total as f64 / 86_400e6;
    assert!(
        (0.15..0.6).contains(&share),
        "burner on {share:.2} of the day"
    );
    let mean = |burner: bool| {
        let burning = |ts: i64| on.iter().any(|&(a, b)| a <= ts && ts < b);
        let t: Vec<f64> = series(&day, "temperature")
            .iter()
            .filter(|r| burning(r.ts.as_micros()) == burner)
            .map(|r| r.value.as_f64().unwrap())
            .collect();
        t.iter().sum::<f64>() / t.len() as f64
    };
    assert!(
        mean(true) > mean(false) + 2.0,
        "{} vs {}",
        mean(true),
        mean(false)
    );
}
