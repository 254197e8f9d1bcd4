//! The promise of protocol.md §12 under a real crash: simulated devices (`firmware-sim run`, a real
//! process) stream while the hub process is killed with SIGKILL and restarted on the
//! same port. In the end every generated reading is acked, none is dropped, and the
//! database holds each exactly once.

use crate::helpers::{eventually, total_readings};
use crate::procs::*;
use serde_json::Value;
use std::time::Duration;

const DEVICES: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_reading_is_lost_or_stored_twice_when_the_hub_is_killed_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("hub.db").display());
    let tokens = dir.path().join("tokens.txt");
    add_devices(&db, DEVICES, "crash-", &tokens);

    let hub = HubProcess::start(&db, "127.0.0.1:0", dir.path(), &[]).await;
    let addr = hub.addr.clone();
    let sim_log = dir.path().join("sim.log");
    let sim = spawn_sim(&addr, &tokens, STEADY_STREAM, Some(&sim_log));

    eventually(
        Duration::from_secs(30),
        "300 stored readings",
        || total_readings(&db),
        |n| *n >= 300,
    )
    .await;
    hub.kill().await;
    let at_kill = total_readings(&db).await;

    let mut hub = HubProcess::start(&db, &addr, dir.path(), &[]).await;
    eventually(
        Duration::from_secs(60),
        "600 more stored readings: devices stream to the restarted hub",
        || total_readings(&db),
        |n| *n >= at_kill + 600,
    )
    .await;

    sigterm(&sim);
    let out = tokio::time::timeout(Duration::from_secs(60), sim.wait_with_output())
        .await
        .expect("firmware-sim drains and exits")
        .unwrap();
    let sim_stderr = std::fs::read_to_string(&sim_log).unwrap_or_default();
    assert!(out.status.success(), "firmware-sim failed: {sim_stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "exactly one line: {stdout:?}");
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    let keys: Vec<&str> = summary
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 5, "{summary}");
    let n = |k: &str| {
        summary[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {summary}"))
    };
    let generated = n("generated");
    assert!(generated > 900, "{summary}");
    assert_eq!(
        n("acked"),
        generated,
        "every reading acked: {summary}\n{sim_stderr}"
    );
    assert_eq!(n("dropped"), 0, "{summary}");
    assert_eq!(n("nacked"), 0, "{summary}");
    assert!(
        n("reconnects") >= DEVICES as u64,
        "every device reconnected: {summary}"
    );

    let stored = total_readings(&db).await;
    assert_eq!(
        stored,
        generated as i64,
        "the database holds each generated reading exactly once\nhub: {}",
        hub.logs()
    );
    assert!(hub.terminate().await.success());
}

/// A reconnect storm: many devices connected, the hub killed and restarted; the
/// handshake rate limit turns the excess away with 503 + Retry-After, the hub stays
/// responsive, every device is back, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_storm_after_a_restart_is_absorbed() {
    const STORM: usize = 800;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("hub.db").display());
    let tokens = dir.path().join("tokens.txt");
    add_devices(&db, STORM, "storm-", &tokens);
    let config = dir.path().join("hub.toml");
    std::fs::write(
        &config,
        "[limits]\nhandshakes_per_second = 200\nhandshake_burst = 100\n",
    )
    .unwrap();
    let extra = ["--config", config.to_str().unwrap()];
    let hub = HubProcess::start(&db, "127.0.0.1:0", dir.path(), &extra).await;
    let addr = hub.addr.clone();
    let viewer = hub
        .viewer_token()
        .expect("a fresh hub prints a viewer token");
    let sim = spawn_sim(
        &addr,
        &tokens,
        &[
            "--rate",
            "0.5",
            "--batch",
            "10",
            "--linger",
            "200ms",
            "--backoff-initial",
            "200ms",
            "--backoff-max",
            "2s",
            "--drain-timeout",
            "30s",
        ],
        None,
    );
    let client = reqwest::Client::new();
    let online = |client: reqwest::Client, addr: String, viewer: String| async move {
        let Ok(resp) = client
            .get(format!("http://{addr}/v1/devices"))
            .bearer_auth(&viewer)
            .send()
            .await
        else {
            return 0;
        };
        let devices: Vec<Value> = resp.json().await.unwrap_or_default();
        devices.iter().filter(|d| d["online"] == true).count()
    };
    eventually(
        Duration::from_secs(60),
        "every device online",
        || online(client.clone(), addr.clone(), viewer.clone()),
        |n| *n == STORM,
    )
    .await;

    hub.kill().await;
    let mut hub = HubProcess::start(&db, &addr, dir.path(), &extra).await;
    // During the storm the hub answers health checks promptly.
    let mut worst = Duration::ZERO;
    let started = tokio::time::Instant::now();
    while online(client.clone(), addr.clone(), viewer.clone()).await < STORM {
        let t = tokio::time::Instant::now();
        let r = client
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        worst = worst.max(t.elapsed());
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "devices did not all come back"
        );
    }
    assert!(
        worst < Duration::from_secs(2),
        "health check took {worst:?} during the storm"
    );
    let metrics = client
        .get(format!("http://{addr}/metrics"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("telehub_connections_refused_total{reason=\"handshake_rate\"}")),
        "excess handshakes were told to retry later"
    );

    let summary = sim_summary(sim).await;
    let n = |k: &str| summary[k].as_u64().unwrap();
    assert_eq!(
        (n("acked"), n("dropped"), n("nacked")),
        (n("generated"), 0, 0),
        "{summary}"
    );
    assert!(n("reconnects") >= STORM as u64, "{summary}");
    assert_eq!(total_readings(&db).await, n("generated") as i64);
    assert!(hub.terminate().await.success());
}
