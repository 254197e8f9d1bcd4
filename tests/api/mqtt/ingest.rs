//! Ingest: a protocol.md §2 message published on `ingest_topic/<device>` is stored as if it came
//! over WebSocket; bad payloads and unknown or revoked devices are counted, never stored.

use super::broker::*;
use crate::helpers::*;
use crate::need_mqtt;
use serde_json::json;
use telehub::domain::DeviceName;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_messages_are_stored_once_and_bad_ones_are_refused_and_counted() {
    let url = need_mqtt!();
    let p = prefix();
    let app = spawn_app_with(Backend::Sqlite, |s| s.mqtt = Some(hub_mqtt(&url, &p))).await;
    broker_state(&app, |s| s.subscribed).await;
    app.device("meter-1").await;
    app.device("old-1").await;
    app.store
        .revoke_device(&DeviceName::parse("old-1").unwrap())
        .await
        .unwrap();
    let viewer = app.viewer().await;
    let publisher = TestClient::connect(&url).await;
    let topic = |d: &str| format!("{p}/ingest/{d}");
    let t = base_ts();
    let first = json!({"id": 1, "readings": [reading("power", 1.0, t)]}).to_string();

    publisher.publish(&topic("meter-1"), first.clone()).await;
    publisher.publish(&topic("meter-1"), "{not json").await;
    let bad_value = json!({"readings": [{"sensor": "power", "value": "high"}]});
    publisher
        .publish(&topic("meter-1"), bad_value.to_string())
        .await;
    publisher.publish(&topic("ghost"), first.clone()).await;
    publisher.publish(&topic("old-1"), first.clone()).await;
    publisher.publish(&topic("-bad"), first.clone()).await;
    // MQTT has no gateway tokens: a device may only send its own readings.
    let for_other = json!({"readings": [{"device": "old-1", "sensor": "power", "value": 1.0}]});
    publisher
        .publish(&topic("meter-1"), for_other.to_string())
        .await;
    let senml = json!([{"bn": "", "n": "energy", "v": 5.0, "t": t}]);
    publisher
        .publish(&topic("meter-1"), senml.to_string())
        .await;
    // A redelivered message stores nothing twice.
    publisher.publish(&topic("meter-1"), first).await;
    let last = json!({"readings": [reading("power", 2.0, t + 1.0)]});
    publisher.publish(&topic("meter-1"), last.to_string()).await;

    let us = |s: f64| (s * 1e6) as i64;
    let want = vec![
        ("energy".to_owned(), us(t), 5.0),
        ("power".to_owned(), us(t), 1.0),
        ("power".to_owned(), us(t + 1.0), 2.0),
    ];
    let stored = || app.stored("meter-1");
    eventually(WAIT, "exactly the good readings stored", stored, |r| {
        *r == want
    })
    .await;
    for reason in [
        "invalid_json",
        "invalid_reading",
        "unknown_device",
        "revoked_device",
        "bad_topic",
    ] {
        let line = format!("telehub_mqtt_refused_total{{reason=\"{reason}\"}}");
        let value = || app.metric(&viewer, &line);
        eventually(WAIT, &format!("{line} = 1"), value, |v| *v == 1.0).await;
    }
    // Repeats count as stored, as in WebSocket acks.
    let ingested = || app.metric(&viewer, "telehub_mqtt_ingested_total");
    eventually(WAIT, "telehub_mqtt_ingested_total = 4", ingested, |v| {
        *v == 4.0
    })
    .await;
    assert!(app.stored("ghost").await.is_empty());
    assert!(app.stored("old-1").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booleans_and_strings_travel_over_mqtt_in_and_out_with_their_types() {
    let url = need_mqtt!();
    let p = prefix();
    let mut sub = TestClient::connect(&url).await;
    sub.subscribe(&format!("{p}/readings/#")).await;
    let app = spawn_app_with(Backend::Sqlite, |s| s.mqtt = Some(hub_mqtt(&url, &p))).await;
    broker_state(&app, |s| s.subscribed).await;
    app.device("freezer-1").await;
    let viewer = app.viewer().await;
    let publisher = TestClient::connect(&url).await;
    let topic = format!("{p}/ingest/freezer-1");
    let t = base_ts();
    let states = json!({"readings": [
        {"sensor": "door", "value": true, "ts": t},
        {"sensor": "mode", "value": "defrost", "ts": t}]});
    publisher.publish(&topic, states.to_string()).await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let m = sub.next().await;
        let body: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        got.push((m.topic, body["value"].clone()));
    }
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            (format!("{p}/readings/freezer-1/door"), json!(true)),
            (format!("{p}/readings/freezer-1/mode"), json!("defrost")),
        ]
    );
    // Another type for a series is refused whole, and counted.
    let wrong = json!({"readings": [
        {"sensor": "door", "value": "open", "ts": t + 1.0},
        {"sensor": "mode", "value": "cooling", "ts": t + 1.0}]});
    publisher.publish(&topic, wrong.to_string()).await;
    let line = "telehub_mqtt_refused_total{reason=\"invalid_reading\"}";
    let value = || app.metric(&viewer, line);
    eventually(WAIT, &format!("{line} = 1"), value, |v| *v == 1.0).await;
    let (status, body) = app
        .get(
            "/v1/readings?device=freezer-1&sensor=mode&from=-1h",
            Some(&viewer),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let values: Vec<_> = body["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].clone())
        .collect();
    assert_eq!(values, [json!("defrost")], "nothing of the refused message");
}
