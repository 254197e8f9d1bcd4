//! `telehub bridge serial` as a real process.

use crate::checked;
use crate::helpers::*;
use crate::pty::PtyPair;
use std::process::{Command, Stdio};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_runs_every_configured_port_and_prints_a_summary_when_stopped() {
    let app = spawn_app(Backend::Sqlite).await;
    app.device("meter-1").await;
    let token = app.gateway("gw", &["meter-1"]).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        PtyPair::new(dir.path(), "a").await,
        PtyPair::new(dir.path(), "b").await,
    );
    let config = dir.path().join("bridge.toml");
    let entry = |port: &std::path::Path, extra: &str| {
        format!(
            "[[bridge.serial]]\nport = \"{}\"\nhub = \"{}\"\ntoken = \"{token}\"\nlinger = \"20ms\"\n{extra}\n",
            port.display(),
            app.ws("")
        )
    };
    std::fs::write(
        &config,
        entry(&a.port, "") + &entry(&b.port, "checksum_required = false"),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_telehub"))
        .args(["bridge", "serial", "--config", config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    a.write(checked("temperature=20.5").as_bytes());
    a.write(b"unchecked=1\n");
    b.write(b"device=meter-1,kwh=12.5\n");
    app.wait_stored("gw", 1).await;
    app.wait_stored("meter-1", 1).await;

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summaries: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(summaries.len(), 2, "{summaries:?}");
    assert_eq!(summaries[0]["port"], a.port.display().to_string());
    assert_eq!(summaries[0]["forwarded"], 1);
    assert_eq!(summaries[0]["bad_lines"]["missing_checksum"], 1);
    assert_eq!(summaries[1]["forwarded"], 1);
    assert!(stderr.contains("missing_checksum"), "bad lines are logged");
}

#[test]
fn without_a_port_or_config_entries_it_says_what_to_give() {
    let out = Command::new(env!("CARGO_BIN_EXE_telehub"))
        .args(["bridge", "serial", "--hub", "ws://127.0.0.1:1"])
        .env_remove("TELEHUB_BRIDGE_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--port") && err.contains("[[bridge.serial]]"),
        "{err}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_telehub"))
        .args([
            "bridge",
            "serial",
            "--port",
            "/dev/null",
            "--hub",
            "ftp://h:1",
            "--token",
            "t",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ws://"));
}
