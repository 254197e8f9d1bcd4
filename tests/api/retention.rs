//! Retention: expired history is deleted in small batches at whole-hour boundaries,
//! finest first; rollups outlive the raw data they summarise and keep answering.

use crate::both_backends;
use crate::helpers::*;
use crate::history::*;
use std::time::Duration;
use telehub::config::Keep;
use telehub::domain::Timestamp;
use telehub::storage::Agg;
use telehub::storage::retention::run_pass;
use tokio_util::sync::CancellationToken;

fn days(d: u64) -> Keep {
    Keep::For(Duration::from_secs(d * 86_400))
}

async fn retention_deletes_whole_expired_hours_and_rollups_keep_answering(b: Backend) {
    let mut app = spawn_app_with(b, |s| {
        s.retention.raw = days(2);
        s.retention.minute = days(5);
        s.retention.batch_rows = 7;
        s.retention.pause = Duration::from_millis(1);
    })
    .await;
    // The pass the hub runs at start (on an empty database) is over before we write.
    wait_for_metric(&app, "telehub_retention_passes_total 1").await;
    let device = add_device(&app, "d1").await;
    let now = Timestamp::now();
    let n = now.as_micros();
    let rows: Vec<(i64, f64)> = (0..1200)
        .map(|i| {
            (
                n - 8 * 24 * HOUR + i * 10 * MIN + 1234,
                (i % 37) as f64 / 4.0,
            )
        })
        .collect();
    for chunk in rows.chunks(300) {
        write(&app, &device, "t", chunk).await;
    }
    held_back_buckets_written(&app).await;
    let series = series_id(&app, &device, "t").await;
    let (from, to) = ((n - 9 * 24 * HOUR) / HOUR * HOUR, n / HOUR * HOUR + HOUR);
    let hourly = buckets(&app.store, series, from, to, HOUR, Agg::Avg).await;
    let raw_cut = (n - 2 * 24 * HOUR) / HOUR * HOUR;
    let minute_cut = (n - 5 * 24 * HOUR) / HOUR * HOUR;
    let minutely = buckets(&app.store, series, minute_cut, raw_cut, MIN, Agg::Max).await;
    assert!(!minutely.is_empty());

    let metrics = &app.hub().state.metrics;
    let retention = app.settings.retention.clone();
    let report = run_pass(
        &app.store,
        &retention,
        now,
        metrics,
        &CancellationToken::new(),
    )
    .await
    .unwrap();

    let raw = raw_rows(&app.db.url, series).await;
    let kept: Vec<_> = rows.iter().copied().filter(|r| r.0 >= raw_cut).collect();
    assert_eq!(
        raw, kept,
        "raw readings before the whole-hour cutoff are gone"
    );
    assert_eq!(report.raw as usize, rows.len() - kept.len());
    let minute = rollup_rows(&app.db.url, series, false).await;
    assert!(minute.iter().all(|r| r.0 >= minute_cut));
    assert!(
        minute.iter().any(|r| r.0 < raw_cut),
        "minute rollups outlive raw"
    );
    assert_eq!(
        report.minute as usize,
        rows.len() - minute.len(),
        "one reading a minute row"
    );
    assert_eq!(report.hour, 0, "hour rollups are kept forever");
    assert!(report.complete);

    // Older ranges are answered from the rollups that remain.
    assert_eq!(
        buckets(&app.store, series, from, to, HOUR, Agg::Avg).await,
        hourly
    );
    assert_eq!(
        buckets(&app.store, series, minute_cut, raw_cut, MIN, Agg::Max).await,
        minutely
    );
    let old = n - 7 * 24 * HOUR;
    assert!(
        buckets(&app.store, series, old, old + HOUR, MIN, Agg::Max)
            .await
            .is_empty()
    );

    // A rebuild (after a run with rollups off) keeps what raw data no longer covers.
    app.stop().await;
    for rollups in [false, true] {
        app.settings.storage.rollups = rollups;
        app.settings.retention.interval = Duration::from_secs(3600);
        let hub = telehub::hub::start(app.settings.clone()).await.unwrap();
        app.store = hub.state.store.clone();
        hub.stop().await;
    }
    let hub = telehub::hub::start(app.settings.clone()).await.unwrap();
    app.store = hub.state.store.clone();
    app.hub = Some(hub);
    assert_eq!(
        buckets(&app.store, series, from, to, HOUR, Agg::Avg).await,
        hourly
    );
}
both_backends!(retention_deletes_whole_expired_hours_and_rollups_keep_answering);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_runs_in_the_background_and_counts_what_it_deleted() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.retention.raw = days(1);
        s.retention.interval = Duration::from_millis(50);
    })
    .await;
    let device = add_device(&app, "d1").await;
    let n = Timestamp::now().as_micros();
    let old: Vec<_> = (0..50).map(|i| (n - 3 * 24 * HOUR + i, 1.0)).collect();
    write(&app, &device, "t", &old).await;
    wait_for_metric(
        &app,
        "telehub_retention_deleted_rows_total{table=\"readings\"} 50",
    )
    .await;
    let series = series_id(&app, &device, "t").await;
    assert!(raw_rows(&app.db.url, series).await.is_empty());
}

/// Waits (within [`WAIT`]) until the hub's metrics contain `line`.
pub async fn wait_for_metric(app: &TestApp, line: &str) {
    let metrics = &app.hub().state.metrics;
    let render = || async { metrics.render() };
    eventually(WAIT, &format!("`{line}` in the metrics"), render, |m| {
        m.contains(line)
    })
    .await;
}
