//! Commands delivered to devices over HTTP long-poll (docs/commands.md): `GET
//! /v1/commands/next`, `POST /v1/commands/ID/ack` and `/result`, through the real API,
//! on both backends where storage decides.

use super::commands::{call, create_waiting};
use crate::both_backends;
use crate::helpers::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use telehub::auth::Role;

async fn operator(app: &TestApp) -> String {
    app.store.add_token("op", Role::Operator).await.unwrap()
}

/// Creates a command as `op` (asserting `201`); its id.
async fn create(app: &TestApp, op: &str, device: &str, body: Value) -> String {
    let c = super::commands::create(app, op, device, body).await;
    c["id"].as_str().unwrap().to_owned()
}

async fn next(app: &TestApp, device: &str, wait: &str) -> (u16, Value) {
    call(
        app,
        "GET",
        &format!("/v1/commands/next?wait={wait}"),
        device,
        None,
    )
    .await
}

async fn an_http_device_takes_acknowledges_and_answers_its_command(backend: Backend) {
    let app = spawn_app(backend).await;
    let device = app.device("d1").await;
    let op = operator(&app).await;
    let body = json!({"name": "set_interval", "params": {"seconds": 10}});
    let id = create(&app, &op, "d1", body).await;
    let (status, c) = next(&app, &device, "5s").await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(
        (&c["id"], &c["state"], &c["attempts"]),
        (&json!(id), &json!("sent"), &json!(1))
    );
    assert_eq!(c["params"], json!({"seconds": 10}));
    let (status, c) = call(
        &app,
        "POST",
        &format!("/v1/commands/{id}/ack"),
        &device,
        None,
    )
    .await;
    assert_eq!((status, &c["state"]), (200, &json!("received")), "{c}");
    let answer = json!({"status": "ok", "result": {"seconds": 10}});
    let path = format!("/v1/commands/{id}/result");
    let (status, c) = call(&app, "POST", &path, &device, Some(answer)).await;
    assert_eq!((status, &c["state"]), (200, &json!("succeeded")), "{c}");
    assert_eq!(c["result"], json!({"seconds": 10}));
    for k in ["sent", "received", "finished"] {
        assert!(c[k].is_string(), "{k}: {c}");
    }
    let late = json!({"status": "error", "error": "late"});
    let (status, same) = call(&app, "POST", &path, &device, Some(late)).await;
    assert_eq!((status, &same), (200, &c), "a terminal state never changes");
    let (status, out) = call(&app, "DELETE", &format!("/v1/commands/{id}"), &op, None).await;
    assert_eq!(status, 409, "cancel after succeeded: {out}");
    let viewer = app.viewer().await;
    assert_eq!(
        app.metric(&viewer, "telehub_commands_total{state=\"succeeded\"}")
            .await,
        1.0
    );
}
both_backends!(an_http_device_takes_acknowledges_and_answers_its_command);

async fn create_with_wait_answers_once_the_device_has(backend: Backend) {
    let app = spawn_app(backend).await;
    let device = app.device("d1").await;
    let op = operator(&app).await;
    let waiting = create_waiting(&app, &op, "d1");
    let (status, c) = next(&app, &device, "10s").await;
    assert_eq!(status, 200, "{c}");
    let id = c["id"].as_str().unwrap();
    let answer = Some(json!({"status": "rejected", "error": "unknown command"}));
    let (status, _) = call(
        &app,
        "POST",
        &format!("/v1/commands/{id}/result"),
        &device,
        answer,
    )
    .await;
    assert_eq!(status, 200);
    let (status, c) = tokio::time::timeout(WAIT, waiting)
        .await
        .expect("the create answers")
        .unwrap();
    assert_eq!(
        (status, &c["state"], &c["error"]),
        (201, &json!("rejected"), &json!("unknown command"))
    );
}
both_backends!(create_with_wait_answers_once_the_device_has);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_created_while_the_device_polls_arrives_within_a_second() {
    let app = spawn_app(Backend::Sqlite).await;
    let device = app.device("d1").await;
    let op = operator(&app).await;
    let poll = {
        let (url, device) = (
            format!("{}/v1/commands/next?wait=20s", app.http()),
            device.clone(),
        );
        tokio::spawn(async move {
            let resp = reqwest::Client::new()
                .get(url)
                .bearer_auth(device)
                .send()
                .await
                .unwrap();
            (
                resp.status().as_u16(),
                resp.json::<Value>().await.unwrap(),
                Instant::now(),
            )
        })
    };
    // Whether the poll attaches before or after the command is stored, it gets it at once.
    let created = Instant::now();
    let id = create(&app, &op, "d1", json!({"name": "reboot"})).await;
    let (status, c, got) = tokio::time::timeout(WAIT, poll).await.unwrap().unwrap();
    assert_eq!((status, &c["id"]), (200, &json!(id)));
    assert!(
        got - created < Duration::from_secs(1),
        "{:?}",
        got - created
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_created_by_the_cli_reaches_a_polling_device_within_a_second() {
    let app = spawn_app(Backend::Sqlite).await;
    let device = app.device("d1").await;
    let out = crate::procs::telehub_cli(&app.db.url, &["command", "send", "d1", "reboot"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let started = Instant::now();
    let (status, c) = next(&app, &device, "5s").await;
    assert_eq!((status, &c["name"]), (200, &json!("reboot")), "{c}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

async fn a_canceled_or_expired_command_is_never_sent(backend: Backend) {
    let app = spawn_app(backend).await;
    let device = app.device("d1").await;
    let op = operator(&app).await;
    let canceled = create(&app, &op, "d1", json!({"name": "reboot"})).await;
    let (status, _) = call(
        &app,
        "DELETE",
        &format!("/v1/commands/{canceled}"),
        &op,
        None,
    )
    .await;
    assert_eq!(status, 200);
    create(
        &app,
        &op,
        "d1",
        json!({"name": "reboot", "ttl": "1s", "wait": "10s"}),
    )
    .await;
    assert_eq!(next(&app, &device, "1s").await.0, 204);
    let (_, all) = call(&app, "GET", "/v1/commands", &op, None).await;
    let states: Vec<&Value> = all["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["state"])
        .collect();
    assert_eq!(states, [&json!("expired"), &json!("canceled")]);
    assert!(
        all["commands"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["sent"].is_null())
    );
}
both_backends!(a_canceled_or_expired_command_is_never_sent);

async fn unacknowledged_commands_are_resent_with_the_same_id_then_failed(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.commands.max_attempts = 2).await;
    let device = app.device("d1").await;
    let op = operator(&app).await;
    let id = create(&app, &op, "d1", json!({"name": "reboot"})).await;
    for attempt in [1, 2] {
        let (status, c) = next(&app, &device, "5s").await;
        assert_eq!(
            (status, &c["id"], &c["attempts"]),
            (200, &json!(id), &json!(attempt)),
            "{c}"
        );
    }
    assert_eq!(next(&app, &device, "1s").await.0, 204);
    let (_, c) = call(&app, "GET", &format!("/v1/commands/{id}"), &op, None).await;
    assert_eq!(
        (&c["state"], &c["attempts"]),
        (&json!("failed"), &json!(2)),
        "{c}"
    );
    assert!(c["error"].as_str().unwrap().contains("max_attempts"), "{c}");
}
both_backends!(unacknowledged_commands_are_resent_with_the_same_id_then_failed);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_take_and_answer_only_their_own_commands() {
    let app = spawn_app(Backend::Sqlite).await;
    let d1 = app.device("d1").await;
    let d2 = app.device("d2").await;
    let gw = app.gateway("gw", &["d2"]).await;
    let op = operator(&app).await;
    let id = create(&app, &op, "d1", json!({"name": "reboot"})).await;
    assert_eq!(next(&app, &d2, "200ms").await.0, 204, "not d2's");
    assert_eq!(next(&app, &gw, "200ms").await.0, 204, "nor its gateway's");
    for t in [&d2, &gw] {
        let (status, out) = call(&app, "POST", &format!("/v1/commands/{id}/ack"), t, None).await;
        assert_eq!(status, 403, "{out}");
    }
    let (status, out) = call(&app, "POST", &format!("/v1/commands/{id}/ack"), &d1, None).await;
    assert_eq!(status, 409, "not sent yet: {out}");
    let viewer = app.viewer().await;
    assert_eq!(next(&app, &viewer, "1s").await.0, 403);
    let for_d2 = create(&app, &op, "d2", json!({"name": "reboot"})).await;
    let (status, c) = next(&app, &gw, "5s").await;
    assert_eq!(
        (status, &c["id"], &c["device"]),
        (200, &json!(for_d2), &json!("d2")),
        "a gateway gets its devices' commands"
    );
    let bad = Some(json!({"status": "done"}));
    let (status, out) = call(
        &app,
        "POST",
        &format!("/v1/commands/{for_d2}/result"),
        &gw,
        bad,
    )
    .await;
    assert_eq!(status, 400, "{out}");
    let ok = Some(json!({"status": "ok"}));
    let (status, c) = call(
        &app,
        "POST",
        &format!("/v1/commands/{for_d2}/result"),
        &gw,
        ok,
    )
    .await;
    assert_eq!((status, &c["state"]), (200, &json!("succeeded")), "{c}");
    let (status, _) = call(&app, "POST", "/v1/commands/c_nonesuch/ack", &d1, None).await;
    assert_eq!(status, 404);
}

/// Contract docs/commands.md's promise: a command answered `201` survives a kill -9 of the hub and is
/// still delivered (real hub processes on one SQLite file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_answered_201_is_delivered_after_the_hub_is_killed() {
    use crate::procs::{HubProcess, telehub_cli};
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("hub.db").display());
    let made = |args: &[&str]| {
        let out = telehub_cli(&db, args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let device = made(&["device", "add", "d1"]);
    let op = made(&["token", "add", "ops", "--role", "operator"]);
    let hub = HubProcess::start(&db, "127.0.0.1:0", dir.path(), &[]).await;
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/devices/d1/commands", hub.addr))
        .bearer_auth(&op)
        .body(json!({"name": "reboot"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let id = resp.json::<Value>().await.unwrap()["id"].clone();
    hub.kill().await;
    let hub = HubProcess::start(&db, "127.0.0.1:0", dir.path(), &[]).await;
    let resp = reqwest::Client::new()
        .get(format!("http://{}/v1/commands/next?wait=5s", hub.addr))
        .bearer_auth(&device)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{}", hub.logs());
    let c: Value = resp.json().await.unwrap();
    assert_eq!((&c["id"], &c["state"]), (&id, &json!("sent")));
}
