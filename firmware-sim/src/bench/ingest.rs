//! Ingest throughput: D devices send M messages of N readings each, pipelined, over real
//! WebSockets to a hub process; we count acked readings/s and ack latency. In the same
//! run, the same number of rows is bulk-loaded into the same backend without the hub
//! (SQLite: the `sqlite3` shell's `.import` into the same table layout, same pragmas, same
//! disk; PostgreSQL: `psql \copy`) — the ceiling the hub is compared with.

use super::hub::{
    Backend, Common, HubProcess, LoadArgs, add_devices, fresh_database, fresh_pg, hub_binary,
    settings_env,
};
use super::stats::{fmt, percentile, table};
use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Barrier, Semaphore};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(clap::Args, Debug)]
#[command(mut_arg("messages", |a| a.default_value("300")))]
pub struct IngestArgs {
    #[command(flatten)]
    load: LoadArgs,
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// The type of every reading's value (docs/protocol.md §8): numbers, booleans, or strings
    /// (four states, as devices report them). The ceiling loads the same numeric rows.
    #[arg(long, value_enum, default_value = "number")]
    value_type: ValueType,
    /// SQLite `synchronous` level for both the hub and the ceiling.
    #[arg(long, default_value = "full")]
    sqlite_synchronous: String,
    #[command(flatten)]
    common: Common,
}

const SENSORS: usize = 5;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    Number,
    Bool,
    String,
}

impl ValueType {
    /// The JSON value of reading `k` of a message.
    fn json(self, k: usize) -> String {
        const STATES: [&str; 4] = ["cooling", "defrost", "idle", "door open"];
        match self {
            ValueType::Number => format!("{k}.5"),
            ValueType::Bool => k.is_multiple_of(3).to_string(),
            ValueType::String => format!("\"{}\"", STATES[k % STATES.len()]),
        }
    }
}

struct RunResult {
    hub_rate: f64,
    ceiling_rate: f64,
    p50_ms: f64,
    p99_ms: f64,
}

pub async fn run(mut a: IngestArgs) -> anyhow::Result<()> {
    if a.common.smoke {
        (a.load.devices, a.load.messages, a.runs) = (4, 5, 1);
    }
    if !a.load.batch.is_multiple_of(SENSORS) {
        bail!(
            "--batch must be a multiple of {SENSORS} (readings are spread over {SENSORS} sensors)"
        );
    }
    let bin = hub_binary(a.common.hub_bin.as_deref())?;
    std::fs::create_dir_all(&a.common.dir)
        .with_context(|| format!("creating {}", a.common.dir.display()))?;
    let total = a.load.devices * a.load.messages * a.load.batch;
    eprintln!(
        "ingest of {:?} values into {:?}: {} devices × {} messages × {} readings = {total} readings, window {}, {} runs",
        a.value_type,
        a.load.backend,
        a.load.devices,
        a.load.messages,
        a.load.batch,
        a.load.window,
        a.runs
    );
    let mut results = Vec::new();
    for i in 0..a.runs {
        let r = one_run(&a, &bin, i).await?;
        eprintln!(
            "run {}: hub {:.0}/s, ceiling {:.0}/s, ratio {:.2}, ack p50 {:.1} ms p99 {:.1} ms",
            i + 1,
            r.hub_rate,
            r.ceiling_rate,
            r.hub_rate / r.ceiling_rate,
            r.p50_ms,
            r.p99_ms
        );
        results.push(r);
    }
    let col = |f: fn(&RunResult) -> f64| results.iter().map(f).collect::<Vec<_>>();
    let ceiling_name = match a.load.backend {
        Backend::Sqlite => "sqlite3 .import (same rows, same pragmas, same disk)",
        Backend::Postgres => "psql \\copy (same rows)",
    };
    table(
        &["measure", "median (min–max)"],
        &[
            vec!["hub: acked readings/s".into(), fmt(&col(|r| r.hub_rate), 0)],
            vec![
                format!("ceiling: {ceiling_name} rows/s"),
                fmt(&col(|r| r.ceiling_rate), 0),
            ],
            vec![
                "ratio hub / ceiling".into(),
                fmt(&col(|r| r.hub_rate / r.ceiling_rate), 2),
            ],
            vec!["ack latency p50 (ms)".into(), fmt(&col(|r| r.p50_ms), 1)],
            vec!["ack latency p99 (ms)".into(), fmt(&col(|r| r.p99_ms), 1)],
        ],
    );
    if a.common.smoke {
        println!("smoke: ok ({} readings acked)", total);
    }
    Ok(())
}

async fn one_run(a: &IngestArgs, bin: &Path, i: usize) -> anyhow::Result<RunResult> {
    let run_dir = a.common.dir.join(format!("run-{i}"));
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir)?;
    let db = fresh_database(a.load.backend, &run_dir, &a.common.pg).await?;
    let tokens = add_devices(bin, &db, a.load.devices, "bench-", &run_dir).await?;
    let mut env = settings_env(&a.common.settings)?;
    env.push((
        "TELEHUB_DATABASE__SQLITE_SYNCHRONOUS".into(),
        a.sqlite_synchronous.clone(),
    ));
    let hub = HubProcess::start(bin, &db, &env).await?;
    let shape = Shape {
        messages: a.load.messages,
        batch: a.load.batch,
        window: a.load.window,
        values: a.value_type,
    };
    let (elapsed, mut latencies) = load(&shape, &hub.addr, &tokens).await?;
    hub.stop().await?;
    let total = (a.load.devices * a.load.messages * a.load.batch) as f64;
    let ceiling = match a.load.backend {
        Backend::Sqlite => sqlite_ceiling(a, &run_dir).await?,
        Backend::Postgres => pg_ceiling(a, &run_dir).await?,
    };
    latencies.sort_by(f64::total_cmp);
    let _ = std::fs::remove_dir_all(&run_dir);
    Ok(RunResult {
        hub_rate: total / elapsed.as_secs_f64(),
        ceiling_rate: total / ceiling.as_secs_f64(),
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
    })
}

/// Timestamp (µs) of reading `k` of message `m`: each sensor's readings are 1 ms apart.
fn ts_us(base: i64, m: usize, k: usize, batch: usize) -> i64 {
    base + ((m * batch / SENSORS + k / SENSORS) as i64) * 1000
}

fn base_us() -> i64 {
    chrono::Utc::now().timestamp_micros() - 3_600_000_000
}

/// What each device sends: `messages` messages of `batch` readings of `values`, with
/// `window` in flight.
pub(super) struct Shape {
    pub messages: usize,
    pub batch: usize,
    pub window: usize,
    pub values: ValueType,
}

/// Connects every device, then sends all messages; returns the time from the first send
/// to the last ack and every message's ack latency in ms.
pub(super) async fn load(
    a: &Shape,
    addr: &str,
    tokens: &[String],
) -> anyhow::Result<(Duration, Vec<f64>)> {
    let barrier = Arc::new(Barrier::new(tokens.len() + 1));
    let base = base_us();
    let mut tasks = Vec::new();
    for token in tokens {
        let mut req = format!("ws://{addr}/v1/ingest").into_client_request()?;
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .context("device connects")?;
        let (barrier, messages, batch, window) = (barrier.clone(), a.messages, a.batch, a.window);
        let values = a.values;
        tasks.push(tokio::spawn(async move {
            device(ws, barrier, base, messages, (batch, values), window).await
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    Ok((started.elapsed(), latencies))
}

async fn device(
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    barrier: Arc<Barrier>,
    base: i64,
    messages: usize,
    (batch, values): (usize, ValueType),
    window: usize,
) -> anyhow::Result<Vec<f64>> {
    let (mut tx, mut rx) = ws.split();
    let sent_at = Arc::new(std::sync::Mutex::new(
        std::collections::VecDeque::with_capacity(window),
    ));
    let permits = Arc::new(Semaphore::new(window));
    barrier.wait().await;
    let reader = {
        let (sent_at, permits) = (sent_at.clone(), permits.clone());
        tokio::spawn(async move {
            let acks = acks(&mut rx, &sent_at, &permits, messages).await;
            // A refusal ends the device: the sender stops waiting for permits.
            permits.close();
            acks
        })
    };
    let mut text = String::with_capacity(batch * 64);
    for m in 0..messages {
        if permits.acquire().await.map(|p| p.forget()).is_err() {
            let stopped = reader.await?.err();
            return Err(stopped.unwrap_or_else(|| anyhow::anyhow!("acks ended early")));
        }
        text.clear();
        write!(text, "{{\"id\":{m},\"readings\":[")?;
        for k in 0..batch {
            let ts = ts_us(base, m, k, batch) as f64 / 1e6;
            let sep = if k == 0 { "" } else { "," };
            write!(
                text,
                "{sep}{{\"sensor\":\"s{}\",\"value\":{},\"ts\":{ts:.6}}}",
                k % SENSORS,
                values.json(k)
            )?;
        }
        text.push_str("]}");
        sent_at.lock().expect("lock").push_back(Instant::now());
        tx.send(Message::Text(text.clone().into())).await?;
    }
    let lat = reader.await??;
    let _ = tx.close().await;
    Ok(lat)
}

/// Reads a device's acks until `messages` came back (each frees a send permit); every
/// message's ack latency in ms. A refusal (any other frame) is an error.
async fn acks(
    rx: &mut futures_util::stream::SplitStream<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    >,
    sent_at: &std::sync::Mutex<std::collections::VecDeque<Instant>>,
    permits: &Semaphore,
    messages: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut lat = Vec::with_capacity(messages);
    while lat.len() < messages {
        let msg = rx.next().await.context("hub closed the socket")??;
        let Message::Text(t) = msg else { continue };
        if !t.as_str().starts_with("{\"ack\"") {
            bail!("refused: {}", t.as_str());
        }
        let at: Instant = sent_at
            .lock()
            .expect("lock")
            .pop_front()
            .context("ack without a message")?;
        lat.push(at.elapsed().as_secs_f64() * 1000.0);
        permits.add_permits(1);
    }
    Ok(lat)
}

/// Writes the rows the hub stored as CSV `series,ts,value` (one series per device × sensor).
fn write_rows_csv(a: &IngestArgs, path: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    let base = base_us();
    for d in 0..a.load.devices {
        for m in 0..a.load.messages {
            for k in 0..a.load.batch {
                writeln!(
                    w,
                    "{},{},{}.5",
                    d * SENSORS + k % SENSORS + 1,
                    ts_us(base, m, k, a.load.batch),
                    k
                )?;
            }
        }
    }
    w.flush()?;
    Ok(())
}

async fn sqlite_ceiling(a: &IngestArgs, dir: &Path) -> anyhow::Result<Duration> {
    let csv = dir.join("rows.csv");
    write_rows_csv(a, &csv)?;
    let db = dir.join("ceiling.db");
    let script = format!(
        "PRAGMA journal_mode=WAL;\nPRAGMA synchronous={};\n\
         CREATE TABLE readings (series_id INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL, PRIMARY KEY (series_id, ts)) WITHOUT ROWID;\n\
         .mode csv\n.import {} readings\n",
        a.sqlite_synchronous,
        csv.display()
    );
    let started = Instant::now();
    let mut child = tokio::process::Command::new("sqlite3")
        .arg(&db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running sqlite3 (apt-get install sqlite3)")?;
    let mut stdin = child.stdin.take().expect("piped");
    tokio::io::AsyncWriteExt::write_all(&mut stdin, script.as_bytes()).await?;
    drop(stdin);
    let out = child.wait_with_output().await?;
    let took = started.elapsed();
    if !out.status.success() {
        bail!("sqlite3 failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(took)
}

async fn pg_ceiling(a: &IngestArgs, dir: &Path) -> anyhow::Result<Duration> {
    let csv = dir.join("rows.csv");
    write_rows_csv(a, &csv)?;
    let url = fresh_pg(&a.common.pg, "telehub_bench_copy").await?;
    let ddl = "CREATE TABLE readings (series_id BIGINT NOT NULL, ts BIGINT NOT NULL, value DOUBLE PRECISION NOT NULL, PRIMARY KEY (series_id, ts))";
    let psql = |cmd: String| {
        tokio::process::Command::new("psql")
            .arg(&url)
            .args(["-qAtc", &cmd])
            .output()
    };
    let out = psql(ddl.into()).await?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr));
    }
    let started = Instant::now();
    let out = psql(format!("\\copy readings FROM '{}' CSV", csv.display())).await?;
    let took = started.elapsed();
    if !out.status.success() {
        bail!("psql \\copy: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(took)
}
