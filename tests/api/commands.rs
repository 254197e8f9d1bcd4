//! Commands (issue 25, docs/commands.md) through the HTTP API and the CLI: creation, bulk,
//! listing with filters and cursors, cancel, expiry, `wait`, the roles that may do
//! each, and the refusals of bad requests, on both backends.

use crate::both_backends;
use crate::helpers::*;
use crate::procs::telehub_cli as telehub;
use serde_json::{Value, json};
use telehub::auth::Role;

/// A new token of `role` (token names are unique among active tokens).
async fn token(app: &TestApp, role: Role) -> String {
    let name = format!("test-{}-{}", role.as_str(), rand_suffix());
    app.store.add_token(&name, role).await.unwrap()
}

/// `METHOD path` with `token` and a JSON `body`: the status and the body as JSON.
pub async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("{}{path}", app.http());
    let c = reqwest::Client::new();
    let req = match method {
        "POST" => c.post(url),
        "DELETE" => c.delete(url),
        "PUT" => c.put(url),
        _ => c.get(url),
    };
    let req = match body {
        Some(b) => req.body(b.to_string()),
        None => req,
    };
    let resp = req.bearer_auth(token).send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Creates `name` for `device` as `op`, asserting `201`; the command.
pub async fn create(app: &TestApp, op: &str, device: &str, body: Value) -> Value {
    let (status, c) = call(
        app,
        "POST",
        &format!("/v1/devices/{device}/commands"),
        op,
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{c}");
    c
}

/// Creates `reboot` for `device` with `"wait": "30s"` in a task of its own: the status
/// and body it is answered with, once the command ends.
pub fn create_waiting(
    app: &TestApp,
    op: &str,
    device: &str,
) -> tokio::task::JoinHandle<(u16, Value)> {
    let url = format!("{}/v1/devices/{device}/commands", app.http());
    let op = op.to_owned();
    tokio::spawn(async move {
        let body = json!({"name": "reboot", "wait": "30s"}).to_string();
        let resp = reqwest::Client::new()
            .post(url)
            .bearer_auth(op)
            .body(body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    })
}

async fn created_command_is_queued_and_reads_back(backend: Backend) {
    let app = spawn_app(backend).await;
    app.device("boiler-1").await;
    let op = token(&app, Role::Operator).await;
    let c = create(
        &app,
        &op,
        "boiler-1",
        json!({"name": "set_interval", "params": {"seconds": 10}}),
    )
    .await;
    let id = c["id"].as_str().unwrap();
    assert!(id.starts_with("c_"), "{c}");
    assert_eq!(c["device"], "boiler-1");
    assert_eq!(c["name"], "set_interval");
    assert_eq!(c["params"], json!({"seconds": 10}));
    assert_eq!(c["state"], "queued");
    assert_eq!(c["attempts"], 0);
    for k in ["sent", "received", "finished", "result", "error"] {
        assert_eq!(c[k], Value::Null, "{k}: {c}");
    }
    let created =
        telehub::domain::Timestamp::parse_rfc3339(c["created"].as_str().unwrap()).unwrap();
    let expires =
        telehub::domain::Timestamp::parse_rfc3339(c["expires"].as_str().unwrap()).unwrap();
    assert_eq!(
        expires.as_micros() - created.as_micros(),
        3_600_000_000,
        "ttl defaults to 1h"
    );
    let viewer = app.viewer().await;
    let (status, shown) = call(&app, "GET", &format!("/v1/commands/{id}"), &viewer, None).await;
    assert_eq!((status, &shown), (200, &c));
    let c2 = create(
        &app,
        &op,
        "boiler-1",
        json!({"name": "reboot", "ttl": "10m"}),
    )
    .await;
    assert_eq!(c2["params"], json!({}), "params default to an empty object");
    let (_, listed) = call(&app, "GET", "/v1/commands", &viewer, None).await;
    let ids: Vec<&Value> = listed["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["id"])
        .collect();
    assert_eq!(ids, [&c2["id"], &c["id"]], "newest first");
    assert_eq!(listed["next_cursor"], Value::Null);
    assert_eq!(
        app.metric(&viewer, "telehub_commands_total{state=\"queued\"}")
            .await,
        2.0
    );
}
both_backends!(created_command_is_queued_and_reads_back);

async fn listing_filters_and_pages_newest_first(backend: Backend) {
    let app = spawn_app(backend).await;
    app.device("d1").await;
    app.device("d2").await;
    let op = token(&app, Role::Operator).await;
    let mut d1 = Vec::new();
    for n in ["a", "b", "c"] {
        d1.push(create(&app, &op, "d1", json!({"name": n})).await["id"].clone());
    }
    create(&app, &op, "d2", json!({"name": "x"})).await;
    let (_, page) = call(&app, "GET", "/v1/commands?device=d1&limit=2", &op, None).await;
    let ids: Vec<&Value> = page["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["id"])
        .collect();
    assert_eq!(ids, [&d1[2], &d1[1]]);
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let (_, page) = call(
        &app,
        "GET",
        &format!("/v1/commands?device=d1&limit=2&cursor={cursor}"),
        &op,
        None,
    )
    .await;
    let ids: Vec<&Value> = page["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["id"])
        .collect();
    assert_eq!((ids, &page["next_cursor"]), (vec![&d1[0]], &Value::Null));
    let (status, _) = call(
        &app,
        "DELETE",
        &format!("/v1/commands/{}", d1[1].as_str().unwrap()),
        &op,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (_, canceled) = call(&app, "GET", "/v1/commands?state=canceled", &op, None).await;
    assert_eq!(canceled["commands"].as_array().unwrap().len(), 1);
    assert_eq!(canceled["commands"][0]["id"], d1[1]);
    let (_, recent) = call(&app, "GET", "/v1/commands?from=-1m&state=queued", &op, None).await;
    assert_eq!(recent["commands"].as_array().unwrap().len(), 3);
    let (status, body) = call(&app, "GET", "/v1/commands?device=ghost", &op, None).await;
    assert_eq!(status, 404, "{body}");
    for bad in [
        "state=done",
        "limit=0",
        "cursor=x",
        "from=yesterday",
        "colour=red",
    ] {
        let (status, body) = call(&app, "GET", &format!("/v1/commands?{bad}"), &op, None).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}
both_backends!(listing_filters_and_pages_newest_first);

async fn cancel_answers_the_canceled_command_then_409(backend: Backend) {
    let app = spawn_app(backend).await;
    app.device("d1").await;
    let op = token(&app, Role::Operator).await;
    let id = create(&app, &op, "d1", json!({"name": "reboot"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, c) = call(&app, "DELETE", &format!("/v1/commands/{id}"), &op, None).await;
    assert_eq!((status, &c["state"]), (200, &json!("canceled")), "{c}");
    assert!(c["finished"].is_string(), "{c}");
    let (status, again) = call(&app, "DELETE", &format!("/v1/commands/{id}"), &op, None).await;
    assert_eq!(status, 409, "{again}");
    assert!(
        again["detail"]
            .as_str()
            .unwrap()
            .contains("already canceled"),
        "{again}"
    );
    let (status, _) = call(&app, "GET", &format!("/v1/commands/{id}"), &op, None).await;
    assert_eq!(status, 200);
    for method in ["GET", "DELETE"] {
        let (status, body) = call(&app, method, "/v1/commands/c_nonesuch", &op, None).await;
        assert_eq!(status, 404, "{method}: {body}");
    }
}
both_backends!(cancel_answers_the_canceled_command_then_409);

async fn bulk_creates_one_command_per_device_all_or_none(backend: Backend) {
    let app = spawn_app(backend).await;
    app.device("d1").await;
    app.device("d2").await;
    let op = token(&app, Role::Operator).await;
    let body = json!({"devices": ["d1", "d2"], "name": "reboot", "ttl": "5m"});
    let (status, out) = call(&app, "POST", "/v1/commands", &op, Some(body)).await;
    assert_eq!(status, 201, "{out}");
    let ids = out["ids"].as_array().unwrap();
    assert_eq!(ids.len(), 2);
    for (id, device) in ids.iter().zip(["d1", "d2"]) {
        let (_, c) = call(
            &app,
            "GET",
            &format!("/v1/commands/{}", id.as_str().unwrap()),
            &op,
            None,
        )
        .await;
        assert_eq!(
            (&c["device"], &c["state"]),
            (&json!(device), &json!("queued"))
        );
    }
    let body = json!({"devices": ["d1", "ghost"], "name": "reboot"});
    let (status, out) = call(&app, "POST", "/v1/commands", &op, Some(body)).await;
    assert_eq!(status, 404, "{out}");
    assert!(out["detail"].as_str().unwrap().contains("ghost"), "{out}");
    let (_, all) = call(&app, "GET", "/v1/commands", &op, None).await;
    assert_eq!(
        all["commands"].as_array().unwrap().len(),
        2,
        "nothing of the refused request"
    );
    // No device carries the labels: nothing to create (labels.rs covers selection).
    let labels = json!({"labels": {"site": "a"}, "name": "reboot"});
    let (status, out) = call(&app, "POST", "/v1/commands", &op, Some(labels)).await;
    assert_eq!((status, &out["ids"]), (201, &json!([])), "{out}");
}
both_backends!(bulk_creates_one_command_per_device_all_or_none);

async fn a_command_left_unanswered_expires_and_wait_returns_it(backend: Backend) {
    let app = spawn_app(backend).await;
    app.device("d1").await;
    let op = token(&app, Role::Operator).await;
    let started = std::time::Instant::now();
    let c = create(
        &app,
        &op,
        "d1",
        json!({"name": "reboot", "ttl": "1s", "wait": "20s"}),
    )
    .await;
    assert_eq!(c["state"], "expired", "{c}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(c["finished"].is_string() && c["sent"].is_null(), "{c}");
    let viewer = app.viewer().await;
    assert_eq!(
        app.metric(&viewer, "telehub_commands_total{state=\"expired\"}")
            .await,
        1.0
    );
}
both_backends!(a_command_left_unanswered_expires_and_wait_returns_it);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_answers_as_soon_as_the_command_is_canceled() {
    let app = spawn_app(Backend::Sqlite).await;
    app.device("d1").await;
    let op = token(&app, Role::Operator).await;
    let waiting = create_waiting(&app, &op, "d1");
    let list = || async { call(&app, "GET", "/v1/commands", &op, None).await.1 };
    let listed = eventually(WAIT, "the command", list, |l| {
        l["commands"].as_array().is_some_and(|c| !c.is_empty())
    })
    .await;
    let id = listed["commands"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = call(&app, "DELETE", &format!("/v1/commands/{id}"), &op, None).await;
    assert_eq!(status, 200);
    let (status, c) = tokio::time::timeout(WAIT, waiting)
        .await
        .expect("wait answers")
        .unwrap();
    assert_eq!((status, &c["state"]), (201, &json!("canceled")), "{c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_a_clear_detail() {
    let app = spawn_app(Backend::Sqlite).await;
    app.device("d1").await;
    let op = token(&app, Role::Operator).await;
    let post = |path: &'static str, body: Value| {
        let op = op.clone();
        let app = &app;
        async move { call(app, "POST", path, &op, Some(body)).await }
    };
    let (status, body) = post("/v1/devices/ghost/commands", json!({"name": "reboot"})).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("ghost"), "{body}");
    let cases = [
        (
            json!({"name": "reboot", "params": [1, 2]}),
            "params: expected a JSON object",
        ),
        (
            json!({"name": "reboot", "params": {"x": "a".repeat(9000)}}),
            "at most 8192",
        ),
        (json!({"name": "reboot", "ttl": "8d"}), "ttl:"),
        (json!({"name": "reboot", "ttl": "soon"}), "ttl:"),
        (json!({"name": "reboot", "wait": "2m"}), "wait: at most 60s"),
        (json!({"name": "no spaces"}), "name:"),
        (json!({"params": {}}), "name"),
        (json!({"name": "reboot", "colour": "red"}), "colour"),
    ];
    for (body, detail) in cases {
        let (status, out) = post("/v1/devices/d1/commands", body.clone()).await;
        assert_eq!(status, 400, "{body}: {out}");
        assert!(
            out["error"] == "bad_request" && out["detail"].as_str().unwrap().contains(detail),
            "{body}: {out}"
        );
    }
    let (status, out) = call(&app, "POST", "/v1/devices/d1/commands", &op, None).await;
    assert_eq!(status, 400, "an empty body: {out}");
    let (_, all) = call(&app, "GET", "/v1/commands", &op, None).await;
    assert_eq!(all["commands"], json!([]), "nothing was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_operators_and_admins_create_and_cancel_and_viewers_read() {
    let app = spawn_app(Backend::Sqlite).await;
    let device = app.device("d1").await;
    let (viewer, op, admin) = (
        app.viewer().await,
        token(&app, Role::Operator).await,
        token(&app, Role::Admin).await,
    );
    let body = || Some(json!({"name": "reboot"}));
    for t in [&viewer, &device] {
        let (status, out) = call(&app, "POST", "/v1/devices/d1/commands", t, body()).await;
        assert_eq!(status, 403, "{out}");
        let bulk = Some(json!({"devices": ["d1"], "name": "reboot"}));
        assert_eq!(call(&app, "POST", "/v1/commands", t, bulk).await.0, 403);
    }
    let (_, out) = call(&app, "POST", "/v1/devices/d1/commands", &viewer, body()).await;
    assert!(
        out["detail"].as_str().unwrap().contains("operator"),
        "{out}"
    );
    let id = create(&app, &op, "d1", json!({"name": "reboot"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    create(&app, &admin, "d1", json!({"name": "reboot"})).await;
    let one = format!("/v1/commands/{id}");
    let d2 = Some(json!({"name": "d2"}));
    let cases = [
        ("GET", one.as_str(), &viewer, None, 200),
        ("GET", "/v1/commands", &viewer, None, 200),
        ("GET", "/v1/commands", &device, None, 403),
        ("DELETE", one.as_str(), &viewer, None, 403),
        ("DELETE", one.as_str(), &admin, None, 200),
        ("GET", "/v1/devices", &op, None, 200),
        ("POST", "/v1/devices", &op, d2, 403),
    ];
    for (method, path, who, body, expected) in cases {
        let (status, out) = call(&app, method, path, who, body).await;
        assert_eq!(status, expected, "{method} {path}: {out}");
    }
    let (status, _) = call(&app, "GET", "/v1/commands", "th_nonesuch", None).await;
    assert_eq!(status, 401);
}

fn out(o: &std::process::Output) -> (Option<i32>, String, String) {
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        String::from_utf8_lossy(&o.stderr).trim().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sends_lists_shows_and_cancels_with_the_contracts_exit_codes() {
    let app = spawn_app(Backend::Sqlite).await;
    let db = app.db.url.clone();
    app.device("d1").await;
    let (code, token, err) = out(&telehub(
        &db,
        &["token", "add", "ops", "--role", "operator"],
    ));
    assert_eq!(code, Some(0), "{err}");
    let (status, _) = call(
        &app,
        "POST",
        "/v1/devices/d1/commands",
        &token,
        Some(json!({"name": "reboot"})),
    )
    .await;
    assert_eq!(status, 201, "an operator token from the CLI may send");

    let (code, id, err) = out(&telehub(
        &db,
        &[
            "command",
            "send",
            "d1",
            "set_interval",
            "--param",
            "seconds=10",
            "--param",
            "mode=fast",
        ],
    ));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        id.starts_with("c_") && !id.contains(char::is_whitespace),
        "{id}"
    );
    let (code, shown, _) = out(&telehub(&db, &["command", "show", &id]));
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(
        (code, &shown["params"]),
        (Some(0), &json!({"seconds": 10, "mode": "fast"}))
    );
    let (code, listed, _) = out(&telehub(
        &db,
        &["command", "list", "--device", "d1", "--format", "json"],
    ));
    assert_eq!(code, Some(0));
    let first: Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert_eq!(first["id"], json!(id), "newest first");
    assert_eq!(listed.lines().count(), 2);
    let (code, canceled, _) = out(&telehub(&db, &["command", "cancel", &id]));
    assert_eq!(code, Some(0));
    assert_eq!(
        serde_json::from_str::<Value>(&canceled).unwrap()["state"],
        "canceled"
    );
    let (code, _, err) = out(&telehub(&db, &["command", "cancel", &id]));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("already canceled") && err.lines().count() == 1,
        "{err}"
    );

    for (args, detail) in [
        (
            vec!["command", "send", "ghost", "reboot"],
            "no device ghost",
        ),
        (
            vec!["command", "send", "d1", "reboot", "--params", "[1]"],
            "--params",
        ),
        (
            vec!["command", "send", "d1", "reboot", "--ttl", "8d"],
            "ttl:",
        ),
        (
            vec!["command", "send", "d1", "reboot", "--param", "novalue"],
            "K=V",
        ),
    ] {
        let (code, _, err) = out(&telehub(&db, &args));
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(detail), "{args:?}: {err}");
    }
    // Nobody answers: --wait prints the command and fails once it expired.
    let (code, printed, err) = out(&telehub(
        &db,
        &[
            "command", "send", "d1", "reboot", "--ttl", "1s", "--wait", "20s",
        ],
    ));
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&printed).unwrap()["state"],
        "expired",
        "{printed}"
    );
    assert!(err.contains("ended expired"), "{err}");
}
