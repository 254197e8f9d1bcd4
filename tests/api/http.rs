//! The HTTP API (http-api.md): devices, history with cursors and buckets, health, metrics.

use crate::both_backends;
use crate::helpers::*;
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

/// Stores `n` readings one second apart starting at `t0`, values 0..n.
async fn seed(app: &TestApp, device: &str, sensor: &str, t0: f64, n: usize) {
    let mut ws = app.connect_device(&app.device(device).await).await;
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let readings: Vec<Value> = chunk
            .iter()
            .map(|i| reading(sensor, *i as f64, t0 + *i as f64))
            .collect();
        send_json(&mut ws, &json!({"id": chunk[0], "readings": readings})).await;
        assert_eq!(next_json(&mut ws).await["stored"], chunk.len());
    }
}

fn rfc(t: f64) -> String {
    telehub::domain::Timestamp::from_unix_seconds(t)
        .unwrap()
        .to_rfc3339()
}

async fn history_pages_through_raw_points_with_a_cursor(b: Backend) {
    let app = spawn_app(b).await;
    let t0 = base_ts() - 3600.0;
    seed(&app, "boiler-1", "temperature", t0, 250).await;
    let viewer = app.viewer().await;
    let (from, to) = (rfc(t0 + 10.0), rfc(t0 + 210.0));
    let mut cursor: Option<String> = None;
    let mut values = Vec::new();
    loop {
        let mut path =
            format!("/v1/readings?device=boiler-1&sensor=temperature&from={from}&to={to}&limit=64");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, body) = app.get(&path, Some(&viewer)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            (body["device"].as_str(), body["sensor"].as_str()),
            (Some("boiler-1"), Some("temperature"))
        );
        values.extend(
            body["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["value"].as_f64().unwrap()),
        );
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    // from inclusive, to exclusive, ordered, no gaps or repeats across pages.
    assert_eq!(values, (10..210).map(|v| v as f64).collect::<Vec<_>>());
}
both_backends!(history_pages_through_raw_points_with_a_cursor);

async fn history_buckets_aggregate_each_interval(b: Backend) {
    let app = spawn_app(b).await;
    let t0 = ((base_ts() as i64 - 3600) / 60 * 60) as f64; // minute-aligned
    seed(&app, "d1", "t", t0, 150).await;
    let viewer = app.viewer().await;
    let q = |agg: &str| {
        format!(
            "/v1/readings?device=d1&sensor=t&from={}&to={}&every=1m&agg={agg}",
            rfc(t0),
            rfc(t0 + 3600.0)
        )
    };
    let (status, body) = app.get(&q("avg"), Some(&viewer)).await;
    assert_eq!(status, 200, "{body}");
    let pts = body["points"].as_array().unwrap();
    assert_eq!(pts.len(), 3, "empty buckets are left out: {body}");
    assert_eq!(pts[0], json!({"ts": rfc(t0), "value": 29.5, "count": 60}));
    assert_eq!(pts[2]["count"], 30);
    let first_of = |body: &Value, i: usize| body["points"][i]["value"].as_f64().unwrap();
    for (agg, want) in [
        ("min", 60.0),
        ("max", 119.0),
        ("sum", (60..120).sum::<i32>() as f64),
        ("count", 60.0),
        ("first", 60.0),
        ("last", 119.0),
    ] {
        let (_, body) = app.get(&q(agg), Some(&viewer)).await;
        assert_eq!(first_of(&body, 1), want, "{agg}: {body}");
    }
}
both_backends!(history_buckets_aggregate_each_interval);

#[tokio::test]
async fn history_refuses_bad_queries_with_a_reason() {
    let app = spawn_app(Backend::Sqlite).await;
    seed(&app, "d1", "t", base_ts(), 3).await;
    let viewer = app.viewer().await;
    let device_token = app.device("d2").await;
    let cases = [
        ("/v1/readings?device=d1&sensor=t", None, 401),
        (
            "/v1/readings?device=d1&sensor=t",
            Some(device_token.as_str()),
            403,
        ),
        ("/v1/readings?sensor=t", Some(viewer.as_str()), 400),
        (
            "/v1/readings?device=d1&sensor=t&from=yesterday",
            Some(viewer.as_str()),
            400,
        ),
        (
            "/v1/readings?device=d1&sensor=t&every=1s&from=-30d",
            Some(viewer.as_str()),
            400,
        ),
        (
            "/v1/readings?device=nope&sensor=t",
            Some(viewer.as_str()),
            404,
        ),
        (
            "/v1/readings?device=d1&sensor=nope",
            Some(viewer.as_str()),
            404,
        ),
    ];
    for (path, token, want) in cases {
        let (status, body) = app.get(path, token).await;
        assert_eq!(status, want, "{path}: {body}");
        assert!(
            body["error"].is_string() && body["detail"].is_string(),
            "{body}"
        );
    }
}

#[tokio::test]
async fn devices_list_online_state_last_seen_and_sensors() {
    let app = spawn_app(Backend::Sqlite).await;
    let viewer = app.viewer().await;
    app.device("idle-1").await;
    let mut ws = app.connect_device(&app.device("boiler-1").await).await;
    send_json(
        &mut ws,
        &json!({"id": 1, "readings": [reading("temperature", 1.0, base_ts())]}),
    )
    .await;
    next_json(&mut ws).await;
    let (status, body) = app.get("/v1/devices", Some(&viewer)).await;
    assert_eq!(status, 200);
    let boiler = body
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "boiler-1")
        .unwrap()
        .clone();
    assert_eq!(
        (boiler["online"].clone(), boiler["sensors"].clone()),
        (json!(true), json!(["temperature"]))
    );
    assert!(boiler["last_seen"].is_string());
    let idle = body
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "idle-1")
        .unwrap()
        .clone();
    assert_eq!(
        (idle["online"].clone(), idle["last_seen"].clone()),
        (json!(false), json!(null))
    );
}

#[tokio::test]
async fn health_and_readiness_are_open_and_metrics_show_viewers_what_happened() {
    let app = spawn_app(Backend::Sqlite).await;
    assert_eq!(app.get("/healthz", None).await.0, 200);
    assert_eq!(app.get("/readyz", None).await.0, 200);
    assert_eq!(app.get("/metrics", None).await.0, 401);
    let mut ws = app.connect_device(&app.device("d1").await).await;
    send_json(
        &mut ws,
        &json!({"id": 1, "readings": [reading("t", 1.0, base_ts())]}),
    )
    .await;
    next_json(&mut ws).await;
    send_json(&mut ws, &json!({"id": 2, "readings": []})).await;
    next_json(&mut ws).await;
    let (status, body) = app.get("/metrics", Some(&app.viewer().await)).await;
    assert_eq!(status, 200);
    let text = body.as_str().unwrap();
    for line in [
        "telehub_readings_ingested_total 1",
        "telehub_acks_total 1",
        "telehub_nacks_total{code=\"invalid_reading\"} 1",
        "telehub_connections{kind=\"ingest\"} 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(text.contains("telehub_commit_seconds_bucket"));
}

#[tokio::test]
async fn admins_add_and_revoke_devices_over_http() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app
        .store
        .add_token("ops", telehub::auth::Role::Admin)
        .await
        .unwrap();
    let viewer = app.viewer().await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/devices", app.http());
    let add = |token: &str, body: Value| client.post(&url).bearer_auth(token).json(&body).send();
    assert_eq!(
        add(&viewer, json!({"name": "d1"})).await.unwrap().status(),
        403
    );
    assert_eq!(
        add(&admin, json!({"name": "bad name"}))
            .await
            .unwrap()
            .status(),
        400
    );
    let resp = add(&admin, json!({"name": "d1"})).await.unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(
        add(&admin, json!({"name": "d1"})).await.unwrap().status(),
        400,
        "duplicate"
    );
    assert_eq!(
        add(&admin, json!({"name": "gw", "gateway_for": ["ghost"]}))
            .await
            .unwrap()
            .status(),
        400
    );
    let mut ws = app.connect_device(&token).await;
    let del = client
        .delete(format!("{url}/d1"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    assert_eq!(close_code(&mut ws).await, 1008);
    let del = client
        .delete(format!("{url}/ghost"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 404);
}

/// Every error is `{"error", "detail"}` with its own status, the ones the framework writes
/// included: no such route, a method the route lacks, a body over the limit, a path the
/// extractor refuses, a JSON body of the wrong shape.
#[tokio::test]
async fn every_error_has_a_json_body_with_the_status_that_belongs_to_it() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app
        .store
        .add_token(
            &format!("ops-{}", rand_suffix()),
            telehub::auth::Role::Admin,
        )
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", app.http());
    let answer = |resp: reqwest::Response| async move {
        let status = resp.status().as_u16();
        let ctype = resp.headers()["content-type"].to_str().unwrap().to_owned();
        let allow = resp
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = resp.text().await.unwrap();
        assert!(
            ctype.starts_with("application/json"),
            "{status} {ctype}: {text}"
        );
        let body: Value = serde_json::from_str(&text).unwrap();
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{body}"
        );
        (status, body["error"].as_str().unwrap().to_owned(), allow)
    };
    let send =
        |req: reqwest::RequestBuilder| async { req.bearer_auth(&admin).send().await.unwrap() };
    let (s, code, _) = answer(send(client.get(url("/v1/no-such-thing"))).await).await;
    assert_eq!((s, code.as_str()), (404, "not_found"));
    let (s, code, allow) = answer(send(client.put(url("/v1/readings"))).await).await;
    assert_eq!((s, code.as_str()), (405, "method_not_allowed"));
    assert!(allow.is_some_and(|a| a.contains("GET")), "Allow is kept");
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(3 << 20));
    for path in ["/v1/devices", "/v1/alert-rules", "/v1/commands"] {
        let req = client
            .post(url(path))
            .header("content-type", "application/json")
            .body(big.clone());
        let (s, code, _) = answer(send(req).await).await;
        assert_eq!((s, code.as_str()), (413, "too_large"), "{path}");
    }
    let (s, code, _) = answer(send(client.get(url("/v1/commands/%FF"))).await).await;
    assert_eq!((s, code.as_str()), (400, "bad_request"));
    let req = client
        .post(url("/v1/devices"))
        .header("content-type", "application/json")
        .body(r#"{"name": 7}"#);
    let (s, code, _) = answer(send(req).await).await;
    assert_eq!((s, code.as_str()), (400, "bad_request"));
    let req = client.post(url("/v1/devices")).body(r#"{"name": "d1"}"#);
    let (s, code, _) = answer(send(req).await).await;
    assert_eq!((s, code.as_str()), (415, "unsupported_media_type"));
}

/// Device JSON naming a key twice is refused (a lenient reader would keep one of the two
/// silently), and so is a SenML pack of a version this hub does not read.
#[tokio::test]
async fn a_key_named_twice_and_a_senml_version_from_the_future_are_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    let token = app.device("dup-1").await;
    let mut ws = app.connect_device(&token).await;
    let t = base_ts();
    ws.send(tungstenite::Message::text(format!(
        r#"{{"id": 1, "readings": [{{"sensor": "t", "value": 1, "value": 2, "ts": {t}}}]}}"#
    )))
    .await
    .unwrap();
    let reply = next_json(&mut ws).await;
    assert_eq!(reply["error"], "invalid_json", "{reply}");
    assert!(
        reply["detail"]
            .as_str()
            .unwrap()
            .contains("key \"value\" appears twice"),
        "{reply}"
    );
    send_json(&mut ws, &json!([{"bver": 11, "n": "t", "v": 1, "t": t}])).await;
    let reply = next_json(&mut ws).await;
    assert_eq!(reply["error"], "invalid_reading", "{reply}");
    send_json(&mut ws, &json!([{"bver": 10, "n": "t", "v": 1, "t": t}])).await;
    assert_eq!(next_json(&mut ws).await, json!({"ack": null, "stored": 1}));
    assert_eq!(
        app.stored("dup-1").await.len(),
        1,
        "only the good pack is stored"
    );
}
