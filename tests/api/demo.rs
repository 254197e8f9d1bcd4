//! `telehub serve --demo` (a real process): live readings at once, idempotent restarts;
//! and the storage call behind them, `reissue_token`, on both backends.

use crate::both_backends;
use crate::helpers::*;
use crate::procs::*;
use serde_json::Value;
use std::time::Duration;
use telehub::auth::{Role, hash_token};
use telehub::domain::{DeviceName, Timestamp};
use telehub::storage::StorageError;

async fn get(url: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Points of `device`/`sensor` from `from` on.
async fn points_since(
    hub: &HubProcess,
    token: &str,
    device: &str,
    sensor: &str,
    from: Timestamp,
) -> Vec<Value> {
    let url = format!(
        "http://{}/v1/readings?device={device}&sensor={sensor}&from={}",
        hub.addr,
        from.to_rfc3339()
    );
    let body: Value = get(&url, token).await.json().await.unwrap();
    body["points"].as_array().cloned().unwrap_or_default()
}

/// Waits until the demo's kitchen has sent two temperatures and its freezer a power reading.
async fn wait_for_live_readings(hub: &HubProcess, token: &str, since: Timestamp) {
    let look = || async {
        let kitchen = points_since(hub, token, "demo-room-kitchen", "temperature", since).await;
        let freezer = points_since(hub, token, "demo-freezer-1", "power", since).await;
        (kitchen.len(), freezer.len())
    };
    let what = "2 kitchen temperatures and a freezer power reading (counts seen)";
    eventually(WAIT, what, look, |&(k, f)| k >= 2 && f >= 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_demo_streams_live_readings_at_once_and_restarts_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("demo.db").display());
    let started = Timestamp::now();
    let mut hub = HubProcess::start(&db, "127.0.0.1:0", dir.path(), &["--demo"]).await;
    let token = hub
        .viewer_token()
        .expect("the dashboard URL carries a viewer token");
    assert!(
        hub.banner
            .iter()
            .any(|l| l.starts_with("demo: 8 simulated devices")),
        "{:?}",
        hub.banner
    );
    wait_for_live_readings(&hub, &token, started).await;

    let devices: Value = get(&format!("http://{}/v1/devices", hub.addr), &token)
        .await
        .json()
        .await
        .unwrap();
    let demo: Vec<&Value> = devices
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["name"].as_str().unwrap().starts_with("demo-"))
        .collect();
    assert_eq!(demo.len(), 8, "{devices}");
    assert!(demo.iter().all(|d| d["online"] == true), "{devices}");
    let latest = |device: &str, sensor: &str| {
        let d = demo.iter().find(|d| d["name"] == device).unwrap();
        d["latest"][sensor]["value"].clone()
    };
    assert!(latest("demo-freezer-1", "door").is_boolean(), "{devices}");
    assert!(latest("demo-boiler-2", "burner").is_boolean(), "{devices}");
    let mode = latest("demo-freezer-1", "mode");
    assert!(mode == "cooling" || mode == "defrost", "{devices}");
    let hour_ago = started.saturating_sub(Duration::from_secs(3600));
    let history = points_since(&hub, &token, "demo-outdoor-1", "pressure", hour_ago).await;
    assert!(
        history.len() >= 100,
        "an hour of history at once: {}",
        history.len()
    );
    assert!(hub.terminate().await.success());
    let before_restart = total_readings(&db).await;

    let restarted = Timestamp::now();
    let mut hub = HubProcess::start(&db, "127.0.0.1:0", dir.path(), &["--demo"]).await;
    let new_token = hub.viewer_token().unwrap();
    assert_ne!(new_token, token);
    let old = get(&format!("http://{}/v1/devices", hub.addr), &token).await;
    assert_eq!(
        old.status(),
        401,
        "the previous demo viewer token is revoked"
    );
    wait_for_live_readings(&hub, &new_token, restarted).await;
    let devices: Value = get(&format!("http://{}/v1/devices", hub.addr), &new_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        devices.as_array().unwrap().len(),
        8,
        "the same eight devices: {devices}"
    );
    // The history resent on restart falls on the same timestamps: stored once. Only the
    // minutes since the first start are new: at most 8 devices × 3 measurements per 2 s
    // (there are 23), and states (3 in the fleet) on change, at start and once a minute.
    let elapsed = (Timestamp::now().as_micros() - started.as_micros()) / 1_000_000 + 2;
    let added = total_readings(&db).await - before_restart;
    assert!(
        added <= 8 * 3 * (elapsed / 2 + 2 + elapsed / 30),
        "added {added} in {elapsed} s: history was stored again"
    );
    assert!(hub.terminate().await.success(), "{}", hub.logs());
}

async fn reissued_tokens_replace_the_old_ones(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app.device("reissue-1").await;
    let name = DeviceName::parse("reissue-1").unwrap();
    let second = app
        .store
        .reissue_token("reissue-1", Role::Device, Some(&name))
        .await
        .unwrap();
    assert!(
        app.store
            .authenticate(&hash_token(&first))
            .await
            .unwrap()
            .is_none()
    );
    let mut ws = app.connect_device(&second).await;
    send_json(
        &mut ws,
        &serde_json::json!({"id": 1, "readings": [reading("t", 1.0, base_ts())]}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["ack"], 1);

    let v1 = app
        .store
        .reissue_token("wall", Role::Viewer, None)
        .await
        .unwrap();
    let v2 = app
        .store
        .reissue_token("wall", Role::Viewer, None)
        .await
        .unwrap();
    assert!(
        app.store
            .authenticate(&hash_token(&v1))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        app.store
            .authenticate(&hash_token(&v2))
            .await
            .unwrap()
            .unwrap()
            .can_view()
    );
    assert!(
        app.store
            .authenticate(&hash_token(&second))
            .await
            .unwrap()
            .is_some(),
        "other labels are untouched"
    );

    app.store.revoke_device(&name).await.unwrap();
    let err = app
        .store
        .reissue_token("reissue-1", Role::Device, Some(&name))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::NoSuchDevice(_)), "{err}");
    let ghost = DeviceName::parse("ghost").unwrap();
    assert!(
        app.store
            .reissue_token("ghost", Role::Device, Some(&ghost))
            .await
            .is_err()
    );
}
both_backends!(reissued_tokens_replace_the_old_ones);
