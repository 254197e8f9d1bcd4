//! Two hubs sharing one PostgreSQL database and one broker: dashboards on either hub
//! see every device's readings exactly once, and every device's status.

use super::broker::*;
use crate::helpers::*;
use crate::{need_mqtt, need_pg};
use serde_json::{Value, json};
use std::collections::HashMap;
use telehub::hub::{self, RunningHub};

const MESSAGES: usize = 10;
const PER_MESSAGE: usize = 10;

fn ws_url(hub: &RunningHub, path: &str) -> String {
    format!("{}{path}", hub.base_url().replacen("http", "ws", 1))
}

/// A dashboard on `hub`, subscribed to everything.
async fn dashboard(hub: &RunningHub, viewer: &str) -> Ws {
    let mut ws = connect(&ws_url(hub, "/v1/live"), Some(viewer))
        .await
        .unwrap();
    subscribe_all(&mut ws).await;
    ws
}

/// Readings keyed by (device, sensor, ts) with how often each arrived, until `n` arrived.
/// Local and remote readings alike carry increasing offsets of this hub's history.
async fn collect(ws: &mut Ws, n: usize) -> HashMap<(String, String, String), usize> {
    let (mut seen, mut total, mut offset) = (HashMap::new(), 0, 0);
    while total < n {
        let m = next_json(ws).await;
        if let Some(o) = m["offset"].as_u64() {
            assert!(o > offset, "offsets increase: {o} after {offset}");
            offset = o;
        }
        for r in m["readings"].as_array().into_iter().flatten() {
            let key = (
                r["device"].to_string(),
                r["sensor"].to_string(),
                r["ts"].to_string(),
            );
            *seen.entry(key).or_insert(0) += 1;
            total += 1;
        }
    }
    seen
}

fn message(t: f64, i: usize) -> Value {
    let readings: Vec<Value> = (0..PER_MESSAGE)
        .map(|k| {
            reading(
                "level",
                (i * PER_MESSAGE + k) as f64,
                t + (i * PER_MESSAGE + k) as f64 / 1000.0,
            )
        })
        .collect();
    json!({"id": i, "readings": readings})
}

async fn online(hub: &RunningHub, viewer: &str, device: &str) -> bool {
    let list: Vec<Value> = reqwest::Client::new()
        .get(format!("{}/v1/devices", hub.base_url()))
        .bearer_auth(viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list.iter()
        .any(|d| d["name"] == device && d["online"] == true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hubs_share_the_live_stream_and_store_each_reading_once() {
    let url = need_mqtt!();
    need_pg!();
    let p = prefix();
    let mut a = spawn_app_with(Backend::Postgres, |s| {
        let mut m = hub_mqtt(&url, &p);
        m.cluster = true;
        s.mqtt = Some(m);
    })
    .await;
    let b = hub::start(a.settings.clone())
        .await
        .expect("second hub starts");
    broker_state(&a, |s| s.subscribed).await;
    let bm = b.state.mqtt.as_ref().unwrap();
    tokio::time::timeout(WAIT, bm.wait_until(|s| s.subscribed))
        .await
        .unwrap();
    let viewer = a.viewer().await;
    let (mut live_a, mut live_b) = (
        dashboard(a.hub(), &viewer).await,
        dashboard(&b, &viewer).await,
    );

    // Status crosses hubs: a device on A is seen coming online by a dashboard on B.
    let (tok_a, tok_b) = (a.device("dev-a").await, a.device("dev-b").await);
    a.device("dev-m").await;
    let mut dev_a = a.connect_device(&tok_a).await;
    for live in [&mut live_a, &mut live_b] {
        let s = next_status(live).await;
        assert_eq!(
            (&s["device"], &s["online"]),
            (&json!("dev-a"), &json!(true))
        );
    }
    let mut dev_b = connect(&ws_url(&b, "/v1/ingest"), Some(&tok_b))
        .await
        .unwrap();
    for live in [&mut live_a, &mut live_b] {
        let s = next_status(live).await;
        assert_eq!(
            (&s["device"], &s["online"]),
            (&json!("dev-b"), &json!(true))
        );
    }
    assert!(
        online(&b, &viewer, "dev-a").await,
        "B lists dev-a (on A) online"
    );
    assert!(
        online(a.hub(), &viewer, "dev-b").await,
        "A lists dev-b (on B) online"
    );

    // Readings from a device on each hub, and from MQTT (a shared subscription: one hub
    // stores each message).
    let publisher = TestClient::connect(&url).await;
    let mut egress = TestClient::connect(&url).await;
    egress.subscribe(&format!("{p}/readings/#")).await;
    let t = base_ts();
    for i in 0..MESSAGES {
        send_json(&mut dev_a, &message(t, i)).await;
        send_json(&mut dev_b, &message(t, i)).await;
        publisher
            .publish(&format!("{p}/ingest/dev-m"), message(t, i).to_string())
            .await;
    }
    for dev in [&mut dev_a, &mut dev_b] {
        for _ in 0..MESSAGES {
            assert_eq!(next_json(dev).await["stored"], PER_MESSAGE);
        }
    }
    let n = 3 * MESSAGES * PER_MESSAGE;
    for live in [&mut live_a, &mut live_b] {
        let seen = collect(live, n).await;
        assert_eq!(seen.len(), n, "every reading arrived");
        assert!(seen.values().all(|c| *c == 1), "no reading arrived twice");
    }
    // Egress: each reading published once, by the hub that stored it.
    let mut published = HashMap::new();
    for _ in 0..n {
        let m = egress.next().await;
        let body: Value = serde_json::from_slice(&m.payload).unwrap();
        *published
            .entry((m.topic, body["ts"].to_string()))
            .or_insert(0) += 1;
    }
    assert_eq!(published.len(), n, "every reading published, none twice");
    for dev in ["dev-a", "dev-b", "dev-m"] {
        let rows = stored_readings(&a.db.url, dev).await;
        assert_eq!(rows.len(), MESSAGES * PER_MESSAGE, "{dev} stored once");
    }
    // Nothing more was queued for the dashboards: the next frame is the next reading.
    send_json(
        &mut dev_b,
        &json!({"readings": [reading("level", -1.0, t + 100.0)]}),
    )
    .await;
    for live in [&mut live_a, &mut live_b] {
        let m = next_json(live).await;
        assert_eq!(m["readings"].as_array().map(Vec::len), Some(1), "{m}");
        assert_eq!(m["readings"][0]["value"], -1.0);
    }
    let m = egress.next().await;
    assert_eq!(
        serde_json::from_slice::<Value>(&m.payload).unwrap()["value"],
        -1.0
    );

    // A device leaving hub A is seen offline on B; hub B leaving takes its devices offline.
    drop(dev_a);
    for live in [&mut live_a, &mut live_b] {
        let s = next_status(live).await;
        assert_eq!(
            (&s["device"], &s["online"]),
            (&json!("dev-a"), &json!(false))
        );
    }
    b.stop().await;
    let s = next_status(&mut live_a).await;
    assert_eq!(
        (&s["device"], &s["online"]),
        (&json!("dev-b"), &json!(false))
    );
    assert!(!online(a.hub(), &viewer, "dev-b").await);
    drop(dev_b);
    a.stop().await;
}
