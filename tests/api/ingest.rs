//! Device ingest (protocol.md §2) through a real WebSocket.

use crate::both_backends;
use crate::helpers::*;
use crate::need_pg;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

async fn a_device_needs_a_valid_token_before_the_upgrade(b: Backend) {
    let app = spawn_app(b).await;
    let url = app.ws("/v1/ingest");
    assert_eq!(refused_status(connect(&url, None).await), 401);
    assert_eq!(
        refused_status(connect(&url, Some("th_not-a-token")).await),
        401
    );
    let token = app.device("boiler-1").await;
    app.store
        .revoke_device(&"boiler-1".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(refused_status(connect(&url, Some(&token)).await), 401);
    let viewer = app.viewer().await;
    assert_eq!(refused_status(connect(&url, Some(&viewer)).await), 403);
    // ?token= works for clients that cannot set headers.
    let token = app.device("boiler-2").await;
    connect(&format!("{url}?token={token}"), None)
        .await
        .expect("query token accepted");
}
both_backends!(a_device_needs_a_valid_token_before_the_upgrade);

async fn readings_are_acked_after_they_are_committed(b: Backend) {
    let app = spawn_app(b).await;
    let mut ws = app.connect_device(&app.device("boiler-1").await).await;
    let t = base_ts();
    send_json(
        &mut ws,
        &json!({"id": 17, "readings": [
        {"sensor": "temperature", "value": 21.5, "ts": t, "unit": "Cel"},
        {"sensor": "humidity", "value": 40.1, "ts": t + 0.25}]}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await, json!({"ack": 17, "stored": 2}));
    let rows = app.stored("boiler-1").await;
    let us = (t * 1e6) as i64;
    assert_eq!(
        rows,
        vec![
            ("humidity".into(), us + 250_000, 40.1),
            ("temperature".into(), us, 21.5)
        ]
    );
}
both_backends!(readings_are_acked_after_they_are_committed);

async fn a_resent_message_is_acked_again_and_stored_once(b: Backend) {
    let app = spawn_app(b).await;
    let mut ws = app.connect_device(&app.device("d1").await).await;
    let t = base_ts();
    let msg = json!({"id": 1, "readings": [reading("t", 1.0, t), reading("t", 2.0, t + 1.0)]});
    send_json(&mut ws, &msg).await;
    assert_eq!(next_json(&mut ws).await, json!({"ack": 1, "stored": 2}));
    // Same identity, different value: the first value stored wins.
    send_json(
        &mut ws,
        &json!({"id": 2, "readings": [reading("t", 9.0, t), reading("t", 3.0, t + 2.0)]}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await, json!({"ack": 2, "stored": 2}));
    send_json(&mut ws, &msg).await;
    assert_eq!(next_json(&mut ws).await, json!({"ack": 1, "stored": 2}));
    let values: Vec<f64> = app.stored("d1").await.into_iter().map(|r| r.2).collect();
    assert_eq!(values, vec![1.0, 2.0, 3.0]);
}
both_backends!(a_resent_message_is_acked_again_and_stored_once);

async fn each_refusal_carries_its_code_and_stores_nothing(b: Backend) {
    let app = spawn_app_with(b, |s| s.ingest.max_readings_per_message = 3).await;
    app.device("pump-1").await;
    app.device("pump-2").await;
    let gw = app.gateway("gw-1", &["pump-1"]).await;
    let mut ws = app.connect_device(&gw).await;
    let t = base_ts();
    let cases = [
        (json!("{not json"), None, "invalid_json"),
        (
            json!({"id": 1, "readings": [reading("t", 1.0, t), {"sensor": "t", "value": "x"}]}),
            Some(1),
            "invalid_reading",
        ),
        (
            json!({"id": 2, "readings": [reading("t", 1.0, t), reading("t", 1.0, t + 1.0), reading("t", 1.0, t + 2.0), reading("t", 1.0, t + 3.0)]}),
            Some(2),
            "too_many_readings",
        ),
        (
            json!({"id": 3, "device": "pump-2", "readings": [reading("t", 1.0, t)]}),
            Some(3),
            "forbidden_device",
        ),
        (
            json!({"id": 4, "readings": [reading("t", 1.0, t), {"sensor": "t", "value": 2, "device": "pump-2"}]}),
            Some(4),
            "forbidden_device",
        ),
        (
            json!({"id": 5, "readings": [{"sensor": "t", "value": 1, "ts": "2999-01-01T00:00:00Z"}]}),
            Some(5),
            "invalid_reading",
        ),
    ];
    for (msg, id, code) in cases {
        let text = msg
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| msg.to_string());
        ws.send(Message::Text(text.into())).await.unwrap();
        let reply = next_json(&mut ws).await;
        assert_eq!(reply["nack"], json!(id), "{reply}");
        assert_eq!(reply["error"], code, "{reply}");
        assert!(reply["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    // The gateway may publish for pump-1 and for itself; the socket is still usable.
    send_json(
        &mut ws,
        &json!({"id": 6, "device": "pump-1", "readings": [reading("t", 7.0, t)]}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await, json!({"ack": 6, "stored": 1}));
    assert_eq!(app.stored("pump-1").await.len(), 1);
    assert!(app.stored("gw-1").await.is_empty());
    assert!(app.stored("pump-2").await.is_empty());
}
both_backends!(each_refusal_carries_its_code_and_stores_nothing);

async fn pipelined_messages_are_answered_in_order(b: Backend) {
    let app = spawn_app(b).await;
    let mut ws = app.connect_device(&app.device("d1").await).await;
    let t = base_ts();
    for i in 0..200u64 {
        let msg = if i % 7 == 3 {
            json!({"id": i, "readings": [{"sensor": "bad name", "value": 1}]})
        } else {
            json!({"id": i, "readings": [reading("a", i as f64, t + i as f64), reading("b", i as f64, t + i as f64)]})
        };
        ws.feed(Message::Text(msg.to_string().into()))
            .await
            .unwrap();
    }
    ws.flush().await.unwrap();
    let mut acked = 0;
    for i in 0..200u64 {
        let r = next_json(&mut ws).await;
        if i % 7 == 3 {
            assert_eq!(r["nack"], i, "{r}");
        } else {
            assert_eq!(r, json!({"ack": i, "stored": 2}));
            acked += 2;
        }
    }
    assert_eq!(app.stored("d1").await.len(), acked);
}
both_backends!(pipelined_messages_are_answered_in_order);

async fn senml_packs_are_accepted_and_answered_without_id(b: Backend) {
    let app = spawn_app(b).await;
    let mut ws = app.connect_device(&app.device("d1").await).await;
    let t = base_ts();
    send_json(&mut ws, &json!([{"bn": "room1:", "bt": t, "bu": "Cel", "n": "temp", "v": 21.5}, {"n": "temp", "t": 1, "v": 21.6}])).await;
    assert_eq!(next_json(&mut ws).await, json!({"ack": null, "stored": 2}));
    // protocol.md §8: `vd` (data values) is refused; `vs` and `vb` are accepted (tests/api/values.rs).
    send_json(&mut ws, &json!([{"n": "temp", "vd": "aGk="}])).await;
    let r = next_json(&mut ws).await;
    assert_eq!(
        (r["nack"].clone(), r["error"].clone()),
        (json!(null), json!("invalid_reading"))
    );
    let rows = app.stored("d1").await;
    assert_eq!(
        rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        ["room1:temp", "room1:temp"]
    );
}
both_backends!(senml_packs_are_accepted_and_answered_without_id);

#[tokio::test]
async fn an_oversized_frame_closes_with_1009() {
    let app = spawn_app_with(Backend::Sqlite, |s| s.ingest.max_frame_bytes = 1024).await;
    let mut ws = app.connect_device(&app.device("d1").await).await;
    let big = format!(
        r#"{{"readings":[{{"sensor":"t","value":1,"unit":"{}"}}]}}"#,
        "x".repeat(2000)
    );
    let _ = ws.send(Message::Text(big.into())).await;
    assert_eq!(close_code(&mut ws).await, 1009);
}

#[tokio::test]
async fn a_binary_frame_closes_with_1003() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut ws = app.connect_device(&app.device("d1").await).await;
    ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(close_code(&mut ws).await, 1003);
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_closes_with_1007() {
    use tokio_tungstenite::tungstenite::protocol::frame::{
        Frame,
        coding::{Data, OpCode},
    };
    let app = spawn_app(Backend::Sqlite).await;
    let mut ws = app.connect_device(&app.device("d1").await).await;
    let frame = Frame::message(vec![0xff, 0xfe, b'{'], OpCode::Data(Data::Text), true);
    ws.send(Message::Frame(frame)).await.unwrap();
    assert_eq!(close_code(&mut ws).await, 1007);
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_idle_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.ingest.ping_interval = std::time::Duration::from_millis(100);
        s.ingest.idle_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    let token = app.device("d1").await;
    // A raw client that completes the handshake and then never answers a ping.
    let mut tcp = tokio::net::TcpStream::connect(app.hub().addr)
        .await
        .unwrap();
    let req = format!(
        "GET /v1/ingest HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    // Read until the server closes the TCP connection.
    loop {
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .expect("server acts in time")
            .unwrap();
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    assert!(
        seen.windows(2).any(|w| w == [0x89, 0x00]),
        "the hub pinged first"
    );
    assert!(
        seen.windows(4).any(|w| w == [0x88, 0x0e, 0x03, 0xe8]),
        "close frame 1000 with reason"
    );
    assert!(text.contains("idle timeout"));
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
}

#[tokio::test]
async fn revoking_a_device_closes_its_open_socket_with_1008() {
    let app = spawn_app(Backend::Sqlite).await;
    let mut ws = app.connect_device(&app.device("d1").await).await;
    let started = std::time::Instant::now();
    app.store
        .revoke_device(&"d1".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(close_code(&mut ws).await, 1008);
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

/// Two hubs on one PostgreSQL database: the second still believes the readings below are
/// newer than anything stored (its cache saw only the first one), so it bulk-loads them
/// with `COPY`; the first hub stored them meanwhile. The second hub's write is acked all
/// the same, and every reading is stored once, with the value that came first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_a_second_hub_stored_first_are_acked_and_stored_once() {
    need_pg!();
    let mut app = spawn_app(Backend::Postgres).await;
    let device = add_device(&app, "d1").await;
    let second = telehub::hub::start(app.settings.clone()).await.unwrap();
    let t0 = telehub::domain::Timestamp::now().as_micros() - 3_600_000_000;
    write_to(&second, &device, "t", &[(t0, 0.0)]).await;
    // More than the writer's COPY threshold (`writer.copy_min_rows`, 1,000 by default),
    // all newer than what `second` knows of.
    let rows: Vec<(i64, f64)> = (1..=6_000).map(|i| (t0 + i * 1000, i as f64)).collect();
    write(&app, &device, "t", &rows).await;
    let resent: Vec<(i64, f64)> = rows.iter().map(|&(ts, v)| (ts, v + 0.5)).collect();
    write_to(&second, &device, "t", &resent).await;
    // Its writer goes on after the COPY it rolled back.
    write_to(&second, &device, "t", &[(t0 + 6_001_000, 6_001.0)]).await;
    // Fewer than the threshold: `second` inserts them with the transaction's last
    // statement (rollups, `last_seen`), which skips what `app` stored meanwhile.
    let few: Vec<(i64, f64)> = (6_002..=6_011).map(|i| (t0 + i * 1000, i as f64)).collect();
    write(&app, &device, "t", &few).await;
    let resent: Vec<(i64, f64)> = few.iter().map(|&(ts, v)| (ts, v + 0.5)).collect();
    write_to(&second, &device, "t", &resent).await;
    write_to(&second, &device, "t", &[(t0 + 6_012_000, 6_012.0)]).await;

    let series = series_id(&app, &device, "t").await;
    let stored = raw_rows(&app.db.url, series).await;
    let want: Vec<(i64, f64)> = (0..=6_012).map(|i| (t0 + i * 1000, i as f64)).collect();
    assert_eq!(stored, want);
    second.stop().await;
    app.stop().await;
}
