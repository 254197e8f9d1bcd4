//! Alerts (issue 15, docs/protocol.md §9) through real interfaces: rules over HTTP and the CLI,
//! readings from real device sockets, events at a real HTTP receiver (signed), on a
//! live socket and over MQTT; state across a SIGKILL of a real hub process.

use crate::both_backends;
use crate::helpers::*;
use crate::procs::*;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use telehub::config::{Settings, Webhook};
use telehub::domain::Timestamp;

const SECRET: &str = "test-secret";

/// Alerts with fast polling and retries, delivered to `rx`.
pub(crate) fn alert_settings(s: &mut Settings, rx: &Receiver) {
    let a = &mut s.alerts;
    a.webhooks = vec![Webhook {
        url: rx.url.clone(),
        headers: [("X-Api-Key".to_owned(), "k3y".to_owned())].into(),
        ..Webhook::default()
    }];
    a.secret = Some(SECRET.into());
    a.retry_backoff = Duration::from_millis(50);
    a.retry_backoff_max = Duration::from_millis(400);
    a.poll_interval = Duration::from_millis(100);
    a.rules_poll = Duration::from_millis(100);
    a.min_repeat = Duration::from_secs(1);
}

async fn admin(app: &TestApp) -> String {
    app.store
        .add_token("admin", telehub::auth::Role::Admin)
        .await
        .unwrap()
}

/// POSTs a rule; the status and body.
async fn post_rule(app: &TestApp, admin: &str, rule: &Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/alert-rules", app.http()))
        .bearer_auth(admin)
        .body(rule.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn add_rule(app: &TestApp, admin: &str, rule: Value) {
    let (status, body) = post_rule(app, admin, &rule).await;
    assert_eq!(status, 201, "{body}");
}

/// Adds the rule `hot`: `PATTERN > 10`.
async fn add_hot(app: &TestApp, pattern: &str) {
    let admin = admin(app).await;
    let rule =
        json!({"name": "hot", "pattern": pattern, "kind": "threshold", "op": ">", "value": 10});
    add_rule(app, &admin, rule).await;
}

/// Adds the rule `hot` (`d1/t > 10`) and connects device `d1`.
async fn hot_device(app: &TestApp) -> Ws {
    add_hot(app, "d1/t").await;
    app.connect_device(&app.device("d1").await).await
}

/// Sends readings `(sensor, value, ts)` as one message and returns the reply.
async fn send(ws: &mut Ws, id: u64, readings: &[(&str, Value, f64)]) -> Value {
    let r: Vec<Value> = readings
        .iter()
        .map(|(s, v, t)| json!({"sensor": s, "value": v, "ts": t}))
        .collect();
    send_json(ws, &json!({"id": id, "readings": r})).await;
    next_json(ws).await
}

async fn send_ok(ws: &mut Ws, id: u64, readings: &[(&str, Value, f64)]) {
    let reply = send(ws, id, readings).await;
    assert_eq!(reply["ack"], id, "{reply}");
}

fn rfc3339(t: f64) -> String {
    Timestamp::from_unix_seconds(t).unwrap().to_rfc3339()
}

async fn wait_state(app: &TestApp, viewer: &str, want: &str) -> Value {
    eventually(
        WAIT,
        &format!("an alert {want}"),
        || async { app.get("/v1/alerts", Some(viewer)).await.1 },
        |v| {
            v.as_array()
                .is_some_and(|a| a.iter().any(|s| s["state"] == want))
        },
    )
    .await
}

async fn threshold_fires_after_for_and_clears_only_past_clear(backend: Backend) {
    let rx = Receiver::start().await;
    let app = spawn_app_with(backend, |s| alert_settings(s, &rx)).await;
    let admin = admin(&app).await;
    let viewer = app.viewer().await;
    add_rule(&app, &admin, json!({"name": "freezer-warm", "pattern": "freezer-*/temperature",
        "kind": "threshold", "op": ">", "value": -15, "for": "5m", "clear": -17, "severity": "critical"})).await;
    let token = app.device("freezer-1").await;
    let mut dev = app.connect_device(&token).await;
    let t = base_ts() - 3600.0;
    send_ok(
        &mut dev,
        1,
        &[
            ("temperature", json!(-20.0), t),
            ("humidity", json!(99.0), t),
        ],
    )
    .await;
    // Warm from t+60 on: pending, and still pending 4m59s later (reading time).
    send_ok(&mut dev, 2, &[("temperature", json!(-14.0), t + 60.0)]).await;
    send_ok(&mut dev, 3, &[("temperature", json!(-13.0), t + 359.0)]).await;
    let pending = wait_state(&app, &viewer, "pending").await;
    assert_eq!(pending[0]["since"], rfc3339(t + 60.0), "{pending}");
    assert!(
        rx.posts().is_empty(),
        "nothing announced before `for` is over"
    );
    send_ok(&mut dev, 4, &[("temperature", json!(-12.5), t + 360.0)]).await;
    let got = rx.wait_accepted(1).await;
    let firing = &got[0];
    assert_eq!(firing["state"], "firing");
    assert_eq!(
        firing["ts"],
        rfc3339(t + 360.0),
        "fired by the reading that completed `for`"
    );
    assert_eq!(firing["since"], rfc3339(t + 60.0));
    assert_eq!(
        (
            &firing["rule"],
            &firing["device"],
            &firing["sensor"],
            &firing["severity"],
            &firing["value"]
        ),
        (
            &json!("freezer-warm"),
            &json!("freezer-1"),
            &json!("temperature"),
            &json!("critical"),
            &json!(-12.5)
        )
    );
    // Below the threshold but not past `clear`: still firing.
    send_ok(&mut dev, 5, &[("temperature", json!(-16.0), t + 400.0)]).await;
    send_ok(&mut dev, 6, &[("temperature", json!(-17.5), t + 460.0)]).await;
    let got = rx.wait_accepted(2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1]["state"], "resolved");
    assert_eq!(
        got[1]["ts"],
        rfc3339(t + 460.0),
        "resolved only past clear: {got:?}"
    );
    assert_eq!(got[1]["value"], -17.5);
    let (_, events) = app
        .get(
            &format!("/v1/alerts/events?from={}", rfc3339(t - 1.0)),
            Some(&viewer),
        )
        .await;
    let ids: Vec<i64> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    let posted: Vec<i64> = got.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, posted, "{events}");
    assert_eq!(app.get("/v1/alerts", Some(&viewer)).await.1, json!([]));
}
both_backends!(threshold_fires_after_for_and_clears_only_past_clear);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equality_rules_fire_on_booleans_and_strings() {
    let rx = Receiver::start().await;
    let app = spawn_app_with(Backend::Sqlite, |s| alert_settings(s, &rx)).await;
    let admin = admin(&app).await;
    add_rule(&app, &admin, json!({"name": "door-open", "pattern": "*/door", "kind": "threshold", "op": "==", "value": true})).await;
    add_rule(&app, &admin, json!({"name": "not-idle", "pattern": "m1/state", "kind": "threshold", "op": "!=", "value": "idle"})).await;
    let token = app.device("m1").await;
    let mut dev = app.connect_device(&token).await;
    let t = base_ts();
    send_ok(
        &mut dev,
        1,
        &[("door", json!(false), t), ("state", json!("idle"), t)],
    )
    .await;
    send_ok(&mut dev, 2, &[("door", json!(true), t + 1.0)]).await;
    send_ok(&mut dev, 3, &[("state", json!("running"), t + 2.0)]).await;
    send_ok(
        &mut dev,
        4,
        &[
            ("door", json!(false), t + 3.0),
            ("state", json!("idle"), t + 3.0),
        ],
    )
    .await;
    let got = rx.wait_accepted(4).await;
    let seen: Vec<(&str, &str, &Value)> = got
        .iter()
        .map(|e| {
            (
                e["rule"].as_str().unwrap(),
                e["state"].as_str().unwrap(),
                &e["value"],
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("door-open", "firing", &json!(true)),
            ("not-idle", "firing", &json!("running")),
            ("door-open", "resolved", &json!(false)),
            ("not-idle", "resolved", &json!("idle")),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_data_and_offline_fire_and_resolve_and_repeat_renotifies() {
    let rx = Receiver::start().await;
    let app = spawn_app_with(Backend::Sqlite, |s| alert_settings(s, &rx)).await;
    let admin = admin(&app).await;
    add_rule(
        &app,
        &admin,
        json!({"name": "silent", "pattern": "*/temp", "kind": "no_data", "for": "1s"}),
    )
    .await;
    add_rule(&app, &admin, json!({"name": "gone", "pattern": "plant-*", "kind": "offline", "for": "1s", "repeat": "1s"})).await;
    let token = app.device("plant-1").await;
    let mut dev = app.connect_device(&token).await;
    let t = base_ts();
    send_ok(&mut dev, 1, &[("temp", json!(20.0), t)]).await;
    let posts = rx
        .wait_until(WAIT, "no_data firing", |p| {
            p.iter().any(|p| p.json["rule"] == "silent")
        })
        .await;
    let silent = posts.iter().find(|p| p.json["rule"] == "silent").unwrap();
    assert_eq!(
        (&silent.json["state"], &silent.json["sensor"]),
        (&json!("firing"), &json!("temp"))
    );
    assert_eq!(silent.json["value"], Value::Null);
    send_ok(&mut dev, 2, &[("temp", json!(21.0), t + 5.0)]).await;
    rx.wait_until(WAIT, "no_data resolved", |p| {
        p.iter()
            .any(|p| p.json["rule"] == "silent" && p.json["state"] == "resolved")
    })
    .await;

    drop(dev);
    // Offline after 1 s, then again each second (repeat) until the device is back.
    let posts = rx
        .wait_until(WAIT, "offline firing twice (repeat)", |p| {
            p.iter().filter(|p| p.json["rule"] == "gone").count() >= 2
        })
        .await;
    let gone: Vec<&Value> = posts
        .iter()
        .filter(|p| p.json["rule"] == "gone")
        .map(|p| &p.json)
        .collect();
    assert_eq!(
        (&gone[0]["state"], &gone[1]["state"]),
        (&json!("firing"), &json!("firing"))
    );
    assert_ne!(
        gone[0]["id"], gone[1]["id"],
        "a repeat is a new notification"
    );
    assert_eq!(gone[0]["since"], gone[1]["since"], "of the same alert");
    assert_eq!(gone[0]["sensor"], Value::Null);
    let _dev = app.connect_device(&token).await;
    rx.wait_until(WAIT, "offline resolved", |p| {
        p.iter()
            .any(|p| p.json["rule"] == "gone" && p.json["state"] == "resolved")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_readings_never_trigger() {
    let rx = Receiver::start().await;
    let app = spawn_app_with(Backend::Sqlite, |s| alert_settings(s, &rx)).await;
    let mut dev = hot_device(&app).await;
    let t = base_ts();
    send_ok(&mut dev, 1, &[("t", json!(1.0), t)]).await;
    // Refused whole: a bad reading beside a hot one; a hot one of another type; one too far in the future.
    let r = send(
        &mut dev,
        2,
        &[("t", json!(50.0), t + 1.0), ("u", Value::Null, t + 1.0)],
    )
    .await;
    assert_eq!(r["nack"], 2, "{r}");
    let r = send(&mut dev, 3, &[("t", json!("50"), t + 2.0)]).await;
    assert_eq!(r["nack"], 3, "{r}");
    let r = send(&mut dev, 4, &[("t", json!(60.0), t + 86_400.0)]).await;
    assert_eq!(r["nack"], 4, "{r}");
    send_ok(&mut dev, 5, &[("t", json!(11.0), t + 3.0)]).await;
    let got = rx.wait_accepted(1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (&got[0]["value"], &got[0]["ts"]),
        (&json!(11.0), &json!(rfc3339(t + 3.0)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_and_carry_their_headers_and_live_clients_get_alerts() {
    let rx = Receiver::start().await;
    let app = spawn_app_with(Backend::Sqlite, |s| alert_settings(s, &rx)).await;
    let admin = admin(&app).await;
    let viewer = app.viewer().await;
    let mut dash = app.connect_dashboard(&viewer).await;
    send_json(&mut dash, &json!({"alerts": true})).await;
    let mut quiet = app.connect_dashboard(&viewer).await;
    subscribe_all(&mut quiet).await;
    add_rule(
        &app,
        &admin,
        json!({"name": "hot", "pattern": "d1/t", "kind": "threshold", "op": ">=", "value": 10}),
    )
    .await;
    let token = app.device("d1").await;
    let mut dev = app.connect_device(&token).await;
    send_ok(&mut dev, 1, &[("t", json!(10.0), base_ts())]).await;
    let posts = rx.wait_until(WAIT, "one POST", |p| !p.is_empty()).await;
    let p = &posts[0];
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&p.body);
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        p.headers["x-telehub-signature"],
        format!("sha256={want}").as_str()
    );
    assert_eq!(p.headers["x-api-key"], "k3y");
    assert_eq!(p.headers["content-type"], "application/json");
    let frame = loop {
        let f = next_json(&mut dash).await;
        if f.get("alert").is_some() {
            break f;
        }
    };
    assert_eq!(
        frame["alert"], p.json,
        "the live frame carries the same event"
    );
    // A client that did not ask gets readings (and status), never an alert frame.
    let readings = loop {
        let f = next_json(&mut quiet).await;
        assert!(f.get("alert").is_none(), "{f}");
        if f.get("readings").is_some() {
            break f;
        }
    };
    assert_eq!(readings["readings"][0]["value"], 10.0);
    let log = app
        .metric(&viewer, "telehub_alert_notifications_sent_total")
        .await;
    assert_eq!(log, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_receiver_outage_every_event_arrives_in_order_per_series_without_duplicates() {
    let rx = Receiver::start().await;
    rx.set_down(true);
    let app = spawn_app_with(Backend::Sqlite, |s| alert_settings(s, &rx)).await;
    add_hot(&app, "*/t").await;
    let mut devs = Vec::new();
    for name in ["a1", "a2"] {
        let token = app.device(name).await;
        devs.push(app.connect_device(&token).await);
    }
    let t = base_ts();
    // Each series flaps: 4 firings and 4 resolutions each, while the receiver is down.
    for i in 0..8u64 {
        for dev in devs.iter_mut() {
            let v = if i % 2 == 0 { 20.0 } else { 0.0 };
            send_ok(dev, i, &[("t", json!(v), t + i as f64)]).await;
        }
    }
    rx.wait_until(WAIT, "failed attempts during the outage", |p| p.len() >= 4)
        .await;
    // Down long enough for several backoff rounds, then up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    rx.set_down(false);
    let got = rx.wait_accepted(16).await;
    let ids: Vec<i64> = got.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        16,
        "no duplicate ids: {ids:?}"
    );
    let mut per_series: HashMap<String, Vec<&Value>> = HashMap::new();
    for e in &got {
        per_series
            .entry(e["device"].as_str().unwrap().to_owned())
            .or_default()
            .push(e);
    }
    for (device, events) in per_series {
        let states: Vec<&str> = events
            .iter()
            .map(|e| e["state"].as_str().unwrap())
            .collect();
        assert_eq!(
            states,
            ["firing", "resolved"].repeat(4),
            "{device}: in order"
        );
        let ts: Vec<&str> = events.iter().map(|e| e["ts"].as_str().unwrap()).collect();
        assert!(
            ts.windows(2).all(|w| w[0] < w[1]),
            "{device}: in order: {ts:?}"
        );
    }
    let failed = rx.posts().iter().filter(|p| !p.accepted).count();
    assert!(failed >= 4, "the outage was felt: {failed} refused POSTs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rules_are_refused_with_a_clear_message_over_http_and_the_cli() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = admin(&app).await;
    let viewer = app.viewer().await;
    let good = json!({"name": "r1", "pattern": "d/t", "kind": "no_data", "for": "1m"});
    add_rule(&app, &admin, good.clone()).await;
    let bad = [
        (
            json!({"name": "r2", "pattern": "d/t", "kind": "threshold", "op": "~", "value": 1}),
            "unknown op",
        ),
        (
            json!({"name": "r2", "pattern": "d/t", "kind": "flood", "for": "1m"}),
            "unknown kind",
        ),
        (
            json!({"name": "r2", "pattern": "d/t", "kind": "no_data", "for": "ten minutes"}),
            "not a duration",
        ),
        (
            json!({"name": "r2", "pattern": "d t", "kind": "no_data", "for": "1m"}),
            "pattern",
        ),
        (
            json!({"name": "r2", "pattern": "d", "kind": "offline", "for": "1m", "repeat": "1ns"}),
            "repeat: 1ns is under 1m",
        ),
        (
            json!({"name": "r2", "pattern": "d", "kind": "offline", "for": "1m", "repeat": "59s"}),
            "repeat: 59s is under 1m",
        ),
        (
            json!({"name": "r2", "pattern": "d/t", "kind": "no_data", "for": "0"}),
            "for: 0s is under 1s",
        ),
        (
            json!({"name": "r2", "pattern": "d", "kind": "offline", "for": "100years"}),
            "over 30 days",
        ),
        (
            json!({"name": "r2", "pattern": "d/t", "kind": "threshold", "op": ">", "value": 1, "for": "365days"}),
            "over 30 days",
        ),
        (good.clone(), "already exists"),
    ];
    for (rule, want) in &bad {
        let (status, body) = post_rule(&app, &admin, rule).await;
        assert_eq!(status, 400, "{rule}: {body}");
        assert_eq!(body["error"], "bad_request");
        assert!(
            body["detail"].as_str().unwrap().contains(want),
            "{rule}: {body}"
        );
    }
    let (status, _) = post_rule(&app, &viewer, &good).await;
    assert_eq!(status, 403, "rules are admin business");
    let db = app.db.url.clone();
    let cli = [
        (vec!["--pattern", "d/t", "--when", "~ 1"], "unknown op"),
        (
            vec!["--pattern", "d/t", "--no-data", "soon"],
            "not a duration",
        ),
        (vec!["--pattern", "d", "--no-data", "1m"], "DEVICE/SENSOR"),
        (
            vec!["--pattern", "d/t", "--when", "> 1", "--clear", "5"],
            "other side",
        ),
        (
            vec!["--pattern", "d/t", "--when", "> 1", "--repeat", "1ns"],
            "repeat: 1ns is under 1m",
        ),
        (
            vec!["--pattern", "d", "--offline", "0s"],
            "for: 0s is under 1s",
        ),
        (
            vec!["--pattern", "d/t", "--no-data", "1000d"],
            "over 30 days",
        ),
    ];
    for (args, want) in cli {
        let mut all = vec!["alert", "add", "r3"];
        all.extend(args.iter());
        let out = telehub_cli(&db, &all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let out = telehub_cli(
        &db,
        &["alert", "add", "r1", "--pattern", "d", "--offline", "1m"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = telehub_cli(
        &db,
        &[
            "alert",
            "add",
            "r4",
            "--pattern",
            "boiler-*",
            "--offline",
            "2m",
            "--severity",
            "warning",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = telehub_cli(&db, &["alert", "list", "--format", "json"]);
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(names, ["r1", "r4"]);
    let file = app.db.path().join("rules.jsonl");
    std::fs::write(&file, "{\"name\":\"r5\",\"pattern\":\"x/y\",\"kind\":\"no_data\",\"for\":\"1m\"}\n{\"name\":\"r6\",\"kind\":\"no_data\"}\n").unwrap();
    let out = telehub_cli(&db, &["alert", "import", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(":2:"), "names the bad line: {err}");
    let out = telehub_cli(&db, &["alert", "rm", "r1"]);
    assert!(out.status.success());
    let out = telehub_cli(&db, &["alert", "list", "--format", "csv"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "name,kind,pattern,condition,severity,repeat\nr4,offline,boiler-*,offline for 2m,warning,\n"
    );
    let (status, rules) = app.get("/v1/alert-rules", Some(&admin)).await;
    assert_eq!(
        (status, rules),
        (
            200,
            json!([{"name": "r4", "pattern": "boiler-*", "kind": "offline", "for": "2m", "severity": "warning"}])
        )
    );
}

/// A hub (SQLite) connected to the broker at `url`, publishing alert events on
/// `PREFIX/alerts/{rule}/{device}`, posting them to a receiver: the hub, the receiver, a
/// client subscribed to `PREFIX/alerts/#`, and the prefix.
pub(crate) async fn mqtt_alert_app(
    url: &str,
) -> (TestApp, Receiver, crate::mqtt::broker::TestClient, String) {
    let p = crate::mqtt::broker::prefix();
    let mut sub = crate::mqtt::broker::TestClient::connect(url).await;
    sub.subscribe(&format!("{p}/alerts/#")).await;
    let rx = Receiver::start().await;
    let app = spawn_app_with(Backend::Sqlite, |s| {
        alert_settings(s, &rx);
        let mut m = crate::mqtt::broker::hub_mqtt(url, &p);
        m.ingest_topic = String::new();
        m.publish_topic = String::new();
        s.mqtt = Some(m);
        s.alerts.mqtt_topic = format!("{p}/alerts/{{rule}}/{{device}}");
    })
    .await;
    crate::mqtt::broker::broker_state(&app, |s| s.connected).await;
    (app, rx, sub, p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_published_on_the_mqtt_alert_topic() {
    let url = crate::need_mqtt!();
    let (app, rx, mut sub, p) = mqtt_alert_app(&url).await;
    let mut dev = hot_device(&app).await;
    send_ok(&mut dev, 1, &[("t", json!(12.0), base_ts())]).await;
    let m = sub.next().await;
    assert_eq!(m.topic, format!("{p}/alerts/hot/d1"));
    let body: Value = serde_json::from_slice(&m.payload).unwrap();
    let posted = rx.wait_accepted(1).await;
    assert_eq!(body, posted[0]);
}

/// A hub killed with SIGKILL after an alert fired but before its webhook was delivered:
/// delivered after the restart, and never announced twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_killed_before_delivery_is_delivered_once_after_the_restart() {
    let rx = Receiver::start().await;
    rx.set_down(true);
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("hub.db").display());
    let config = dir.path().join("hub.toml");
    std::fs::write(
        &config,
        format!(
            "[alerts]\nsecret = \"{SECRET}\"\nretry_backoff = \"50ms\"\nretry_backoff_max = \"200ms\"\npoll_interval = \"100ms\"\nrules_poll = \"100ms\"\n[[alerts.webhooks]]\nurl = \"{}\"\n",
            rx.url
        ),
    )
    .unwrap();
    let tokens = dir.path().join("tokens.txt");
    add_devices(&db, 1, "k", &tokens);
    let token = std::fs::read_to_string(&tokens)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    let out = telehub_cli(
        &db,
        &["alert", "add", "hot", "--pattern", "k1/t", "--when", "> 10"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let extra = ["--config", config.to_str().unwrap()];
    let hub = HubProcess::start(&db, "127.0.0.1:0", dir.path(), &extra).await;
    let addr = hub.addr.clone();
    let ws_url = format!("ws://{addr}/v1/ingest");
    let mut dev = connect(&ws_url, Some(&token)).await.unwrap();
    let t = base_ts();
    send_ok(&mut dev, 1, &[("t", json!(20.0), t)]).await;
    rx.wait_until(WAIT, "a refused delivery attempt", |p| !p.is_empty())
        .await;
    hub.kill().await;

    rx.set_down(false);
    let mut hub = HubProcess::start(&db, &addr, dir.path(), &extra).await;
    let mut dev = connect(&ws_url, Some(&token)).await.unwrap();
    // Still hot after the restart: no second firing. Then cool: resolved.
    send_ok(&mut dev, 1, &[("t", json!(21.0), t + 1.0)]).await;
    send_ok(&mut dev, 2, &[("t", json!(5.0), t + 2.0)]).await;
    let posts = rx
        .wait_until(Duration::from_secs(30), "the resolution", |p| {
            p.iter()
                .any(|p| p.accepted && p.json["state"] == "resolved")
        })
        .await;
    let accepted: Vec<&Value> = posts
        .iter()
        .filter(|p| p.accepted)
        .map(|p| &p.json)
        .collect();
    let states: Vec<&str> = accepted
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        ["firing", "resolved"],
        "{accepted:?}\n{}",
        hub.logs()
    );
    assert_eq!(
        accepted[0]["ts"],
        rfc3339(t),
        "the firing from before the kill"
    );
    assert_eq!(
        accepted[0]["id"], posts[0].json["id"],
        "the same event as attempted before the kill"
    );
    let out = telehub_cli(
        &db,
        &["alert", "events", "--from", "-1d", "--format", "json"],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        2,
        "two events stored"
    );
    assert!(hub.terminate().await.success());
}

/// Two hubs sharing one PostgreSQL database, each with its own devices and both sending
/// webhooks from the shared outbox: every event is POSTed exactly once, not once per hub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_on_one_database_post_each_event_once() {
    crate::need_pg!();
    let rx = Receiver::start().await;
    let app = spawn_app_with(Backend::Postgres, |s| alert_settings(s, &rx)).await;
    let other = telehub::hub::start(app.settings.clone()).await.unwrap();
    add_hot(&app, "*/t").await;
    // The other hub learns of the rule by polling the database.
    let loaded = eventually(
        WAIT,
        "the other hub's engine to load the rule",
        || async { other.state.metrics.alerts.rules.get() },
        |n| *n == 1,
    )
    .await;
    assert_eq!(loaded, 1);
    let mut a = app.connect_device(&app.device("c1").await).await;
    let url = format!("{}/v1/ingest", other.base_url().replacen("http", "ws", 1));
    let mut b = connect(&url, Some(&app.device("c2").await)).await.unwrap();
    let t = base_ts();
    for i in 0..6u64 {
        let v = if i % 2 == 0 { 20.0 } else { 0.0 };
        send_ok(&mut a, i, &[("t", json!(v), t + i as f64)]).await;
        send_ok(&mut b, i, &[("t", json!(v), t + i as f64)]).await;
    }
    rx.wait_accepted(12).await;
    let left = eventually(
        WAIT,
        "an empty outbox",
        || app.store.outbox_pending(),
        |n| matches!(n, Ok(0)),
    )
    .await;
    assert_eq!(left.unwrap(), 0);
    let posts = rx.posts();
    let ids: HashSet<i64> = posts
        .iter()
        .map(|p| p.json["id"].as_i64().unwrap())
        .collect();
    assert_eq!((posts.len(), ids.len()), (12, 12), "each event POSTed once");
    other.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirecting_webhook_is_a_failed_delivery_and_the_redirect_is_never_followed() {
    let rx = Receiver::start().await;
    let elsewhere = Receiver::start().await;
    rx.set_redirect(Some(format!("{}?stolen=1", elsewhere.url)));
    let app = spawn_app_with(Backend::Sqlite, |s| {
        alert_settings(s, &rx);
        s.alerts.webhooks[0].url = format!("{}?key=s3cret", rx.url);
    })
    .await;
    let mut dev = hot_device(&app).await;
    send_ok(&mut dev, 1, &[("t", json!(11.0), base_ts())]).await;
    // Retried per the outbox rules while the receiver redirects…
    let posts = rx
        .wait_until(WAIT, "the redirected POST retried", |p| p.len() >= 3)
        .await;
    assert!(posts.iter().all(|p| !p.accepted));
    assert!(
        posts.iter().all(|p| !p.headers.contains_key("referer")),
        "{:?}",
        posts[0].headers
    );
    // …and delivered once it stops: the event arrives at the configured URL only.
    rx.set_redirect(None);
    let got = rx.wait_accepted(1).await;
    assert_eq!(got[0]["rule"], "hot");
    assert!(
        elsewhere.posts().is_empty(),
        "the signed body went to the redirect target: {:?}",
        elsewhere.posts()
    );
}
