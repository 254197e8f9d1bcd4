//! The block codec and the merge of hot rows with blocks (`telehub::storage::blocks`),
//! property-tested without a database: any series round-trips bit for bit; merged reads,
//! transitions and bucket summaries are what the SQL of hot rows gives.

use proptest::prelude::*;
use std::collections::BTreeMap;
use telehub::storage::blocks::codec::{CodecError, Columns, decode, encode};
use telehub::storage::blocks::merge::{bucket_summaries, merge_sorted, transitions};

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |v| v.is_finite()),
        (-100_000i64..100_000).prop_map(|c| c as f64 / 100.0),
        Just(-0.0),
        Just(0.0),
        Just(1.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
    ]
}

proptest! {
    /// Any readings, in any order and with duplicate timestamps, collapsed to sorted
    /// unique times (the first value wins), round-trip bit for bit.
    #[test]
    fn any_series_round_trips_bit_for_bit(
        raw in prop::collection::vec((-(1i64 << 52)..(1i64 << 52), finite()), 1..600),
    ) {
        let mut m = BTreeMap::new();
        for (ts, v) in raw {
            m.entry(ts).or_insert(v);
        }
        let c = Columns { ts: m.keys().copied().collect(), values: m.values().copied().collect() };
        let back = decode(&encode(&c).unwrap()).unwrap();
        prop_assert_eq!(&back.ts, &c.ts);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&back.values), bits(&c.values));
    }
}

#[test]
fn nan_unsorted_and_empty_input_is_refused() {
    let nan = Columns {
        ts: vec![1],
        values: vec![f64::NAN],
    };
    let unsorted = Columns {
        ts: vec![2, 1],
        values: vec![1.0, 2.0],
    };
    for c in [nan, unsorted, Columns::default()] {
        assert!(matches!(encode(&c), Err(CodecError::InvalidInput)));
    }
}

#[test]
fn damaged_bytes_are_an_error_not_a_panic() {
    let c = Columns {
        ts: (0..100).map(|i| i * 10_000_000).collect(),
        values: vec![21.5; 100],
    };
    let bytes = encode(&c).unwrap();
    for cut in [0, 5, 9, bytes.len() / 2, bytes.len() - 1] {
        assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
}

proptest! {
    #[test]
    fn merging_two_disjoint_sorted_runs_sorts_them_all(
        ts in prop::collection::btree_set(0i64..10_000, 0..200), split in any::<u64>(),
    ) {
        let all: Vec<(i64, f64)> = ts.iter().map(|&t| (t, t as f64)).collect();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for (i, p) in all.iter().enumerate() {
            if (split >> (i % 64)) & 1 == 1 { a.push(*p) } else { b.push(*p) }
        }
        prop_assert_eq!(merge_sorted(a, b), all);
    }
}

#[test]
fn transitions_keep_the_first_each_change_and_the_last() {
    let p = [(1, 0.0), (2, 0.0), (3, 1.0), (4, 1.0), (5, 1.0)];
    assert_eq!(transitions(&p), vec![(1, 0.0), (3, 1.0), (5, 1.0)]);
    assert_eq!(transitions(&p[..1]), vec![(1, 0.0)]);
}

#[test]
fn buckets_summarise_their_points_up_to_the_limit() {
    let p = [(5, 1.0), (9, 3.0), (10, 2.0), (25, 4.0)];
    let b = bucket_summaries(&p, 10, 2);
    assert_eq!(b.len(), 2);
    assert_eq!(
        (b[0].0, b[0].1.n, b[0].1.sum, b[0].1.max, b[0].1.max_ts),
        (0, 2, 4.0, 3.0, 9)
    );
    assert_eq!((b[1].0, b[1].1.first, b[1].1.last), (10, 2.0, 2.0));
}
