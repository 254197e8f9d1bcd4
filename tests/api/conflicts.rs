//! A request the database would refuse by one of its rules (a name given twice) is the
//! caller's mistake: 400 with a clear detail over HTTP and exit 2 on the command line,
//! never `503 unavailable` with a Retry-After that a client would retry forever
//! (issue 28, item 6).

use crate::both_backends;
use crate::helpers::*;
use crate::procs::telehub_cli;
use serde_json::{Value, json};

async fn post_device(app: &TestApp, admin: &str, body: &Value) -> (u16, bool, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/devices", app.http()))
        .bearer_auth(admin)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry_after = resp.headers().contains_key("retry-after");
    (
        status,
        retry_after,
        resp.json().await.unwrap_or(Value::Null),
    )
}

async fn a_duplicate_in_gateway_for_is_a_bad_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app
        .store
        .add_token("admin", telehub::auth::Role::Admin)
        .await
        .unwrap();
    app.device("a").await;
    let (status, retry, body) = post_device(
        &app,
        &admin,
        &json!({"name": "gw", "gateway_for": ["a", "a"]}),
    )
    .await;
    assert_eq!((status, retry), (400, false), "{body}");
    assert_eq!(body["error"], "bad_request");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("gateway_for") && detail.contains("listed twice"),
        "{detail}"
    );
    // Nothing was created: the same request without the duplicate succeeds.
    let (status, _, body) =
        post_device(&app, &admin, &json!({"name": "gw", "gateway_for": ["a"]})).await;
    assert_eq!(status, 201, "{body}");
    let (status, retry, body) = post_device(&app, &admin, &json!({"name": "gw"})).await;
    assert_eq!((status, retry), (400, false), "{body}");

    let db = app.db.url.clone();
    let out = telehub_cli(&db, &["device", "add", "gw2", "--gateway-for", "a,a"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("gateway_for: device a is listed twice") && !err.contains("database error"),
        "{err}"
    );
}
both_backends!(a_duplicate_in_gateway_for_is_a_bad_request);
