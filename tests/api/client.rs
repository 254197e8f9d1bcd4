//! The device client library ([`telehub::client`]) against the real hub, and against
//! a scripted hub for the replies a healthy hub rarely sends (refusals, lost sockets,
//! wrong ids).

use crate::both_backends;
use crate::helpers::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use telehub::client::{BackoffConfig, ClientConfig, ClientEvent, DeviceClient, Stats};
use telehub::domain::{Reading, SensorName, Timestamp};
use telehub::protocol::ingest::DeviceReading;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

fn reading(sensor: &str, i: i64) -> DeviceReading {
    DeviceReading {
        device: None,
        reading: Reading {
            sensor: SensorName::parse(sensor).unwrap(),
            value: (i as f64 / 4.0).into(),
            ts: Timestamp::from_micros((base_ts() as i64) * 1_000_000 + i * 1000),
            unit: None,
        },
    }
}

fn quick(cfg: &mut ClientConfig) {
    cfg.backoff = BackoffConfig {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
    };
}

/// Waits until the client's counters satisfy `cond`.
async fn stats_until(c: &DeviceClient, what: &str, cond: impl Fn(&Stats) -> bool) -> Stats {
    eventually(WAIT, what, || async { c.stats() }, cond).await
}

async fn the_client_delivers_every_reading(backend: Backend) {
    let app = spawn_app(backend).await;
    let token = app.device("client-1").await;
    let mut cfg = ClientConfig::new(app.http(), token);
    cfg.max_batch = 50;
    cfg.max_inflight = 8;
    let client = DeviceClient::start(cfg).unwrap();
    let mut events = client.subscribe();
    for i in 0..2000 {
        client
            .push(reading(["a", "b", "c"][i as usize % 3], i))
            .unwrap();
    }
    let too_new = DeviceReading {
        reading: Reading {
            ts: Timestamp::now().saturating_add(Duration::from_secs(3600)),
            ..reading("a", 0).reading
        },
        ..reading("a", 0)
    };
    client.push(too_new).unwrap();
    let s = client.shutdown(WAIT).await;
    assert_eq!(
        (s.generated, s.acked, s.nacked, s.pending),
        (2001, 2000, 1, 0),
        "{s:?}"
    );
    assert_eq!(app.stored("client-1").await.len(), 2000);
    assert_eq!(events.recv().await.unwrap(), ClientEvent::Connected);
    let refused = loop {
        if let ClientEvent::Refused {
            readings, detail, ..
        } = events.recv().await.unwrap()
        {
            break (readings, detail);
        }
    };
    assert_eq!(refused.0, 1);
    assert!(
        refused.1.contains("ahead of the hub's clock"),
        "{}",
        refused.1
    );
}
both_backends!(the_client_delivers_every_reading);

/// A TLS hub with `cert`; returns the app and the certificate's PEM file.
async fn tls_hub(
    cert: rcgen::CertifiedKey,
    dir: &std::path::Path,
) -> (TestApp, std::path::PathBuf) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (cert_path, key_path) = (dir.join("hub.pem"), dir.join("hub-key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let tls = telehub::config::TlsSettings {
        cert: cert_path.clone(),
        key: key_path,
    };
    (
        spawn_app_with(Backend::Sqlite, |s| s.tls = Some(tls)).await,
        cert_path,
    )
}

/// Sends one reading over wss://localhost and returns the stats, or the first
/// connection failure.
async fn send_over_wss(
    app: &TestApp,
    ca_file: Option<std::path::PathBuf>,
) -> Result<Stats, String> {
    let token = app.device(&format!("tls-{}", rand_suffix())).await;
    let mut cfg = ClientConfig::new(format!("wss://localhost:{}", app.hub().addr.port()), token);
    cfg.ca_file = ca_file;
    quick(&mut cfg);
    let client = DeviceClient::start(cfg).unwrap();
    let mut events = client.subscribe();
    client.push(reading("t", 1)).unwrap();
    match tokio::time::timeout(WAIT, events.recv())
        .await
        .unwrap()
        .unwrap()
    {
        ClientEvent::Connected => Ok(client.shutdown(WAIT).await),
        ClientEvent::ConnectFailed { reason, .. } => {
            client.shutdown(Duration::ZERO).await;
            Err(reason)
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reaches_a_tls_hub_that_its_ca_file_vouches_for() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (app, cert_path) = tls_hub(cert, dir.path()).await;
    assert_eq!(send_over_wss(&app, Some(cert_path)).await.unwrap().acked, 1);
    let refused = send_over_wss(&app, None).await.unwrap_err();
    assert!(refused.contains("certificate"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_certificate_marked_as_a_ca_is_pinned() {
    // What `openssl req -x509` makes by default: CA:TRUE, here for another name.
    let dir = tempfile::tempdir().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["hub.example".into()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key_pair = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key_pair).unwrap();
    let (app, cert_path) = tls_hub(rcgen::CertifiedKey { cert, key_pair }, dir.path()).await;
    assert_eq!(send_over_wss(&app, Some(cert_path)).await.unwrap().acked, 1);

    // Another certificate in the CA file does not vouch for this hub.
    let other = dir.path().join("other.pem");
    let stranger = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(&other, stranger.cert.pem()).unwrap();
    assert!(send_over_wss(&app, Some(other)).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_connections_are_retried_with_growing_jittered_delays() {
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = dead.local_addr().unwrap();
    drop(dead);
    let mut cfg = ClientConfig::new(format!("ws://{addr}"), "th_x");
    cfg.backoff = BackoffConfig {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(40),
    };
    let client = DeviceClient::start(cfg).unwrap();
    let mut events = client.subscribe();
    let ceilings = [10, 20, 40, 40, 40, 40].map(Duration::from_millis);
    for (n, ceiling) in ceilings.iter().enumerate() {
        match tokio::time::timeout(WAIT, events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            ClientEvent::ConnectFailed { retry_in, .. } => {
                assert!(
                    retry_in <= *ceiling,
                    "attempt {n}: {retry_in:?} > {ceiling:?}"
                )
            }
            other => panic!("expected a failed connection, got {other:?}"),
        }
    }
    client.push(reading("t", 1)).unwrap();
    let s = client.shutdown(Duration::from_millis(50)).await;
    assert_eq!((s.generated, s.pending, s.reconnects), (1, 1, 0));
}

/// A scripted hub: accepts device sockets one after another; `reply` gets the
/// connection number and each message, and answers it (`None`: drop the socket).
/// Every message received goes to the returned channel.
async fn scripted_hub(
    mut reply: impl FnMut(usize, &Value) -> Option<Value> + Send + 'static,
) -> (String, mpsc::UnboundedReceiver<(usize, Value)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen, seen_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for conn in 0.. {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                continue;
            };
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(t) = msg else { continue };
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                let _ = seen.send((conn, v.clone()));
                match reply(conn, &v) {
                    Some(r) => ws.send(Message::Text(r.to_string().into())).await.unwrap(),
                    None => break,
                }
            }
        }
    });
    (format!("ws://{addr}"), seen_rx)
}

fn sensors(msg: &Value) -> Vec<String> {
    msg["readings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["sensor"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend_later_refusals_are_retried_and_final_ones_never_are() {
    let mut refused_once = false;
    let (hub, mut seen) = scripted_hub(move |_, msg| {
        let id = msg["id"].clone();
        Some(if sensors(msg).contains(&"bad".to_owned()) {
            json!({"nack": id, "error": "invalid_reading", "detail": "bad sensor"})
        } else if !refused_once {
            refused_once = true;
            json!({"nack": id, "error": "unavailable", "detail": "storage is down"})
        } else {
            json!({"ack": id, "stored": 1})
        })
    })
    .await;
    let mut cfg = ClientConfig::new(hub, "th_x");
    quick(&mut cfg);
    let client = DeviceClient::start(cfg).unwrap();
    client.push(reading("good", 1)).unwrap();
    stats_until(&client, "the resent reading is acked", |s| s.acked == 1).await;
    client.push(reading("bad", 2)).unwrap();
    let s = stats_until(&client, "the bad reading is refused", |s| s.nacked == 1).await;
    assert_eq!((s.generated, s.pending, s.reconnects), (2, 0, 0));
    client.shutdown(WAIT).await;

    let mut msgs = Vec::new();
    while let Ok((_, m)) = seen.try_recv() {
        msgs.push(m);
    }
    let ids: Vec<u64> = msgs.iter().map(|m| m["id"].as_u64().unwrap()).collect();
    assert_eq!(ids, [1, 2, 3], "good, good again, bad once: {msgs:?}");
    assert_eq!(sensors(&msgs[1]), ["good"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_in_flight_is_resent_after_a_lost_socket_or_a_wrong_reply() {
    // Connection 0 drops without replying; connection 1 answers with a wrong id;
    // connection 2 behaves.
    let (hub, mut seen) = scripted_hub(|conn, msg| match conn {
        0 => None,
        1 => Some(json!({"ack": 999, "stored": 1})),
        _ => Some(json!({"ack": msg["id"], "stored": msg["readings"].as_array().unwrap().len()})),
    })
    .await;
    let mut cfg = ClientConfig::new(hub, "th_x");
    quick(&mut cfg);
    cfg.max_batch = 3;
    let client = DeviceClient::start(cfg).unwrap();
    // The times pushed (reading() reads the clock: computing them again later could fall
    // in the next second).
    let pushed: Vec<DeviceReading> = (0..5).map(|i| reading("t", i)).collect();
    let want: Vec<i64> = pushed.iter().map(|r| r.reading.ts.as_micros()).collect();
    client.push_all(pushed).unwrap();
    let s = client.shutdown(WAIT).await;
    assert_eq!((s.generated, s.acked, s.reconnects), (5, 5, 2), "{s:?}");

    let mut per_conn: [Vec<i64>; 3] = Default::default();
    while let Ok((conn, m)) = seen.try_recv() {
        for r in m["readings"].as_array().unwrap() {
            let ts = Timestamp::parse_rfc3339(r["ts"].as_str().unwrap()).unwrap();
            per_conn[conn.min(2)].push(ts.as_micros());
        }
    }
    let mut delivered = per_conn[2].clone();
    delivered.sort();
    delivered.dedup();
    assert_eq!(delivered, want, "everything reached the healthy connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_hubs_retry_after_is_respected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = tcp.read(&mut buf).await;
            let busy =
                "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\ncontent-length: 0\r\n\r\n";
            let _ = tcp.write_all(busy.as_bytes()).await;
        }
    });
    let mut cfg = ClientConfig::new(format!("ws://{addr}"), "th_x");
    quick(&mut cfg);
    let client = DeviceClient::start(cfg).unwrap();
    let mut events = client.subscribe();
    match tokio::time::timeout(WAIT, events.recv())
        .await
        .unwrap()
        .unwrap()
    {
        ClientEvent::ConnectFailed { reason, retry_in } => {
            assert!(reason.contains("503"), "{reason}");
            assert!(retry_in >= Duration::from_secs(2), "{retry_in:?}");
        }
        other => panic!("expected a refused upgrade, got {other:?}"),
    }
    client.shutdown(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_reading_does_not_take_its_neighbours_down() {
    let (hub, mut seen) = scripted_hub(|_, msg| {
        let bad = sensors(msg).iter().position(|s| s == "bad");
        Some(match bad {
            Some(i) => {
                json!({"nack": msg["id"], "error": "invalid_reading", "detail": format!("readings[{i}].sensor: bad")})
            }
            None => json!({"ack": msg["id"], "stored": 1}),
        })
    })
    .await;
    let client = DeviceClient::start(ClientConfig::new(hub, "th_x")).unwrap();
    client
        .push_all([reading("good", 1), reading("bad", 2), reading("good", 3)])
        .unwrap();
    let s = client.shutdown(WAIT).await;
    assert_eq!((s.generated, s.acked, s.nacked), (3, 2, 1), "{s:?}");
    let mut msgs = Vec::new();
    while let Ok((_, m)) = seen.try_recv() {
        msgs.push(sensors(&m));
    }
    assert_eq!(msgs, [vec!["good", "bad", "good"], vec!["good", "good"]]);
}
