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
        eprintln!("skipped: cannot mount a tmpfs here (not root)");
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
    let rows = count_rows(&url, "d1").await;
    assert_eq!(
        rows.len(),
        acked.len() * 200,
        "every acked reading, nothing else"
    );
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    pool.close().await;
}
