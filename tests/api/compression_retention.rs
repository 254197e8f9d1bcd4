//! Retention over compressed cold storage (issue 31): blocks whose every reading has
//! expired are dropped whole, younger blocks and hot rows stay, and the minute and hour
//! rollups of the dropped range keep answering as they did before.

use crate::both_backends;
use crate::helpers::*;
use crate::procs::*;
use crate::retention::wait_for_metric;
use serde_json::Value;
use std::time::Duration;
use telehub::config::{CompressAfter, Keep, StorageSettings};
use telehub::domain::Timestamp;
use tokio_util::sync::CancellationToken;

const DAY: i64 = 24 * HOUR;

/// The UTC day `days_ago` before `now`: 8,640 readings 10 s apart, values on a quarter
/// grid (sums are exact in any order).
fn day(now: i64, days_ago: i64, salt: i64) -> Vec<(i64, f64)> {
    let start = (now - days_ago * DAY).div_euclid(DAY) * DAY;
    (0..8640)
        .map(|i| {
            let v = ((i * 7919 + salt) % 400) as f64 / 4.0 - 50.0;
            (start + i * 10_000_000, v)
        })
        .collect()
}

fn stats_json(app: &TestApp) -> Value {
    let out = telehub_cli(&app.db.url, &["stats", "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn retention_drops_expired_blocks_and_keeps_younger_blocks_and_hot_rows(b: Backend) {
    let app = spawn_app_with(b, |s| {
        s.retention.raw = Keep::For(Duration::from_secs(5 * 86_400));
        s.retention.minute = Keep::For(Duration::from_secs(30 * 86_400));
        s.retention.pause = Duration::from_millis(1);
    })
    .await;
    // The pass the hub runs at start (on an empty database) is over before we write.
    wait_for_metric(&app, "telehub_retention_passes_total 1").await;
    let viewer = app.viewer().await;
    let device = add_device(&app, "d1").await;
    let now = Timestamp::now().as_micros();
    let (expired, young) = (day(now, 10, 0), day(now, 3, 17));
    let hot: Vec<(i64, f64)> = (0..30).map(|i| (now - HOUR + i * MIN, i as f64)).collect();
    for chunk in expired.chunks(2000).chain(young.chunks(2000)) {
        write(&app, &device, "t", chunk).await;
    }
    write(&app, &device, "t", &hot).await;
    held_back_buckets_written(&app).await;

    let settings = StorageSettings {
        compress_after: CompressAfter::After(Duration::from_secs(86_400)),
        block_rows: 1000,
        compress_pause: Duration::ZERO,
        ..StorageSettings::default()
    };
    let metrics = &app.hub().state.metrics;
    let stop = CancellationToken::new();
    let at = Timestamp::from_micros(now);
    let compacted =
        (telehub::storage::compactor::run_pass(&app.store, &settings, at, metrics, &stop))
            .await
            .unwrap();
    assert_eq!(compacted.readings, 2 * 8640, "{compacted:?}");
    assert_eq!(compacted.blocks, 2 * 9, "{compacted:?}");
    let before = stats_json(&app);
    assert_eq!(before["compressed_readings"], 2 * 8640, "{before}");
    assert_eq!(before["compressed_blocks"], 2 * 9, "{before}");

    let ts = |us: i64| Timestamp::from_micros(us).to_rfc3339();
    let read = |q: String| {
        let (app, viewer) = (&app, &viewer);
        async move {
            let (status, body) = app
                .get(
                    &format!("/v1/readings?device=d1&sensor=t&{q}"),
                    Some(viewer),
                )
                .await;
            assert_eq!(status, 200, "{q}: {body}");
            body
        }
    };
    let old = (expired[0].0, expired[0].0 + DAY);
    let raw_old = format!("from={}&to={}&limit=10000", ts(old.0), ts(old.1));
    let raw_young = format!(
        "from={}&to={}&limit=10000",
        ts(now - 4 * DAY),
        ts(now + MIN)
    );
    let rollup_queries = [
        format!("from={}&to={}&every=1m&agg=avg", ts(old.0), ts(old.1)),
        format!("from={}&to={}&every=5m&agg=max", ts(old.0), ts(old.1)),
        format!("from={}&to={}&every=1h&agg=first", ts(old.0), ts(old.1)),
    ];
    let old_points = read(raw_old.clone()).await;
    assert_eq!(old_points["points"].as_array().unwrap().len(), 8640);
    let young_points = read(raw_young.clone()).await;
    assert_eq!(young_points["points"].as_array().unwrap().len(), 8640 + 30);
    let mut rollups = Vec::new();
    for q in &rollup_queries {
        rollups.push(read(q.clone()).await);
    }

    let report = telehub::storage::retention::run_pass(
        &app.store,
        &app.settings.retention,
        at,
        metrics,
        &stop,
    )
    .await
    .unwrap();
    assert!(report.complete);
    assert_eq!(
        report.raw, 8640,
        "the expired day's blocks, whole: {report:?}"
    );

    let after = stats_json(&app);
    assert_eq!(after["compressed_readings"], 8640, "{after}");
    assert_eq!(after["compressed_blocks"], 9, "{after}");
    assert_eq!(after["hot_readings"], 30, "{after}");
    let gone = read(raw_old).await;
    assert_eq!(gone["points"], Value::Array(Vec::new()), "{gone}");
    assert_eq!(
        read(raw_young).await,
        young_points,
        "younger blocks and hot rows remain"
    );
    for (q, expected) in rollup_queries.iter().zip(&rollups) {
        assert_eq!(
            &read(q.clone()).await,
            expected,
            "{q}: rollups keep answering"
        );
    }
}
both_backends!(retention_drops_expired_blocks_and_keeps_younger_blocks_and_hot_rows);
