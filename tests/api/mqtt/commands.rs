//! Commands over MQTT (docs/commands.md) against the real broker, on both backends: a
//! command of a device with no `?commands=1` connection is published on
//! `commands_topic` and is `sent` once the broker acknowledged it; the device answers
//! on `command_results_topic` and gets `result_stored` on `command_replies_topic`. A
//! device connected with `?commands=1` gets its commands there and not on MQTT; a
//! command that expires while it waits is never published.

use super::broker::*;
use crate::commands::create;
use crate::commands_ws::{command, connect_commands, operator, wait_state};
use crate::helpers::*;
use crate::{both_backends, need_mqtt};
use serde_json::{Value, json};

/// A hub with commands over MQTT under `prefix`, and a device `d1`.
async fn hub(backend: Backend, url: &str, p: &str) -> (TestApp, String, String) {
    let mut m = hub_mqtt(url, p);
    m.commands_topic = format!("{p}/commands/{{device}}");
    m.command_results_topic = format!("{p}/command-results/+");
    m.command_replies_topic = format!("{p}/command-replies/{{device}}");
    let app = spawn_app_with(backend, |s| s.mqtt = Some(m)).await;
    let device = app.device("d1").await;
    let op = operator(&app).await;
    let viewer = app.viewer().await;
    let up = || app.metric(&viewer, "telehub_mqtt_commands_connected");
    eventually(WAIT, "the commands connection is up", up, |v| *v == 1.0).await;
    (app, device, op)
}

/// A device's MQTT client, subscribed to its commands and the hub's replies.
async fn device_client(url: &str, p: &str) -> TestClient {
    let mut c = TestClient::connect(url).await;
    c.subscribe(&format!("{p}/commands/d1")).await;
    c.subscribe(&format!("{p}/command-replies/d1")).await;
    c
}

/// The next message, as its topic's last level and its JSON payload.
async fn next(c: &mut TestClient) -> (String, Value) {
    let m = c.next().await;
    let level = m.topic.rsplit('/').nth(1).unwrap_or_default().to_owned();
    (
        level,
        serde_json::from_slice(&m.payload).expect("JSON payload"),
    )
}

async fn answer(c: &TestClient, p: &str, frame: Value) {
    c.publish(&format!("{p}/command-results/d1"), frame.to_string())
        .await;
}

async fn a_device_without_connection_gets_its_command_on_mqtt_and_answers_there(backend: Backend) {
    let url = need_mqtt!();
    let p = prefix();
    let (app, _, op) = hub(backend, &url, &p).await;
    let mut dev = device_client(&url, &p).await;
    let body = json!({"name": "set_interval", "params": {"seconds": 10}});
    let created = create(&app, &op, "d1", body).await;
    let id = created["id"].as_str().unwrap();
    let (topic, published) = next(&mut dev).await;
    assert_eq!(topic, "commands");
    assert_eq!(
        published,
        json!({"id": id, "name": "set_interval", "params": {"seconds": 10},
               "expires": created["expires"]})
    );
    let sent = wait_state(&app, &op, id, "sent").await;
    assert_eq!(sent["attempts"], 1);
    answer(&dev, &p, json!({"command_ack": id})).await;
    wait_state(&app, &op, id, "received").await;
    let result = json!({"command_result": id, "status": "ok", "result": {"seconds": 10}});
    answer(&dev, &p, result.clone()).await;
    assert_eq!(
        next(&mut dev).await,
        ("command-replies".into(), json!({"result_stored": id}))
    );
    let done = command(&app, &op, id).await;
    assert_eq!(
        (&done["state"], &done["result"]),
        (&json!("succeeded"), &json!({"seconds": 10}))
    );
    let times: Vec<&str> = ["created", "sent", "received", "finished"]
        .iter()
        .map(|k| done[k].as_str().unwrap_or_else(|| panic!("{k}: {done}")))
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    // Answered again: stored once, confirmed again. Unknown ids and bad frames are nacked.
    answer(&dev, &p, result).await;
    assert_eq!(next(&mut dev).await.1, json!({"result_stored": id}));
    assert_eq!(command(&app, &op, id).await, done);
    answer(&dev, &p, json!({"command_ack": "c_nope"})).await;
    assert_eq!(next(&mut dev).await.1["error"], "unknown_command");
    answer(&dev, &p, json!({"id": 1, "readings": []})).await;
    let nack = next(&mut dev).await.1;
    assert_eq!(nack["error"], "invalid_json", "{nack}");
}
both_backends!(a_device_without_connection_gets_its_command_on_mqtt_and_answers_there);

async fn a_device_connected_with_commands_gets_them_there_and_not_on_mqtt(backend: Backend) {
    let url = need_mqtt!();
    let p = prefix();
    let (app, device, op) = hub(backend, &url, &p).await;
    let mut dev = device_client(&url, &p).await;
    let mut ws = connect_commands(&app, &device).await;
    let first = create(&app, &op, "d1", json!({"name": "reboot"})).await;
    let first = first["id"].as_str().unwrap();
    assert_eq!(next_json(&mut ws).await["command"]["id"], first);
    send_json(&mut ws, &json!({"command_ack": first})).await;
    let result = json!({"command_result": first, "status": "ok"});
    send_json(&mut ws, &result).await;
    assert_eq!(next_json(&mut ws).await, json!({"result_stored": first}));
    ws.close(None).await.unwrap();
    drop(ws);
    let viewer = app.viewer().await;
    let online = || async {
        let (_, devices) = app.get("/v1/devices", Some(&viewer)).await;
        devices
            .as_array()
            .and_then(|d| d.first())
            .map(|d| d["online"].clone())
    };
    eventually(WAIT, "d1 offline", online, |o| *o == Some(json!(false))).await;
    // Gone from the WebSocket: the next command goes to MQTT, and is the first there.
    let second = create(&app, &op, "d1", json!({"name": "reboot"})).await;
    let (topic, published) = next(&mut dev).await;
    assert_eq!(
        (topic.as_str(), &published["id"]),
        ("commands", &second["id"])
    );
    wait_state(&app, &op, second["id"].as_str().unwrap(), "sent").await;
}
both_backends!(a_device_connected_with_commands_gets_them_there_and_not_on_mqtt);

async fn a_command_that_expires_while_waiting_its_turn_is_never_published(backend: Backend) {
    let url = need_mqtt!();
    let p = prefix();
    let (app, _, op) = hub(backend, &url, &p).await;
    let mut dev = device_client(&url, &p).await;
    let first = create(&app, &op, "d1", json!({"name": "reboot"})).await;
    let first = first["id"].as_str().unwrap();
    assert_eq!(next(&mut dev).await.1["id"], first);
    // The window (1) is full until `first` is answered: `brief` waits, and expires.
    let brief = create(&app, &op, "d1", json!({"name": "reboot", "ttl": "1s"})).await;
    let brief = brief["id"].as_str().unwrap();
    wait_state(&app, &op, brief, "expired").await;
    answer(&dev, &p, json!({"command_result": first, "status": "ok"})).await;
    assert_eq!(next(&mut dev).await.1, json!({"result_stored": first}));
    let last = create(&app, &op, "d1", json!({"name": "reboot"})).await;
    assert_eq!(
        next(&mut dev).await.1["id"],
        last["id"],
        "the expired command was never published"
    );
    let b = command(&app, &op, brief).await;
    assert_eq!((&b["state"], &b["sent"]), (&json!("expired"), &Value::Null));
}
both_backends!(a_command_that_expires_while_waiting_its_turn_is_never_published);
