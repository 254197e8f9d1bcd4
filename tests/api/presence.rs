//! Presence on every transport (protocol.md §17): a device is online while it holds a
//! WebSocket, or for `[presence] timeout` after its last reading over HTTP, the line
//! protocol, MQTT or a gateway; `/v1/devices` names the transport it last used; status
//! frames and `offline` alert rules follow the same rule.

use crate::both_backends;
use crate::helpers::*;
use crate::labels::put_labels;
use crate::need_mqtt;
use crate::procs::telehub_cli;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use telehub::config::{Settings, Webhook};

/// POSTs `body` to `/v1/ingest` as `token`; asserts it is acked.
async fn post_reading(app: &TestApp, token: &str, body: Value) {
    let (status, text) = app.post("/v1/ingest", token, &body).await;
    assert_eq!(status, 200, "{text}");
}

fn one_reading(value: f64) -> Value {
    json!({"readings": [reading("flow", value, base_ts() + value)]})
}

/// The `/v1/devices` entry of `name`.
async fn device_entry(app: &TestApp, viewer: &str, name: &str) -> Value {
    let (status, list) = app.get("/v1/devices", Some(viewer)).await;
    assert_eq!(status, 200, "{list}");
    let found = list.as_array().unwrap().iter().find(|d| d["name"] == name);
    found.cloned().unwrap_or_else(|| panic!("{name} in {list}"))
}

async fn an_http_only_device_is_online_after_a_reading_and_offline_after_the_timeout(b: Backend) {
    let app = spawn_app_with(b, |s| s.presence.timeout = Duration::from_millis(600)).await;
    let token = app.device("pump-1").await;
    let viewer = app.viewer().await;
    let before = device_entry(&app, &viewer, "pump-1").await;
    assert_eq!(
        (&before["online"], &before["transport"]),
        (&json!(false), &Value::Null)
    );
    let mut dash = app.connect_dashboard(&viewer).await;
    subscribe_all(&mut dash).await;

    let sent = Instant::now();
    post_reading(&app, &token, one_reading(1.0)).await;
    let on = next_status(&mut dash).await;
    assert_eq!(
        (&on["device"], &on["online"]),
        (&json!("pump-1"), &json!(true))
    );
    let now = device_entry(&app, &viewer, "pump-1").await;
    assert_eq!(
        (&now["online"], &now["transport"]),
        (&json!(true), &json!("http"))
    );

    let off = next_status(&mut dash).await;
    assert_eq!(
        (&off["device"], &off["online"]),
        (&json!("pump-1"), &json!(false))
    );
    assert!(
        sent.elapsed() >= Duration::from_millis(600),
        "offline only after the timeout, not {:?}",
        sent.elapsed()
    );
    let after = device_entry(&app, &viewer, "pump-1").await;
    assert_eq!(
        (&after["online"], &after["transport"]),
        (&json!(false), &json!("http"))
    );
}
both_backends!(an_http_only_device_is_online_after_a_reading_and_offline_after_the_timeout);

async fn a_presence_timeout_label_gives_a_device_its_own_timeout(b: Backend) {
    let app = spawn_app_with(b, |s| {
        s.presence.timeout = Duration::from_secs(600);
        s.presence.labels_poll = Duration::from_millis(100);
    })
    .await;
    let (admin, viewer) = (app.admin().await, app.viewer().await);
    let tokens = [
        app.device("pump-1").await,
        app.device("pump-2").await,
        app.device("pump-3").await,
    ];
    // Over the API; with the CLI (which writes the database: read at the next poll); none.
    let (status, body) =
        put_labels(&app, &admin, "pump-1", json!({"presence_timeout": "1s"})).await;
    assert_eq!(status, 200, "{body}");
    let out = telehub_cli(
        &app.db.url,
        &["device", "label", "pump-2", "presence_timeout=2s"],
    );
    assert!(out.status.success(), "{out:?}");
    let mut dash = app.connect_dashboard(&viewer).await;
    subscribe_all(&mut dash).await;
    // The CLI's label is read within labels_poll; wait for it through a device that shows it.
    let started = Instant::now();
    for t in &tokens {
        post_reading(&app, t, one_reading(1.0)).await;
    }
    let mut offline = Vec::new();
    while offline.len() < 2 {
        let s = next_status(&mut dash).await;
        if s["online"] == json!(false) {
            offline.push((s["device"].as_str().unwrap().to_owned(), started.elapsed()));
        }
    }
    assert_eq!(
        offline.iter().map(|(d, _)| d.as_str()).collect::<Vec<_>>(),
        ["pump-1", "pump-2"],
        "{offline:?}"
    );
    assert!(offline[0].1 >= Duration::from_secs(1), "{offline:?}");
    assert!(offline[1].1 >= Duration::from_secs(2), "{offline:?}");
    let three = device_entry(&app, &viewer, "pump-3").await;
    assert_eq!(three["online"], json!(true), "the default 10 min: {three}");

    // Not a duration, or out of range: refused, saying what it must be.
    for bad in ["soon", "0s", "31d"] {
        let (status, body) =
            put_labels(&app, &admin, "pump-3", json!({"presence_timeout": bad})).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains("1s to 30d"),
            "{body}"
        );
    }
}
both_backends!(a_presence_timeout_label_gives_a_device_its_own_timeout);

/// Alerts with fast polling and retries, delivered to `rx`; presence times out after 1 s.
fn fast_alerts(s: &mut Settings, rx: &Receiver) {
    s.presence.timeout = Duration::from_secs(1);
    let a = &mut s.alerts;
    a.webhooks = vec![Webhook {
        url: rx.url.clone(),
        ..Webhook::default()
    }];
    a.retry_backoff = Duration::from_millis(50);
    a.poll_interval = Duration::from_millis(100);
    a.rules_poll = Duration::from_millis(100);
}

async fn an_offline_rule_does_not_fire_for_a_device_that_keeps_sending_over_http(b: Backend) {
    let rx = Receiver::start().await;
    let app = spawn_app_with(b, |s| fast_alerts(s, &rx)).await;
    let admin = app.admin().await;
    let (steady, quiet) = (app.device("pump-1").await, app.device("pump-2").await);
    post_reading(&app, &steady, one_reading(0.0)).await;
    post_reading(&app, &quiet, one_reading(0.0)).await;
    let rule = json!({"name": "gone", "pattern": "pump-*", "kind": "offline", "for": "1s"});
    let (status, text) = app.post("/v1/alert-rules", &admin, &rule).await;
    assert_eq!(status, 201, "{text}");

    // pump-1 sends every 250 ms; pump-2 fell silent: offline after 1 s, firing 1 s later.
    let fired = |device: &str| {
        rx.posts()
            .iter()
            .any(|p| p.json["rule"] == "gone" && p.json["device"] == device)
    };
    let started = Instant::now();
    let mut quiet_fired_at = None;
    let mut n = 1.0;
    while quiet_fired_at.is_none_or(|t: Instant| t.elapsed() < Duration::from_millis(1500)) {
        assert!(started.elapsed() < WAIT, "pump-2's offline alert in time");
        post_reading(&app, &steady, one_reading(n)).await;
        n += 1.0;
        if quiet_fired_at.is_none() && fired("pump-2") {
            quiet_fired_at = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(!fired("pump-1"), "pump-1 kept sending: {:?}", rx.accepted());
}
both_backends!(an_offline_rule_does_not_fire_for_a_device_that_keeps_sending_over_http);

async fn each_device_shows_the_transport_it_last_used(b: Backend) {
    let app = spawn_app(b).await;
    let viewer = app.viewer().await;
    let ws_token = app.device("ws-1").await;
    let line_token = app.device("line-1").await;
    let http_token = app.device("http-1").await;
    app.device("child-1").await;
    let gw_token = app.gateway("gw-1", &["child-1"]).await;
    let t = base_ts();

    let mut ws = app.connect_device(&ws_token).await;
    send_json(
        &mut ws,
        &json!({"id": 1, "readings": [reading("flow", 1.0, t)]}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["ack"], 1);
    let mut gw = app.connect_device(&gw_token).await;
    let for_child = json!({"id": 1, "readings": [{"device": "child-1", "sensor": "flow", "value": 1.0, "ts": t}]});
    send_json(&mut gw, &for_child).await;
    assert_eq!(next_json(&mut gw).await["ack"], 1);
    post_reading(&app, &http_token, one_reading(1.0)).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v2/write?precision=s", app.http()))
        .header("authorization", format!("Token {line_token}"))
        .body(format!("line flow=1 {}", t as i64))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);

    for (device, transport) in [
        ("ws-1", "ws"),
        ("gw-1", "ws"),
        ("child-1", "gateway"),
        ("http-1", "http"),
        ("line-1", "line"),
    ] {
        let d = device_entry(&app, &viewer, device).await;
        assert_eq!(
            (&d["online"], &d["transport"]),
            (&json!(true), &json!(transport)),
            "{d}"
        );
    }
}
both_backends!(each_device_shows_the_transport_it_last_used);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_publishing_over_mqtt_is_online_with_transport_mqtt() {
    use crate::mqtt::broker::*;
    let url = need_mqtt!();
    let p = prefix();
    let app = spawn_app_with(Backend::Sqlite, |s| s.mqtt = Some(hub_mqtt(&url, &p))).await;
    broker_state(&app, |s| s.subscribed).await;
    app.device("meter-1").await;
    let viewer = app.viewer().await;
    let publisher = TestClient::connect(&url).await;
    let message = json!({"readings": [reading("power", 1.0, base_ts())]});
    publisher
        .publish(&format!("{p}/ingest/meter-1"), message.to_string())
        .await;
    let entry = || device_entry(&app, &viewer, "meter-1");
    let d = eventually(WAIT, "meter-1 online", entry, |d| d["online"] == true).await;
    assert_eq!(d["transport"], "mqtt");
}
