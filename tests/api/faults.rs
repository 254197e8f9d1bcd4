//! Faults the hub must survive: storage that fills up or goes away.

use crate::helpers::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A small tmpfs mounted for one test (needs root, as CI has); unmounted on drop.
struct SmallDisk {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<Self> {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("disk");
        std::fs::create_dir(&dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status();
        match ok {
            Ok(s) if s.success() => Some(Self {
                dir,
                _parent: parent,
            }),
            _ if std::env::var("CI").is_ok() => {
                panic!("cannot mount a tmpfs; CI runs as root and must")
            }
            _ => None,
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Fills `dir` with a file until the disk is full; returns its path.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gives_unavailable_nacks_and_recovers_when_space_returns() {
    let Some(disk) = SmallDisk::mount("8m") else {
        skipped("cannot mount a tmpfs here (not root)");
        return;
    };
    let url = format!("sqlite://{}", disk.dir.join("hub.db").display());
    let mut app = spawn_app_with(Backend::Sqlite, |s| {
        s.database.url = url.clone();
        s.writer.retry_backoff = std::time::Duration::from_millis(20);
    })
    .await;
    let mut ws = app.connect_device(&app.device("d1").await).await;
    let t = base_ts();
    let msg = |i: u64| {
        let readings: Vec<_> = (0..200)
            .map(|k| reading("t", k as f64, t + (i * 200 + k) as f64 / 1000.0))
            .collect();
        json!({"id": i, "readings": readings})
    };
    send_json(&mut ws, &msg(0)).await;
    assert_eq!(next_json(&mut ws).await["ack"], 0);

    let filler = fill(&disk.dir);
    // Keep sending until storage refuses: the disk is full now or after a few pages.
    let mut acked = vec![0u64];
    let mut refused = None;
    for i in 1..2000u64 {
        send_json(&mut ws, &msg(i)).await;
        let r = next_json(&mut ws).await;
        if r["error"] == "unavailable" {
            assert_eq!(r["nack"], i);
            assert!(r["detail"].as_str().unwrap().contains("resend"), "{r}");
            refused = Some(i);
            break;
        }
        assert_eq!(r["ack"], i, "{r}");
        acked.push(i);
    }
    let refused = refused.expect("a full disk must refuse writes");

    // Space returns: the same message is accepted without restarting anything.
    std::fs::remove_file(filler).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        send_json(&mut ws, &msg(refused)).await;
        let r = next_json(&mut ws).await;
        if r["ack"] == refused {
            acked.push(refused);
            break;
        }
        assert_eq!(r["error"], "unavailable", "{r}");
        assert!(
            std::time::Instant::now() < deadline,
            "storage did not recover"
        );
    }
    app.stop().await;
    let rows = stored_readings(&url, "d1").await;
    assert_eq!(
        rows.len(),
        acked.len() * 200,
        "every acked reading, nothing else"
    );
    let check: Vec<(String,)> = sql_rows(&url, "PRAGMA integrity_check", &[]).await;
    assert_eq!(check, [("ok".to_owned(),)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_lose_nothing_when_postgresql_restarts_mid_stream() {
    use crate::procs::*;
    use std::time::Duration;
    let Some(pg) = TestCluster::start() else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must be able to start a private PostgreSQL cluster"
        );
        skipped("cannot start a private PostgreSQL cluster here");
        return;
    };
    let db = pg.url();
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.txt");
    add_devices(&db, 20, "pg-", &tokens);
    let mut hub = HubProcess::start(&db, "127.0.0.1:0", dir.path(), &[]).await;
    let sim = spawn_sim(&hub.addr, &tokens, STEADY_STREAM, None);
    eventually(
        Duration::from_secs(30),
        "2,000 stored readings",
        || total_readings(&db),
        |n| *n >= 2_000,
    )
    .await;
    assert!(pg.ctl("stop"), "PostgreSQL stops");
    // While it is down the hub answers `unavailable` (or devices wait); /readyz says so.
    let ready = reqwest::get(format!("http://{}/readyz", hub.addr))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    assert!(pg.ctl("start"), "PostgreSQL starts again");
    // `pg_ctl start` returns once the server accepts connections: the hub is ready again
    // within 2 s of that, without a restart of its own.
    let readyz = format!("http://{}/readyz", hub.addr);
    eventually(
        Duration::from_secs(2),
        "/readyz 200 within 2 s of PostgreSQL's start",
        || async {
            reqwest::get(&readyz)
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        },
        |s| *s == 200,
    )
    .await;
    let at_restart = total_readings(&db).await;
    eventually(
        Duration::from_secs(60),
        "4,000 more stored readings: 20 devices stream again without a hub restart",
        || total_readings(&db),
        |n| *n >= at_restart + 4_000,
    )
    .await;
    let summary = sim_summary(sim).await;
    let n = |k: &str| summary[k].as_u64().unwrap();
    assert_eq!(
        (n("acked"), n("dropped"), n("nacked")),
        (n("generated"), 0, 0),
        "{summary}\nhub: {}",
        hub.logs()
    );
    assert_eq!(
        total_readings(&db).await,
        n("generated") as i64,
        "each reading stored exactly once"
    );
    assert!(hub.terminate().await.success());
}
