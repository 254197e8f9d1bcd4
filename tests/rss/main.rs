//! The hub's memory under a corpus of malformed frames, answered over and over: each
//! frame gets the right error on a socket that stays usable, and the process's resident
//! memory stays flat.
//!
//! `VmRSS` measures the whole test process (the hub runs in it), so this test has a
//! binary of its own: in the `api` binary, tests running alongside would move the figure.

#[path = "../helpers/mod.rs"]
mod helpers;

mod corpus;

use corpus::corpus;
use futures_util::SinkExt;
use helpers::*;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_frame_gets_its_error_the_socket_stays_usable_and_memory_stays_flat() {
    let app = spawn_app(Backend::Sqlite).await;
    app.device("other-1").await;
    let mut ws = app.connect_device(&app.device("d1").await).await;
    let t = base_ts();
    let cases = corpus(t);
    assert!(cases.len() >= 200, "corpus has {} frames", cases.len());
    let mut rss_after_first = 0;
    for pass in 0..8 {
        for (i, (frame, code, echoes_id)) in cases.iter().enumerate() {
            ws.send(Message::Text(frame.clone().into())).await.unwrap();
            let r = next_json(&mut ws).await;
            assert_eq!(r["error"], *code, "case {i} {frame:.120}: {r}");
            assert!(r.get("nack").is_some(), "case {i}: {r}");
            if *echoes_id {
                assert_eq!(r["nack"], 7, "case {i} {frame:.120}: {r}");
            }
            assert!(r["detail"].as_str().is_some_and(|d| !d.is_empty()));
        }
        // Still usable: a good message is stored.
        let ts = t + pass as f64;
        send_json(
            &mut ws,
            &json!({"id": 1000 + pass, "readings": [reading("t", pass as f64, ts)]}),
        )
        .await;
        assert_eq!(
            next_json(&mut ws).await,
            json!({"ack": 1000 + pass, "stored": 1})
        );
        if pass == 0 {
            rss_after_first = rss_kib();
        }
    }
    let growth = rss_kib().saturating_sub(rss_after_first);
    assert!(
        growth < 16 * 1024,
        "memory grew {growth} KiB over 7 more passes of the corpus"
    );
    assert_eq!(app.stored("d1").await.len(), 8);
    assert!(app.stored("other-1").await.is_empty());
    let health = reqwest::get(format!("{}/healthz", app.http()))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}
