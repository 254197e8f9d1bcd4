//! Acknowledging and silencing alerts (issue 29, contract §16) through real interfaces:
//! operator tokens over HTTP and the CLI, readings from real device sockets, events at a
//! real webhook receiver, on a live socket and over MQTT, state across a hub restart.
//! Absence is asserted against a later event that would have come after it (a second
//! series' repeats, or its firing), never after a sleep.

use crate::both_backends;
use crate::helpers::*;
use crate::procs::telehub_cli;
use serde_json::{Value, json};
use std::time::Duration;
use telehub::auth::Role;

use super::alerts::{alert_settings as fast, mqtt_alert_app};

/// A new token of `role`, named uniquely; (name, token).
async fn token(app: &TestApp, role: Role) -> (String, String) {
    let name = format!("{role:?}-{}", rand_suffix()).to_lowercase();
    let t = app.store.add_token(&name, role).await.unwrap();
    (name, t)
}

/// Adds the rule `rule` (`PATTERN > 10`, repeated every `repeat` when given).
async fn add_rule(app: &TestApp, rule: &str, pattern: &str, repeat: Option<&str>) {
    let (_, admin) = token(app, Role::Admin).await;
    let mut body =
        json!({"name": rule, "pattern": pattern, "kind": "threshold", "op": ">", "value": 10});
    if let Some(r) = repeat {
        body["repeat"] = json!(r);
    }
    let (status, text) = app.post("/v1/alert-rules", &admin, &body).await;
    assert_eq!(status, 201, "{text}");
}

async fn send_ok(ws: &mut Ws, id: u64, sensor: &str, value: f64, ts: f64) {
    send_json(
        ws,
        &json!({"id": id, "readings": [reading(sensor, value, ts)]}),
    )
    .await;
    let reply = next_json(ws).await;
    assert_eq!(reply["ack"], id, "{reply}");
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// POSTs with `token`; the status and the body as JSON.
async fn post(app: &TestApp, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let (status, text) = app.post(path, token, body).await;
    (status, json_of(&text))
}

async fn delete(app: &TestApp, path: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .delete(format!("{}{path}", app.http()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Whether a POST is the event `state` of `device/sensor`.
fn is(p: &Post, device: &str, sensor: &str, state: &str) -> bool {
    p.json["device"] == device && p.json["sensor"] == sensor && p.json["state"] == state
}

/// The current alert of `device/sensor` in `GET /v1/alerts`.
async fn current(app: &TestApp, viewer: &str, device: &str, sensor: &str) -> Value {
    let (status, all) = app.get("/v1/alerts", Some(viewer)).await;
    assert_eq!(status, 200, "{all}");
    all.as_array()
        .unwrap()
        .iter()
        .find(|a| a["device"] == device && a["sensor"] == sensor)
        .cloned()
        .unwrap_or(Value::Null)
}

/// The next live frame carrying an alert.
async fn next_alert(dash: &mut Ws) -> Value {
    loop {
        let f = next_json(dash).await;
        if let Some(a) = f.get("alert") {
            return a.clone();
        }
    }
}

async fn an_ack_stops_repeats_until_resolve_and_the_next_firing_starts_unacknowledged(
    backend: Backend,
) {
    let rx = Receiver::start().await;
    let app = spawn_app_with(backend, |s| fast(s, &rx)).await;
    let (op_name, op) = token(&app, Role::Operator).await;
    let viewer = app.viewer().await;
    add_rule(&app, "hot", "d1/*", Some("1s")).await;
    let mut dev = app.connect_device(&app.device("d1").await).await;
    let t = base_ts();
    send_ok(&mut dev, 1, "t", 20.0, t).await;
    send_ok(&mut dev, 2, "u", 20.0, t).await;
    rx.wait_until(WAIT, "t repeated once", |p| {
        p.iter().filter(|p| is(p, "d1", "t", "firing")).count() >= 2
    })
    .await;

    let body = json!({"rule": "hot", "device": "d1", "sensor": "t", "comment": "door closed"});
    let (status, ev) = post(&app, "/v1/alerts/ack", &op, &body).await;
    assert_eq!(status, 200, "{ev}");
    assert_eq!(
        (&ev["state"], &ev["by"], &ev["comment"]),
        (
            &json!("acknowledged"),
            &json!(op_name),
            &json!("door closed")
        )
    );
    let now = current(&app, &viewer, "d1", "t").await;
    assert_eq!(now["acknowledged"]["by"], op_name, "{now}");
    assert_eq!(now["acknowledged"]["comment"], "door closed");
    assert_eq!(
        current(&app, &viewer, "d1", "u").await["acknowledged"],
        Value::Null
    );

    // u keeps repeating; t, acknowledged, does not (its events reach the receiver in order).
    let posts = rx
        .wait_until(WAIT, "the acknowledgement delivered", |p| {
            p.iter().any(|p| is(p, "d1", "t", "acknowledged"))
        })
        .await;
    let u_then = posts.iter().filter(|p| is(p, "d1", "u", "firing")).count();
    let posts = rx
        .wait_until(WAIT, "three more repeats of u", |p| {
            p.iter().filter(|p| is(p, "d1", "u", "firing")).count() >= u_then + 3
        })
        .await;
    let acked_at = posts
        .iter()
        .position(|p| is(p, "d1", "t", "acknowledged"))
        .unwrap();
    assert_eq!(posts[acked_at].json["by"], op_name);
    assert!(
        !posts[acked_at..].iter().any(|p| is(p, "d1", "t", "firing")),
        "no repeat of t after its acknowledgement"
    );

    // Resolved, then firing again: unacknowledged, and repeating again.
    send_ok(&mut dev, 3, "t", 0.0, t + 10.0).await;
    send_ok(&mut dev, 4, "t", 20.0, t + 11.0).await;
    rx.wait_until(WAIT, "t firing twice after it fired again", |p| {
        let after = p.iter().rposition(|p| is(p, "d1", "t", "resolved"));
        after.is_some_and(|i| p[i..].iter().filter(|p| is(p, "d1", "t", "firing")).count() >= 2)
    })
    .await;
    assert_eq!(
        current(&app, &viewer, "d1", "t").await["acknowledged"],
        Value::Null
    );
    let (status, _) = post(&app, "/v1/alerts/ack", &op, &body).await;
    assert_eq!(status, 200, "the new firing can be acknowledged again");
}
both_backends!(an_ack_stops_repeats_until_resolve_and_the_next_firing_starts_unacknowledged);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_are_refused_bad_bodies_are_400_and_an_alert_not_firing_is_404() {
    let app = spawn_app(Backend::Sqlite).await;
    let (_, op) = token(&app, Role::Operator).await;
    let viewer = app.viewer().await;
    add_rule(&app, "hot", "d1/t", None).await;
    let ack = json!({"rule": "hot", "device": "d1", "sensor": "t", "comment": "x"});
    let silence = json!({"pattern": "d1/*", "for": "1h", "comment": "x"});
    assert_eq!(post(&app, "/v1/alerts/ack", &viewer, &ack).await.0, 403);
    assert_eq!(post(&app, "/v1/silences", &viewer, &silence).await.0, 403);
    let (status, body) = post(&app, "/v1/alerts/ack", &op, &ack).await;
    assert_eq!(
        (status, &body["error"]),
        (404, &json!("not_found")),
        "{body}"
    );
    for bad in [
        json!({"device": "d1"}),
        json!({"rule": "hot", "device": "d 1", "comment": ""}),
        json!({"rule": "hot", "device": "d1", "comment": "x".repeat(1001)}),
        json!([1]),
    ] {
        let (status, body) = post(&app, "/v1/alerts/ack", &op, &bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"], "bad_request", "{body}");
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{body}"
        );
    }
    for bad in [
        json!({"pattern": "d1/*", "comment": "no end"}),
        json!({"pattern": "d1/*", "for": "1h", "until": "2030-01-01T00:00:00Z"}),
        json!({"pattern": "d1/*", "until": "2001-01-01T00:00:00Z"}),
        json!({"pattern": "d 1/*", "for": "1h"}),
        json!({"pattern": "d1/*", "for": "later"}),
    ] {
        let (status, body) = post(&app, "/v1/silences", &op, &bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"], "bad_request", "{body}");
    }
    let (status, created) = post(&app, "/v1/silences", &op, &silence).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().expect("an id");
    let (status, list) = app.get("/v1/silences", Some(&viewer)).await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["id"], id, "{list}");
    assert_eq!(list[0]["pattern"], "d1/*");
    assert_eq!(
        delete(&app, &format!("/v1/silences/{id}"), &viewer).await,
        403
    );
    assert_eq!(delete(&app, "/v1/silences/999999", &op).await, 404);
    assert_eq!(delete(&app, "/v1/silences/x", &op).await, 404);
    assert_eq!(delete(&app, &format!("/v1/silences/{id}"), &op).await, 204);
    assert_eq!(delete(&app, &format!("/v1/silences/{id}"), &op).await, 404);
    assert_eq!(app.get("/v1/silences", Some(&viewer)).await.1, json!([]));
}

async fn a_silence_stores_events_silenced_and_its_end_announces_a_firing_alert_once(
    backend: Backend,
) {
    let rx = Receiver::start().await;
    let app = spawn_app_with(backend, |s| fast(s, &rx)).await;
    let (_, op) = token(&app, Role::Operator).await;
    let viewer = app.viewer().await;
    let mut dash = app.connect_dashboard(&viewer).await;
    send_json(&mut dash, &json!({"alerts": true})).await;
    add_rule(&app, "hot", "*/t", None).await;
    let silence = json!({"pattern": "d1/*", "rule": "hot", "for": "1h", "comment": "maintenance"});
    let (status, created) = post(&app, "/v1/silences", &op, &silence).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    let mut d1 = app.connect_device(&app.device("d1").await).await;
    let mut d2 = app.connect_device(&app.device("d2").await).await;
    let t = base_ts();
    send_ok(&mut d1, 1, "t", 20.0, t).await;
    send_ok(&mut d2, 1, "t", 20.0, t).await;

    // d2 is announced everywhere; d1, silenced, stored only.
    let frame = next_alert(&mut dash).await;
    assert_eq!(
        (&frame["device"], &frame["state"]),
        (&json!("d2"), &json!("firing")),
        "{frame}"
    );
    rx.wait_until(WAIT, "d2 firing", |p| {
        p.iter().any(|p| is(p, "d2", "t", "firing"))
    })
    .await;
    let empty = eventually(
        WAIT,
        "an empty outbox",
        || app.store.outbox_pending(),
        |n| matches!(n, Ok(0)),
    )
    .await;
    assert_eq!(empty.unwrap(), 0);
    assert!(
        !rx.posts().iter().any(|p| p.json["device"] == "d1"),
        "d1 is silenced"
    );
    let (_, events) = app.get("/v1/alerts/events?from=-1h", Some(&viewer)).await;
    let d1_events: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["device"] == "d1")
        .collect();
    assert_eq!(d1_events.len(), 1, "{events}");
    assert_eq!(
        (&d1_events[0]["state"], &d1_events[0]["silenced"]),
        (&json!("firing"), &json!(true))
    );
    let d2_event = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["device"] == "d2")
        .unwrap();
    assert!(d2_event.get("silenced").is_none(), "{d2_event}");
    assert_eq!(current(&app, &viewer, "d1", "t").await["silenced_by"], id);
    assert_eq!(
        current(&app, &viewer, "d2", "t").await["silenced_by"],
        Value::Null
    );

    // Ended while d1 still fires: announced once, on the live feed and the webhook.
    assert_eq!(delete(&app, &format!("/v1/silences/{id}"), &op).await, 204);
    let frame = next_alert(&mut dash).await;
    assert_eq!(
        (&frame["device"], &frame["state"]),
        (&json!("d1"), &json!("firing")),
        "{frame}"
    );
    assert!(frame.get("silenced").is_none(), "{frame}");
    assert_eq!(
        current(&app, &viewer, "d1", "t").await["silenced_by"],
        Value::Null
    );
    // Then d2 resolves: by then a second announcement of d1 would have been made.
    send_ok(&mut d2, 2, "t", 0.0, t + 1.0).await;
    let frame = next_alert(&mut dash).await;
    assert_eq!(
        (&frame["device"], &frame["state"]),
        (&json!("d2"), &json!("resolved")),
        "{frame}"
    );
    let posts = rx
        .wait_until(WAIT, "d2 resolved", |p| {
            p.iter().any(|p| is(p, "d2", "t", "resolved"))
        })
        .await;
    let d1: Vec<&Post> = posts.iter().filter(|p| p.json["device"] == "d1").collect();
    assert_eq!(d1.len(), 1, "announced once: {:?}", rx.accepted());
    assert_eq!(d1[0].json["state"], "firing");
}
both_backends!(a_silence_stores_events_silenced_and_its_end_announces_a_firing_alert_once);

/// MQTT and the acknowledged event's delivery: a silenced alert publishes nothing; an
/// acknowledgement is published like the other events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silenced_events_are_not_published_on_mqtt_and_acknowledgements_are() {
    let url = crate::need_mqtt!();
    let (app, rx, mut sub, p) = mqtt_alert_app(&url).await;
    let (op_name, op) = token(&app, Role::Operator).await;
    add_rule(&app, "hot", "*/t", None).await;
    let body = json!({"pattern": "d1", "until": "2099-01-01T00:00:00Z", "comment": "x"});
    assert_eq!(
        post(&app, "/v1/silences", &op, &body).await.0,
        400,
        "over 366 days"
    );
    let body = json!({"pattern": "d1", "for": "1h", "comment": "x"});
    assert_eq!(post(&app, "/v1/silences", &op, &body).await.0, 201);
    let mut d1 = app.connect_device(&app.device("d1").await).await;
    let mut d2 = app.connect_device(&app.device("d2").await).await;
    let t = base_ts();
    send_ok(&mut d1, 1, "t", 20.0, t).await;
    send_ok(&mut d2, 1, "t", 20.0, t).await;
    let m = sub.next().await;
    assert_eq!(m.topic, format!("{p}/alerts/hot/d2"), "d1 is silenced");
    let ack = json!({"rule": "hot", "device": "d2", "sensor": "t", "comment": "on it"});
    assert_eq!(post(&app, "/v1/alerts/ack", &op, &ack).await.0, 200);
    let m = sub.next().await;
    let ev: Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(
        (&ev["state"], &ev["by"]),
        (&json!("acknowledged"), &json!(op_name))
    );
    let posted = rx
        .wait_until(WAIT, "the acknowledgement", |p| {
            p.iter().any(|p| is(p, "d2", "t", "acknowledged"))
        })
        .await;
    assert!(!posted.iter().any(|p| p.json["device"] == "d1"));
}

async fn acks_and_silences_survive_a_restart_and_a_silence_expiring_announces(backend: Backend) {
    let rx = Receiver::start().await;
    let mut app = spawn_app_with(backend, |s| fast(s, &rx)).await;
    let (op_name, op) = token(&app, Role::Operator).await;
    let viewer = app.viewer().await;
    add_rule(&app, "hot", "*/t", Some("1s")).await;
    let t = base_ts();
    let (status, created) = post(
        &app,
        "/v1/silences",
        &op,
        &json!({"pattern": "d2/t", "for": "4s", "comment": "short"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let tokens = [app.device("d1").await, app.device("d2").await];
    for (i, tok) in tokens.iter().enumerate() {
        let mut dev = app.connect_device(tok).await;
        send_ok(&mut dev, 1, "t", 20.0, t + i as f64).await;
    }
    rx.wait_until(WAIT, "d1 firing", |p| {
        p.iter().any(|p| is(p, "d1", "t", "firing"))
    })
    .await;
    let ack = json!({"rule": "hot", "device": "d1", "sensor": "t", "comment": "known"});
    assert_eq!(post(&app, "/v1/alerts/ack", &op, &ack).await.0, 200);

    rx.wait_until(WAIT, "the acknowledgement delivered", |p| {
        p.iter().any(|p| is(p, "d1", "t", "acknowledged"))
    })
    .await;
    app.stop().await;
    app.hub = Some(telehub::hub::start(app.settings.clone()).await.unwrap());
    let d1 = current(&app, &viewer, "d1", "t").await;
    assert_eq!(d1["acknowledged"]["by"], op_name, "{d1}");
    let (_, list) = app.get("/v1/silences", Some(&viewer)).await;
    assert_eq!(list[0]["id"], created["id"], "{list}");
    // The silence expires while d2 fires: announced once, then repeating every second;
    // d1, acknowledged before the restart, never repeats.
    let posts = rx
        .wait_until(
            Duration::from_secs(20),
            "d2 firing twice after the silence",
            |p| p.iter().filter(|p| is(p, "d2", "t", "firing")).count() >= 2,
        )
        .await;
    let acked_at = posts
        .iter()
        .position(|p| is(p, "d1", "t", "acknowledged"))
        .unwrap();
    assert!(
        !posts[acked_at..].iter().any(|p| is(p, "d1", "t", "firing")),
        "{:?}",
        rx.accepted()
    );
    assert_eq!(app.get("/v1/silences", Some(&viewer)).await.1, json!([]));
}
both_backends!(acks_and_silences_survive_a_restart_and_a_silence_expiring_announces);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_acknowledges_silences_lists_and_unsilences() {
    let rx = Receiver::start().await;
    let app = spawn_app_with(Backend::Sqlite, |s| fast(s, &rx)).await;
    let db = app.db.url.clone();
    let viewer = app.viewer().await;
    add_rule(&app, "hot", "*/t", None).await;
    let mut dev = app.connect_device(&app.device("d1").await).await;
    send_ok(&mut dev, 1, "t", 20.0, base_ts()).await;
    rx.wait_until(WAIT, "firing", |p| {
        p.iter().any(|p| is(p, "d1", "t", "firing"))
    })
    .await;
    let cli = |args: &[&str]| {
        let out = telehub_cli(&db, args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (
            out.status.code(),
            text,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = cli(&["alert", "ack", "hot", "d1", "t", "--comment", "seen"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(json_of(&out)["state"], "acknowledged", "{out}");
    // Stored with its event (the CLI's own settings name no webhook here).
    let (_, events) = app.get("/v1/alerts/events?from=-1h", Some(&viewer)).await;
    let acked = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["state"] == "acknowledged")
        .cloned()
        .unwrap_or_default();
    assert!(
        acked["by"].as_str().is_some_and(|b| b.starts_with("cli:")),
        "{events}"
    );
    assert_eq!(acked["comment"], "seen");
    assert_eq!(
        current(&app, &viewer, "d1", "t").await["acknowledged"]["comment"],
        "seen"
    );

    let (code, _, err) = cli(&["alert", "ack", "hot", "d9", "t", "--comment", "x"]);
    assert_eq!(code, Some(2), "not firing: {err}");
    assert!(err.contains("not firing"), "{err}");
    let (code, _, err) = cli(&["alert", "silence", "d1/*", "--comment", "x"]);
    assert_eq!(code, Some(2), "neither --for nor --until: {err}");
    let (code, _, err) = cli(&["alert", "silence", "d 1/*", "--for", "1h", "--comment", "x"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, out, err) = cli(&[
        "alert",
        "silence",
        "d1/*",
        "--for",
        "2h",
        "--rule",
        "hot",
        "--comment",
        "maintenance",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let id: i64 = out.trim().parse().expect("the id");
    let (_, out, _) = cli(&["alert", "silences", "--format", "json"]);
    let listed = json_of(out.lines().next().unwrap_or(""));
    assert_eq!(
        (&listed["id"], &listed["pattern"], &listed["rule"]),
        (&json!(id), &json!("d1/*"), &json!("hot")),
        "{out}"
    );
    // A running hub reads it within rules_poll.
    eventually(
        WAIT,
        "the alert silenced",
        || current(&app, &viewer, "d1", "t"),
        |a| a["silenced_by"] == id,
    )
    .await;
    let (code, _, err) = cli(&["alert", "unsilence", &id.to_string()]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = cli(&["alert", "unsilence", &id.to_string()]);
    assert_eq!(code, Some(2), "no longer active: {err}");
    let (_, out, _) = cli(&["alert", "silences", "--format", "json"]);
    assert_eq!(out, "");
}
