//! Compressed cold storage (issue 31): every API answers the same before and after the
//! compactor moves old readings into blocks; a resend of compressed readings is acked
//! and stored once; a kill -9 mid-compaction leaves each reading readable exactly once.

use crate::both_backends;
use crate::helpers::*;
use crate::influxql::query;
use crate::procs::*;
use serde_json::{Value, json};
use std::time::Duration;
use telehub::config::{CompressAfter, StorageSettings};
use telehub::domain::{DeviceName, SensorName, Timestamp};
use telehub::storage::compactor::run_pass;
use tokio_util::sync::CancellationToken;

const SEC: i64 = 1_000_000;
const DAY: i64 = 24 * HOUR;
const ALL_T: &str = "/v1/readings?device=d1&sensor=t&from=-5d&limit=10000";

/// A day of readings three days ago, 10 s apart, 2 % of them a second late; values on a
/// quarter grid (sums are exact in any order). Plus hot readings of today.
fn numbers(now: i64) -> Vec<(i64, f64)> {
    let day = (now - 3 * DAY).div_euclid(DAY) * DAY;
    let mut rows: Vec<(i64, f64)> = (0..8640)
        .map(|i| {
            let late = if i % 50 == 7 { SEC } else { 0 };
            (
                day + i * 10 * SEC + late,
                ((i * 7919) % 400) as f64 / 4.0 - 50.0,
            )
        })
        .collect();
    rows.extend((0..30).map(|i| (now - HOUR + i * MIN, i as f64)));
    rows
}

/// Turns of a state, three days ago and today.
fn states(now: i64) -> Vec<(i64, bool)> {
    let day = (now - 3 * DAY).div_euclid(DAY) * DAY;
    let mut rows: Vec<(i64, bool)> = (0..500)
        .map(|i| (day + i * 60 * SEC, (i / 37) % 2 == 0))
        .collect();
    rows.push((now - MIN, true));
    rows
}

fn compressing() -> StorageSettings {
    StorageSettings {
        compress_after: CompressAfter::After(Duration::from_secs(86_400)),
        block_rows: 1000,
        compress_pause: Duration::ZERO,
        ..StorageSettings::default()
    }
}

/// Everything a user can ask about the data, through HTTP, `/query` and the CLI.
async fn answers(app: &TestApp, viewer: &str, now: i64) -> Vec<Value> {
    let ts = |us: i64| Timestamp::from_micros(us).to_rfc3339();
    let (from, to) = (ts(now - 4 * DAY), ts(now + MIN));
    let mut out = Vec::new();
    let reads = [
        format!("sensor=t&from={from}&to={to}&limit=10000"),
        format!("sensor=t&from={from}&to={to}&limit=777"),
        format!("sensor=t&from={from}&to={to}&every=1m&agg=avg"),
        format!("sensor=t&from={from}&to={to}&every=90s&agg=max"),
        format!("sensor=t&from={from}&to={to}&every=1h&agg=first"),
        format!("sensor=t&from={from}&to={to}&every=7m&agg=count"),
        format!("sensor=t&from={from}&to={to}&every=1m&agg=max"),
        format!("sensor=t&from={from}&to={to}&every=1m&agg=first"),
        format!("sensor=t&from={from}&to={to}&every=5m&agg=last"),
        format!("sensor=door&from={from}&to={to}&every=1m&agg=first"),
        format!("sensor=t&from={from}&to={to}&max_points=300"),
        format!("sensor=t&from={from}&to={to}&max_points=10000"),
        format!("sensor=door&from={from}&to={to}&max_points=50"),
        format!("sensor=door&from={from}&to={to}&every=1h&agg=last"),
        format!("from={from}&to={to}&limit=500"),
    ];
    for q in reads {
        let (status, body) = app
            .get(&format!("/v1/readings?device=d1&{q}"), Some(viewer))
            .await;
        assert_eq!(status, 200, "{q}: {body}");
        out.push(body);
    }
    // Pages through a cursor.
    let mut cursor: Option<String> = None;
    loop {
        let c = cursor
            .as_ref()
            .map_or(String::new(), |c| format!("&cursor={c}"));
        let path = format!("/v1/readings?device=d1&sensor=t&from={from}&to={to}&limit=2000{c}");
        let (status, body) = app.get(&path, Some(viewer)).await;
        assert_eq!(status, 200, "{body}");
        cursor = body["next_cursor"].as_str().map(|c| c.to_owned());
        out.push(body);
        if cursor.is_none() {
            break;
        }
    }
    for format in ["csv", "ndjson"] {
        let resp = reqwest::Client::new()
            .get(format!(
                "{}/v1/export?device=d1&from={from}&to={to}&format={format}",
                app.http()
            ))
            .bearer_auth(viewer)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        out.push(Value::String(resp.text().await.unwrap()));
    }
    let (f, t) = ((now - 4 * DAY) * 1000, (now + MIN) * 1000);
    for select in [
        format!(
            r#"SELECT mean("value") FROM "t" WHERE time >= {f} and time <= {t} GROUP BY time(10m) fill(none)"#
        ),
        format!(r#"SELECT "value" FROM "t" WHERE time >= {f} and time <= {t}"#),
    ] {
        let (status, body) = query(app, Some(viewer), &[("q", &select)]).await;
        assert_eq!(status, 200, "{select}: {body}");
        out.push(body);
    }
    let cli = telehub_cli(
        &app.db.url,
        &[
            "query", "--device", "d1", "--from", &from, "--to", &to, "--format", "csv",
        ],
    );
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    out.push(Value::String(String::from_utf8(cli.stdout).unwrap()));
    out
}

async fn compact(app: &TestApp, now: i64) -> telehub::storage::compactor::CompactReport {
    let metrics = &app.hub().state.metrics;
    let report = run_pass(
        &app.store,
        &compressing(),
        Timestamp::from_micros(now),
        metrics,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(report.complete);
    report
}

async fn every_answer_is_the_same_before_and_after_compaction(b: Backend) {
    let app = spawn_app(b).await;
    let viewer = app.viewer().await;
    let device = add_device(&app, "d1").await;
    let now = Timestamp::now().as_micros();
    for chunk in numbers(now).chunks(1000) {
        write(&app, &device, "t", chunk).await;
    }
    write(&app, &device, "door", &states(now)).await;
    held_back_buckets_written(&app).await;
    let before = answers(&app, &viewer, now).await;
    let stats_before = app
        .store
        .stats(CompressAfter::Off, Timestamp::from_micros(now))
        .await
        .unwrap();

    let url = app.db.url.clone();
    let old_minutes = || {
        let url = url.clone();
        async move {
            let sql = "SELECT count(*) FROM rollup_1m WHERE bucket < $1";
            sql_rows::<(i64,)>(&url, sql, &[(now - 2 * DAY).into()]).await[0].0
        }
    };
    assert_eq!(old_minutes().await, 1440 + 500, "a minute row each before");

    let report = compact(&app, now).await;
    assert_eq!(
        old_minutes().await,
        0,
        "sparse blocks take their minute rollups with them"
    );
    assert_eq!(
        report.readings,
        8640 + 500,
        "all of the old day, no hot reading: {report:?}"
    );
    assert_eq!(
        report.blocks,
        9 + 1,
        "a day of 8,640 in equal blocks of ≤ 1,000, and the states"
    );
    let stats = app
        .store
        .stats(compressing().compress_after, Timestamp::from_micros(now))
        .await
        .unwrap();
    assert_eq!(stats.readings, stats_before.readings);
    assert_eq!(stats.compressed_readings, 8640 + 500);
    assert_eq!(stats.hot_readings, 31);
    assert_eq!(stats.compactor_lag_seconds, Some(0.0));
    let bytes = stats.bytes_per_compressed_reading.unwrap();
    assert!(bytes < 3.0, "{bytes} bytes per compressed reading");

    let after = answers(&app, &viewer, now).await;
    assert_eq!(before.len(), after.len());
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        assert_eq!(b, a, "answer {i} changed with compaction");
    }
    // The rollups rebuilt from blocks and rows answer the same too.
    let mut app = app;
    app.stop().await;
    for rollups in [false, true] {
        app.settings.storage.rollups = rollups;
        let hub = telehub::hub::start(app.settings.clone()).await.unwrap();
        app.store = hub.state.store.clone();
        app.hub = Some(hub);
        app.stop().await;
    }
    let hub = telehub::hub::start(app.settings.clone()).await.unwrap();
    app.store = hub.state.store.clone();
    app.hub = Some(hub);
    assert_eq!(
        old_minutes().await,
        0,
        "a rebuild leaves sparse blocks' minutes out"
    );
    let rebuilt = answers(&app, &viewer, now).await;
    for (i, (b, a)) in before.iter().zip(&rebuilt).enumerate() {
        assert_eq!(b, a, "answer {i} changed after the rollups were rebuilt");
    }
}
both_backends!(every_answer_is_the_same_before_and_after_compaction);

async fn a_resend_of_compressed_readings_is_acked_and_stored_once(b: Backend) {
    let app = spawn_app(b).await;
    let token = app.device("d1").await;
    let viewer = app.viewer().await;
    let now = Timestamp::now().as_micros();
    let rows: Vec<(i64, f64)> = numbers(now).into_iter().step_by(20).collect();
    let message = |rows: &[(i64, f64)]| {
        let readings: Vec<Value> = rows
            .iter()
            .map(|(ts, v)| json!({"sensor": "t", "value": v, "ts": Timestamp::from_micros(*ts).to_rfc3339()}))
            .collect();
        json!({"id": 1, "readings": readings})
    };
    let (status, body) = app.post("/v1/ingest", &token, &message(&rows)).await;
    assert_eq!(status, 200, "{body}");
    held_back_buckets_written(&app).await;
    let count = |every: &'static str| {
        let app = &app;
        let viewer = viewer.clone();
        async move {
            let q = format!(
                "/v1/readings?device=d1&sensor=t&from={}&to={}&every={every}&agg=count",
                Timestamp::from_micros(now - 4 * DAY).to_rfc3339(),
                Timestamp::from_micros(now + MIN).to_rfc3339()
            );
            app.get(&q, Some(&viewer)).await.1
        }
    };
    let raw_before = app.get(ALL_T, Some(&viewer)).await.1;
    let (hourly, minutely, raw_buckets) =
        (count("1h").await, count("1m").await, count("90s").await);
    let report = compact(&app, now).await;
    assert!(report.readings > 400, "{report:?}");

    // The same readings again, one with another value: acked, nothing changes.
    let mut again = rows.clone();
    again[3].1 += 1000.0;
    let (status, body) = app.post("/v1/ingest", &token, &message(&again)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["stored"],
        rows.len()
    );
    held_back_buckets_written(&app).await;
    let stats = app
        .store
        .stats(CompressAfter::Off, Timestamp::from_micros(now))
        .await
        .unwrap();
    assert_eq!(stats.readings as usize, rows.len(), "stored once");
    let raw_after = app.get(ALL_T, Some(&viewer)).await.1;
    assert_eq!(raw_before, raw_after, "the first stored value wins");
    assert_eq!(
        (count("1h").await, count("1m").await, count("90s").await),
        (hourly, minutely.clone(), raw_buckets),
        "rollups unchanged"
    );

    // A new late reading inside the compressed range is stored, and read merged.
    let late = (rows[5].0 + SEC, 0.25);
    let (status, body) = app.post("/v1/ingest", &token, &message(&[late])).await;
    assert_eq!(
        (status, body.contains("\"stored\":1")),
        (200, true),
        "{body}"
    );
    let raw = app.get(ALL_T, Some(&viewer)).await.1;
    let points = raw["points"].as_array().unwrap();
    assert_eq!(points.len(), rows.len() + 1);
    assert_eq!(
        points[6]["value"], 0.25,
        "merged in time order: {}",
        points[6]
    );
    held_back_buckets_written(&app).await;
    for every in ["1m", "1h"] {
        let body = count(every).await;
        let counted: i64 = (body["points"].as_array().unwrap().iter())
            .map(|p| p["count"].as_i64().unwrap())
            .sum();
        assert_eq!(counted as usize, rows.len() + 1, "every={every}: {body}");
    }
    // Compacted in turn, the late reading leaves its minute row too: counts hold.
    let report = compact(&app, now).await;
    assert_eq!(report.readings, 1, "{report:?}");
    assert_eq!(
        count("1m").await["points"].as_array().unwrap().len(),
        minutely["points"].as_array().unwrap().len()
    );
    let counted: i64 = (count("1m").await["points"].as_array().unwrap().iter())
        .map(|p| p["count"].as_i64().unwrap())
        .sum();
    assert_eq!(counted as usize, rows.len() + 1);
}
both_backends!(a_resend_of_compressed_readings_is_acked_and_stored_once);

/// SIGKILL while the compactor runs (a pause between blocks keeps it busy): after the
/// restart every reading is read back exactly once, and compaction completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_compaction_leaves_every_reading_readable_exactly_once() {
    let mut app = spawn_app(Backend::Sqlite).await;
    let device = add_device(&app, "d1").await;
    let now = Timestamp::now().as_micros();
    let mut expected = Vec::new();
    for s in 0..20 {
        let rows: Vec<(i64, f64)> = numbers(now)
            .into_iter()
            .map(|(t, v)| (t, v + s as f64))
            .collect();
        for chunk in rows.chunks(5000) {
            write(&app, &device, &format!("s{s}"), chunk).await;
        }
        expected.push(rows);
    }
    held_back_buckets_written(&app).await;
    app.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("compress.toml");
    let toml = "[storage]\ncompress_after = \"1d\"\nblock_rows = 500\ncompress_pause = \"30ms\"\n";
    std::fs::write(&config, toml).unwrap();
    let args = ["--config", config.to_str().unwrap()];
    let hub = HubProcess::start(&app.db.url, "127.0.0.1:0", dir.path(), &args).await;
    let blocks = || async {
        sql_rows::<(i64,)>(&app.db.url, "SELECT count(*) FROM reading_blocks", &[]).await[0].0
    };
    eventually(WAIT, "some blocks written", blocks, |n| *n >= 20).await;
    hub.kill().await;
    let written = blocks().await;
    assert!(
        written < 20 * 18,
        "killed mid-compaction ({written} blocks)"
    );

    let check = |app: &TestApp| {
        let (store, expected) = (app.store.clone(), expected.clone());
        async move {
            for (s, rows) in expected.iter().enumerate() {
                let series = store
                    .find_series(
                        &DeviceName::parse("d1").unwrap(),
                        &SensorName::parse(&format!("s{s}")).unwrap(),
                    )
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap();
                let q = telehub::storage::RangeQuery {
                    series,
                    from: Timestamp::from_micros(now - 5 * DAY),
                    to: Timestamp::from_micros(now + MIN),
                    after: None,
                    limit: usize::MAX,
                };
                let got: Vec<(i64, f64)> = store
                    .query_points(q)
                    .await
                    .unwrap()
                    .iter()
                    .map(|p| (p.ts.as_micros(), p.value.as_f64().unwrap()))
                    .collect();
                assert_eq!(&got, rows, "series s{s}");
                // Minute rollups: no reading counted twice or lost mid-compaction.
                let minutes = store
                    .query_buckets(q, MIN, telehub::storage::Agg::Count)
                    .await
                    .unwrap();
                let got: Vec<(i64, i64)> = minutes
                    .iter()
                    .map(|b| (b.ts.as_micros(), b.count))
                    .collect();
                let mut expected: Vec<(i64, i64)> = Vec::new();
                for &(t, _) in rows {
                    let m = t.div_euclid(MIN) * MIN;
                    match expected.last_mut() {
                        Some((last, n)) if *last == m => *n += 1,
                        _ => expected.push((m, 1)),
                    }
                }
                assert_eq!(got, expected, "minute buckets of s{s}");
            }
        }
    };
    let hub = telehub::hub::start(app.settings.clone()).await.unwrap();
    app.store = hub.state.store.clone();
    app.hub = Some(hub);
    check(&app).await;
    compact(&app, now).await;
    check(&app).await;
    let stats = app
        .store
        .stats(CompressAfter::Off, Timestamp::from_micros(now))
        .await
        .unwrap();
    assert_eq!(stats.hot_readings, 20 * 30);
}
