//! Desired configurations over MQTT (docs/device-config.md) against a real broker, on
//! both backends: the hub publishes each device's desired configuration retained on
//! `config_topic`, so a device that subscribes after the change gets it from the broker;
//! its report on `config_reported_topic` is stored (answered `config_stored`) and makes
//! the configuration `in_sync`. A configuration set while the broker was away is
//! published when the hub connects again.

use super::broker::*;
use crate::commands_ws::operator;
use crate::device_config::{config, set};
use crate::helpers::*;
use crate::{both_backends, need_mqtt};
use rumqttc::{Publish, QoS};
use serde_json::{Value, json};

async fn hub(backend: Backend, url: &str, p: &str) -> (TestApp, String, String) {
    let app = spawn_app_with(backend, |s| s.mqtt = Some(hub_mqtt(url, p))).await;
    app.device("d1").await;
    broker_state(&app, |b| b.subscribed).await;
    let op = operator(&app).await;
    let viewer = app.viewer().await;
    (app, op, viewer)
}

fn json_of(m: &Publish) -> Value {
    serde_json::from_slice(&m.payload).expect("JSON payload")
}

/// Removes the retained document the test left on the shared broker.
async fn clear_retained(c: &TestClient, topic: &str) {
    c.client
        .publish(topic, QoS::AtLeastOnce, true, Vec::new())
        .await
        .unwrap();
}

async fn a_device_subscribing_late_gets_its_retained_config_and_its_report_syncs_it(
    backend: Backend,
) {
    let url = need_mqtt!();
    let p = prefix();
    let (app, op, viewer) = hub(backend, &url, &p).await;
    let topic = format!("{p}/config/d1");
    // A watcher sees the hub publish; the device subscribes only after that.
    let mut watcher = TestClient::connect(&url).await;
    watcher.subscribe(&topic).await;
    set(&app, &op, "d1", json!({"interval_s": 5}), None).await;
    let live = watcher.next().await;
    let expected = json!({"version": 1, "desired": {"interval_s": 5}});
    assert_eq!(json_of(&live), expected);
    assert_eq!(live.qos, QoS::AtLeastOnce);

    let mut device = TestClient::connect(&url).await;
    device.subscribe(&format!("{p}/command-replies/d1")).await;
    device.subscribe(&topic).await;
    let retained = device.next().await;
    assert!(retained.retain, "the broker kept it: {retained:?}");
    assert_eq!(json_of(&retained), expected);
    assert_eq!(config(&app, &viewer, "d1").await["in_sync"], false);

    let report = json!({"version": 1, "state": {"interval_s": 5}});
    device
        .publish(&format!("{p}/config-reported/d1"), report.to_string())
        .await;
    assert_eq!(json_of(&device.next().await), json!({"config_stored": 1}));
    let c = config(&app, &viewer, "d1").await;
    assert_eq!(
        (&c["in_sync"], &c["reported_version"], &c["reported"]),
        (&json!(true), &json!(1), &json!({"interval_s": 5})),
        "{c}"
    );
    // A report that is not one is answered with a nack and changes nothing.
    device
        .publish(&format!("{p}/config-reported/d1"), "{\"version\": 9}")
        .await;
    let nack = json_of(&device.next().await);
    assert_eq!(nack["error"], "invalid_json", "{nack}");
    // A change while subscribed arrives at once.
    set(&app, &op, "d1", json!({"interval_s": 7}), None).await;
    let next = json_of(&device.next().await);
    assert_eq!(next, json!({"version": 2, "desired": {"interval_s": 7}}));
    clear_retained(&device, &topic).await;
}
both_backends!(a_device_subscribing_late_gets_its_retained_config_and_its_report_syncs_it);

async fn a_config_set_while_the_broker_is_down_is_published_when_it_is_back(backend: Backend) {
    need_mqtt!();
    let mut broker = PrivateBroker::start().await;
    let p = prefix();
    let (app, op, viewer) = hub(backend, &broker.url(), &p).await;
    broker.stop().await;
    broker_state(&app, |b| !b.connected).await;
    set(&app, &op, "d1", json!({"interval_s": 9}), None).await;
    broker.resume().await;
    broker_state(&app, |b| b.subscribed).await;
    let mut device = TestClient::connect(&broker.url()).await;
    device.subscribe(&format!("{p}/config/d1")).await;
    // Retained, or live when the hub publishes after the subscription.
    assert_eq!(
        json_of(&device.next().await),
        json!({"version": 1, "desired": {"interval_s": 9}})
    );
    assert_eq!(config(&app, &viewer, "d1").await["in_sync"], false);
}
both_backends!(a_config_set_while_the_broker_is_down_is_published_when_it_is_back);
