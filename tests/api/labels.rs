//! Device labels (issue 26, protocol.md §14) through the HTTP API and the CLI: set,
//! listed, filtered, refused when bad; bulk commands by label; alert rules restricted to
//! labelled devices, and a relabelled device entering a rule without a restart — on
//! both backends.

use super::commands::call;
use crate::both_backends;
use crate::helpers::*;
use crate::procs::telehub_cli as telehub;
use serde_json::{Value, json};
use std::time::Duration;
use telehub::auth::Role;

async fn token(app: &TestApp, role: Role) -> String {
    let name = format!("test-{}-{}", role.as_str(), rand_suffix());
    app.store.add_token(&name, role).await.unwrap()
}

/// `PUT /v1/devices/NAME/labels` with `labels`: the status and body.
pub(crate) async fn put_labels(
    app: &TestApp,
    admin: &str,
    device: &str,
    labels: Value,
) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .put(format!("{}/v1/devices/{device}/labels", app.http()))
        .bearer_auth(admin)
        .body(labels.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The names `/v1/devices?QUERY` lists.
async fn listed(app: &TestApp, viewer: &str, query: &str) -> Vec<String> {
    let (status, body) = app.get(&format!("/v1/devices?{query}"), Some(viewer)).await;
    assert_eq!(status, 200, "{body}");
    body.as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Devices a1, a2 (site a; a1 also line 1) and b1 (site b); their tokens.
async fn fleet(app: &TestApp, admin: &str) -> std::collections::HashMap<&'static str, String> {
    let mut tokens = std::collections::HashMap::new();
    for (name, labels) in [
        ("a1", json!({"site": "a", "line": "1"})),
        ("a2", json!({"site": "a"})),
        ("b1", json!({"site": "b"})),
    ] {
        tokens.insert(name, app.device(name).await);
        let (status, body) = put_labels(app, admin, name, labels.clone()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["labels"], labels, "{body}");
    }
    tokens
}

async fn labels_are_set_listed_filtered_and_refused_when_bad(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = token(&app, Role::Admin).await;
    let viewer = app.viewer().await;
    fleet(&app, &admin).await;
    assert_eq!(listed(&app, &viewer, "").await, ["a1", "a2", "b1"]);
    assert_eq!(listed(&app, &viewer, "label=site:a").await, ["a1", "a2"]);
    assert_eq!(
        listed(&app, &viewer, "label=site:a&label=line:1").await,
        ["a1"]
    );
    assert!(listed(&app, &viewer, "label=site:c").await.is_empty());
    let (_, all) = app.get("/v1/devices", Some(&viewer)).await;
    assert_eq!(all[2]["labels"], json!({"site": "b"}), "{all}");

    // A filtered listing narrows each of its reads in SQL: the objects it gives are the
    // full listing's, sensors, latest readings, gateway lists and sync state included.
    for name in ["a1", "b1"] {
        let name = telehub::domain::DeviceName::parse(name).unwrap();
        let device = app.store.find_device(&name).await.unwrap().unwrap();
        write(&app, &device, "t", &[(1_700_000_000_000_000, 1.5)]).await;
    }
    super::device_config::set(&app, &admin, "a1", json!({"interval_s": 5}), None).await;
    let (_, all) = app.get("/v1/devices", Some(&viewer)).await;
    assert_eq!(all[0]["latest"]["t"]["value"], 1.5, "{all}");
    assert_eq!(all[0]["in_sync"], false, "{all}");
    let (_, one) = app
        .get("/v1/devices?label=site:a&label=line:1", Some(&viewer))
        .await;
    assert_eq!(one, json!([all[0]]));
    let (_, b) = app.get("/v1/devices?label=site:b", Some(&viewer)).await;
    assert_eq!(b, json!([all[2]]));
    let (status, a1) = put_labels(&app, &admin, "a1", all[0]["labels"].clone()).await;
    assert_eq!((status, &a1), (200, &all[0]), "one device is read by name");
    // Replacing: the old labels are gone.
    let (status, body) = put_labels(&app, &admin, "a2", json!({"line": "2"})).await;
    assert_eq!((status, &body["labels"]), (200, &json!({"line": "2"})));
    assert_eq!(listed(&app, &viewer, "label=site:a").await, ["a1"]);

    let too_many: serde_json::Map<String, Value> =
        (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
    for (labels, says) in [
        (json!({"Site": "a"}), "label key"),
        (json!({"site": ""}), "1 to 64 printable"),
        (json!({"site": "x".repeat(65)}), "1 to 64 printable"),
        (json!({"site": 3}), "expected a string"),
        (Value::Object(too_many), "at most 16"),
        (json!(["site"]), "JSON object"),
    ] {
        let (status, body) = put_labels(&app, &admin, "a1", labels.clone()).await;
        assert_eq!(status, 400, "{labels}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(says),
            "{labels}: {body}"
        );
    }
    let (status, _) = put_labels(&app, &admin, "nope", json!({"site": "a"})).await;
    assert_eq!(status, 404);
    let (status, _) = put_labels(&app, &viewer, "a1", json!({"site": "a"})).await;
    assert_eq!(status, 403, "labels need an admin token");
    let (status, body) = app.get("/v1/devices?label=site", Some(&viewer)).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("KEY:VALUE"),
        "{body}"
    );
    assert_eq!(
        listed(&app, &viewer, "label=site:a").await,
        ["a1"],
        "nothing changed"
    );
}
both_backends!(labels_are_set_listed_filtered_and_refused_when_bad);

async fn the_cli_edits_labels_and_lists_by_them(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = token(&app, Role::Admin).await;
    fleet(&app, &admin).await;
    let db = app.db.url.clone();
    let out = telehub(
        &db,
        &[
            "device", "label", "b1", "line=2", "model=x", "--remove", "site",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let out = telehub(&db, &["device", "label", "b1"]);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown, json!({"line": "2", "model": "x"}));
    let out = telehub(
        &db,
        &["device", "list", "--label", "line=2", "--format", "json"],
    );
    assert!(out.status.success(), "{out:?}");
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b1"]);
    assert_eq!(rows[0]["labels"], json!({"line": "2", "model": "x"}));
    for bad in [
        vec!["device", "label", "b1", "Bad=x"],
        vec!["device", "label", "b1", "novalue"],
        vec!["device", "label", "nope", "site=a"],
        vec!["device", "list", "--label", "site"],
    ] {
        let out = telehub(&db, &bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{bad:?} says why");
    }
    let shown: Value =
        serde_json::from_slice(&telehub(&db, &["device", "label", "b1"]).stdout).unwrap();
    assert_eq!(shown, json!({"line": "2", "model": "x"}), "nothing changed");
}
both_backends!(the_cli_edits_labels_and_lists_by_them);

async fn a_bulk_command_by_label_reaches_exactly_those_devices(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = token(&app, Role::Admin).await;
    let op = token(&app, Role::Operator).await;
    fleet(&app, &admin).await;
    let body = json!({"name": "reboot", "labels": {"site": "a"}});
    let (status, created) = call(&app, "POST", "/v1/commands", &op, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let mut devices = Vec::new();
    for id in created["ids"].as_array().unwrap() {
        let (_, c) = call(
            &app,
            "GET",
            &format!("/v1/commands/{}", id.as_str().unwrap()),
            &op,
            None,
        )
        .await;
        devices.push(c["device"].as_str().unwrap().to_owned());
    }
    devices.sort();
    assert_eq!(devices, ["a1", "a2"]);
    let body = json!({"name": "reboot", "labels": {"site": "a", "line": "1"}});
    let (_, created) = call(&app, "POST", "/v1/commands", &op, Some(body)).await;
    assert_eq!(created["ids"].as_array().unwrap().len(), 1, "{created}");
    for (body, says) in [
        (
            json!({"name": "reboot", "labels": {}}),
            "at least one label",
        ),
        (
            json!({"name": "reboot", "labels": {"Site": "a"}}),
            "label key",
        ),
        (
            json!({"name": "reboot", "labels": {"site": "a"}, "devices": ["a1"]}),
            "exactly one",
        ),
    ] {
        let (status, r) = call(&app, "POST", "/v1/commands", &op, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {r}");
        assert!(r["detail"].as_str().unwrap().contains(says), "{body}: {r}");
    }
}
both_backends!(a_bulk_command_by_label_reaches_exactly_those_devices);

/// The firing alerts' devices.
async fn firing(app: &TestApp, viewer: &str) -> Vec<String> {
    let (_, alerts) = app.get("/v1/alerts", Some(viewer)).await;
    let mut d: Vec<String> = alerts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["state"] == "firing")
        .map(|a| a["device"].as_str().unwrap().to_owned())
        .collect();
    d.sort();
    d
}

async fn hot(ws: &mut Ws, id: u64) {
    let msg = json!({"id": id, "readings": [reading("t", 50.0, base_ts() + id as f64)]});
    send_json(ws, &msg).await;
    assert_eq!(next_json(ws).await["ack"], id);
}

async fn a_rule_with_labels_fires_only_for_labelled_devices_and_follows_relabels(backend: Backend) {
    let app = spawn_app_with(backend, |s| {
        s.alerts.rules_poll = Duration::from_millis(100);
    })
    .await;
    let admin = token(&app, Role::Admin).await;
    let viewer = app.viewer().await;
    let tokens = fleet(&app, &admin).await;
    let rule = json!({"name": "hot", "pattern": "*/t", "kind": "threshold", "op": ">",
                      "value": 10, "labels": {"site": "a"}});
    let (status, body) = call(&app, "POST", "/v1/alert-rules", &admin, Some(rule)).await;
    assert_eq!(status, 201, "{body}");
    let (_, rules) = call(&app, "GET", "/v1/alert-rules", &admin, None).await;
    assert_eq!(rules[0]["labels"], json!({"site": "a"}), "{rules}");
    let mut a1 = app.connect_device(&tokens["a1"]).await;
    let mut b1 = app.connect_device(&tokens["b1"]).await;
    hot(&mut b1, 1).await;
    hot(&mut a1, 1).await;
    eventually(
        WAIT,
        "a1 firing",
        || firing(&app, &viewer),
        |d| !d.is_empty(),
    )
    .await;
    assert_eq!(firing(&app, &viewer).await, ["a1"], "b1 carries site=b");
    // b1 moves to site a: the next hot reading fires, without a restart.
    let (status, _) = put_labels(&app, &admin, "b1", json!({"site": "a"})).await;
    assert_eq!(status, 200);
    hot(&mut b1, 2).await;
    eventually(
        WAIT,
        "b1 firing",
        || firing(&app, &viewer),
        |d| d.len() == 2,
    )
    .await;
    let bad = json!({"name": "bad", "pattern": "*/t", "kind": "threshold", "op": ">",
                     "value": 10, "labels": {"site": 1}});
    let (status, body) = call(&app, "POST", "/v1/alert-rules", &admin, Some(bad)).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("labels"),
        "{body}"
    );
}
both_backends!(a_rule_with_labels_fires_only_for_labelled_devices_and_follows_relabels);
