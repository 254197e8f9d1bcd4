//! `telehub export` streams any range in constant memory; `telehub stats` reports what
//! storage holds. Both run as real processes against a real database.

use crate::both_backends;
use crate::helpers::*;
use std::process::{Command, Stdio};
use telehub::auth::DeviceRef;
use telehub::domain::{Reading, SensorName, Timestamp};

/// Writes `n` readings 1 ms apart from `t0` (value = index) through the writer,
/// keeping several messages in flight.
async fn write_many(app: &TestApp, device: &DeviceRef, t0: i64, n: i64) {
    let sensor = SensorName::parse("t").unwrap();
    let mut pending = std::collections::VecDeque::new();
    for start in (0..n).step_by(10_000) {
        let rows = (start..(start + 10_000).min(n))
            .map(|i| {
                let reading = Reading {
                    sensor: sensor.clone(),
                    value: (i as f64).into(),
                    ts: Timestamp::from_micros(t0 + i * 1_000),
                    unit: None,
                };
                (device.clone(), reading)
            })
            .collect();
        pending.push_back(app.hub().state.ingest.submit(rows).await);
        if pending.len() > 8 {
            pending.pop_front().unwrap().await.unwrap().unwrap();
        }
    }
    for done in pending {
        done.await.unwrap().unwrap();
    }
}

/// Runs the binary with stdout into `out`; returns (exit code, stderr, peak RSS in KiB).
/// The peak is the child's own `VmHWM` (high-water resident set of its address space
/// since `exec`), sampled until it exits. `getrusage`/`wait4` would not do: Linux folds
/// the pre-exec address space, which is this (large) test process, into `ru_maxrss`.
fn run_measured(args: &[&str], out: &std::path::Path) -> (i32, String, u64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_telehub"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|s| vm_hwm_kib(&s))
        {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status.code().unwrap_or(-1), err, peak)
}

fn vm_hwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn export_streams_two_million_rows_in_constant_memory(b: Backend) {
    let app = spawn_app(b).await;
    let device = add_device(&app, "d1").await;
    let n = 2_000_000;
    let t0 = (Timestamp::now().as_micros() - 2 * HOUR) / 1_000_000 * 1_000_000;
    write_many(&app, &device, t0, n).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.csv");
    let (from, to) = (
        Timestamp::from_micros(t0).to_rfc3339(),
        Timestamp::from_micros(t0 + n * 1_000).to_rfc3339(),
    );
    let db = app.db.url.clone();
    let args = [
        "export",
        "--device",
        "d1",
        "--sensor",
        "t",
        "--from",
        &from,
        "--to",
        &to,
        "--format",
        "csv",
        "--database-url",
        &db,
    ];
    let (code, err, rss_kib) = tokio::task::block_in_place(|| run_measured(&args, &file));
    assert_eq!(code, 0, "{err}");
    eprintln!("export of {n} rows: peak RSS {rss_kib} KiB");
    assert!(rss_kib < 64 * 1024, "peak RSS {rss_kib} KiB");
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len() as i64, n + 1);
    assert_eq!(lines[0], "device,sensor,ts,value,unit");
    assert_eq!(lines[1], format!("d1,t,{from},0,"));
    let last = Timestamp::from_micros(t0 + (n - 1) * 1_000);
    assert_eq!(lines[n as usize], format!("d1,t,{last},{},", n - 1));
    drop(text);

    let to = Timestamp::from_micros(t0 + 3_000).to_rfc3339();
    let args = [
        "export",
        "--device",
        "d1",
        "--from",
        &from,
        "--to",
        &to,
        "--format",
        "ndjson",
        "--database-url",
        &db,
    ];
    let (code, err, _) = run_measured(&args, &file);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[2],
        serde_json::json!({"device": "d1", "sensor": "t", "ts": Timestamp::from_micros(t0 + 2_000).to_rfc3339(), "value": 2.0, "unit": null})
    );
    let args = [
        "export",
        "--device",
        "d1",
        "--from",
        "-1h",
        "--database-url",
        &db,
    ];
    let (code, err, _) = run_measured(&args, &file);
    assert_eq!(code, 0, "--to defaults to now, as in query: {err}");
}
both_backends!(export_streams_two_million_rows_in_constant_memory);

async fn stats_reports_rows_series_devices_extents_and_disk_use(b: Backend) {
    let app = spawn_app(b).await;
    let (d1, d2) = (add_device(&app, "d1").await, add_device(&app, "d2").await);
    let t0 = Timestamp::now().as_micros() - 5 * HOUR;
    write(&app, &d1, "t", &[(t0, 1.0), (t0 + HOUR, 2.0)]).await;
    write(&app, &d2, "h", &[(t0 + 2 * HOUR + 5, 3.0)]).await;
    held_back_buckets_written(&app).await;
    let out = Command::new(env!("CARGO_BIN_EXE_telehub"))
        .args(["stats", "--format", "json", "--database-url", &app.db.url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let backend = if b == Backend::Sqlite {
        "sqlite"
    } else {
        "postgres"
    };
    assert_eq!(s["backend"], backend);
    assert_eq!(
        (s["readings"].as_i64(), s["series"].as_i64()),
        (Some(3), Some(2))
    );
    assert_eq!(s["devices"], 2);
    assert_eq!(
        (
            s["rollup_minute_rows"].as_i64(),
            s["rollup_hour_rows"].as_i64()
        ),
        (Some(3), Some(3))
    );
    assert_eq!(s["rollups_complete"], true);
    assert_eq!(s["oldest"], Timestamp::from_micros(t0).to_rfc3339());
    assert_eq!(
        s["newest"],
        Timestamp::from_micros(t0 + 2 * HOUR + 5).to_rfc3339()
    );
    assert_eq!(
        s["oldest_rollup"],
        Timestamp::from_micros(t0 / HOUR * HOUR).to_rfc3339()
    );
    assert!(s["disk_bytes"].as_u64().unwrap() > 0, "{s}");
    let out = Command::new(env!("CARGO_BIN_EXE_telehub"))
        .args(["stats", "--database-url", &app.db.url])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("readings") && l.ends_with(" 3")),
        "{table}"
    );
}
both_backends!(stats_reports_rows_series_devices_extents_and_disk_use);
