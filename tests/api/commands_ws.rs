//! Commands over the device WebSocket (docs/commands.md): `GET /v1/ingest?commands=1`,
//! the `command` frame, `command_ack` and `command_result`, `result_stored`, the
//! `unknown_command` nack; opt-in, expiry, resends, `max_attempts`, and the live feed's
//! `{"commands": true}` — through real sockets, on both backends.

use super::commands::{call, create};
use crate::both_backends;
use crate::helpers::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use telehub::auth::Role;

pub async fn operator(app: &TestApp) -> String {
    app.store.add_token("op", Role::Operator).await.unwrap()
}

/// A device socket that takes commands.
pub async fn connect_commands(app: &TestApp, token: &str) -> Ws {
    connect(&app.ws("/v1/ingest?commands=1"), Some(token))
        .await
        .expect("device connects")
}

/// The command as the API shows it.
pub async fn command(app: &TestApp, token: &str, id: &str) -> Value {
    let (status, c) = call(app, "GET", &format!("/v1/commands/{id}"), token, None).await;
    assert_eq!(status, 200, "{c}");
    c
}

/// Waits until command `id` is in `state`; the command.
pub async fn wait_state(app: &TestApp, token: &str, id: &str, state: &str) -> Value {
    eventually(
        WAIT,
        &format!("command {id} {state}"),
        || command(app, token, id),
        |c| c["state"] == state,
    )
    .await
}

/// Sends a one-reading message `id` and asserts the very next frame is its `ack`: no
/// command frame came before it.
async fn next_frame_is_the_ack_of(ws: &mut Ws, id: u64) {
    let msg = json!({"id": id, "readings": [reading("t", 1.0, base_ts() + id as f64)]});
    send_json(ws, &msg).await;
    assert_eq!(next_json(ws).await, json!({"ack": id, "stored": 1}));
}

async fn a_websocket_device_takes_acknowledges_and_answers_its_command(backend: Backend) {
    let app = spawn_app(backend).await;
    let device = app.device("d1").await;
    let op = operator(&app).await;
    let mut ws = connect_commands(&app, &device).await;
    let body = json!({"name": "set_interval", "params": {"seconds": 10}, "ttl": "1h"});
    let created = create(&app, &op, "d1", body).await;
    let id = created["id"].as_str().unwrap();
    let frame = next_json(&mut ws).await;
    assert_eq!(
        frame,
        json!({"command": {"id": id, "name": "set_interval", "params": {"seconds": 10},
               "expires": created["expires"]}}),
        "a device (not a gateway) gets no `device`"
    );
    assert_eq!(wait_state(&app, &op, id, "sent").await["attempts"], 1);
    send_json(&mut ws, &json!({"command_ack": id})).await;
    wait_state(&app, &op, id, "received").await;
    // Replies stay in frame order: a message, the result, another message.
    let m = |n: u64| json!({"id": n, "readings": [reading("t", 1.0, base_ts() + n as f64)]});
    send_json(&mut ws, &m(1)).await;
    let result = json!({"command_result": id, "status": "ok", "result": {"seconds": 10}});
    send_json(&mut ws, &result).await;
    send_json(&mut ws, &m(2)).await;
    assert_eq!(next_json(&mut ws).await, json!({"ack": 1, "stored": 1}));
    assert_eq!(next_json(&mut ws).await, json!({"result_stored": id}));
    assert_eq!(next_json(&mut ws).await, json!({"ack": 2, "stored": 1}));
    let c = command(&app, &op, id).await;
    assert_eq!(
        (&c["state"], &c["result"]),
        (&json!("succeeded"), &json!({"seconds": 10}))
    );
    let times: Vec<&str> = ["created", "sent", "received", "finished"]
        .iter()
        .map(|k| c[k].as_str().unwrap_or_else(|| panic!("{k}: {c}")))
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    // Answered again (the device missed `result_stored`): stored once, answered again.
    let late = json!({"command_result": id, "status": "error", "error": "late"});
    send_json(&mut ws, &late).await;
    assert_eq!(next_json(&mut ws).await, json!({"result_stored": id}));
    assert_eq!(
        command(&app, &op, id).await,
        c,
        "a terminal state never changes"
    );
    // Unknown and malformed command frames are refused, not fatal.
    send_json(&mut ws, &json!({"command_ack": "c_nope"})).await;
    let nack = next_json(&mut ws).await;
    assert_eq!(
        (&nack["nack"], &nack["error"]),
        (&Value::Null, &json!("unknown_command")),
        "{nack}"
    );
    send_json(&mut ws, &json!({"command_result": id, "status": "done"})).await;
    let nack = next_json(&mut ws).await;
    assert_eq!(nack["error"], "invalid_json", "{nack}");
    assert!(
        nack["detail"].as_str().unwrap().contains("status"),
        "{nack}"
    );
    next_frame_is_the_ack_of(&mut ws, 3).await;
}
both_backends!(a_websocket_device_takes_acknowledges_and_answers_its_command);

async fn a_device_offline_at_create_gets_it_within_a_second_of_connecting(backend: Backend) {
    let app = spawn_app(backend).await;
    let device = app.device("d1").await;
    let op = operator(&app).await;
    let id = create(&app, &op, "d1", json!({"name": "reboot"})).await["id"].clone();
    let started = Instant::now();
    let mut ws = connect_commands(&app, &device).await;
    let frame = next_json(&mut ws).await;
    assert_eq!(frame["command"]["id"], id);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}
both_backends!(a_device_offline_at_create_gets_it_within_a_second_of_connecting);

async fn a_device_that_did_not_opt_in_never_gets_a_command_frame(backend: Backend) {
    let app = spawn_app(backend).await;
    let device = app.device("d1").await;
    let op = operator(&app).await;
    let mut old = app.connect_device(&device).await;
    let mut off = connect(&app.ws("/v1/ingest?commands=0"), Some(&device))
        .await
        .unwrap();
    let c = create(&app, &op, "d1", json!({"name": "reboot", "ttl": "1s"})).await;
    let id = c["id"].as_str().unwrap();
    let expired = wait_state(&app, &op, id, "expired").await;
    assert_eq!(
        (&expired["attempts"], &expired["sent"]),
        (&json!(0), &Value::Null)
    );
    next_frame_is_the_ack_of(&mut old, 1).await;
    next_frame_is_the_ack_of(&mut off, 2).await;
    let bad = connect(&app.ws("/v1/ingest?commands=yes"), Some(&device)).await;
    assert_eq!(refused_status(bad), 400);
}
both_backends!(a_device_that_did_not_opt_in_never_gets_a_command_frame);

async fn a_command_expiring_while_the_device_is_away_is_never_sent(backend: Backend) {
    let app = spawn_app(backend).await;
    let device = app.device("d1").await;
    let op = operator(&app).await;
    let c = create(&app, &op, "d1", json!({"name": "reboot", "ttl": "1s"})).await;
    let id = c["id"].as_str().unwrap();
    wait_state(&app, &op, id, "expired").await;
    let mut ws = connect_commands(&app, &device).await;
    next_frame_is_the_ack_of(&mut ws, 1).await;
    let c = command(&app, &op, id).await;
    assert_eq!((&c["state"], &c["sent"]), (&json!("expired"), &Value::Null));
}
both_backends!(a_command_expiring_while_the_device_is_away_is_never_sent);

async fn a_command_not_acknowledged_is_sent_again_with_its_id_then_fails(backend: Backend) {
    let app = spawn_app_with(backend, |s| s.commands.max_attempts = 2).await;
    let device = app.device("d1").await;
    let op = operator(&app).await;
    let id = create(&app, &op, "d1", json!({"name": "reboot"})).await["id"].clone();
    for attempt in 1..=2 {
        let mut ws = connect_commands(&app, &device).await;
        let frame = next_json(&mut ws).await;
        assert_eq!(frame["command"]["id"], id, "attempt {attempt}");
        let id = id.as_str().unwrap();
        let c = command(&app, &op, id).await;
        assert_eq!(
            (&c["state"], &c["attempts"]),
            (&json!("sent"), &json!(attempt))
        );
        drop(ws); // lost before `command_ack`
    }
    // The next send would be the third: it fails instead.
    let mut ws = connect_commands(&app, &device).await;
    let c = wait_state(&app, &op, id.as_str().unwrap(), "failed").await;
    assert!(
        c["error"].as_str().unwrap().contains("after 2 sends"),
        "{c}"
    );
    next_frame_is_the_ack_of(&mut ws, 1).await;
}
both_backends!(a_command_not_acknowledged_is_sent_again_with_its_id_then_fails);

async fn a_gateway_gets_the_commands_of_its_devices_with_their_name(backend: Backend) {
    let app = spawn_app(backend).await;
    app.device("s1").await;
    let gw = app.gateway("gw", &["s1"]).await;
    let other = app.device("s2").await;
    let op = operator(&app).await;
    let mut ws = connect_commands(&app, &gw).await;
    let id = create(&app, &op, "s1", json!({"name": "reboot"})).await["id"].clone();
    let frame = next_json(&mut ws).await;
    assert_eq!(
        (&frame["command"]["id"], &frame["command"]["device"]),
        (&id, &json!("s1"))
    );
    let id = id.as_str().unwrap();
    // Another device cannot answer it.
    let mut s2 = connect_commands(&app, &other).await;
    send_json(&mut s2, &json!({"command_result": id, "status": "ok"})).await;
    assert_eq!(next_json(&mut s2).await["error"], "unknown_command");
    send_json(&mut ws, &json!({"command_ack": id})).await;
    send_json(
        &mut ws,
        &json!({"command_result": id, "status": "rejected", "error": "no"}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await, json!({"result_stored": id}));
    assert_eq!(command(&app, &op, id).await["state"], "rejected");
}
both_backends!(a_gateway_gets_the_commands_of_its_devices_with_their_name);

async fn the_live_feed_shows_every_state_change_to_clients_that_ask(backend: Backend) {
    let app = spawn_app(backend).await;
    let device = app.device("d1").await;
    let op = operator(&app).await;
    let viewer = app.viewer().await;
    let mut live = app.connect_dashboard(&viewer).await;
    send_json(&mut live, &json!({"commands": true})).await;
    let mut ws = connect_commands(&app, &device).await;
    // `{"commands": true}` is taken once the live socket answers what follows it.
    send_json(&mut live, &json!({"watch": ["*"]})).await;
    assert_eq!(next_json(&mut live).await["error"], "invalid_command");
    next_frame_is_the_ack_of(&mut ws, 1).await;
    let id = create(&app, &op, "d1", json!({"name": "fail"})).await["id"].clone();
    let frame = next_json(&mut ws).await;
    let ids = id.as_str().unwrap();
    assert_eq!(frame["command"]["id"], id);
    send_json(&mut ws, &json!({"command_ack": ids})).await;
    send_json(
        &mut ws,
        &json!({"command_result": ids, "status": "error", "error": "boom"}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await, json!({"result_stored": ids}));
    let mut states = Vec::new();
    while states.last().map(String::as_str) != Some("failed") {
        let f = next_json(&mut live).await;
        let c = &f["command"];
        assert_eq!(c["id"], id, "{f}");
        states.push(c["state"].as_str().unwrap().to_owned());
    }
    assert_eq!(states, ["queued", "sent", "received", "failed"]);
}
both_backends!(the_live_feed_shows_every_state_change_to_clients_that_ask);
