//! The bridge in-process against a real hub and real ptys.

use crate::helpers::*;
use crate::pty::PtyPair;
use crate::{checked, settings};
use std::time::Duration;
use telehub::bridge::{self, RunningPort, SerialPortSettings, StatsSnapshot};
use telehub::hub;
use tokio_util::sync::CancellationToken;

pub struct Bridge {
    running: RunningPort,
    shutdown: CancellationToken,
}

impl Bridge {
    pub fn start(s: SerialPortSettings) -> Self {
        let shutdown = CancellationToken::new();
        let running = bridge::start_port(s, shutdown.clone()).expect("bridge starts");
        Self { running, shutdown }
    }
    fn stats(&self) -> StatsSnapshot {
        self.running.stats.snapshot()
    }
    pub async fn wait_stats(&self, what: &str, ok: impl Fn(&StatsSnapshot) -> bool) {
        eventually(WAIT, what, || async { self.stats() }, ok).await;
    }
    pub async fn stop(self) -> StatsSnapshot {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.running.finished())
            .await
            .expect("bridge stops")
    }
}

/// A hub with the gateway `gw` (allowed for `targets`), a pty pair, and bridge
/// settings joining them.
pub async fn rig(targets: &[&str]) -> (TestApp, PtyPair, SerialPortSettings, tempfile::TempDir) {
    let app = spawn_app(Backend::Sqlite).await;
    for t in targets {
        app.device(t).await;
    }
    let token = app.gateway("gw", targets).await;
    let dir = tempfile::tempdir().unwrap();
    let pty = PtyPair::new(dir.path(), "a").await;
    let s = settings(&app, &pty.port, &token);
    (app, pty, s, dir)
}

fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_lines_are_stored_with_their_own_or_the_receive_time_over_lf_crlf_and_split_writes() {
    let (app, pty, s, _dir) = rig(&[]).await;
    let bridge = Bridge::start(s);

    let ts = now_s() - 60;
    let before = chrono::Utc::now().timestamp_micros();
    pty.write(checked(&format!("ts={ts},temperature=21.5,humidity=40")).as_bytes());
    pty.write(checked("temperature=22").trim_end().as_bytes());
    pty.write(b"\n");
    pty.write(checked("ts=2026-01-01T00:00:00.5Z,humidity=41").as_bytes());
    // A line split across writes: the first half is read before the second is written.
    let split = checked("temperature=23.25");
    let (head, tail) = split.split_at(7);
    pty.write(
        [checked("pressure=1013").as_bytes(), head.as_bytes()]
            .concat()
            .as_slice(),
    );
    app.wait_stored("gw", 5).await;
    pty.write(tail.as_bytes());
    let rows = app.wait_stored("gw", 6).await;

    let find = |sensor: &str, value: f64| {
        rows.iter()
            .find(|r| r.0 == sensor && r.2 == value)
            .unwrap_or_else(|| panic!("{sensor}={value} stored: {rows:?}"))
            .1
    };
    assert_eq!(find("temperature", 21.5), ts * 1_000_000);
    assert_eq!(find("humidity", 40.0), ts * 1_000_000);
    assert_eq!(find("humidity", 41.0), 1_767_225_600_500_000);
    for (sensor, value) in [
        ("temperature", 22.0),
        ("pressure", 1013.0),
        ("temperature", 23.25),
    ] {
        let t = find(sensor, value);
        assert!(t >= before && t <= chrono::Utc::now().timestamp_micros());
    }
    let s = bridge.stop().await;
    assert_eq!((s.lines_read, s.forwarded, s.buffered), (5, 6, 0));
    assert!(s.bad_lines.is_empty(), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_bad_line_is_counted_and_nothing_of_it_is_stored() {
    let (app, pty, s, _dir) = rig(&[]).await;
    let bridge = Bridge::start(s);

    let long = format!("{}\n", "x".repeat(600));
    let bad: Vec<(Vec<u8>, &str)> = vec![
        (checked("t=abc").into(), "bad_value"),
        (checked("t=NaN").into(), "non_finite"),
        (checked("te mp=1").into(), "bad_name"),
        (checked("t=1,,u=2").into(), "syntax"),
        (checked("t=1,t=2").into(), "duplicate_sensor"),
        (checked("ts=yesterday,t=1").into(), "bad_time"),
        (checked("ts=4102444800,t=1").into(), "bad_time"),
        (checked("device=x").into(), "no_readings"),
        (checked(r#"{"readings":[]}"#).into(), "invalid_json_message"),
        (b"t=1\r\n".to_vec(), "missing_checksum"),
        (b"t=1*00\r\n".to_vec(), "bad_checksum"),
        (b"\x00\xff\xfe t=1 \x01\x02\n".to_vec(), "not_text"),
        (long.into_bytes(), "too_long"),
    ];
    for (line, _) in &bad {
        pty.write(line);
    }
    pty.write(b"\r\n\n");
    pty.write(checked("sentinel=1").as_bytes());
    let rows = app.wait_stored("gw", 1).await;
    bridge
        .wait_stats("every line counted", |s| s.lines_read == 14)
        .await;

    assert_eq!(rows.len(), 1, "only the good line is stored: {rows:?}");
    assert_eq!(rows[0].0, "sentinel");
    let s = bridge.stop().await;
    let mut expected = std::collections::BTreeMap::new();
    for (_, kind) in &bad {
        *expected.entry(*kind).or_insert(0u64) += 1;
    }
    assert_eq!(s.bad_lines, expected);
    assert_eq!(s.forwarded, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_checksums_optional_plain_lines_pass_and_wrong_checksums_still_fail() {
    let (app, pty, mut s, _dir) = rig(&[]).await;
    s.checksum_required = false;
    let bridge = Bridge::start(s);

    pty.write(b"plain=1\nt=1*00\n");
    pty.write(checked("checked=2").as_bytes());
    pty.write(b"{\"readings\":[{\"sensor\":\"json\",\"value\":3,\"unit\":\"Cel\"}]}\n");
    let rows = app.wait_stored("gw", 3).await;
    let sensors: Vec<_> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(sensors, ["checked", "json", "plain"]);
    let s = bridge.stop().await;
    assert_eq!(s.bad_lines.get("bad_checksum"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_forwards_for_its_devices_and_a_forbidden_device_drops_only_its_own_readings() {
    let (app, pty, s, _dir) = rig(&["pump-1"]).await;
    app.device("pump-2").await;
    let bridge = Bridge::start(s);

    let mut lines = String::new();
    for i in 0..5 {
        lines += &checked(&format!("device=pump-1,rpm={i}"));
        lines += &checked(&format!("device=pump-2,rpm={i}"));
        lines += &checked(&format!("own={i}"));
        lines += &checked(&format!("device=gw,self={i}"));
    }
    pty.write(lines.as_bytes());
    bridge
        .wait_stats("every reading answered", |s| {
            s.forwarded + s.refused.values().sum::<u64>() == 20
        })
        .await;

    assert_eq!(app.stored("pump-1").await.len(), 5);
    assert_eq!(app.stored("gw").await.len(), 10);
    assert!(app.stored("pump-2").await.is_empty());
    let s = bridge.stop().await;
    assert_eq!(s.forwarded, 15);
    assert_eq!(s.refused.get("forbidden_device"), Some(&5));
    assert_eq!(s.buffered, 0, "refusals are not resent");
}

/// Starts a hub again on the address and database of `app`'s stopped one.
pub async fn restart_hub(app: &mut TestApp, addr: std::net::SocketAddr) {
    let mut s = app.settings.clone();
    s.server.listen = addr;
    app.hub = Some(hub::start(s).await.expect("hub restarts"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_read_while_the_hub_is_down_arrive_exactly_once_when_it_is_back() {
    let (mut app, pty, s, _dir) = rig(&[]).await;
    let addr = app.hub().addr;
    let bridge = Bridge::start(s);

    pty.write(checked("n=0").as_bytes());
    app.wait_stored("gw", 1).await;
    app.stop().await;
    // The first lines of the outage go out before the bridge notices it.
    for i in 1..=30 {
        pty.write(checked(&format!("n={i}")).as_bytes());
    }
    bridge
        .wait_stats("lines buffered", |s| s.lines_read == 31 && s.buffered == 30)
        .await;
    restart_hub(&mut app, addr).await;
    bridge
        .wait_stats("buffer drained", |s| s.buffered == 0 && s.reconnects >= 1)
        .await;

    let rows = app.wait_stored("gw", 31).await;
    let mut values: Vec<f64> = rows.iter().map(|r| r.2).collect();
    values.sort_by(f64::total_cmp);
    assert_eq!(values, (0..=30).map(f64::from).collect::<Vec<_>>());
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_restarted_with_a_state_file_sends_what_it_had_not_delivered() {
    let (mut app, pty, mut s, dir) = rig(&[]).await;
    let addr = app.hub().addr;
    app.stop().await;
    s.state_file = Some(dir.path().join("bridge.state"));
    s.drain_timeout = Duration::from_millis(200);

    let bridge = Bridge::start(s.clone());
    for i in 0..10 {
        pty.write(checked(&format!("n={i}")).as_bytes());
    }
    bridge
        .wait_stats("lines buffered", |s| s.buffered == 10)
        .await;
    assert_eq!(bridge.stop().await.forwarded, 0);

    restart_hub(&mut app, addr).await;
    let bridge = Bridge::start(s);
    let rows = app.wait_stored("gw", 10).await;
    assert_eq!(rows.len(), 10);
    bridge
        .wait_stats("state file drained", |s| s.buffered == 0)
        .await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_that_vanishes_and_comes_back_is_reopened_without_touching_the_hub_connection() {
    let (app, mut pty, s, _dir) = rig(&[]).await;
    let bridge = Bridge::start(s);

    pty.write(checked("n=1").as_bytes());
    app.wait_stored("gw", 1).await;
    pty.stop().await;
    pty.start().await;
    bridge.wait_stats("port reopened", |s| s.reopens >= 1).await;
    pty.write(checked("n=2").as_bytes());
    let rows = app.wait_stored("gw", 2).await;
    assert_eq!(rows[1].2, 2.0);
    let s = bridge.stop().await;
    assert_eq!(s.reconnects, 0, "the hub connection stayed up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reading_the_hub_refuses_is_isolated_so_the_rest_of_its_batch_is_stored() {
    let (app, pty, mut s, _dir) = rig(&[]).await;
    // Laxer than the hub's 5 minutes, so the hub is the one to refuse the future reading.
    s.max_clock_skew = Duration::from_secs(86_400);
    s.linger = Duration::from_millis(200);
    let bridge = Bridge::start(s);

    let mut lines = String::new();
    for i in 0..6 {
        lines += &checked(&format!("n={i}"));
    }
    lines += &checked(&format!("ts={},future=1", now_s() + 3600));
    for i in 6..9 {
        lines += &checked(&format!("n={i}"));
    }
    pty.write(lines.as_bytes());
    bridge
        .wait_stats("every reading answered", |s| {
            s.forwarded + s.refused.values().sum::<u64>() == 10
        })
        .await;

    let rows = app.stored("gw").await;
    assert_eq!(rows.len(), 9, "{rows:?}");
    assert!(rows.iter().all(|r| r.0 == "n"));
    let s = bridge.stop().await;
    assert_eq!(s.refused.get("invalid_reading"), Some(&1));
}

/// A TCP proxy to `hub` whose first connection passes the WebSocket handshake and the
/// bridge's messages, but swallows the hub's replies: a hub that stores and never acks.
async fn proxy_losing_the_first_acks(hub: std::net::SocketAddr) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for n in 0.. {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let upstream = tokio::net::TcpStream::connect(hub).await.unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut ur, mut uw) = upstream.into_split();
            tokio::spawn(async move { tokio::io::copy(&mut cr, &mut uw).await });
            tokio::spawn(async move {
                if n > 0 {
                    return tokio::io::copy(&mut ur, &mut cw).await.map(|_| ());
                }
                let (mut buf, mut seen) = ([0u8; 4096], Vec::new());
                loop {
                    let k = ur.read(&mut buf).await?;
                    if k == 0 {
                        return Ok(());
                    }
                    if !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        seen.extend_from_slice(&buf[..k]);
                        // Only the handshake response goes through (it arrives alone).
                        cw.write_all(&buf[..k]).await?;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_a_silent_hub_never_acked_are_resent_on_a_new_connection_and_stored_once() {
    let (app, pty, mut s, _dir) = rig(&[]).await;
    let proxy = proxy_losing_the_first_acks(app.hub().addr).await;
    s.hub = format!("ws://{proxy}");
    s.ack_timeout = Duration::from_secs(2);
    let bridge = Bridge::start(s);

    for i in 0..20 {
        pty.write(checked(&format!("n={i}")).as_bytes());
    }
    // The hub stored them, but the bridge heard no ack: it keeps them until it does.
    app.wait_stored("gw", 20).await;
    assert_eq!(bridge.stats().forwarded, 0);
    bridge
        .wait_stats("resent and acked after a reconnect", |s| {
            s.forwarded == 20 && s.buffered == 0 && s.reconnects == 1
        })
        .await;
    assert_eq!(app.stored("gw").await.len(), 20, "stored once");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booleans_and_quoted_strings_on_a_serial_line_are_stored_with_their_types() {
    let (app, pty, s, _dir) = rig(&[]).await;
    let bridge = Bridge::start(s);
    let viewer = app.viewer().await;
    let ts = now_s() - 60;
    pty.write(
        checked(&format!(
            r#"ts={ts},door=true,state="idle, \"ok\" \\ *",t=-18.5"#
        ))
        .as_bytes(),
    );
    pty.write(checked(&format!("ts={},door=false", ts + 1)).as_bytes());
    // Bare words and bad escapes are counted, never forwarded.
    pty.write(checked("state=idle").as_bytes());
    pty.write(checked(r#"state="a\tb""#).as_bytes());
    app.wait_stored("gw", 4).await;
    bridge
        .wait_stats("every line counted", |s| s.lines_read == 4)
        .await;
    let values = |sensor: &'static str| {
        let app = &app;
        let viewer = viewer.clone();
        async move {
            let path = format!("/v1/readings?device=gw&sensor={sensor}&from=-1h");
            let (status, body) = app.get(&path, Some(&viewer)).await;
            assert_eq!(status, 200, "{body}");
            (body["points"].as_array().unwrap().iter())
                .map(|p| p["value"].clone())
                .collect::<Vec<_>>()
        }
    };
    use serde_json::json;
    assert_eq!(values("door").await, [json!(true), json!(false)]);
    assert_eq!(values("state").await, [json!(r#"idle, "ok" \ *"#)]);
    assert_eq!(values("t").await, [json!(-18.5)]);
    let s = bridge.stop().await;
    assert_eq!(s.bad_lines.get("bad_value"), Some(&1), "{:?}", s.bad_lines);
    assert_eq!(s.bad_lines.get("bad_text"), Some(&1), "{:?}", s.bad_lines);
}
