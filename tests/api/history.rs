//! Long-range history: rollups stay exact under out-of-order, late and duplicate data;
//! bucket queries over rollups equal a raw GROUP BY; M4 downsampling; cursors under
//! concurrent inserts.

use crate::both_backends;
use crate::helpers::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use telehub::auth::DeviceRef;
use telehub::domain::{DeviceName, Reading, SensorName, Timestamp};
use telehub::storage::{Agg, Store};

/// A GROUP BY over raw `(ts, value)` rows (sorted by ts), computed here.
pub fn group_by(rows: &[(i64, f64)], from: i64, to: i64, every: i64, agg: Agg) -> Vec<Expected> {
    let mut groups: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for &(ts, v) in rows.iter().filter(|r| r.0 >= from && r.0 < to) {
        groups
            .entry(ts.div_euclid(every) * every)
            .or_default()
            .push(v);
    }
    groups
        .into_iter()
        .map(|(b, vs)| {
            let value = match agg {
                Agg::Avg => vs.iter().sum::<f64>() / vs.len() as f64,
                Agg::Sum => vs.iter().sum(),
                Agg::Min => vs.iter().copied().fold(f64::INFINITY, f64::min),
                Agg::Max => vs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                Agg::Count => vs.len() as f64,
                Agg::First => vs[0],
                Agg::Last => vs[vs.len() - 1],
            };
            (b, value, vs.len() as i64)
        })
        .collect()
}

const AGGS: [Agg; 7] = [
    Agg::Avg,
    Agg::Min,
    Agg::Max,
    Agg::Sum,
    Agg::Count,
    Agg::First,
    Agg::Last,
];

/// Random readings over ~3 days: values are quarters, so every sum is exact in any order
/// and results must be equal to the last bit. Batches arrive shuffled (late data), with
/// resends of stored readings and conflicting duplicates (the first stored value wins).
async fn random_history(app: &TestApp, device: &DeviceRef, rng: &mut StdRng) -> (i64, i64) {
    let start = (Timestamp::now().as_micros() - 10 * 24 * HOUR) + rng.random_range(0..HOUR);
    let span = 3 * 24 * HOUR;
    let mut rows: Vec<(i64, f64)> = (0..3_000)
        .map(|_| {
            let ts = start + rng.random_range(0..span);
            (ts, rng.random_range(-4000..4000) as f64 / 4.0)
        })
        .collect();
    // Clusters inside a few minutes, so minute buckets hold many readings.
    let dense = start + rng.random_range(0..span);
    rows.extend((0..500).map(|i| (dense + i * 250_000, (i % 40) as f64 / 4.0)));
    rows.shuffle(rng);
    let mut sent: Vec<(i64, f64)> = Vec::new();
    for chunk in rows.chunks(rng.random_range(50..400)) {
        let mut batch = chunk.to_vec();
        for _ in 0..rng.random_range(0..20) {
            if let Some(&(ts, v)) = sent.get(rng.random_range(0..sent.len().max(1))) {
                let v = if rng.random_bool(0.5) { v } else { v + 1.0 };
                batch.push((ts, v)); // a resend, or a conflicting duplicate
            }
        }
        batch.sort_by_key(|r| r.0 % 7); // out of order within the message too
        write(app, device, "t", &batch).await;
        sent.extend_from_slice(chunk);
    }
    (start, start + span)
}

fn random_every(rng: &mut StdRng) -> i64 {
    const CHOICES: [i64; 10] = [
        MIN,
        2 * MIN,
        15 * MIN,
        90 * MIN,
        HOUR,
        3 * HOUR,
        24 * HOUR,
        7_000_000,
        90_000_000,
        13 * MIN + 1,
    ];
    CHOICES[rng.random_range(0..CHOICES.len())]
}

async fn bucket_queries_equal_a_raw_group_by_on_random_data(b: Backend) {
    let app = spawn_app(b).await;
    let device = add_device(&app, "d1").await;
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let (start, end) = random_history(&app, &device, &mut rng).await;
    let series = series_id(&app, &device, "t").await;
    let raw = raw_rows(&app.db.url, series).await;
    for case in 0..60 {
        let every = random_every(&mut rng);
        let agg = AGGS[rng.random_range(0..AGGS.len())];
        let mut from = rng.random_range(start - HOUR..end);
        let mut to = rng.random_range(from + 1..end + HOUR);
        if case % 3 == 0 {
            // Aligned ranges too: no raw edges at all.
            (from, to) = (from / HOUR * HOUR, (to / MIN + 1) * MIN);
        }
        let got = buckets(&app.store, series, from, to, every, agg).await;
        let want = group_by(&raw, from, to, every, agg);
        assert_eq!(
            got, want,
            "seed {seed} case {case}: from {from} to {to} every {every} {agg:?}"
        );
    }
}
both_backends!(bucket_queries_equal_a_raw_group_by_on_random_data);

/// Every rollup row, as stored: (bucket, n, sum, min, max, first_ts, last_ts, first, last, min_ts, max_ts).
type RollupRow = (i64, i64, f64, f64, f64, i64, i64, f64, f64, i64, i64);

pub async fn rollup_rows(url: &str, series: i64, hour: bool) -> Vec<RollupRow> {
    let sql = if hour {
        "SELECT bucket, n, sum_v, min_v, max_v, first_ts, last_ts, first_v, last_v, min_ts, max_ts
         FROM rollup_1h WHERE series_id = $1 ORDER BY bucket"
    } else {
        "SELECT bucket, n, sum_v, min_v, max_v, first_ts, last_ts, first_v, last_v, min_ts, max_ts
         FROM rollup_1m WHERE series_id = $1 ORDER BY bucket"
    };
    sql_rows(url, sql, &[series.into()]).await
}

/// Rollup rows recomputed from raw rows.
fn expected_rollups(raw: &[(i64, f64)], width: i64) -> Vec<RollupRow> {
    let mut out: Vec<RollupRow> = Vec::new();
    for &(ts, v) in raw {
        let b = ts.div_euclid(width) * width;
        match out.last_mut() {
            Some(r) if r.0 == b => {
                r.1 += 1;
                r.2 += v;
                if v < r.3 {
                    (r.3, r.9) = (v, ts);
                }
                if v > r.4 {
                    (r.4, r.10) = (v, ts);
                }
                (r.6, r.8) = (ts, v);
            }
            _ => out.push((b, 1, v, v, v, ts, ts, v, v, ts, ts)),
        }
    }
    out
}

async fn rollups_stay_exact_under_late_and_duplicate_data(b: Backend) {
    let app = spawn_app(b).await;
    let device = add_device(&app, "d1").await;
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    random_history(&app, &device, &mut rng).await;
    let series = series_id(&app, &device, "t").await;
    let raw = raw_rows(&app.db.url, series).await;
    assert_eq!(raw.len(), 3_500, "duplicates are stored once");
    held_back_buckets_written(&app).await;
    for (hour, width) in [(false, MIN), (true, HOUR)] {
        let got = rollup_rows(&app.db.url, series, hour).await;
        assert_eq!(
            got,
            expected_rollups(&raw, width),
            "seed {seed}, hour {hour}"
        );
    }
    // A resend of everything stores nothing and changes nothing.
    let before = rollup_rows(&app.db.url, series, false).await;
    for chunk in raw.chunks(500) {
        let resend: Vec<_> = chunk.iter().map(|&(ts, v)| (ts, v + 100.0)).collect();
        write(&app, &device, "t", &resend).await;
    }
    held_back_buckets_written(&app).await;
    assert_eq!(rollup_rows(&app.db.url, series, false).await, before);
}
both_backends!(rollups_stay_exact_under_late_and_duplicate_data);

/// PostgreSQL, `COPY` from 50 rows: in-order batches above and below it (fresh rows
/// `COPY`'d, or inserted by the transaction's last statement together with the rollups and
/// `last_seen`), then a resend with other values and late readings (rows that may repeat
/// one): every reading is stored once with its first value, the rollup rows equal those
/// recomputed from the raw readings, and the device's `last_seen` moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_are_exact_whichever_way_postgres_inserts_fresh_rows() {
    crate::need_pg!();
    let app = spawn_app_with(Backend::Postgres, |s| s.writer.copy_min_rows = 50).await;
    let device = add_device(&app, "d1").await;
    let before = Timestamp::now().as_micros();
    let t0 = (before - 2 * 24 * HOUR) / HOUR * HOUR;
    let (mut ts, mut sent) = (t0, Vec::new());
    for (i, n) in [120, 10, 49, 50, 1, 300, 7].into_iter().enumerate() {
        let batch: Vec<(i64, f64)> = (0..n)
            .map(|j| {
                ts += 7_000_000;
                (ts, ((i * 31 + j) % 50) as f64 / 4.0)
            })
            .collect();
        write(&app, &device, "t", &batch).await;
        sent.extend(batch);
    }
    let mut again: Vec<(i64, f64)> = sent[100..200].iter().map(|&(t, v)| (t, v + 1.0)).collect();
    let late: Vec<(i64, f64)> = (0..60)
        .map(|j| (t0 + 3_500_000 + j * 7_000_000, j as f64))
        .collect();
    again.extend(&late);
    write(&app, &device, "t", &again).await;

    let series = series_id(&app, &device, "t").await;
    let raw = raw_rows(&app.db.url, series).await;
    let mut want = sent;
    want.extend(late);
    want.sort_by_key(|r| r.0);
    assert_eq!(raw, want, "each reading once, with the value stored first");
    for (hour, width) in [(false, MIN), (true, HOUR)] {
        let got = rollup_rows(&app.db.url, series, hour).await;
        assert_eq!(got, expected_rollups(&raw, width), "hour {hour}");
    }
    let seen: Vec<(i64,)> = sql_rows(
        &app.db.url,
        "SELECT count(*) FROM devices WHERE name = $1 AND last_seen_us >= $2",
        &[Param::Text("d1"), Param::Int(before)],
    )
    .await;
    assert_eq!(seen, vec![(1,)], "last_seen moved");
}

/// Readings as live devices send them: about 3 hours up to now (and a little ahead), in
/// order but for a few late ones, with resends. The writer holds the newest buckets back.
fn live_history(rng: &mut StdRng) -> Vec<Vec<(i64, f64)>> {
    let now = Timestamp::now().as_micros();
    let mut ts: Vec<i64> = (0..2_000)
        .map(|_| now - 3 * HOUR + rng.random_range(0..3 * HOUR + MIN))
        .collect();
    ts.sort_unstable();
    ts.dedup();
    let rows: Vec<(i64, f64)> = ts
        .into_iter()
        .map(|t| (t, rng.random_range(-4000..4000) as f64 / 4.0))
        .collect();
    let mut batches: Vec<Vec<(i64, f64)>> = rows.chunks(40).map(<[_]>::to_vec).collect();
    for i in 1..batches.len() {
        if rng.random_bool(0.2) {
            let late = batches[i - 1][0]; // a resend with another value: the first one wins
            batches[i].push((late.0, late.1 + 1.0));
        }
    }
    batches
}

/// Bucket queries against a raw GROUP BY over random ranges of the last 3 hours.
async fn check_queries(store: &Store, series: i64, raw: &[(i64, f64)], rng: &mut StdRng) {
    let now = Timestamp::now().as_micros();
    for case in 0..30 {
        let every = random_every(rng);
        let agg = AGGS[rng.random_range(0..AGGS.len())];
        let from = rng.random_range(now - 4 * HOUR..now);
        let to = rng.random_range(from + 1..now + 2 * MIN);
        let got = buckets(store, series, from, to, every, agg).await;
        let want = group_by(raw, from, to, every, agg);
        assert_eq!(
            got, want,
            "case {case}: from {from} to {to} every {every} {agg:?}"
        );
    }
}

async fn rollups_equal_the_readings(url: &str, series: i64, raw: &[(i64, f64)]) {
    for (hour, width) in [(false, MIN), (true, HOUR)] {
        let got = rollup_rows(url, series, hour).await;
        assert_eq!(got, expected_rollups(raw, width), "hour {hour}");
    }
}

async fn rollups_held_back_by_the_writer_stay_exact_when_it_stops(b: Backend) {
    let mut app = spawn_app(b).await;
    let device = add_device(&app, "d1").await;
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    for batch in live_history(&mut rng) {
        write(&app, &device, "t", &batch).await;
    }
    // Checked first: an idle writer writes them after a second.
    let [(minute, hour)] = horizons(&app.db.url).await[..] else {
        panic!("one rollup_state row")
    };
    // Only a single writer (SQLite) holds buckets back; a cluster's hubs share PostgreSQL.
    let held = minute < i64::MAX && hour < i64::MAX;
    assert_eq!(
        held,
        b == Backend::Sqlite,
        "the newest buckets are held back"
    );
    let series = series_id(&app, &device, "t").await;
    let raw = raw_rows(&app.db.url, series).await;
    // Meanwhile queries read finer sources from the horizons on: in the hub, and in
    // another process (which reads the horizons from the database).
    check_queries(&app.store, series, &raw, &mut rng).await;
    let other = Store::open(&app.settings.database).await.unwrap();
    check_queries(&other, series, &raw, &mut rng).await;
    other.close().await;

    // Stopping writes them.
    app.stop().await;
    assert_eq!(horizons(&app.db.url).await, [(i64::MAX, i64::MAX)]);
    rollups_equal_the_readings(&app.db.url, series, &raw).await;
}
both_backends!(rollups_held_back_by_the_writer_stay_exact_when_it_stops);

async fn rollups_held_back_by_a_crashed_writer_are_rebuilt_at_start(b: Backend) {
    let db = TestDb::new(b).await;
    let settings = test_settings(&db);
    let store = Store::open(&settings.database).await.unwrap();
    store.prepare_rollups(true).await.unwrap();
    let name = DeviceName::parse("d1").unwrap();
    store.add_device(&name, &[]).await.unwrap();
    let device = store.find_device(&name).await.unwrap().unwrap();
    // A writer aborted without its final write: a crash.
    let (committed, _) = tokio::sync::broadcast::channel(16);
    let (writer, task) = telehub::storage::writer::spawn(
        store.clone(),
        settings.writer.clone(),
        true,
        std::sync::Arc::new(telehub::metrics::Metrics::new()),
        committed,
        tokio_util::sync::CancellationToken::new(),
    );
    let mut rng = StdRng::seed_from_u64(rand::random());
    for batch in live_history(&mut rng) {
        let rows = batch
            .iter()
            .map(|&(ts, value)| (device.clone(), reading(ts, value)))
            .collect();
        writer.submit(rows).await.await.unwrap().unwrap();
    }
    task.abort();
    let _ = task.await;
    let series = store.series_of(&device).await.unwrap()[0].id;
    let raw = raw_rows(&db.url, series).await;
    let held = horizons(&db.url).await != [(i64::MAX, i64::MAX)];
    assert_eq!(
        held,
        b == Backend::Sqlite,
        "the newest buckets are held back"
    );

    // What a hub does when it starts.
    store.prepare_rollups(true).await.unwrap();
    assert_eq!(horizons(&db.url).await, [(i64::MAX, i64::MAX)]);
    rollups_equal_the_readings(&db.url, series, &raw).await;
    store.close().await;
}
both_backends!(rollups_held_back_by_a_crashed_writer_are_rebuilt_at_start);

fn reading(ts: i64, value: f64) -> Reading {
    Reading {
        sensor: SensorName::parse("t").unwrap(),
        value: (value).into(),
        ts: Timestamp::from_micros(ts),
        unit: None,
    }
}

async fn rollups_can_be_turned_off_and_are_rebuilt_when_turned_back_on(b: Backend) {
    let mut app = spawn_app_with(b, |s| s.storage.rollups = false).await;
    let device = add_device(&app, "d1").await;
    let mut rng = StdRng::seed_from_u64(7);
    let (start, end) = random_history(&app, &device, &mut rng).await;
    let series = series_id(&app, &device, "t").await;
    let raw = raw_rows(&app.db.url, series).await;
    assert!(rollup_rows(&app.db.url, series, false).await.is_empty());
    let (from, to) = (start / HOUR * HOUR, end / HOUR * HOUR);
    let want = group_by(&raw, from, to, MIN, Agg::Count);
    assert_eq!(
        buckets(&app.store, series, from, to, MIN, Agg::Count).await,
        want
    );

    // Back on: the hub rebuilds the rollups from raw data before it takes readings.
    app.stop().await;
    app.settings.storage.rollups = true;
    let hub = telehub::hub::start(app.settings.clone()).await.unwrap();
    app.store = hub.state.store.clone();
    app.hub = Some(hub);
    for (hour, width) in [(false, MIN), (true, HOUR)] {
        let got = rollup_rows(&app.db.url, series, hour).await;
        assert_eq!(got, expected_rollups(&raw, width), "hour {hour}");
    }
    assert_eq!(
        buckets(&app.store, series, from, to, MIN, Agg::Count).await,
        want
    );

    // And queries read them: a doctored rollup row shows in an aligned minute query.
    sql_exec(&app.db.url, "UPDATE rollup_1m SET n = n + 1000").await;
    let got = buckets(&app.store, series, from, to, MIN, Agg::Count).await;
    assert!(got.iter().zip(&want).all(|(g, w)| g.2 == w.2 + 1000));
}
both_backends!(rollups_can_be_turned_off_and_are_rebuilt_when_turned_back_on);

async fn get_json(app: &TestApp, token: &str, path: &str) -> serde_json::Value {
    let (status, body) = app.get(path, Some(token)).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn points(body: &serde_json::Value) -> Vec<(i64, f64)> {
    body["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let ts = Timestamp::parse_rfc3339(p["ts"].as_str().unwrap()).unwrap();
            (ts.as_micros(), p["value"].as_f64().unwrap())
        })
        .collect()
}

/// M4 computed here from raw rows: per epoch-aligned column, first, min, max and last
/// (earliest on ties), in time order, without repeats.
fn expected_m4(raw: &[(i64, f64)], from: i64, to: i64, every: i64) -> Vec<(i64, f64)> {
    let mut cols: BTreeMap<i64, Vec<(i64, f64)>> = BTreeMap::new();
    for &r in raw.iter().filter(|r| r.0 >= from && r.0 < to) {
        cols.entry(r.0.div_euclid(every)).or_default().push(r);
    }
    let mut out = Vec::new();
    for pts in cols.values() {
        let min = pts
            .iter()
            .fold(pts[0], |m, p| if p.1 < m.1 { *p } else { m });
        let max = pts
            .iter()
            .fold(pts[0], |m, p| if p.1 > m.1 { *p } else { m });
        let mut four = vec![pts[0], min, max, pts[pts.len() - 1]];
        four.sort_by_key(|p| p.0);
        four.dedup_by_key(|p| p.0);
        out.extend(four);
    }
    out
}

async fn max_points_downsamples_by_m4_keeping_extremes(b: Backend) {
    let app = spawn_app(b).await;
    let device = add_device(&app, "d1").await;
    let viewer = app.viewer().await;
    let t0 = Timestamp::now().as_micros() - 3 * 24 * HOUR;
    // Two days, one reading every 10 s, with one spike down and one up.
    let rows: Vec<(i64, f64)> = (0..17_280i64)
        .map(|i| {
            let v = match i {
                5_000 => -500.0,
                12_345 => 900.0,
                _ => ((i as f64) / 300.0).sin() * 10.0,
            };
            (t0 + i * 10_000_000 + 17, v)
        })
        .collect();
    for chunk in rows.chunks(2_000) {
        write(&app, &device, "t", chunk).await;
    }
    let rfc = |us: i64| Timestamp::from_micros(us).to_rfc3339();
    for (from, to, n) in [
        (t0 - 5 * MIN, t0 + 2 * 24 * HOUR, 200), // hour columns
        (t0 + 7_777_777, t0 + 20 * HOUR, 1_000), // minute columns, raw edges
        (t0 + 7_777_777, t0 + 2 * HOUR, 500),    // raw columns
    ] {
        let path = format!(
            "/v1/readings?device=d1&sensor=t&from={}&to={}&max_points={n}",
            rfc(from),
            rfc(to)
        );
        let body = get_json(&app, &viewer, &path).await;
        assert!(body["next_cursor"].is_null());
        let got = points(&body);
        assert!(got.len() <= n && got.len() > n / 4, "{} points", got.len());
        let every = telehub::storage::history::m4_every(from, to, n);
        assert_eq!(
            got,
            expected_m4(&rows, from, to, every),
            "{from}..{to} by {n}"
        );
    }
    let all = get_json(
        &app,
        &viewer,
        &format!(
            "/v1/readings?device=d1&sensor=t&from={}&to={}&max_points=200",
            rfc(t0),
            rfc(t0 + 2 * 24 * HOUR)
        ),
    )
    .await;
    let got = points(&all);
    assert!(got.contains(&rows[5_000]) && got.contains(&rows[12_345]));
    // Fewer readings than max_points: the readings themselves.
    let path = format!(
        "/v1/readings?device=d1&sensor=t&from={}&to={}&max_points=100",
        rfc(t0),
        rfc(t0 + 10 * MIN)
    );
    assert_eq!(
        points(&get_json(&app, &viewer, &path).await),
        rows[..60].to_vec()
    );
}
both_backends!(max_points_downsamples_by_m4_keeping_extremes);

async fn cursor_pages_are_stable_under_concurrent_inserts(b: Backend) {
    let app = spawn_app(b).await;
    let device = add_device(&app, "d1").await;
    let viewer = app.viewer().await;
    let t0 = Timestamp::now().as_micros() - 2 * HOUR;
    let initial: Vec<(i64, f64)> = (0..2_000).map(|i| (t0 + i * 1_000_000, i as f64)).collect();
    write(&app, &device, "t", &initial).await;
    // While we page: new readings after the range's start, and late ones in between.
    let writer = {
        let (hub, device) = (app.hub().state.clone(), device.clone());
        tokio::spawn(async move {
            for k in 0..200i64 {
                let late = t0 + (k * 10 + 5) * 1_000_000 + 500_000;
                let new = t0 + (2_000 + k) * 1_000_000;
                let rows = [(late, -1.0), (new, -2.0)].map(|(ts, value)| {
                    let reading = Reading {
                        sensor: SensorName::parse("t").unwrap(),
                        value: (value).into(),
                        ts: Timestamp::from_micros(ts),
                        unit: None,
                    };
                    (device.clone(), reading)
                });
                let done = hub.ingest.submit(rows.to_vec()).await;
                done.await.unwrap().unwrap();
            }
        })
    };
    let rfc = |us: i64| Timestamp::from_micros(us).to_rfc3339();
    let mut cursor: Option<String> = None;
    let mut seen: Vec<(i64, f64)> = Vec::new();
    loop {
        let mut path = format!(
            "/v1/readings?device=d1&sensor=t&from={}&to={}&limit=37",
            rfc(t0),
            rfc(t0 + 3 * HOUR)
        );
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let body = get_json(&app, &viewer, &path).await;
        seen.extend(points(&body));
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    tokio::time::timeout(WAIT, writer).await.unwrap().unwrap();
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "ordered, no repeats"
    );
    let seen_initial: Vec<_> = seen.iter().copied().filter(|p| p.1 >= 0.0).collect();
    assert_eq!(
        seen_initial, initial,
        "every reading present at the start, once"
    );
}
both_backends!(cursor_pages_are_stable_under_concurrent_inserts);
