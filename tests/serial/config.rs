//! Desired configuration through the bridge (docs/device-config.md, protocol.md §6 and
//! §14) against a real hub and real ptys: a device's configuration comes out of the
//! gateway's port as a `!cfg` line naming it, and the device's `!cfgok` reaches the hub
//! and makes it `in_sync`; `firmware-sim serial` answers `!cfg` and `!cmd` itself.

use crate::bridge::{Bridge, rig};
use crate::checked;
use crate::commands::{device_reads, next_line, state};
use crate::helpers::*;
use crate::procs::firmware_sim;
use serde_json::{Value, json};
use telehub::auth::Role;
use telehub::protocol::serial::config::{ConfigKind, ConfigLine};

async fn set(app: &TestApp, op: &str, device: &str, desired: Value) {
    let resp = reqwest::Client::new()
        .put(format!("{}/v1/devices/{device}/config", app.http()))
        .bearer_auth(op)
        .body(json!({ "desired": desired }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// Waits until `device`'s configuration is in sync; the config object.
async fn in_sync(app: &TestApp, token: &str, device: &str) -> Value {
    let path = format!("/v1/devices/{device}/config");
    let get = || app.get(&path, Some(token));
    let what = format!("{device} in sync");
    let (_, c) = eventually(WAIT, &what, get, |(_, c)| c["in_sync"] == true).await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_reaches_the_port_as_cfg_and_the_devices_cfgok_makes_it_in_sync() {
    let (app, pty, s, _dir) = rig(&["pump-3"]).await;
    let op = app.store.add_token("op", Role::Operator).await.unwrap();
    let mut port = device_reads(&pty.device_end);
    let bridge = Bridge::start(s);
    pty.write(checked("n=1").as_bytes());
    app.wait_stored("gw", 1).await;

    set(&app, &op, "pump-3", json!({"interval_s": 5})).await;
    let line = next_line(&mut port).await;
    let cfg = ConfigLine::parse(line.as_bytes(), true).unwrap_or_else(|e| panic!("{line}: {e}"));
    assert_eq!(cfg.kind, ConfigKind::Desired);
    assert_eq!(cfg.device.as_ref().map(|d| d.as_str()), Some("pump-3"));
    assert_eq!(cfg.doc.version, 1);
    assert_eq!(Value::Object(cfg.doc.document), json!({"interval_s": 5}));

    pty.write(checked(r#"!cfgok 1 device=pump-3 {"interval_s":5}"#).as_bytes());
    let c = in_sync(&app, &op, "pump-3").await;
    assert_eq!(c["reported"], json!({"interval_s": 5}));
    // A `!cfg` written by a device is a bad line, never forwarded.
    pty.write(checked(r#"!cfg 1 device=pump-3 {}"#).as_bytes());
    bridge
        .wait_stats("the bad config line counted", |s| {
            s.bad_lines.get("bad_command_line") == Some(&1)
        })
        .await;
    let history = app
        .get("/v1/devices/pump-3/config/history", Some(&op))
        .await
        .1;
    let reported = history.as_array().unwrap().iter();
    assert_eq!(reported.filter(|h| h["kind"] == "reported").count(), 1);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firmware_sim_serial_answers_cfg_and_cmd_lines_through_the_bridge() {
    let (app, pty, s, _dir) = rig(&["pump-3"]).await;
    let op = app.store.add_token("op", Role::Operator).await.unwrap();
    let bridge = Bridge::start(s);
    let mut sim = tokio::process::Command::new(firmware_sim())
        .args(["serial", "--port"])
        .arg(&pty.device_end)
        .args(["--device", "pump-3", "--rate", "20"])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("firmware-sim runs");
    app.wait_stored("pump-3", 3).await;

    set(
        &app,
        &op,
        "pump-3",
        json!({"interval_s": 0.5, "mode": "eco"}),
    )
    .await;
    let c = in_sync(&app, &op, "pump-3").await;
    assert_eq!(c["reported"], json!({"interval_s": 0.5, "mode": "eco"}));

    let created: Value = reqwest::Client::new()
        .post(format!("{}/v1/devices/pump-3/commands", app.http()))
        .bearer_auth(&op)
        .body(json!({"name": "set_interval", "params": {"seconds": 2}}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().expect("created");
    let done = state(&app, &op, id, "succeeded").await;
    assert_eq!(done["result"], json!({"seconds": 2.0}));
    let unknown: Value = reqwest::Client::new()
        .post(format!("{}/v1/devices/pump-3/commands", app.http()))
        .bearer_auth(&op)
        .body(json!({"name": "dance"}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    state(&app, &op, unknown["id"].as_str().unwrap(), "rejected").await;
    let _ = sim.kill().await;
    bridge.stop().await;
}
