//! `telehub backup` (operations.md, Backups): a consistent copy of a SQLite database taken
//! while a device keeps writing, private to its owner, never over an existing file unless
//! asked; PostgreSQL is refused with a pointer to pg_dump.

use crate::helpers::*;
use crate::procs::telehub_cli as telehub;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_is_a_consistent_private_copy() {
    // The device writes as fast as it is acked: no rate limit in the way.
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.limits.device_readings_per_second = 10_000_000;
        s.limits.device_burst = 10_000_000;
    })
    .await;
    let token = app.device("bk-1").await;
    let mut ws = app.connect_device(&token).await;
    // A first batch, so the copy has something to hold whatever the timing.
    let t0 = base_ts() - 3600.0;
    let first: Vec<_> = (0..500)
        .map(|i| reading("t", i as f64, t0 + i as f64))
        .collect();
    send_json(&mut ws, &json!({"id": 0, "readings": first})).await;
    assert_eq!(next_json(&mut ws).await["stored"], 500);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut id = 1u64;
            while !stop.load(Ordering::Relaxed) {
                // One second of history per batch, so the stream stays in the past.
                let base = t0 + 500.0 + id as f64;
                let rs: Vec<_> = (0..100)
                    .map(|i| reading("t", i as f64, base + i as f64 * 0.005))
                    .collect();
                send_json(&mut ws, &json!({"id": id, "readings": rs})).await;
                let reply = next_json(&mut ws).await;
                assert_eq!(reply["ack"], id, "{reply}");
                id += 1;
            }
            id - 1
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("copy.db");
    let before = total_readings(&app.db.url).await;
    let out = {
        let (db, f) = (app.db.url.clone(), file.to_str().unwrap().to_owned());
        tokio::task::spawn_blocking(move || telehub(&db, &["backup", &f]))
            .await
            .unwrap()
    };
    let during = total_readings(&app.db.url).await;
    stop.store(true, Ordering::Relaxed);
    let batches = writer.await.unwrap();
    assert!(batches > 0, "the device kept writing during the backup");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("backup written and checked"), "{stderr}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the copy holds token hashes: owner only");
    let copy_url = format!("sqlite://{}", file.display());
    let copied = total_readings(&copy_url).await;
    assert!(
        (before..=during).contains(&copied),
        "the copy holds the database as of one commit: {before} <= {copied} <= {during}"
    );
    // The copy is the live history up to one commit: the same readings, whole batches only.
    assert_eq!(
        (copied - 500) % 100,
        0,
        "{copied} readings: a batch was split"
    );
    let live = stored_readings(&app.db.url, "bk-1").await;
    assert_eq!(
        stored_readings(&copy_url, "bk-1").await,
        live[..copied as usize],
        "every reading acked before the backup began, as stored"
    );
    // The copy is a working database: a hub opens it and serves the device's history.
    let stats = telehub(&copy_url, &["stats", "--format", "json"]);
    assert!(
        stats.status.success(),
        "{}",
        String::from_utf8_lossy(&stats.stderr)
    );
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["readings"], copied);

    // An existing file is not overwritten without --force.
    let again = telehub(&app.db.url, &["backup", file.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("--force"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(total_readings(&copy_url).await, copied, "left as it was");
    let forced = telehub(&app.db.url, &["backup", "--force", file.to_str().unwrap()]);
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    assert!(total_readings(&copy_url).await >= during);
}

#[tokio::test]
async fn a_postgresql_hub_is_pointed_to_pg_dump() {
    crate::need_pg!();
    let db = TestDb::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("copy.db");
    // `migrate` creates the schema, so the CLI meets a real hub database.
    assert!(telehub(&db.url, &["migrate"]).status.success());
    let out = telehub(&db.url, &["backup", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
    assert!(!file.exists());
}
