//! Reading the whole fleet (protocol.md §17): `/v1/readings` without `sensor` answers every
//! series of the device; `GET /v1/export` and `telehub export --device PATTERN` stream every
//! series of the devices a pattern matches, as CSV or NDJSON.

use crate::both_backends;
use crate::helpers::*;
use crate::procs::telehub_cli;
use serde_json::{Value, json};

/// Devices line-3-a, line-3-b (temperature in Cel, state as text) and line-4-a, each with
/// two readings per sensor at `t` and `t + 1`; returns `t` (whole seconds).
async fn fleet(app: &TestApp) -> i64 {
    let t = base_ts() as i64;
    for d in ["line-3-a", "line-3-b", "line-4-a"] {
        let token = app.device(d).await;
        let body = json!({"readings": [
            {"sensor": "temperature", "value": 20.5, "ts": t, "unit": "Cel"},
            {"sensor": "temperature", "value": 21.5, "ts": t + 1, "unit": "Cel"},
            {"sensor": "state", "value": "run", "ts": t},
            {"sensor": "state", "value": "stop", "ts": t + 1},
        ]});
        let (status, text) = app.post("/v1/ingest", &token, &body).await;
        assert_eq!(status, 200, "{text}");
    }
    t
}

/// GET `path` with `token`: status and body text.
async fn get_text(app: &TestApp, path: &str, token: &str) -> (u16, String) {
    let resp = app.get_response(path, token).await;
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn readings_without_a_sensor_answer_every_series_with_its_unit(b: Backend) {
    let app = spawn_app(b).await;
    fleet(&app).await;
    let viewer = app.viewer().await;
    let (status, body) = app
        .get("/v1/readings?device=line-3-a&from=-1h", Some(&viewer))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["device"], "line-3-a");
    let series = body["series"].as_array().unwrap();
    let sensors: Vec<&Value> = series.iter().map(|s| &s["sensor"]).collect();
    assert_eq!(sensors, [&json!("state"), &json!("temperature")]);
    assert_eq!(series[0]["unit"], Value::Null);
    assert_eq!(series[1]["unit"], "Cel");
    let values: Vec<&Value> = series[1]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["value"])
        .collect();
    assert_eq!(values, [&json!(20.5), &json!(21.5)]);
    assert_eq!(series[0]["points"][1]["value"], "stop");
    // Buckets apply per series; `sensor=` still answers the one-series shape.
    let (status, one) = app
        .get(
            "/v1/readings?device=line-3-a&sensor=temperature&from=-1h",
            Some(&viewer),
        )
        .await;
    assert_eq!(
        (status, &one["sensor"]),
        (200, &json!("temperature")),
        "{one}"
    );
    let (status, missing) = app.get("/v1/readings?device=nope", Some(&viewer)).await;
    assert_eq!(status, 404, "{missing}");
}
both_backends!(readings_without_a_sensor_answer_every_series_with_its_unit);

async fn export_streams_every_series_of_the_devices_a_pattern_matches(b: Backend) {
    let app = spawn_app(b).await;
    let t = fleet(&app).await;
    let viewer = app.viewer().await;
    let ts = |s: i64| telehub::domain::Timestamp::from_micros(s * 1_000_000).to_rfc3339();

    let (status, csv) = get_text(&app, "/v1/export?device=line-3-*&from=-1h", &viewer).await;
    assert_eq!(status, 200, "{csv}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "device,sensor,ts,value,unit");
    assert_eq!(
        lines.len(),
        1 + 8,
        "two devices × two sensors × two readings: {csv}"
    );
    assert!(
        lines.contains(&format!("line-3-a,temperature,{},20.5,Cel", ts(t)).as_str()),
        "{csv}"
    );
    assert!(
        lines.contains(&format!("line-3-b,state,{},\"stop\",", ts(t + 1)).as_str()),
        "{csv}"
    );
    assert!(!csv.contains("line-4-a"), "{csv}");

    let (status, nd) = get_text(
        &app,
        "/v1/export?device=*&sensor=temperature&format=ndjson&from=-1h",
        &viewer,
    )
    .await;
    assert_eq!(status, 200, "{nd}");
    let rows: Vec<Value> = nd
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 6, "{nd}");
    assert!(
        rows.iter()
            .all(|r| r["sensor"] == "temperature" && r["unit"] == "Cel"),
        "{nd}"
    );

    let (status, _) = get_text(&app, "/v1/export?device=line-9&from=-1h", &viewer).await;
    assert_eq!(status, 404);
    let (status, bad) = get_text(&app, "/v1/export?device=line-3-*&format=xml", &viewer).await;
    assert_eq!(status, 400, "{bad}");
    let (status, _) = get_text(&app, "/v1/export?device=*", "th_not_a_token").await;
    assert_eq!(status, 401);

    let out = telehub_cli(
        &app.db.url,
        &[
            "export", "--device", "line-3-*", "--from", "-1h", "--format", "csv",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        csv,
        "the CLI and the API export alike"
    );
}
both_backends!(export_streams_every_series_of_the_devices_a_pattern_matches);
