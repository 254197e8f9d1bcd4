//! The live feed's memory with 1,000 dashboards, one of them stuck, during a
//! 300,000-reading burst: the hub holds one shared history, bounded by `live.history`,
//! whatever the number of clients and however far behind one of them is.
//!
//! `VmRSS` measures the whole test process (the hub runs in it), so this test has a
//! binary of its own, like `tests/rss/`. 1,000 dashboards are 2,000 sockets in this
//! process (both ends), well under the 20,000 open-files limit.

#[path = "../helpers/mod.rs"]
mod helpers;

use futures_util::StreamExt;
use helpers::*;
use serde_json::json;

const CLIENTS: usize = 1_000;
const MESSAGES: usize = 300;
const PER_MESSAGE: usize = 1_000;
const HISTORY: usize = 20_000;

/// Message `i` of the burst: `PER_MESSAGE` readings, the first of sensor `mark`; acked.
async fn send(dev: &mut Ws, i: usize, t0: f64) {
    let readings: Vec<_> = (0..PER_MESSAGE)
        .map(|k| {
            let n = i * PER_MESSAGE + k;
            let sensor = if k == 0 { "mark" } else { "t" };
            reading(sensor, n as f64, t0 + n as f64 / 10_000.0)
        })
        .collect();
    send_json(dev, &json!({"id": i, "readings": readings})).await;
    assert_eq!(next_json(dev).await["ack"], i);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_dashboards_one_stuck_keep_the_hub_within_its_history_during_a_burst() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.live.history.readings = HISTORY;
        s.live.stuck_timeout = std::time::Duration::from_secs(600);
        s.limits.handshakes_per_second = 100_000;
        s.limits.handshake_burst = 100_000;
        s.limits.device_readings_per_second = 100_000_000;
        s.limits.device_burst = 100_000_000;
        s.server.max_connections = 10_000;
    })
    .await;
    let viewer = app.viewer().await;
    // One dashboard takes everything and never reads.
    let mut stuck = app.connect_small_window_dashboard(&viewer).await;
    subscribe_all(&mut stuck).await;
    // 999 read what they subscribed to: the one `mark` reading of every message.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<usize>(CLIENTS);
    for _ in 1..CLIENTS {
        let mut ws = app.connect_dashboard(&viewer).await;
        send_json(&mut ws, &json!({"subscribe": ["d1/mark"]})).await;
        let done = done_tx.clone();
        tokio::spawn(async move {
            let mut marks = 0;
            while let Some(Ok(m)) = ws.next().await {
                if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
                    marks += t.as_str().matches("\"mark\"").count();
                    if marks == MESSAGES {
                        let _ = done.send(marks).await;
                    }
                }
            }
        });
    }
    drop(done_tx);
    let mut dev = app.connect_device(&app.device("d1").await).await;
    let t0 = base_ts();
    // Warm up (allocator, SQLite cache, every socket's buffers), then measure.
    send(&mut dev, 0, t0).await;
    let before = rss_kib();
    for i in 1..MESSAGES {
        send(&mut dev, i, t0).await;
    }
    let mut finished = 0;
    while finished < CLIENTS - 1 {
        tokio::time::timeout(std::time::Duration::from_secs(120), done_rx.recv())
            .await
            .expect("every reading dashboard got every mark in time")
            .expect("a reader ended early");
        finished += 1;
    }
    let growth_kib = rss_kib().saturating_sub(before);
    let held = app.metric(&viewer, "telehub_live_history_readings").await;
    assert!(held <= HISTORY as f64, "history holds {held} readings");
    let bytes = app.metric(&viewer, "telehub_live_history_bytes").await;
    eprintln!("history: {held} readings, {bytes} bytes; process RSS grew {growth_kib} KiB");
    // 300,000 readings kept for the stuck client would be ~60 MB (and ×1,000 copies in
    // per-client queues far more); the history's bound is a few MB.
    assert!(bytes < 16.0 * 1024.0 * 1024.0, "history bytes {bytes}");
    assert!(
        growth_kib < 48 * 1024,
        "hub memory grew {growth_kib} KiB during the burst (history of {HISTORY} readings)"
    );
    assert_eq!(app.hub().state.live.clients(), CLIENTS);
}
