//! History benchmark (not a test; see BENCHMARKS.md "History"). Run with `bench/history.sh`.
//!
//! 1. Ingest rate through the storage writer with rollups on vs off, on fresh SQLite
//!    stores: a "dense" series (one sensor at 100 Hz, messages of 1,000 readings) and a
//!    "fleet" (1,000 devices, messages of 10 readings each).
//! 2. A ~10.8M-reading SQLite store written through the storage writer (rollups on): one
//!    series at 100 Hz over the last 28 h plus 1,000 series with hourly readings over
//!    30 days. Then, against a hub started on it, HTTP `/v1/readings` latency for a 1-day
//!    1-minute average and 30-day 1-hour averages, beside the same 1-day query with the
//!    rollups switched off (raw GROUP BY inside the hub) and the raw GROUP BY in the
//!    `sqlite3` shell on the same file.
//!
//! Arguments: `--dir DIR` (default `target/history-bench`), `--runs N` (query runs,
//! default 50), `--ingest-rows N` (per ingest run, default 1,000,000), `--reuse` (keep an
//! existing data set), `--skip-ingest` (no on/off ingest comparison), `--skip-queries`
//! (ingest comparison only), `--workload dense|fleet` (only that ingest workload).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;
use telehub::auth::{DeviceRef, Role};
use telehub::config::{Keep, Settings, WriterSettings};
use telehub::domain::{DeviceName, Reading, SensorName, Timestamp};
use telehub::metrics::Metrics;
use telehub::storage::Store;
use telehub::storage::writer::{self, WriteFailed, WriterHandle};
use tokio::sync::{broadcast, oneshot};
use tokio_util::sync::CancellationToken;

const SEC: i64 = 1_000_000;
const HOUR: i64 = 3600 * SEC;
const DAY: i64 = 24 * HOUR;

struct Args {
    dir: std::path::PathBuf,
    runs: usize,
    ingest_rows: i64,
    reuse: bool,
    skip_ingest: bool,
    skip_queries: bool,
    workload: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        dir: "target/history-bench".into(),
        runs: 50,
        ingest_rows: 1_000_000,
        reuse: false,
        skip_ingest: false,
        skip_queries: false,
        workload: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--dir" => a.dir = it.next().expect("--dir DIR").into(),
            "--runs" => a.runs = it.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--ingest-rows" => {
                a.ingest_rows = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--ingest-rows N")
            }
            "--reuse" => a.reuse = true,
            "--skip-ingest" => a.skip_ingest = true,
            "--skip-queries" => a.skip_queries = true,
            "--workload" => a.workload = Some(it.next().expect("--workload dense|fleet")),
            "--bench" => {} // passed by `cargo bench`
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

#[tokio::main]
async fn main() {
    let a = args();
    std::fs::create_dir_all(&a.dir).unwrap();
    println!(
        "## ingest through the storage writer (SQLite, synchronous=full), readings/s, median (min–max) of 5"
    );
    let workloads = match (a.skip_ingest, a.workload.as_deref()) {
        (true, _) => vec![],
        (false, None) => vec![Workload::Dense, Workload::Fleet],
        (false, Some("dense")) => vec![Workload::Dense],
        (false, Some("fleet")) => vec![Workload::Fleet],
        (false, Some(w)) => panic!("--workload {w}: expected dense or fleet"),
    };
    for workload in workloads {
        let (mut wall, mut cpu) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
        for run in 0..5 {
            // Alternate the order so drift (caches, disk) favours neither side.
            for rollups in if run % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            } {
                let path = a.dir.join(format!("ingest-{rollups}.db"));
                remove_db(&path);
                let store = open(&path).await;
                let cpu0 = cpu_seconds();
                let rate = ingest(&store, workload, a.ingest_rows, rollups, 0).await;
                cpu[rollups as usize].push(a.ingest_rows as f64 / (cpu_seconds() - cpu0));
                wall[rollups as usize].push(rate);
                store.close().await;
                remove_db(&path);
            }
        }
        for (what, v) in [("wall clock", &mut wall), ("per CPU second", &mut cpu)] {
            let (off, on) = (summary(&mut v[0]), summary(&mut v[1]));
            println!(
                "| {workload:?} | {what} | off {} | on {} | on/off {:.2} |",
                off.0,
                on.0,
                on.1 / off.1
            );
        }
    }

    if a.skip_queries {
        return;
    }
    let path = a.dir.join("history.db");
    let now = Timestamp::now().as_micros() / SEC * SEC;
    let now = if a.reuse && path.exists() {
        std::fs::read_to_string(a.dir.join("history.now"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    } else {
        remove_db(&path);
        let store = open(&path).await;
        store.prepare_rollups(true).await.unwrap();
        let started = Instant::now();
        let dense = ingest(
            &store,
            Workload::Dense,
            28 * 3600 * 100,
            true,
            now - 28 * HOUR,
        )
        .await;
        let fleet = ingest(
            &store,
            Workload::Hourly,
            1000 * 30 * 24,
            true,
            now - 30 * DAY,
        )
        .await;
        println!(
            "\ndata set written in {:.0} s (dense {dense:.0} rows/s, fleet {fleet:.0} rows/s)",
            started.elapsed().as_secs_f64()
        );
        store.close().await;
        std::fs::write(a.dir.join("history.now"), now.to_string()).unwrap();
        now
    };
    queries(&path, now, a.runs).await;
}

#[derive(Debug, Clone, Copy)]
enum Workload {
    /// One device, one sensor at 100 Hz, messages of 1,000 readings.
    Dense,
    /// 1,000 devices at 1 Hz, messages of 10 readings each.
    Fleet,
    /// 1,000 devices, one reading an hour, messages of 24.
    Hourly,
}

/// CPU time (user + system) this process has used, from `/proc/self/stat` (Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0 // USER_HZ
}

fn remove_db(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

fn settings(path: &std::path::Path) -> Settings {
    let mut s = Settings::default();
    s.database.url = format!("sqlite://{}", path.display());
    s.server.listen = "127.0.0.1:0".parse().unwrap();
    s.retention.raw = Keep::Forever;
    s.retention.minute = Keep::Forever;
    s
}

async fn open(path: &std::path::Path) -> Store {
    Store::open(&settings(path).database).await.unwrap()
}

/// Writes `rows` readings of `workload` starting at `t0` (0: 1 h ago) through a storage
/// writer; returns readings per second from the first submit to the last commit.
async fn ingest(store: &Store, workload: Workload, rows: i64, rollups: bool, t0: i64) -> f64 {
    let t0 = if t0 == 0 {
        Timestamp::now().as_micros() - HOUR
    } else {
        t0
    };
    let devices: Vec<DeviceRef> = match workload {
        Workload::Dense => vec![device(store, "hf").await],
        _ => {
            let names: Vec<_> = (1..=1000)
                .map(|i| DeviceName::parse(&format!("s{i:04}")).unwrap())
                .collect();
            store.add_devices(&names).await.unwrap();
            let mut out = Vec::new();
            for n in &names {
                out.push(store.find_device(n).await.unwrap().unwrap());
            }
            out
        }
    };
    let (committed, _) = broadcast::channel(16);
    let close = CancellationToken::new();
    let (handle, task) = writer::spawn(
        store.clone(),
        WriterSettings::default(),
        rollups,
        Arc::new(Metrics::new()),
        committed,
        close.clone(),
    );
    let sensor = SensorName::parse("t").unwrap();
    let reading = |ts: i64, v: f64| Reading {
        sensor: sensor.clone(),
        value: v.into(),
        ts: Timestamp::from_micros(ts),
        unit: None,
    };
    let started = Instant::now();
    let mut inflight = InFlight::new(handle);
    let mut i = 0;
    while i < rows {
        let msg: Vec<(DeviceRef, Reading)> = match workload {
            Workload::Dense => (i..(i + 1000).min(rows))
                .map(|k| {
                    (
                        devices[0].clone(),
                        reading(t0 + k * 10_000, (k % 1000) as f64),
                    )
                })
                .collect(),
            Workload::Fleet | Workload::Hourly => {
                let (per, step) = match workload {
                    Workload::Fleet => (10, SEC),
                    _ => (24, HOUR),
                };
                // Message m: device m % 1000, its readings for window m / 1000.
                let m = i / per;
                let (dev, window) = (m % 1000, m / 1000);
                (0..per.min(rows - i))
                    .map(|k| {
                        let ts = t0 + (window * per + k) * step + dev * 1_000;
                        (devices[dev as usize].clone(), reading(ts, (k + dev) as f64))
                    })
                    .collect()
            }
        };
        i += msg.len() as i64;
        inflight.send(msg).await;
    }
    inflight.drain().await;
    let rate = rows as f64 / started.elapsed().as_secs_f64();
    close.cancel();
    task.await.unwrap();
    rate
}

async fn device(store: &Store, name: &str) -> DeviceRef {
    let name = DeviceName::parse(name).unwrap();
    store.add_device(&name, &[]).await.unwrap();
    store.find_device(&name).await.unwrap().unwrap()
}

/// Keeps up to 1,024 messages in flight, like many device sockets would.
struct InFlight {
    handle: WriterHandle,
    pending: VecDeque<oneshot::Receiver<Result<usize, WriteFailed>>>,
}

impl InFlight {
    fn new(handle: WriterHandle) -> Self {
        Self {
            handle,
            pending: VecDeque::new(),
        }
    }
    async fn send(&mut self, msg: Vec<(DeviceRef, Reading)>) {
        self.pending.push_back(self.handle.submit(msg).await);
        if self.pending.len() >= 1024 {
            self.pending.pop_front().unwrap().await.unwrap().unwrap();
        }
    }
    async fn drain(&mut self) {
        while let Some(r) = self.pending.pop_front() {
            r.await.unwrap().unwrap();
        }
    }
}

/// (formatted "median (min–max)", median) of rates, sorted in place.
fn summary(v: &mut [f64]) -> (String, f64) {
    v.sort_by(f64::total_cmp);
    let med = v[v.len() / 2];
    (
        format!("{:.0} ({:.0}–{:.0})", med, v[0], v[v.len() - 1]),
        med,
    )
}

async fn queries(path: &std::path::Path, now: i64, runs: usize) {
    let day_from = now - DAY + 123_457; // not minute-aligned: raw edges at both ends
    let minute = now / 60 / SEC * 60 * SEC;
    let cases = [
        (
            "1-day 1-min avg, 100 Hz series, unaligned",
            "hf",
            day_from,
            now - 1_000,
            "every=1m&agg=avg",
        ),
        (
            "1-day 1-min avg, 100 Hz series, aligned",
            "hf",
            minute - DAY,
            minute,
            "every=1m&agg=avg",
        ),
        (
            "30-day 1-h avg, hourly series, unaligned",
            "s0001",
            now - 30 * DAY + 7 * SEC,
            now,
            "every=1h&agg=avg",
        ),
        (
            "30-day 1-h max, 100 Hz series (28 h of data)",
            "hf",
            now - 30 * DAY,
            now,
            "every=1h&agg=max",
        ),
        (
            "28 h max_points=1000 (M4), 100 Hz series",
            "hf",
            now - 28 * HOUR,
            now,
            "max_points=1000",
        ),
    ];
    println!("\n## /v1/readings over HTTP (keep-alive), {runs} runs after 5 warm-up");
    let hub = Hub::start(settings(path)).await;
    for (label, dev, from, to, extra) in cases {
        hub.time(label, dev, from, to, extra, runs).await;
    }
    hub.0.stop().await;
    // The same 1-day query with rollups off: the hub's own raw GROUP BY.
    let mut off = settings(path);
    off.storage.rollups = false;
    let hub = Hub::start(off).await;
    let label = "1-day 1-min avg, 100 Hz series, unaligned, rollups off (raw)";
    hub.time(label, "hf", day_from, now - 1_000, "every=1m&agg=avg", 5)
        .await;
    hub.0.stop().await;
    // Nothing was written meanwhile: the rollups are still whole (spares a rebuild).
    set_rollups_complete(&settings(path).database.url, true).await;
    sqlite3_group_by(path, day_from, now - 1_000);
}

/// A hub on the data set, with a viewer token and an HTTP client.
struct Hub(telehub::hub::RunningHub, String, reqwest::Client);

impl Hub {
    async fn start(settings: Settings) -> Self {
        let hub = telehub::hub::start(settings).await.unwrap();
        let token = hub
            .state
            .store
            .add_token("bench", Role::Viewer)
            .await
            .unwrap();
        Self(hub, token, reqwest::Client::new())
    }

    /// Prints the median (min–max) latency of `runs` requests, after 5 warm-up ones.
    async fn time(&self, label: &str, dev: &str, from: i64, to: i64, extra: &str, runs: usize) {
        let rfc = |us: i64| Timestamp::from_micros(us).to_rfc3339();
        let url = format!(
            "{}/v1/readings?device={dev}&sensor=t&from={}&to={}&{extra}",
            self.0.base_url(),
            rfc(from),
            rfc(to)
        );
        let (mut times, mut points) = (Vec::new(), 0);
        for i in 0..runs + 5 {
            let t = Instant::now();
            let body: serde_json::Value = self
                .2
                .get(&url)
                .bearer_auth(&self.1)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if i >= 5 {
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
            points = body["points"].as_array().map_or(0, Vec::len);
        }
        let (s, _) = summary_ms(&mut times);
        println!("| {label} | {s} | {points} points |");
    }
}

fn summary_ms(v: &mut [f64]) -> (String, f64) {
    v.sort_by(f64::total_cmp);
    let med = v[v.len() / 2];
    (
        format!("median {med:.2} ms ({:.2}–{:.2})", v[0], v[v.len() - 1]),
        med,
    )
}

async fn set_rollups_complete(url: &str, complete: bool) {
    let pool = sqlx::SqlitePool::connect(url).await.unwrap();
    sqlx::query("UPDATE rollup_state SET complete = ?")
        .bind(complete)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

/// The raw GROUP BY in the `sqlite3` shell, timed by the shell itself (`.timer on`).
fn sqlite3_group_by(path: &std::path::Path, from: i64, to: i64) {
    let sql = format!(
        "SELECT (ts / 60000000) * 60000000 AS b, avg(value), count(*) FROM readings
         WHERE series_id = (SELECT s.id FROM series s JOIN devices d ON d.id = s.device_id WHERE d.name = 'hf')
           AND ts >= {from} AND ts < {to} GROUP BY b;\n"
    );
    let script = format!(".timer on\n.output /dev/null\n{}", sql.repeat(6));
    let out = std::process::Command::new("sqlite3")
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(script.as_bytes())?;
            c.wait_with_output()
        });
    let Ok(out) = out else {
        println!("| sqlite3 shell not found: raw GROUP BY skipped |");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    let mut times: Vec<f64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("Run Time: real "))
        .filter_map(|l| l.split_whitespace().next()?.parse::<f64>().ok())
        .map(|s| s * 1e3)
        .skip(1) // warm-up
        .collect();
    if times.is_empty() {
        println!("| sqlite3: no timings: {text} |");
        return;
    }
    let (s, _) = summary_ms(&mut times);
    println!("| 1-day 1-min avg, raw GROUP BY in the sqlite3 shell, same file | {s} | 5 runs |");
}
