//! SQLite's WAL is copied into the database file by the checkpoint thread while the hub
//! runs (`writer.checkpoint_interval`), not only inside a commit every 1,000 pages.

use crate::helpers::*;
use serde_json::json;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::time::Duration;

/// Readings stored in the database file alone, as a copy without its WAL sees them
/// (`None` while the copy is torn by a checkpoint writing it).
async fn readings_in_file_without_wal(
    db: &std::path::Path,
    scratch: &std::path::Path,
) -> Option<i64> {
    std::fs::copy(db, scratch).ok()?;
    let _ = std::fs::remove_file(scratch.with_extension("db-wal"));
    let mut conn = SqliteConnectOptions::new()
        .filename(scratch)
        .read_only(true)
        .connect()
        .await
        .ok()?;
    let n = sqlx::query_scalar("SELECT count(*) FROM readings")
        .fetch_one(&mut conn)
        .await
        .ok();
    let _ = conn.close().await;
    n
}

#[tokio::test]
async fn committed_readings_reach_the_database_file_without_waiting_for_1000_wal_pages() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.writer.checkpoint_interval = Duration::from_millis(50);
    })
    .await;
    let mut ws = app.connect_device(&app.device("freezer-1").await).await;
    let t = base_ts();
    let readings: Vec<_> = (0..50)
        .map(|i| json!({"sensor": "temperature", "value": i, "ts": t + i as f64}))
        .collect();
    send_json(&mut ws, &json!({"id": 1, "readings": readings})).await;
    assert_eq!(next_json(&mut ws).await, json!({"ack": 1, "stored": 50}));
    // 50 readings are a few WAL pages: SQLite's own automatic checkpoint (1,000 pages)
    // would leave them in the WAL until the hub stops.
    let file = app.db.path().join("telehub.db");
    let scratch = app.db.path().join("copy.db");
    eventually(
        WAIT,
        "the readings to be checkpointed into the database file",
        || readings_in_file_without_wal(&file, &scratch),
        |n| *n == Some(50),
    )
    .await;
}
