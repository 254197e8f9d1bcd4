//! Desired device configuration (issue 26, protocol.md §14) through real interfaces:
//! the operator API with `If-Match`, history, WebSocket devices (on connect when behind,
//! and on change within a second), HTTP devices' long-poll and report, the CLI writing
//! the database while a hub delivers, and firmware-sim applying `interval_s` — on both
//! backends where storage matters.

use crate::both_backends;
use crate::helpers::*;
use crate::procs::{spawn_sim, telehub_cli as telehub};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use telehub::auth::Role;

async fn token(app: &TestApp, role: Role) -> String {
    let name = format!("test-{}-{}", role.as_str(), rand_suffix());
    app.store.add_token(&name, role).await.unwrap()
}

/// `METHOD path` with `token`, a text `body` and an `If-Match`: status, ETag, body.
async fn request(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Option<String>,
    if_match: Option<&str>,
) -> (u16, Option<String>, Value) {
    let url = format!("{}{path}", app.http());
    let c = reqwest::Client::new();
    let mut req = match method {
        "PUT" => c.put(url),
        _ => c.get(url),
    };
    if let Some(b) = body {
        req = req.body(b);
    }
    if let Some(m) = if_match {
        req = req.header("If-Match", m);
    }
    let resp = req.bearer_auth(token).send().await.unwrap();
    let status = resp.status().as_u16();
    let etag = resp
        .headers()
        .get("etag")
        .map(|e| e.to_str().unwrap().to_owned());
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, etag, body)
}

/// Sets d's desired configuration, asserting `200`; the config object.
pub async fn set(
    app: &TestApp,
    op: &str,
    device: &str,
    desired: Value,
    if_match: Option<&str>,
) -> Value {
    let body = json!({ "desired": desired }).to_string();
    let path = format!("/v1/devices/{device}/config");
    let (status, _, c) = request(app, "PUT", &path, op, Some(body), if_match).await;
    assert_eq!(status, 200, "{c}");
    c
}

pub async fn config(app: &TestApp, viewer: &str, device: &str) -> Value {
    let path = format!("/v1/devices/{device}/config");
    let (status, _, c) = request(app, "GET", &path, viewer, None, None).await;
    assert_eq!(status, 200, "{c}");
    c
}

/// The next frame, which must come within a second: the config frame.
async fn config_within_a_second(ws: &mut Ws) -> Value {
    let started = Instant::now();
    let frame = tokio::time::timeout(Duration::from_secs(1), next_json(ws))
        .await
        .expect("a config frame within 1 s");
    assert!(started.elapsed() < Duration::from_secs(1));
    frame
}

async fn report(ws: &mut Ws, version: u64, state: Value) -> Value {
    send_json(
        ws,
        &json!({"config_reported": {"version": version, "state": state}}),
    )
    .await;
    next_json(ws).await
}

async fn desired_config_reaches_devices_offline_or_online_and_if_match_guards_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let op = token(&app, Role::Operator).await;
    let viewer = app.viewer().await;
    let device = app.device("d1").await;
    let fresh = config(&app, &viewer, "d1").await;
    assert_eq!(
        (&fresh["version"], &fresh["in_sync"]),
        (&json!(0), &json!(true))
    );
    // Set while offline: delivered on connect.
    let c = set(&app, &op, "d1", json!({"interval_s": 10}), None).await;
    assert_eq!(
        (&c["version"], &c["in_sync"]),
        (&json!(1), &json!(false)),
        "{c}"
    );
    let mut ws = connect(&app.ws("/v1/ingest?commands=1"), Some(&device))
        .await
        .unwrap();
    assert_eq!(
        config_within_a_second(&mut ws).await,
        json!({"config": {"version": 1, "desired": {"interval_s": 10}}})
    );
    assert_eq!(
        report(&mut ws, 1, json!({"interval_s": 10})).await,
        json!({"config_stored": 1})
    );
    let c = config(&app, &viewer, "d1").await;
    assert_eq!(
        (&c["reported_version"], &c["reported"], &c["in_sync"]),
        (&json!(1), &json!({"interval_s": 10}), &json!(true)),
        "{c}"
    );
    let (_, devices) = app.get("/v1/devices", Some(&viewer)).await;
    assert_eq!(devices[0]["in_sync"], true, "{devices}");
    // Set while online, guarded by the version read: delivered within a second.
    let path = "/v1/devices/d1/config";
    let (_, etag, _) = request(&app, "GET", path, &viewer, None, None).await;
    assert_eq!(etag.as_deref(), Some("\"1\""));
    let c = set(&app, &op, "d1", json!({"interval_s": 5}), Some("\"1\"")).await;
    assert_eq!(c["version"], 2);
    assert_eq!(
        config_within_a_second(&mut ws).await,
        json!({"config": {"version": 2, "desired": {"interval_s": 5}}})
    );
    // A stale If-Match: 409, nothing changed.
    let body = json!({"desired": {"interval_s": 1}}).to_string();
    let (status, _, e) = request(&app, "PUT", path, &op, Some(body), Some("\"1\"")).await;
    assert_eq!(status, 409, "{e}");
    assert!(e["detail"].as_str().unwrap().contains("version 2"), "{e}");
    let c = config(&app, &viewer, "d1").await;
    assert_eq!(
        (&c["version"], &c["desired"]),
        (&json!(2), &json!({"interval_s": 5}))
    );
    // Not reported yet: a reconnecting device gets it again.
    ws.close(None).await.unwrap();
    let mut ws = connect(&app.ws("/v1/ingest?commands=1"), Some(&device))
        .await
        .unwrap();
    assert_eq!(
        config_within_a_second(&mut ws).await["config"]["version"],
        2
    );
    assert_eq!(
        report(&mut ws, 2, json!({"interval_s": 5})).await,
        json!({"config_stored": 2})
    );
    let nack = report(&mut ws, 9, json!({})).await;
    assert!(
        nack["detail"].as_str().unwrap().contains("never desired"),
        "{nack}"
    );
    // The history, newest first, with who set each desired version.
    let (status, _, h) = request(
        &app,
        "GET",
        "/v1/devices/d1/config/history",
        &viewer,
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{h}");
    let kinds: Vec<(&str, u64)> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["version"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("reported", 2),
            ("desired", 2),
            ("reported", 1),
            ("desired", 1)
        ]
    );
    assert!(
        h[1]["by"].as_str().unwrap().starts_with("test-operator"),
        "{h}"
    );
    assert_eq!(h[1]["document"], json!({"interval_s": 5}));
}
both_backends!(desired_config_reaches_devices_offline_or_online_and_if_match_guards_it);

async fn bad_configurations_are_refused_with_a_clear_detail(backend: Backend) {
    let app = spawn_app(backend).await;
    let op = token(&app, Role::Operator).await;
    let viewer = app.viewer().await;
    app.device("d1").await;
    let path = "/v1/devices/d1/config";
    let big = json!({"desired": {"s": "x".repeat(16 * 1024)}}).to_string();
    for (who, path, body, if_match, status, says) in [
        (
            &op,
            path,
            r#"{"desired": [1]}"#.to_owned(),
            None,
            400,
            "JSON object",
        ),
        (
            &op,
            path,
            r#"{"desired": 3}"#.to_owned(),
            None,
            400,
            "JSON object",
        ),
        (
            &op,
            path,
            r#"{"wanted": {}}"#.to_owned(),
            None,
            400,
            "desired",
        ),
        (&op, path, big, None, 413, "16 KiB"),
        (
            &op,
            path,
            r#"{"desired": {}}"#.to_owned(),
            Some("x"),
            400,
            "If-Match",
        ),
        (
            &op,
            "/v1/devices/nope/config",
            r#"{"desired": {}}"#.to_owned(),
            None,
            404,
            "nope",
        ),
        (
            &viewer,
            path,
            r#"{"desired": {}}"#.to_owned(),
            None,
            403,
            "operator",
        ),
    ] {
        let (got, _, e) = request(&app, "PUT", path, who, Some(body.clone()), if_match).await;
        assert_eq!(got, status, "{body:.80}: {e}");
        assert!(
            e["detail"].as_str().unwrap().contains(says),
            "{body:.80}: {e}"
        );
    }
    assert_eq!(
        config(&app, &viewer, "d1").await["version"],
        0,
        "nothing stored"
    );
    let (status, _, _) = request(
        &app,
        "GET",
        "/v1/devices/nope/config/history",
        &viewer,
        None,
        None,
    )
    .await;
    assert_eq!(status, 404);
    // At least 20 versions of each kind are kept, newest first.
    for i in 1..=25 {
        set(&app, &op, "d1", json!({"n": i}), None).await;
    }
    let (_, _, h) = request(
        &app,
        "GET",
        "/v1/devices/d1/config/history",
        &viewer,
        None,
        None,
    )
    .await;
    let versions: Vec<u64> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, (6..=25).rev().collect::<Vec<_>>());
}
both_backends!(bad_configurations_are_refused_with_a_clear_detail);

async fn the_cli_sets_a_config_that_a_connected_device_gets_within_a_second(backend: Backend) {
    let app = spawn_app(backend).await;
    let device = app.device("d1").await;
    let mut ws = connect(&app.ws("/v1/ingest?commands=1"), Some(&device))
        .await
        .unwrap();
    let db = app.db.url.clone();
    let out = telehub(
        &db,
        &[
            "device",
            "config",
            "d1",
            "--set",
            "interval_s=5",
            "--set",
            "mode=eco",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let row: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(row["version"], 1, "{row}");
    let frame = config_within_a_second(&mut ws).await;
    assert_eq!(
        frame,
        json!({"config": {"version": 1, "desired": {"interval_s": 5, "mode": "eco"}}})
    );
    // --set keeps the other keys; --desired replaces the document.
    let out = telehub(
        &db,
        &[
            "device",
            "config",
            "d1",
            "--set",
            "interval_s=7",
            "--if-match",
            "1",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let frame = config_within_a_second(&mut ws).await;
    assert_eq!(
        frame["config"]["desired"],
        json!({"interval_s": 7, "mode": "eco"})
    );
    let out = telehub(
        &db,
        &[
            "device",
            "config",
            "d1",
            "--desired",
            r#"{"a": 1}"#,
            "--if-match",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "a stale --if-match: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("version 2"),
        "{out:?}"
    );
    let shown: Value =
        serde_json::from_slice(&telehub(&db, &["device", "config", "d1"]).stdout).unwrap();
    assert_eq!(
        (&shown["version"], &shown["in_sync"]),
        (&json!(2), &json!(false)),
        "{shown}"
    );
    for bad in [
        vec!["device", "config", "d1", "--desired", "[1]"],
        vec!["device", "config", "d1", "--desired", "{nope"],
        vec!["device", "config", "d1", "--set", "novalue"],
        vec!["device", "config", "nope", "--set", "a=1"],
    ] {
        let out = telehub(&db, &bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {out:?}");
    }
}
both_backends!(the_cli_sets_a_config_that_a_connected_device_gets_within_a_second);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_device_long_polls_its_config_and_reports_it() {
    let app = spawn_app(Backend::Sqlite).await;
    let op = token(&app, Role::Operator).await;
    let device = app.device("d1").await;
    let url = format!("{}/v1/config?known=0&wait=20s", app.http());
    let poll = {
        let device = device.clone();
        tokio::spawn(async move {
            let resp = reqwest::Client::new()
                .get(url)
                .bearer_auth(device)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await; // the poll is waiting
    set(&app, &op, "d1", json!({"interval_s": 3}), None).await;
    let (status, doc) = tokio::time::timeout(Duration::from_secs(2), poll)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (status, doc),
        (200, json!({"version": 1, "desired": {"interval_s": 3}}))
    );
    let (status, _, _) = request(
        &app,
        "GET",
        "/v1/config?known=1&wait=100ms",
        &device,
        None,
        None,
    )
    .await;
    assert_eq!(status, 204, "nothing newer than known");
    let report = json!({"version": 1, "state": {"interval_s": 3}}).to_string();
    let (status, _, c) = request(
        &app,
        "PUT",
        "/v1/config/reported",
        &device,
        Some(report),
        None,
    )
    .await;
    assert_eq!((status, &c["in_sync"]), (200, &json!(true)), "{c}");
    let (status, _, e) = request(&app, "GET", "/v1/config", &op, None, None).await;
    assert_eq!(status, 403, "{e}");
    let (status, _, e) = request(
        &app,
        "PUT",
        "/v1/config/reported",
        &device,
        Some("{\"version\": 1}".into()),
        None,
    )
    .await;
    assert_eq!(status, 400, "{e}");
    assert!(e["detail"].as_str().unwrap().contains("state"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firmware_sim_devices_apply_interval_s_and_report_it() {
    let app = spawn_app(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.txt");
    std::fs::write(&tokens, format!("sim-1 {}\n", app.device("sim-1").await)).unwrap();
    let op = token(&app, Role::Operator).await;
    let viewer = app.viewer().await;
    let args = ["--commands", "--rate", "1", "--backoff-initial", "50ms"];
    let mut sim = spawn_sim(&app.hub().addr.to_string(), &tokens, &args, None);
    set(&app, &op, "sim-1", json!({"interval_s": 0.2}), None).await;
    let c = eventually(
        WAIT,
        "sim-1 in sync",
        || config(&app, &viewer, "sim-1"),
        |c| c["in_sync"] == true,
    )
    .await;
    assert_eq!(c["reported"], json!({"interval_s": 0.2}), "{c}");
    // Five samples a second now: 20 readings take at most 2 s, not 7.
    let before = app.stored("sim-1").await.len();
    let started = Instant::now();
    eventually(
        WAIT,
        "readings at the new interval",
        || app.stored("sim-1"),
        |r| r.len() >= before + 20,
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    let _ = sim.kill().await;
}
