//! Commands through the bridge (docs/commands.md, protocol.md §6) against a real hub
//! and real ptys: the hub's command comes out of the port as a `!cmd` line, and the
//! device's `!ack` and `!res` lines reach the hub, the answer also when it was written
//! while the hub was down.

use crate::bridge::{Bridge, restart_hub, rig};
use crate::checked;
use crate::helpers::*;
use serde_json::{Value, json};
use std::io::BufRead;
use std::time::Duration;
use telehub::auth::Role;
use telehub::protocol::serial::commands::CommandLine;
use tokio::sync::mpsc;

/// Lines the bridge writes to the port, as the device reads them.
pub fn device_reads(device_end: &std::path::Path) -> mpsc::UnboundedReceiver<String> {
    let file = std::fs::File::open(device_end).expect("open the device end to read");
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(file).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

pub async fn next_line(lines: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(WAIT, lines.recv())
        .await
        .expect("a line on the port in time")
        .expect("the port is open")
}

pub async fn state(app: &TestApp, token: &str, id: &str, want: &str) -> Value {
    let path = format!("/v1/commands/{id}");
    let get = || app.get(&path, Some(token));
    let (_, c) = eventually(WAIT, &format!("command {id} {want}"), get, |(_, c)| {
        c["state"] == want
    })
    .await;
    c
}

/// Creates `set_interval {"seconds": 10}` for pump-3; its id.
async fn set_interval(app: &TestApp, op: &str) -> String {
    let created: Value = reqwest::Client::new()
        .post(format!("{}/v1/devices/pump-3/commands", app.http()))
        .bearer_auth(op)
        .body(json!({"name": "set_interval", "params": {"seconds": 10}}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["id"].as_str().expect("created").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_reaches_the_port_and_the_devices_answer_reaches_the_hub_even_across_an_outage() {
    let (mut app, pty, s, _dir) = rig(&["pump-3"]).await;
    let addr = app.hub().addr;
    let op = app.store.add_token("op", Role::Operator).await.unwrap();
    let mut port = device_reads(&pty.device_end);
    let bridge = Bridge::start(s);
    // The bridge is connected once a reading of it is stored.
    pty.write(checked("n=1").as_bytes());
    app.wait_stored("gw", 1).await;

    let id = set_interval(&app, &op).await;
    let line = next_line(&mut port).await;
    let cmd = CommandLine::parse(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"));
    assert_eq!(cmd.id.as_str(), id);
    assert_eq!(cmd.name.as_str(), "set_interval");
    assert_eq!(cmd.device.as_ref().map(|d| d.as_str()), Some("pump-3"));
    assert_eq!(Value::Object(cmd.params), json!({"seconds": 10}));
    assert_eq!(state(&app, &op, &id, "sent").await["attempts"], 1);

    pty.write(checked(&format!("!ack {id}")).as_bytes());
    state(&app, &op, &id, "received").await;

    // The answer is written while the hub is down: the bridge keeps it and sends it on
    // the next connection.
    app.stop().await;
    pty.write(checked(&format!(r#"!res {id} ok {{"seconds":10}}"#)).as_bytes());
    pty.write(checked("n=2").as_bytes());
    bridge
        .wait_stats("the line read", |s| s.lines_read == 4)
        .await;
    restart_hub(&mut app, addr).await;
    let done = state(&app, &op, &id, "succeeded").await;
    assert_eq!(done["result"], json!({"seconds": 10}));
    // A bad command line is counted as one, never forwarded.
    pty.write(checked(&format!("!res {id} done")).as_bytes());
    bridge
        .wait_stats("the bad command line counted", |s| {
            s.bad_lines.get("bad_command_line") == Some(&1)
        })
        .await;
    let s = bridge.stop().await;
    assert_eq!(s.lines_read, 5, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_the_hub_has_not_stored_outlives_a_restart_of_the_bridge_with_a_state_file() {
    let (mut app, pty, mut s, dir) = rig(&["pump-3"]).await;
    let state_file = dir.path().join("bridge.state");
    s.state_file = Some(state_file.clone());
    s.drain_timeout = Duration::from_millis(200);
    let addr = app.hub().addr;
    let op = app.store.add_token("op", Role::Operator).await.unwrap();
    let mut port = device_reads(&pty.device_end);
    let bridge = Bridge::start(s.clone());
    pty.write(checked("n=1").as_bytes());
    app.wait_stored("gw", 1).await;
    let id = set_interval(&app, &op).await;
    let line = next_line(&mut port).await;
    assert!(line.starts_with(&format!("!cmd {id} ")), "{line}");
    pty.write(checked(&format!("!ack {id}")).as_bytes());
    state(&app, &op, &id, "received").await;

    // The device answers while the hub is down, and the bridge stops before it is back.
    app.stop().await;
    pty.write(checked(&format!(r#"!res {id} ok {{"seconds":10}}"#)).as_bytes());
    bridge
        .wait_stats("the result read", |s| s.lines_read == 3)
        .await;
    bridge.stop().await;

    restart_hub(&mut app, addr).await;
    let bridge = Bridge::start(s);
    let done = state(&app, &op, &id, "succeeded").await;
    assert_eq!(done["result"], json!({"seconds": 10}));
    // Stored and confirmed (`result_stored`): nothing is left to send on the next start.
    let results = telehub::bridge::result_log::path_beside(&state_file);
    let read = || async { std::fs::read_to_string(&results).unwrap_or_default() };
    let stored = format!("S {id}");
    eventually(WAIT, "result_stored noted", read, |t| t.contains(&stored)).await;
    bridge.stop().await;
    let (_log, left) = telehub::bridge::result_log::ResultLog::open(&results, 8).unwrap();
    assert!(left.is_empty(), "{left:?}");
}
