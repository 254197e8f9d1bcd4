//! `telehub tail`: the real binary following a real hub's live feed.

use crate::helpers::*;
use serde_json::json;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

pub fn tail(server: &str, token: &str, patterns: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_telehub"))
        .arg("tail")
        .args(patterns)
        .args(["--server", server, "--token", token])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("runs telehub tail")
}

/// The next stdout line that contains `needle`, within [`WAIT`].
pub(crate) async fn line_with(lines: &mut Lines<BufReader<ChildStdout>>, needle: &str) -> String {
    tokio::time::timeout(WAIT, async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("tail ended before printing {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no line with {needle:?} in time"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_matching_readings_as_lines_and_exits_cleanly_on_ctrl_c() {
    let app = spawn_app(Backend::Sqlite).await;
    let viewer = app.viewer().await;
    let mut child = tail(&app.http(), &viewer, &["boiler-1/*"]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();

    let mut ws = app.connect_device(&app.device("boiler-1").await).await;
    // The status line proves the subscription is in place (sent on subscribe or on connect).
    let online = line_with(&mut lines, "boiler-1 online").await;
    assert!(online.ends_with("Z boiler-1 online"), "{online}");

    let mut other = app.connect_device(&app.device("pump-7").await).await;
    let t = base_ts();
    send_json(
        &mut other,
        &json!({"id": 1, "readings": [{"sensor": "rpm", "value": 3.0, "ts": t}]}),
    )
    .await;
    assert_eq!(next_json(&mut other).await["ack"], 1);
    send_json(
        &mut ws,
        &json!({"id": 1, "readings": [{"sensor": "temperature", "value": 21.5, "ts": t, "unit": "Cel"}]}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["ack"], 1);
    let ts = telehub::domain::Timestamp::from_unix_seconds(t).unwrap();
    let line = line_with(&mut lines, "temperature").await;
    assert_eq!(line, format!("{ts} boiler-1/temperature 21.5 Cel"));

    drop(ws);
    line_with(&mut lines, "boiler-1 offline").await;

    let pid = child.id().expect("running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("tail stops on Ctrl-C")
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let rest = String::from_utf8_lossy(&out.stdout);
    assert!(!rest.contains("pump-7"), "pattern filters: {rest}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_exits_1_with_one_line_when_the_token_is_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    let device_token = app.device("d1").await;
    for (token, code) in [("th_nonsense", "401"), (device_token.as_str(), "403")] {
        let out = tokio::time::timeout(WAIT, tail(&app.http(), token, &[]).wait_with_output())
            .await
            .expect("tail gives up at once")
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(code) && err.contains("token"), "{err}");
    }
    let out = tail("127.0.0.1:1", "x", &[])
        .wait_with_output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a --server without scheme is a usage error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_without_server_follows_the_configured_hub() {
    let app = spawn_app(Backend::Sqlite).await;
    let viewer = app.viewer().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hub.toml");
    // An unspecified listen address is reached on loopback.
    let listen = format!("0.0.0.0:{}", app.hub().addr.port());
    std::fs::write(&config, format!("[server]\nlisten = \"{listen}\"\n")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_telehub"))
        .args([
            "tail",
            "--config",
            config.to_str().unwrap(),
            "--token",
            &viewer,
        ])
        .env_remove("RUST_LOG")
        .env_remove("TELEHUB_SERVER")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("runs telehub tail");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let _ws = app.connect_device(&app.device("boiler-2").await).await;
    line_with(&mut lines, "boiler-2 online").await;
}
