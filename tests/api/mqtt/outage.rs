//! The broker going away and coming back, and a broker that wants TLS and a password.
//! Each test runs a private mosquitto, so stopping it disturbs no other test.

use super::broker::*;
use crate::helpers::*;
use crate::{need_mqtt, need_pg};
use serde_json::{Value, json};

async fn readyz(app: &TestApp) -> (u16, Value) {
    app.get("/readyz", None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_keeps_ingesting_while_the_broker_is_down_and_recovers_when_it_returns() {
    let _ = need_mqtt!();
    let mut broker = PrivateBroker::start().await;
    let p = prefix();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.mqtt = Some(hub_mqtt(&broker.url(), &p))
    })
    .await;
    broker_state(&app, |s| s.subscribed).await;
    let viewer = app.viewer().await;
    let token = app.device("d1").await;
    let mut ws = app.connect_device(&token).await;
    let t = base_ts();

    broker.stop().await;
    broker_state(&app, |s| !s.connected).await;
    let (status, body) = readyz(&app).await;
    assert_eq!(
        status, 200,
        "a broker outage does not make the hub unready: {body}"
    );
    assert_eq!(body["storage"]["ok"], true);
    assert_eq!(body["mqtt"]["connected"], false);
    assert!(
        body["mqtt"]["detail"]
            .as_str()
            .unwrap()
            .contains("reconnecting"),
        "{body}"
    );
    assert_eq!(app.metric(&viewer, "telehub_mqtt_connected").await, 0.0);
    send_json(
        &mut ws,
        &json!({"id": 1, "readings": [reading("t", 1.0, t)]}),
    )
    .await;
    assert_eq!(
        next_json(&mut ws).await["ack"],
        1,
        "WebSocket ingest goes on"
    );

    broker.resume().await;
    broker_state(&app, |s| s.subscribed).await;
    assert_eq!(readyz(&app).await.1["mqtt"]["connected"], true);
    assert!(app.metric(&viewer, "telehub_mqtt_disconnects_total").await >= 1.0);
    // Egress flows again (the reading stored during the outage may come first).
    let mut sub = TestClient::connect(&broker.url()).await;
    sub.subscribe(&format!("{p}/readings/#")).await;
    send_json(
        &mut ws,
        &json!({"id": 2, "readings": [reading("t", 2.0, t + 1.0)]}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["ack"], 2);
    loop {
        let body: Value = serde_json::from_slice(&sub.next().await.payload).unwrap();
        if body["value"] == 2.0 {
            break;
        }
        assert_eq!(
            body["value"], 1.0,
            "only the outage's reading may come first"
        );
    }
    // And so does ingest: the hub subscribed again.
    let msg = json!({"readings": [reading("t", 3.0, t + 2.0)]}).to_string();
    sub.publish(&format!("{p}/ingest/d1"), msg).await;
    assert_eq!(app.wait_stored("d1", 3).await.len(), 3, "stored once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_connects_over_tls_with_a_password_and_says_when_the_password_is_wrong() {
    let _ = need_mqtt!();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let broker = PrivateBroker::start_with(|port, dir| {
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("server-key.pem"), key.serialize_pem()).unwrap();
        let out = std::process::Command::new("mosquitto_passwd")
            .args(["-b", "-c"])
            .arg(dir.join("passwd"))
            .args(["hub", "s3cret"])
            .output()
            .expect("mosquitto_passwd runs");
        assert!(out.status.success());
        let d = dir.display();
        // `user root` keeps a broker started as root able to read these files.
        format!(
            "user root\nlistener {port} 127.0.0.1\ncertfile {d}/server.pem\nkeyfile {d}/server-key.pem\n\
             allow_anonymous false\npassword_file {d}/passwd\n"
        )
    })
    .await;
    let p = prefix();
    let ca_file = broker.dir().join("ca.pem");
    let tls = |password: &str| {
        let mut m = hub_mqtt(&format!("mqtts://localhost:{}", broker.port), &p);
        m.ca_file = Some(ca_file.clone());
        m.username = Some("hub".into());
        m.password = Some(password.into());
        m
    };
    let good = spawn_app_with(Backend::Sqlite, |s| s.mqtt = Some(tls("s3cret"))).await;
    broker_state(&good, |s| s.subscribed).await;
    let bad = spawn_app_with(Backend::Sqlite, |s| s.mqtt = Some(tls("wrong"))).await;
    broker_state(&bad, |s| s.detail.contains("mqtt.password")).await;
    let (status, body) = readyz(&bad).await;
    assert_eq!(status, 200);
    assert_eq!(body["mqtt"]["connected"], false);
}

/// Turns connections to the test database off (`false`) or on, closing open ones.
async fn allow_connections(db_url: &str, allow: bool) {
    let server = pg_server().expect("checked by the caller");
    let name = db_url.rsplit('/').next().unwrap();
    pg_admin(
        &server,
        &format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}"),
    )
    .await;
    if !allow {
        let kill = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        );
        pg_admin(&server, &kill).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_messages_wait_for_storage_to_come_back_and_are_stored_once() {
    let url = need_mqtt!();
    need_pg!();
    let p = prefix();
    let app = spawn_app_with(Backend::Postgres, |s| {
        s.mqtt = Some(hub_mqtt(&url, &p));
        s.writer.retry_backoff = std::time::Duration::from_millis(100);
        s.database.busy_timeout = std::time::Duration::from_secs(1);
    })
    .await;
    broker_state(&app, |s| s.subscribed).await;
    app.device("m1").await;
    let viewer = app.viewer().await;
    // A first message warms the device cache, so the outage hits the writer itself.
    let publisher = TestClient::connect(&url).await;
    let t = base_ts();
    let msg = |v: f64, dt: f64| json!({"readings": [reading("flow", v, t + dt)]}).to_string();
    publisher
        .publish(&format!("{p}/ingest/m1"), msg(1.0, 0.0))
        .await;
    assert_eq!(app.wait_stored("m1", 1).await.len(), 1);

    allow_connections(&app.db.url, false).await;
    publisher
        .publish(&format!("{p}/ingest/m1"), msg(2.0, 1.0))
        .await;
    // (`/metrics` needs a token, which needs storage: read the registry directly.)
    let metrics = app.hub().state.metrics.clone();
    let failures = || async { metrics.commit_failures.get() };
    eventually(WAIT, "a failed commit", failures, |n| *n >= 1).await;
    let (status, _) = readyz(&app).await;
    assert_eq!(status, 503, "storage down is not ready");
    allow_connections(&app.db.url, true).await;

    assert_eq!(app.wait_stored("m1", 2).await.len(), 2, "stored once");
    assert_eq!(
        app.metric(&viewer, "telehub_mqtt_ingested_total").await,
        2.0
    );
    let unavailable = "telehub_mqtt_refused_total{reason=\"unavailable\"}";
    assert_eq!(
        app.metric(&viewer, unavailable).await,
        0.0,
        "held, not refused"
    );
}
