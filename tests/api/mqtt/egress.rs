//! Egress: every reading the hub stores is published once on `publish_topic`.

use super::broker::*;
use crate::helpers::*;
use crate::need_mqtt;
use serde_json::{Value, json};
use telehub::domain::Timestamp;

fn rfc3339(t: f64) -> String {
    Timestamp::from_unix_seconds(t).unwrap().to_rfc3339()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stored_reading_is_published_once_as_json_on_its_device_and_sensor_topic() {
    let url = need_mqtt!();
    let p = prefix();
    let mut sub = TestClient::connect(&url).await;
    sub.subscribe(&format!("{p}/readings/#")).await;
    let app = spawn_app_with(Backend::Sqlite, |s| {
        let mut m = hub_mqtt(&url, &p);
        m.ingest_topic = String::new();
        s.mqtt = Some(m);
    })
    .await;
    broker_state(&app, |s| s.connected).await;
    let token = app.device("boiler-1").await;
    let mut ws = app.connect_device(&token).await;
    let t = base_ts();
    let temp = json!({"sensor": "temperature", "value": 21.5, "ts": t, "unit": "Cel"});
    send_json(
        &mut ws,
        &json!({"id": 1, "readings": [temp, reading("humidity", 40.0, t)]}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["ack"], 1);

    let m = sub.next().await;
    assert_eq!(m.topic, format!("{p}/readings/boiler-1/temperature"));
    let body: Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(
        body,
        json!({"ts": rfc3339(t), "value": 21.5, "unit": "Cel"})
    );
    let m = sub.next().await;
    assert_eq!(m.topic, format!("{p}/readings/boiler-1/humidity"));
    let body: Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(body, json!({"ts": rfc3339(t), "value": 40.0, "unit": null}));

    // A resend stores nothing new, so only the new reading is published.
    send_json(
        &mut ws,
        &json!({"id": 2, "readings": [temp, reading("temperature", 22.0, t + 1.0)]}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["stored"], 2);
    let m = sub.next().await;
    let body: Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(body["value"], 22.0);
    assert_eq!(body["ts"], rfc3339(t + 1.0));

    let viewer = app.viewer().await;
    assert_eq!(
        app.metric(&viewer, "telehub_mqtt_published_total").await,
        3.0
    );
    assert_eq!(app.metric(&viewer, "telehub_mqtt_connected").await, 1.0);
}
