//! A device's identity over its life (docs/cli.md "Devices over their life"): more tokens,
//! their last use and revocation, gateway lists edited in place, description and location —
//! through the real CLI process, HTTP and device sockets, on both backends.

use crate::both_backends;
use crate::helpers::*;
use crate::procs::telehub_cli as telehub;
use serde_json::{Value, json};
use std::process::Output;
use std::time::Duration;

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_owned()
}

/// Runs the CLI, asserting it succeeds; its stdout.
fn ok(db: &str, args: &[&str]) -> String {
    let o = telehub(db, args);
    assert!(o.status.success(), "{args:?}: {}", err(&o));
    out(&o)
}

/// Sends one reading with `token` over a fresh socket and waits for its ack.
async fn send_one(app: &TestApp, token: &str, id: u64, value: f64) {
    let mut ws = app.connect_device(token).await;
    let t = base_ts() + id as f64;
    send_json(
        &mut ws,
        &json!({"id": id, "readings": [reading("t", value, t)]}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["ack"], id);
}

async fn device_tokens_rotate_without_losing_history(b: Backend) {
    let app = spawn_app(b).await;
    let db = app.db.url.clone();
    let first = ok(&db, &["device", "add", "d1"]);
    send_one(&app, &first, 1, 1.0).await;

    let second = ok(&db, &["device", "token", "add", "d1"]);
    assert!(second.starts_with("th_") && second != first);
    send_one(&app, &second, 2, 2.0).await;

    // Both tokens listed with their use, never their secrets.
    let list = eventually(
        Duration::from_secs(5),
        "both tokens' last use recorded",
        || async {
            let text = ok(&db, &["device", "token", "list", "d1", "--format", "json"]);
            serde_json::from_str::<Vec<Value>>(&text).unwrap()
        },
        |l| l.len() == 2 && l.iter().all(|t| t["last_used"].is_string()),
    )
    .await;
    let text = ok(&db, &["device", "token", "list", "d1"]);
    assert!(!text.contains(&first) && !text.contains(&second), "{text}");
    let first_id = list[0]["id"].as_i64().unwrap();

    // Revoking the first closes its socket; the second keeps working.
    let mut old = app.connect_device(&first).await;
    ok(
        &db,
        &[
            "device",
            "token",
            "revoke",
            "d1",
            "--token-id",
            &first_id.to_string(),
        ],
    );
    assert_eq!(close_code(&mut old).await, 1008);
    assert_eq!(
        refused_status(connect(&app.ws("/v1/ingest"), Some(&first)).await),
        401
    );
    send_one(&app, &second, 3, 3.0).await;

    let o = telehub(
        &db,
        &["device", "token", "revoke", "d1", "--token-id", "999999"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("has no token 999999"), "{}", err(&o));
    let o = telehub(&db, &["device", "token", "add", "ghost"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));

    // A revoked device comes back with a new token, its history intact.
    ok(&db, &["device", "revoke", "d1"]);
    assert_eq!(
        refused_status(connect(&app.ws("/v1/ingest"), Some(&second)).await),
        401
    );
    let o = telehub(&db, &["device", "token", "add", "d1"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("active again"), "{}", err(&o));
    let third = out(&o);
    send_one(&app, &third, 4, 4.0).await;
    let stored = app.wait_stored("d1", 4).await;
    assert_eq!(
        stored.iter().map(|r| r.2).collect::<Vec<_>>(),
        [1.0, 2.0, 3.0, 4.0]
    );
    // The older tokens stay revoked.
    assert_eq!(
        refused_status(connect(&app.ws("/v1/ingest"), Some(&second)).await),
        401
    );

    ok(&db, &["device", "token", "revoke", "d1", "--all"]);
    assert_eq!(
        refused_status(connect(&app.ws("/v1/ingest"), Some(&third)).await),
        401
    );
    let viewer = app.viewer().await;
    let (_, devices) = app.get("/v1/devices", Some(&viewer)).await;
    assert!(
        devices
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == "d1"),
        "the device stays"
    );
}
both_backends!(device_tokens_rotate_without_losing_history);

async fn token_names_are_unique_and_show_their_last_use(b: Backend) {
    let app = spawn_app(b).await;
    let db = app.db.url.clone();
    let token = ok(&db, &["token", "add", "wall-screen", "--role", "viewer"]);
    let o = telehub(&db, &["token", "add", "wall-screen", "--role", "admin"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(
        err(&o).contains("a token named wall-screen exists"),
        "{}",
        err(&o)
    );
    assert_eq!(app.get("/v1/devices", Some(&token)).await.0, 200);
    let used = eventually(
        Duration::from_secs(5),
        "the viewer token's last use",
        || async {
            let text = ok(&db, &["token", "list", "--format", "json"]);
            serde_json::from_str::<Vec<Value>>(&text).unwrap()
        },
        |l| {
            l.iter()
                .any(|t| t["label"] == "wall-screen" && t["last_used"].is_string())
        },
    )
    .await;
    assert_eq!(
        used.iter().filter(|t| t["label"] == "wall-screen").count(),
        1
    );
    // Once revoked, the name is free again.
    ok(&db, &["token", "revoke", "wall-screen"]);
    ok(&db, &["token", "add", "wall-screen", "--role", "viewer"]);
}
both_backends!(token_names_are_unique_and_show_their_last_use);

async fn gateways_are_edited_in_place(b: Backend) {
    let app = spawn_app(b).await;
    let db = app.db.url.clone();
    let o = telehub(&db, &["device", "add", "gw", "--gateway-for", "a,b"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(
        err(&o).contains("--create-missing") || err(&o).contains("device add a"),
        "{}",
        err(&o)
    );
    let gw = ok(
        &db,
        &[
            "device",
            "add",
            "gw",
            "--gateway-for",
            "a,b",
            "--create-missing",
        ],
    );

    let mut sock = app.connect_device(&gw).await;
    let t = base_ts();
    send_json(
        &mut sock,
        &json!({"id": 1, "device": "a", "readings": [reading("t", 1.0, t)]}),
    )
    .await;
    assert_eq!(next_json(&mut sock).await["ack"], 1);

    let o = telehub(&db, &["device", "gateway", "gw", "--add", "c"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("device c does not exist"), "{}", err(&o));
    ok(&db, &["device", "add", "c"]);
    let o = telehub(
        &db,
        &["device", "gateway", "gw", "--add", "c", "--remove", "a"],
    );
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("b,c"), "{}", err(&o));

    // Losing a device closes the gateway's socket; it reconnects with the new list.
    assert_eq!(close_code(&mut sock).await, 1008);
    let mut sock = app.connect_device(&gw).await;
    send_json(
        &mut sock,
        &json!({"id": 2, "device": "a", "readings": [reading("t", 2.0, t + 1.0)]}),
    )
    .await;
    assert_eq!(next_json(&mut sock).await["error"], "forbidden_device");
    send_json(
        &mut sock,
        &json!({"id": 3, "device": "c", "readings": [reading("t", 3.0, t + 2.0)]}),
    )
    .await;
    assert_eq!(next_json(&mut sock).await["ack"], 3);

    // PATCH replaces the list.
    let admin = app
        .store
        .add_token("ops", telehub::auth::Role::Admin)
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/v1/devices/gw", app.http());
    let resp = client
        .patch(&url)
        .bearer_auth(&admin)
        .json(&json!({"gateway_for": ["a"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["gateway_for"], json!(["a"]));
    let resp = client
        .patch(&url)
        .bearer_auth(&admin)
        .json(&json!({"gateway_for": ["ghost"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let viewer = app.viewer().await;
    let resp = client
        .patch(&url)
        .bearer_auth(&viewer)
        .json(&json!({"gateway_for": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let (_, devices) = app.get("/v1/devices", Some(&viewer)).await;
    let gw_entry = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "gw")
        .unwrap()
        .clone();
    assert_eq!(gw_entry["gateway_for"], json!(["a"]), "{gw_entry}");
}
both_backends!(gateways_are_edited_in_place);

async fn devices_carry_a_description_and_a_location(b: Backend) {
    let app = spawn_app(b).await;
    let db = app.db.url.clone();
    for n in ["sim-10", "sim-2", "sim-1"] {
        ok(&db, &["device", "add", n]);
    }
    ok(
        &db,
        &[
            "device",
            "set",
            "sim-2",
            "--description",
            "press 2, line 3",
            "--location",
            "52.52,13.40",
        ],
    );
    let o = telehub(&db, &["device", "set", "sim-2", "--location", "91,0"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("lat must be within"), "{}", err(&o));

    let table = ok(&db, &["device", "list"]);
    let names: Vec<&str> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        names,
        ["sim-1", "sim-2", "sim-10"],
        "natural order:\n{table}"
    );
    assert!(table.contains("press 2, line 3"), "{table}");

    let admin = app
        .store
        .add_token("ops", telehub::auth::Role::Admin)
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/v1/devices/sim-1", app.http());
    let patch = |body: Value| client.patch(&url).bearer_auth(&admin).json(&body).send();
    let resp = patch(json!({"location": {"name": "Hall 3"}, "description": "roof"}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (body["location"].clone(), body["description"].clone()),
        (json!({"name": "Hall 3"}), json!("roof"))
    );
    for bad in [
        json!({"description": "x".repeat(257)}),
        json!({"location": {"lat": 1}}),
        json!({"location": {"lat": 1, "lon": 2, "alt": 3}}),
        json!({"colour": "red"}),
    ] {
        let resp = patch(bad.clone()).await.unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{body}"
        );
    }
    // null clears a field; an absent one stays.
    let body: Value = patch(json!({"description": null}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            body["description"].clone(),
            body["location"]["name"].clone()
        ),
        (Value::Null, json!("Hall 3"))
    );
    let resp = client
        .patch(format!("{}/v1/devices/ghost", app.http()))
        .bearer_auth(&admin)
        .json(&json!({"description": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    let viewer = app.viewer().await;
    let (_, devices) = app.get("/v1/devices", Some(&viewer)).await;
    let sim2 = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "sim-2")
        .unwrap()
        .clone();
    assert_eq!(
        sim2["location"],
        json!({"lat": 52.52, "lon": 13.4}),
        "{sim2}"
    );
    assert_eq!(sim2["description"], "press 2, line 3");
}
both_backends!(devices_carry_a_description_and_a_location);
