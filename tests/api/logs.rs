//! The hub's log (issue 13): a device connecting, being refused, nacked and
//! disconnecting each leave a line, in text and in JSON, never with colour escapes when
//! stderr is a file; `shutting down…` is a log line like the others.

use crate::helpers::*;
use crate::procs::{HubProcess, telehub_cli};
use serde_json::json;
use std::time::Duration;

/// Connects `d1` (sends one bad message, then closes), and tries a wrong token; returns
/// the log once every expected event is in it.
async fn device_events(hub: &HubProcess, db: &str) -> String {
    let out = telehub_cli(db, &["device", "add", "d1"]);
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let url = format!("ws://{}/v1/ingest", hub.addr);
    assert_eq!(refused_status(connect(&url, Some("th_wrong")).await), 401);
    let mut ws = connect(&url, Some(&token)).await.unwrap();
    send_json(
        &mut ws,
        &json!({"id": 1, "readings": [{"sensor": "t", "value": null}]}),
    )
    .await;
    assert!(next_json(&mut ws).await.get("nack").is_some());
    ws.close(None).await.unwrap();
    eventually(
        Duration::from_secs(10),
        "connect, refusal, nack and disconnect in the hub's log",
        || async { hub.logs() },
        |log| {
            [
                "device connected",
                "handshake refused",
                "message nacked",
                "device disconnected",
            ]
            .iter()
            .all(|e| log.contains(e))
        },
    )
    .await
}

#[tokio::test]
async fn device_events_are_logged_as_text_without_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let mut hub = HubProcess::start(&db, "127.0.0.1:0", dir.path(), &[]).await;
    let log = device_events(&hub, &db).await;
    let line = |what: &str| log.lines().find(|l| l.contains(what)).unwrap().to_owned();
    assert!(line("device connected").contains("device=d1"), "{log}");
    assert!(
        line("device disconnected").contains("close_code=1000"),
        "{log}"
    );
    let refused = line("handshake refused");
    assert!(
        refused.contains("WARN") && refused.contains("status=401"),
        "{log}"
    );
    assert!(refused.contains("unknown or revoked token"), "{log}");
    assert!(line("message nacked").contains("invalid_reading"), "{log}");
    assert!(hub.terminate().await.success());
    let log = hub.logs();
    assert!(line_has(&log, "shutting down", "INFO"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "escape bytes in a log file: {log:?}"
    );
}

fn line_has(log: &str, what: &str, also: &str) -> bool {
    log.lines().any(|l| l.contains(what) && l.contains(also))
}

#[tokio::test]
async fn log_format_json_writes_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let extra = ["--log-format", "json"];
    let mut hub = HubProcess::start(&db, "127.0.0.1:0", dir.path(), &extra).await;
    device_events(&hub, &db).await;
    assert!(hub.terminate().await.success());
    let log = hub.logs();
    assert!(!log.contains('\u{1b}'), "{log:?}");
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let find = |m: &str| {
        events
            .iter()
            .find(|e| e["message"] == m)
            .unwrap_or_else(|| panic!("no {m:?} in {log}"))
    };
    assert_eq!(find("device connected")["device"], "d1");
    assert_eq!(find("device disconnected")["close_code"], 1000);
    assert_eq!(find("handshake refused")["status"], 401);
    assert_eq!(find("message nacked")["error"], "invalid_reading");
    assert!(events.iter().any(|e| {
        e["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("shutting down"))
    }));
}

#[tokio::test]
async fn log_level_warn_leaves_out_connections() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let extra = ["--log-level", "warn"];
    let mut hub = HubProcess::start(&db, "127.0.0.1:0", dir.path(), &extra).await;
    let url = format!("ws://{}/v1/ingest", hub.addr);
    assert_eq!(refused_status(connect(&url, None).await), 401);
    eventually(
        Duration::from_secs(10),
        "the refusal in the log",
        || async { hub.logs() },
        |log| log.contains("handshake refused"),
    )
    .await;
    assert!(hub.terminate().await.success());
    assert!(!hub.logs().contains("INFO"), "{}", hub.logs());
}

#[tokio::test]
async fn a_nack_flood_is_sampled_with_a_suppressed_count() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let mut hub = HubProcess::start(&db, "127.0.0.1:0", dir.path(), &[]).await;
    let out = telehub_cli(&db, &["device", "add", "d1"]);
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let url = format!("ws://{}/v1/ingest", hub.addr);
    let ws = tokio::sync::Mutex::new(connect(&url, Some(&token)).await.unwrap());
    let bad = json!({"id": 1, "readings": [{"sensor": "t", "value": null}]});
    for _ in 0..50 {
        send_json(&mut *ws.lock().await, &bad).await;
    }
    for _ in 0..50 {
        assert!(next_json(&mut *ws.lock().await).await.get("nack").is_some());
    }
    // Keep refusing until a line carries the count of those left out before it.
    let log = eventually(
        Duration::from_secs(10),
        "a nack line with suppressed > 0",
        || async {
            let mut ws = ws.lock().await;
            send_json(&mut ws, &bad).await;
            next_json(&mut ws).await;
            hub.logs()
        },
        |log| {
            log.lines()
                .any(|l| l.contains("message nacked") && !l.contains("suppressed=0"))
        },
    )
    .await;
    let lines = log.lines().filter(|l| l.contains("message nacked")).count();
    assert!(lines < 20, "{lines} nack lines for 50+ nacks: {log}");
    assert!(hub.terminate().await.success());
}

#[tokio::test]
async fn a_refused_mqtt_message_is_logged_with_its_reason() {
    let url = crate::need_mqtt!();
    let p = crate::mqtt::broker::prefix();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let config = dir.path().join("hub.toml");
    let toml = format!("[mqtt]\nurl = \"{url}\"\ningest_topic = \"{p}/ingest/+\"\n");
    std::fs::write(&config, toml).unwrap();
    let extra = ["--config", config.to_str().unwrap()];
    let mut hub = HubProcess::start(&db, "127.0.0.1:0", dir.path(), &extra).await;
    assert!(telehub_cli(&db, &["device", "add", "m1"]).status.success());
    let publisher = crate::mqtt::broker::TestClient::connect(&url).await;
    // Published until the hub's subscription is in place (a retained-less publish
    // before it is simply not delivered).
    let log = eventually(
        Duration::from_secs(15),
        "the MQTT refusal in the hub's log",
        || async {
            publisher
                .publish(&format!("{p}/ingest/m1"), "{not json")
                .await;
            hub.logs()
        },
        |log| log.contains("mqtt ingest: message refused"),
    )
    .await;
    let line = log
        .lines()
        .find(|l| l.contains("mqtt ingest: message refused"))
        .unwrap();
    assert!(
        line.contains("WARN") && line.contains("invalid_json") && line.contains("/ingest/m1"),
        "{line}"
    );
    assert!(hub.terminate().await.success());
}

/// Starts a hub whose refusal log sums up every `window` (a config file, as operators do).
async fn hub_with_refusal_window(dir: &std::path::Path, window: &str) -> (HubProcess, String) {
    let db = format!("sqlite://{}", dir.join("t.db").display());
    let config = dir.join("hub.toml");
    std::fs::write(&config, format!("[log]\nrefusal_window = \"{window}\"\n")).unwrap();
    let extra = ["--config", config.to_str().unwrap()];
    (HubProcess::start(&db, "127.0.0.1:0", dir, &extra).await, db)
}

#[tokio::test]
async fn a_flood_of_refused_requests_is_logged_once_per_peer_and_summed_up() {
    let dir = tempfile::tempdir().unwrap();
    let (mut hub, _db) = hub_with_refusal_window(dir.path(), "2s").await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", hub.addr);
    // 300 refused WebSocket handshakes and 300 refused HTTP ingest requests, no token.
    for _ in 0..300 {
        let get = http.get(format!("{base}/v1/ingest")).send().await.unwrap();
        assert!(get.status().is_client_error(), "{}", get.status());
        let post = http
            .post(format!("{base}/v1/ingest"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert!(post.status().is_client_error(), "{}", post.status());
    }
    let log = eventually(
        Duration::from_secs(15),
        "the summaries of both causes",
        || async { hub.logs() },
        |log| {
            log.contains("more handshakes refused from 127.0.0.1 in the last 2s")
                && log.contains("more HTTP ingest requests refused from 127.0.0.1 in the last 2s")
        },
    )
    .await;
    let refusals = log.lines().filter(|l| l.contains("refused")).count();
    assert!(refusals <= 12, "{refusals} lines for 600 refusals:\n{log}");
    let post = log
        .lines()
        .find(|l| l.contains("HTTP ingest refused"))
        .unwrap_or_else(|| panic!("HTTP ingest refusals labelled as such: {log}"));
    assert!(
        post.contains("status=401") && post.contains("127.0.0.1"),
        "{post}"
    );
    // The summed-up counts add up to every refusal the hub answered.
    let summed: u64 = log
        .lines()
        .filter(|l| l.contains("more ") && l.contains("refused from"))
        .filter_map(|l| {
            l.split("refused=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    let whole = log
        .lines()
        .filter(|l| l.contains("handshake refused") || l.contains("HTTP ingest refused"))
        .count() as u64;
    assert_eq!(summed + whole, 600, "{log}");
    assert!(hub.terminate().await.success());
}

#[tokio::test]
async fn an_untrusted_header_reaches_the_log_capped_and_without_control_characters() {
    let dir = tempfile::tempdir().unwrap();
    let (mut hub, _db) = hub_with_refusal_window(dir.path(), "10s").await;
    let token = hub.viewer_token().expect("a viewer token on the banner");
    // 50 KB: the listener reads at most 64 KiB of request head.
    let origin = format!("http://evil.example/{}", "a".repeat(50_000));
    let resp = reqwest::Client::new()
        .get(format!("http://{}/v1/live", hub.addr))
        .bearer_auth(&token)
        .header("origin", &origin)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    let status = resp.status();
    assert_eq!(status, 403, "{:?}", resp.text().await);
    let log = eventually(
        Duration::from_secs(10),
        "the refused origin in the log",
        || async { hub.logs() },
        |log| log.contains("handshake refused"),
    )
    .await;
    assert!(
        log.len() < 4_000,
        "{} bytes of log for one refusal",
        log.len()
    );
    let line = log
        .lines()
        .find(|l| l.contains("handshake refused"))
        .unwrap();
    assert!(
        line.contains("evil.example") && line.contains("more bytes"),
        "{line}"
    );
    assert!(hub.terminate().await.success());
}
