//! Upgrades: a database written by an earlier release (the fixtures in
//! tests/fixtures/upgrade, made by its `make.sh` with the release before migrations 0008 on)
//! opens in this one with everything it held — devices, the gateway's list, tokens that still
//! authenticate, readings of every type and their buckets, the alert rule, the command — and
//! takes new readings; on PostgreSQL with `readings` partitioned by time (migration 0012).

use crate::both_backends;
use crate::helpers::*;
use serde_json::{Value, json};
use std::path::Path;
use telehub::storage::partitions::Bound;

/// Every stored reading, (series, ts, value) in order.
async fn every_reading(url: &str) -> Vec<(i64, i64, f64)> {
    sql_rows(
        url,
        "SELECT series_id, ts, value FROM readings ORDER BY series_id, ts",
        &[],
    )
    .await
}

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/upgrade");

/// `KEY` of tokens.env, for `backend` (SQLITE_ or PG_).
fn token(backend: Backend, key: &str) -> String {
    let prefix = match backend {
        Backend::Sqlite => "SQLITE_",
        Backend::Postgres => "PG_",
    };
    let env = std::fs::read_to_string(Path::new(FIXTURES).join("tokens.env")).unwrap();
    env.lines()
        .find_map(|l| l.strip_prefix(prefix)?.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("{prefix}{key} in tokens.env"))
        .to_owned()
}

/// Puts the release's database in `db`: the SQLite file copied, the PostgreSQL dump loaded.
fn restore(db: &TestDb) {
    match db.url.strip_prefix("sqlite://") {
        Some(file) => {
            std::fs::copy(Path::new(FIXTURES).join("telehub.db"), file).unwrap();
        }
        None => {
            let dump = Path::new(FIXTURES).join("postgres.sql");
            let out = std::process::Command::new("psql")
                .args([&db.url, "-q", "-v", "ON_ERROR_STOP=1", "-f"])
                .arg(&dump)
                .output()
                .expect("psql runs (PostgreSQL's client is installed with the server)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

async fn a_database_of_the_previous_release_opens_with_everything_it_held(b: Backend) {
    let db = TestDb::new(b).await;
    restore(&db);
    let mut settings = test_settings(&db);
    // The fixture's readings are of 2026-12-01 and must outlive the default 30 days.
    settings.retention.raw = telehub::config::Keep::Forever;
    settings.retention.minute = telehub::config::Keep::Forever;
    let before = every_reading(&db.url).await;
    assert_eq!(before.len(), 3 * 120 + 1);
    let hub = telehub::hub::start(settings)
        .await
        .expect("the hub migrates the release's database");
    assert_eq!(
        every_reading(&db.url).await,
        before,
        "every reading kept as it was"
    );
    if b == Backend::Postgres {
        // `readings` is partitioned by time now, its rows in the partition of their day.
        let kind: Vec<(String,)> = sql_rows(
            &db.url,
            "SELECT relkind::text FROM pg_class WHERE relname = 'readings'",
            &[],
        )
        .await;
        assert_eq!(kind, [("p".to_owned(),)], "a partitioned table");
        let homes: Vec<(String, i64)> = sql_rows(
            &db.url,
            "SELECT tableoid::regclass::text, count(*) FROM readings GROUP BY 1",
            &[],
        )
        .await;
        assert_eq!(homes, [("readings_p20261201".to_owned(), 3 * 120 + 1)]);
        let parts = hub.state.store.partitions().await.unwrap().unwrap();
        assert!(parts.iter().any(|p| p.bound == Bound::Default), "{parts:?}");
    }
    let base = hub.base_url();
    let viewer = token(b, "VIEWER_TOKEN");
    let get = |path: String| {
        let (base, viewer) = (base.clone(), viewer.clone());
        async move {
            let resp = reqwest::Client::new()
                .get(format!("{base}{path}"))
                .bearer_auth(viewer)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap();
            assert_eq!(status, 200, "{path}: {body}");
            body
        }
    };
    let devices = get("/v1/devices".into()).await;
    let names: Vec<&str> = (devices.as_array().unwrap().iter())
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["boiler-1", "boiler-2", "gw-1"], "{devices}");
    assert_eq!(
        devices[0]["sensors"],
        json!(["burner", "mode", "temperature"])
    );
    assert_eq!(devices[2]["gateway_for"], json!(["boiler-2"]));
    let range = "from=2026-12-01T00:00:00Z&to=2026-12-01T02:00:00Z";
    let temps = get(format!(
        "/v1/readings?device=boiler-1&sensor=temperature&{range}&limit=1000"
    ))
    .await;
    let points = temps["points"].as_array().unwrap();
    assert_eq!(points.len(), 120, "{temps}");
    assert_eq!(
        points[0],
        json!({"ts": "2026-12-01T00:00:00.000000Z", "value": 60.5})
    );
    let hours = get(format!(
        "/v1/readings?device=boiler-1&sensor=temperature&{range}&every=1h&agg=count"
    ))
    .await;
    let counts: Vec<Option<f64>> = (hours["points"].as_array().unwrap().iter())
        .map(|p| p["value"].as_f64())
        .collect();
    assert_eq!(counts, [Some(60.0), Some(60.0)], "{hours}");
    let modes = get(format!(
        "/v1/readings?device=boiler-1&sensor=mode&{range}&limit=2"
    ))
    .await;
    assert_eq!(modes["points"][0]["value"], "heating");
    let burner = get(format!(
        "/v1/readings?device=boiler-1&sensor=burner&{range}&limit=2"
    ))
    .await;
    assert_eq!(burner["points"][1]["value"], false);
    // Rules are an admin's to list over HTTP: read what the hub loaded.
    let rules = hub.state.store.alert_rules().await.unwrap();
    let rules: Vec<(&str, bool)> = (rules.iter())
        .map(|r| (r.name.as_str(), r.spec.contains("boiler-*/temperature")))
        .collect();
    assert_eq!(rules, [("boiler-hot", true)]);
    let commands = get("/v1/commands?device=boiler-1".into()).await;
    assert_eq!(
        commands["commands"][0]["name"], "set_interval",
        "{commands}"
    );
    assert_eq!(commands["commands"][0]["params"], json!({"seconds": 10}));
    // The release's device and gateway tokens still authenticate, and new readings are stored.
    for (key, device) in [("BOILER_TOKEN", "boiler-1"), ("GATEWAY_TOKEN", "boiler-2")] {
        let url = format!("{}/v1/ingest", base.replacen("http", "ws", 1));
        let mut ws = connect(&url, Some(&token(b, key))).await.unwrap();
        let r = json!({"sensor": "temperature", "value": 70.0, "ts": base_ts()});
        send_json(
            &mut ws,
            &json!({"id": 1, "device": device, "readings": [r]}),
        )
        .await;
        assert_eq!(
            next_json(&mut ws).await,
            json!({"ack": 1, "stored": 1}),
            "{key}"
        );
    }
    hub.stop().await;
}
both_backends!(a_database_of_the_previous_release_opens_with_everything_it_held);
