//! Abuse limits (`[limits]`, `server.max_connections`, `handshake_timeout`), through
//! real sockets.

use crate::helpers::*;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn a_device_over_its_rate_gets_rate_limited_then_closed_when_it_persists() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.ingest.max_readings_per_message = 10;
        s.limits.device_readings_per_second = 1;
        s.limits.device_burst = 10;
        s.limits.abuse_close_after = 3;
    })
    .await;
    let mut ws = app.connect_device(&app.device("d1").await).await;
    let t = base_ts();
    let ten = |i: u64| json!({"id": i, "readings": (0..10).map(|k| reading("t", 1.0, t + (i * 10 + k) as f64)).collect::<Vec<_>>()});
    send_json(&mut ws, &ten(0)).await;
    assert_eq!(next_json(&mut ws).await, json!({"ack": 0, "stored": 10}));
    for i in 1..=3 {
        send_json(&mut ws, &ten(i)).await;
        let r = next_json(&mut ws).await;
        assert_eq!(
            (r["nack"].clone(), r["error"].clone()),
            (json!(i), json!("rate_limited")),
            "{r}"
        );
    }
    assert_eq!(close_code(&mut ws).await, 1008);
    assert_eq!(
        app.stored("d1").await.len(),
        10,
        "nothing of a rate-limited message is stored"
    );
}

#[tokio::test]
async fn a_handshake_storm_is_told_to_retry_later() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.limits.handshakes_per_second = 1;
        s.limits.handshake_burst = 3;
    })
    .await;
    let token = app.device("d1").await;
    let url = app.ws("/v1/ingest");
    let mut refused = 0;
    let mut turns = Vec::new();
    let mut kept = Vec::new();
    let started = Instant::now();
    for _ in 0..10 {
        match connect(&url, Some(&token)).await {
            Ok(ws) => kept.push(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 503);
                let wait: u64 = resp.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                turns.push(wait);
                refused += 1;
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    // At 1 handshake/s, each refused one is given a later turn than the one before:
    // the storm is spread out instead of all coming back after the same second.
    assert!(
        turns.windows(2).all(|w| w[0] < w[1]) && turns.first() == Some(&1),
        "Retry-After values {turns:?}"
    );
    // Burst 3, then 1 per second: a slow machine may earn a few more slots.
    let allowed = 3 + started.elapsed().as_secs() as usize + 1;
    assert!(
        kept.len() <= allowed && refused >= 10 - allowed,
        "kept {} refused {refused}",
        kept.len()
    );
    // The hub itself stays responsive.
    let health = reqwest::get(format!("{}/healthz", app.http()))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn connections_over_the_cap_get_503_before_any_upgrade() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.server.max_connections = 4;
        s.limits.max_connections_per_ip = 3;
    })
    .await;
    let token = app.device("d1").await;
    let url = app.ws("/v1/ingest");
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(
            connect(&url, Some(&token))
                .await
                .expect("under the per-IP cap"),
        );
    }
    assert_eq!(
        refused_status(connect(&url, Some(&token)).await),
        503,
        "per-IP cap"
    );
    drop(open.pop());
    // A freed slot is usable again once the hub notices the close.
    let reconnect = || connect(&url, Some(&token));
    let ws = eventually(
        WAIT,
        "the freed slot to be released",
        reconnect,
        Result::is_ok,
    )
    .await;
    open.push(ws.unwrap());
}

#[tokio::test]
async fn a_slow_handshake_is_dropped_after_the_handshake_timeout() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.server.handshake_timeout = Duration::from_millis(300)
    })
    .await;
    let mut tcp = tokio::net::TcpStream::connect(app.hub().addr)
        .await
        .unwrap();
    let started = Instant::now();
    // Slowloris: an incomplete request head, never finished.
    tcp.write_all(b"GET /v1/ingest HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(WAIT, tcp.read_to_end(&mut buf))
        .await
        .expect("the hub drops it in time");
    assert!(n.is_ok());
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(
        !String::from_utf8_lossy(&buf).contains("101"),
        "never upgraded"
    );
}

/// `[limits] max_series_per_device`: a message that would give its device one series too
/// many is refused whole, naming the limit; readings of existing series and new ones up to
/// the limit go on being stored; the line protocol says the same as a 400.
async fn a_device_gets_at_most_max_series_per_device_series(b: Backend) {
    let app = spawn_app_with(b, |s| s.limits.max_series_per_device = 5).await;
    let token = app.device("many-1").await;
    let mut ws = app.connect_device(&token).await;
    let t = base_ts();
    let msg = |id: u64, sensors: &[&str]| json!({"id": id, "readings": sensors.iter().map(|s| reading(s, 1.0, t + id as f64)).collect::<Vec<_>>()});
    send_json(&mut ws, &msg(1, &["a", "b", "c"])).await;
    assert_eq!(next_json(&mut ws).await, json!({"ack": 1, "stored": 3}));
    send_json(&mut ws, &msg(2, &["a", "d", "e", "f"])).await;
    let reply = next_json(&mut ws).await;
    assert_eq!(
        (reply["nack"].clone(), reply["error"].clone()),
        (json!(2), json!("invalid_reading")),
        "{reply}"
    );
    let detail = reply["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("readings[3].sensor: f would be a new series")
            && detail.contains("at most 5 (`[limits] max_series_per_device`)"),
        "{detail}"
    );
    send_json(&mut ws, &msg(3, &["d", "e", "a"])).await;
    assert_eq!(next_json(&mut ws).await, json!({"ack": 3, "stored": 3}));
    send_json(&mut ws, &msg(4, &["b", "c", "d", "e"])).await;
    assert_eq!(next_json(&mut ws).await, json!({"ack": 4, "stored": 4}));
    let stored = app.stored("many-1").await;
    let mut sensors: Vec<&str> = stored.iter().map(|r| r.0.as_str()).collect();
    sensors.dedup();
    assert_eq!(
        sensors,
        ["a", "b", "c", "d", "e"],
        "nothing of message 2 is stored"
    );
    // One line-protocol request naming 9,000 fields: 400, no series created.
    let fields: Vec<String> = (0..9_000).map(|i| format!("f{i}=1")).collect();
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v2/write?bucket=b&precision=s", app.http()))
        .header("authorization", format!("Token {token}"))
        .body(format!("m {} {}\n", fields.join(","), t as i64))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let text = resp.text().await.unwrap();
    assert!(text.contains("max_series_per_device"), "{text}");
    let viewer = app.viewer().await;
    let (_, devices) = app.get("/v1/devices", Some(&viewer)).await;
    let mine = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "many-1")
        .unwrap();
    assert_eq!(mine["sensors"].as_array().unwrap().len(), 5, "{mine}");
}
crate::both_backends!(a_device_gets_at_most_max_series_per_device_series);
