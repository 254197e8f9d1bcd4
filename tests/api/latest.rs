//! `GET /v1/devices` carries each sensor's newest stored reading (docs/http-api.md, `latest`),
//! however old, read in one statement for all series.

use crate::both_backends;
use crate::helpers::*;
use serde_json::json;

async fn devices_carry_each_sensors_newest_reading(b: Backend) {
    let app = spawn_app(b).await;
    let viewer = app.viewer().await;
    app.device("quiet-1").await;
    let mut ws = app.connect_device(&app.device("boiler-1").await).await;
    let t0 = base_ts() - 86_400.0;
    // Out of order, and across two messages: the newest by ts wins, not the last sent.
    send_json(
        &mut ws,
        &json!({"id": 1, "readings": [
            {"sensor": "temperature", "value": 21.5, "ts": t0 + 10.0, "unit": "Cel"},
            {"sensor": "temperature", "value": 20.0, "ts": t0},
            {"sensor": "humidity", "value": 40.25, "ts": t0 + 5.0},
            {"sensor": "door", "value": true, "ts": t0 + 5.0},
            {"sensor": "mode", "value": "defrost", "ts": t0 + 5.0},
        ]}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["ack"], 1);
    send_json(
        &mut ws,
        &json!({"id": 2, "readings": [{"sensor": "temperature", "value": 19.0, "ts": t0 + 1.0}]}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["ack"], 2);

    let (status, body) = app.get("/v1/devices", Some(&viewer)).await;
    assert_eq!(status, 200, "{body}");
    let device = |name: &str| {
        body.as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .unwrap()
            .clone()
    };
    let latest = &device("boiler-1")["latest"];
    assert_eq!(latest["temperature"]["value"], 21.5, "{latest}");
    assert_eq!(latest["temperature"]["unit"], "Cel", "{latest}");
    assert_eq!(latest["humidity"]["value"], 40.25, "{latest}");
    // Booleans and strings come back with their JSON type (protocol.md §8).
    assert_eq!(latest["door"]["value"], true, "{latest}");
    assert_eq!(latest["mode"]["value"], "defrost", "{latest}");
    let ts = latest["temperature"]["ts"].as_str().unwrap();
    let want = chrono::DateTime::from_timestamp((t0 + 10.0) as i64, 0).unwrap();
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(ts).unwrap(),
        want,
        "{latest}"
    );
    assert_eq!(device("quiet-1")["latest"], json!({}));
}

both_backends!(devices_carry_each_sensors_newest_reading);
