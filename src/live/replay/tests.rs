//! The replay buffer and its cursors: offsets, bounds, exact lag counts, resume.

use super::*;
use crate::domain::{DeviceName, Reading, SensorName, Timestamp};
use proptest::prelude::*;
use std::sync::Arc;

/// A batch of readings `(device, sensor)`; each reading's value is its index in the batch.
fn batch(keys: &[(&str, &str)]) -> CommittedBatch {
    Arc::new(
        keys.iter()
            .enumerate()
            .map(|(i, (d, s))| StoredReading {
                device: DeviceName::parse(d).unwrap(),
                reading: Reading {
                    sensor: SensorName::parse(s).unwrap(),
                    value: crate::domain::Value::Number(i as f64),
                    ts: Timestamp::from_micros(1_795_255_200_000_000 + i as i64),
                    unit: None,
                },
            })
            .collect(),
    )
}

fn all() -> Vec<Pattern> {
    vec![Pattern::ALL]
}

fn offsets(r: &Read) -> Vec<u64> {
    r.readings.iter().map(|(o, _)| *o).collect()
}

#[test]
fn readings_get_consecutive_offsets_and_a_cursor_reads_each_once_by_pattern() {
    let h = ReplayBuffer::with_epoch("e".into(), 100, Duration::from_secs(60));
    let c = h.cursor_at_end();
    let now = Instant::now();
    h.append(
        &[batch(&[("a", "t"), ("b", "t")]), batch(&[("a", "h")])],
        now,
        |_, _| {},
    );
    let only_a = vec![Pattern::parse("a/*").unwrap()];
    let r = h.read(&c, &only_a, 10);
    assert_eq!(offsets(&r), [1, 3]);
    let text = String::from_utf8(r.readings[1].1.to_vec()).unwrap();
    assert!(text.starts_with(r#"{"device":"a","sensor":"h""#), "{text}");
    assert_eq!(c.next(), 4);
    assert!(h.read(&c, &only_a, 10).readings.is_empty());
    assert_eq!(h.stats().next, 4);
}

#[test]
fn a_limited_read_resumes_where_it_stopped() {
    let h = ReplayBuffer::with_epoch("e".into(), 100, Duration::from_secs(60));
    let c = h.cursor_at_end();
    h.append(&[batch(&[("a", "t"); 5])], Instant::now(), |_, _| {});
    assert_eq!(offsets(&h.read(&c, &all(), 2)), [1, 2]);
    assert_eq!(offsets(&h.read(&c, &all(), 2)), [3, 4]);
    assert_eq!(offsets(&h.read(&c, &all(), 2)), [5]);
}

#[test]
fn an_eviction_passing_a_cursor_counts_exactly_the_matching_readings_lost() {
    let h = ReplayBuffer::with_epoch("e".into(), 4, Duration::from_secs(60));
    let c = h.cursor_at_end();
    let only_a = vec![Pattern::parse("a/*").unwrap()];
    let now = Instant::now();
    let evict = |first: u64, rs: &[StoredReading]| ReplayBuffer::pass(&c, &only_a, first, rs);
    h.append(&[batch(&[("a", "t"), ("b", "t"), ("a", "t")])], now, evict);
    h.append(&[batch(&[("a", "t"), ("b", "t")])], now, |f, rs| {
        ReplayBuffer::pass(&c, &only_a, f, rs)
    });
    // 5 readings > 4: the first batch (two of them matching) went.
    assert_eq!(h.stats().oldest, 4);
    let r = h.read(&c, &only_a, 10);
    assert_eq!((r.lagged, offsets(&r)), (2, vec![4]));
}

#[test]
fn the_age_bound_evicts_old_batches() {
    let h = ReplayBuffer::with_epoch("e".into(), 100, Duration::from_secs(60));
    let t0 = Instant::now();
    h.append(&[batch(&[("a", "t")])], t0, |_, _| {});
    h.append(&[], t0 + Duration::from_secs(61), |_, _| {});
    let s = h.stats();
    assert_eq!((s.readings, s.oldest, s.next), (0, 2, 2));
}

#[test]
fn resume_works_within_the_replay_buffer_and_epoch_only() {
    let h = ReplayBuffer::with_epoch("e".into(), 3, Duration::from_secs(60));
    let c = h.cursor_at_end();
    h.append(&[batch(&[("a", "t"); 2])], Instant::now(), |_, _| {});
    assert_eq!(h.resume(&c, "e", 1), Resume::Resumed);
    assert_eq!(offsets(&h.read(&c, &all(), 10)), [2]);
    assert_eq!(h.resume(&c, "e", 0), Resume::Resumed);
    assert_eq!(offsets(&h.read(&c, &all(), 10)), [1, 2]);
    let not = Resume::NotResumed {
        epoch: "e".into(),
        offset: 2,
    };
    assert_eq!(h.resume(&c, "other", 1), not);
    assert_eq!(h.resume(&c, "e", 7), not, "an offset from the future");
    h.append(&[batch(&[("a", "t"); 2])], Instant::now(), |_, _| {});
    // Now 3..=4 are held: resuming after 2 works, after 0 does not.
    assert_eq!(h.resume(&c, "e", 2), Resume::Resumed);
    assert!(matches!(
        h.resume(&c, "e", 0),
        Resume::NotResumed { offset: 4, .. }
    ));
    assert!(h.read(&c, &all(), 10).readings.is_empty());
}

proptest! {
    /// Whatever the batch sizes, bound, patterns and read limits: every matching
    /// reading is either read (in order, once) or counted lagged, never both.
    #[test]
    fn every_matching_reading_is_read_once_or_counted_lost(
        sizes in prop::collection::vec(0usize..6, 1..40),
        bound in 1usize..12,
        limits in prop::collection::vec(1usize..5, 1..40),
    ) {
        let h = ReplayBuffer::with_epoch("e".into(), bound, Duration::from_secs(60));
        let c = h.cursor_at_end();
        let pats = vec![Pattern::parse("a/*").unwrap()];
        let (mut read, mut lagged, mut matching) = (Vec::new(), 0u64, 0u64);
        for (i, n) in sizes.iter().enumerate() {
            let keys: Vec<(&str, &str)> =
                (0..*n).map(|j| (if (i + j) % 3 == 0 { "b" } else { "a" }, "t")).collect();
            matching += keys.iter().filter(|(d, _)| *d == "a").count() as u64;
            h.append(&[batch(&keys)], Instant::now(), |f, rs| ReplayBuffer::pass(&c, &pats, f, rs));
            let r = h.read(&c, &pats, limits[i % limits.len()]);
            lagged += r.lagged;
            read.extend(offsets(&r));
        }
        loop {
            let r = h.read(&c, &pats, 3);
            lagged += r.lagged;
            if r.readings.is_empty() { break; }
            read.extend(offsets(&r));
        }
        prop_assert!(read.windows(2).all(|w| w[0] < w[1]));
        prop_assert_eq!(read.len() as u64 + lagged, matching);
        prop_assert!(h.stats().readings <= bound.max(*sizes.iter().max().unwrap()));
    }
}
