//! Graceful shutdown: stop accepting, answer what was read, close sockets with 1001,
//! flush the writer — no acked reading is lost.

use crate::both_backends;
use crate::helpers::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::collections::HashSet;
use tokio_tungstenite::tungstenite::Message;

async fn graceful_shutdown_under_load_loses_no_acked_reading(b: Backend) {
    let mut app = spawn_app(b).await;
    let ws = app.connect_device(&app.device("d1").await).await;
    let (mut tx, mut rx) = ws.split();
    let t0 = base_ts();
    let sender = tokio::spawn(async move {
        for i in 0u64..100_000 {
            let readings: Vec<_> = (0..10)
                .map(|k| reading("t", k as f64, t0 + (i * 10 + k) as f64 / 1000.0))
                .collect();
            if tx
                .send(Message::Text(
                    json!({"id": i, "readings": readings}).to_string().into(),
                ))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let mut acked = HashSet::new();
    // Let some acks arrive, then shut down while messages are in flight.
    while acked.len() < 50 {
        let r = next_frame(&mut rx).await.expect("acks before shutdown");
        acked.insert(r["ack"].as_u64().unwrap());
    }
    let stop = tokio::spawn(async move {
        app.stop().await;
        app
    });
    let close = loop {
        match tokio::time::timeout(WAIT, rx.next())
            .await
            .expect("hub answers while closing")
        {
            Some(Ok(Message::Text(t))) => {
                let r: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                if let Some(id) = r["ack"].as_u64() {
                    acked.insert(id);
                }
            }
            Some(Ok(Message::Close(f))) => break f.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            other => panic!("expected replies then a close frame, got {other:?}"),
        }
    };
    assert_eq!(close, Some(1001));
    let app = stop.await.unwrap();
    sender.abort();
    let stored: HashSet<i64> = app.stored("d1").await.into_iter().map(|r| r.1).collect();
    for id in &acked {
        for k in 0..10 {
            let us = ((t0 + (id * 10 + k) as f64 / 1000.0) * 1e6).round() as i64;
            assert!(
                stored.contains(&us),
                "acked message {id} reading {k} is missing"
            );
        }
    }
}
both_backends!(graceful_shutdown_under_load_loses_no_acked_reading);

async fn next_frame<S>(rx: &mut S) -> Option<serde_json::Value>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(WAIT, rx.next()).await.ok()?? {
            Ok(Message::Text(t)) => return serde_json::from_str(t.as_str()).ok(),
            Ok(Message::Ping(_)) => continue,
            _ => return None,
        }
    }
}

#[tokio::test]
async fn a_stopped_hub_refuses_new_connections() {
    let mut app = spawn_app(Backend::Sqlite).await;
    let token = app.device("d1").await;
    let url = app.ws("/v1/ingest");
    app.stop().await;
    assert!(connect(&url, Some(&token)).await.is_err());
}
