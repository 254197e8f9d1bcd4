//! Ingest over HTTP (protocol.md §4): `POST /v1/ingest` through the real hub, with reqwest and curl.

use crate::both_backends;
use crate::helpers::*;
use serde_json::{Value, json};

/// POSTs `body` to `/v1/ingest` with `token`: the status, `Retry-After`, and the JSON body.
async fn post(app: &TestApp, token: Option<&str>, body: String) -> (u16, Option<String>, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/v1/ingest", app.http()))
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, retry, body)
}

async fn a_posted_message_is_acked_after_commit_and_a_resend_stores_nothing_twice(b: Backend) {
    let app = spawn_app(b).await;
    let token = app.device("boiler-1").await;
    let t = base_ts();
    let msg = json!({"id": 7, "readings": [
        {"sensor": "temperature", "value": 21.5, "ts": t, "unit": "Cel"},
        {"sensor": "pressure", "value": 1.5, "ts": t},
    ]})
    .to_string();
    let (status, _, body) = post(&app, Some(&token), msg.clone()).await;
    assert_eq!((status, body), (200, json!({"ack": 7, "stored": 2})));
    // Acked means committed: the rows are there now, not eventually.
    assert_eq!(app.stored("boiler-1").await.len(), 2);
    let (status, _, body) = post(&app, Some(&token), msg).await;
    assert_eq!((status, body), (200, json!({"ack": 7, "stored": 2})));
    assert_eq!(
        app.stored("boiler-1").await.len(),
        2,
        "a resend stores nothing twice"
    );
    // A SenML pack is answered without an id.
    let senml = json!([{"bn": "boiler.", "n": "humidity", "v": 40.0, "t": t}]).to_string();
    let (status, _, body) = post(&app, Some(&token), senml).await;
    assert_eq!((status, body), (200, json!({"ack": null, "stored": 1})));
}
both_backends!(a_posted_message_is_acked_after_commit_and_a_resend_stores_nothing_twice);

async fn a_bad_message_is_refused_whole_with_the_nack_object(b: Backend) {
    let app = spawn_app(b).await;
    let token = app.device("boiler-1").await;
    let t = base_ts();
    let bad = json!({"id": 3, "readings": [
        {"sensor": "temperature", "value": 21.5, "ts": t},
        {"sensor": "temperature", "value": "hot", "ts": t + 1.0},
    ]});
    let (status, _, body) = post(&app, Some(&token), bad.to_string()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["nack"], 3);
    assert_eq!(body["error"], "invalid_reading");
    assert!(
        body["detail"].as_str().unwrap().contains("readings[1]"),
        "{body}"
    );
    let (status, _, body) = post(&app, Some(&token), "{not json".into()).await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("invalid_json"))
    );
    let other = json!({"readings": [{"device": "boiler-2", "sensor": "t", "value": 1, "ts": t}]});
    let (status, _, body) = post(&app, Some(&token), other.to_string()).await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("forbidden_device"))
    );
    assert!(
        app.stored("boiler-1").await.is_empty(),
        "nothing of a refused message is stored"
    );
}
both_backends!(a_bad_message_is_refused_whole_with_the_nack_object);

#[tokio::test]
async fn tokens_size_and_rate_are_checked_like_on_a_socket() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.ingest.max_frame_bytes = 1024;
        s.limits.device_readings_per_second = 1;
        s.limits.device_burst = 2;
    })
    .await;
    let token = app.device("boiler-1").await;
    let one = |ts: f64| json!({"readings": [{"sensor": "t", "value": 1, "ts": ts}]}).to_string();
    let t = base_ts();
    let (status, _, body) = post(&app, None, one(t)).await;
    assert_eq!(
        (status, body["error"].clone()),
        (401, json!("unauthorized"))
    );
    let viewer = app.viewer().await;
    let (status, _, body) = post(&app, Some(&viewer), one(t)).await;
    assert_eq!((status, body["error"].clone()), (403, json!("forbidden")));
    let (status, _, body) = post(&app, Some(&token), "x".repeat(2048)).await;
    assert_eq!((status, body["error"].clone()), (413, json!("too_large")));
    // The burst is 2 readings: the third within the same second is refused.
    for i in 0..2 {
        assert_eq!(post(&app, Some(&token), one(t + f64::from(i))).await.0, 200);
    }
    let (status, retry, body) = post(&app, Some(&token), one(t + 5.0)).await;
    assert_eq!(
        (status, body["error"].clone()),
        (429, json!("rate_limited"))
    );
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(app.stored("boiler-1").await.len(), 2);
}

#[tokio::test]
async fn curl_posts_a_message_and_reads_the_ack() {
    let app = spawn_app(Backend::Sqlite).await;
    let token = app.device("boiler-1").await;
    let msg = json!({"id": 1, "readings": [{"sensor": "t", "value": 20.5, "ts": base_ts()}]});
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}", "-X", "POST", "--data-binary"])
        .arg(msg.to_string())
        .arg("-H")
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("{}/v1/ingest", app.http()))
        .output()
        .await
        .expect("curl runs (apt-get install curl)");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    assert_eq!(code, "200", "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(body).unwrap(),
        json!({"ack": 1, "stored": 1})
    );
    assert_eq!(app.stored("boiler-1").await.len(), 1);
}
