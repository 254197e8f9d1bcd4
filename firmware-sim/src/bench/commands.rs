//! Commands (issue 25): bulk delivery, create → device latency, and what commands cost
//! ingest. Each run starts a fresh hub and database, connects `--fleet` devices with
//! `?commands=1` (each acknowledges and answers `ok` at once), then measures:
//!
//! 1. one bulk `POST /v1/commands` naming every device: the time from sending it until
//!    every device has its `result_stored` (every command `succeeded`);
//! 2. `--timed` commands created one by one at `--rate` per second for ten of the devices:
//!    the time from sending the create request to the device receiving the frame;
//! 3. the ingest scenario's load (acked readings/s) alone, and again (other devices) while
//!    bulk requests create `--beside` commands per second for the fleet; their ratio. The
//!    order alternates from run to run so drift on a shared machine spreads evenly.

use super::hub::{
    Common, HubProcess, LoadArgs, add_devices, fresh_database, hub_binary, open_file_limit,
    settings_env, telehub,
};
use super::ingest::{Shape, ValueType, load};
use super::stats::{fmt, percentile, table};
use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(clap::Args, Debug)]
pub struct CommandsArgs {
    #[command(flatten)]
    load: LoadArgs,
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Connected devices, one command each in the bulk request.
    #[arg(long, default_value_t = 1000)]
    fleet: usize,
    /// Commands per second created one by one for the latency.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    /// Commands timed for the latency.
    #[arg(long, default_value_t = 1000)]
    timed: usize,
    /// Commands per second created (in bulk requests, every 100 ms) beside ingest.
    #[arg(long, default_value_t = 1000)]
    beside: usize,
    #[command(flatten)]
    common: Common,
}

struct Sample {
    bulk_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    alone: f64,
    with: f64,
    beside_rate: f64,
}

pub async fn run(mut a: CommandsArgs) -> anyhow::Result<()> {
    if a.common.smoke {
        (a.fleet, a.timed, a.rate, a.beside, a.runs) = (20, 20, 20, 100, 1);
        (a.load.devices, a.load.messages) = (4, 5);
    }
    if open_file_limit()? < a.fleet + 256 {
        bail!("the open-file limit is below --fleet + 256: raise it (ulimit -n)");
    }
    let bin = hub_binary(a.common.hub_bin.as_deref())?;
    std::fs::create_dir_all(&a.common.dir)?;
    let mut samples = Vec::new();
    for run in 0..a.runs {
        let s = one(&a, &bin, run).await?;
        eprintln!(
            "run {}: bulk {:.2} s; latency p50 {:.1} ms p99 {:.1} ms; ingest {:.0} alone, {:.0} beside {:.0} commands/s",
            run + 1,
            s.bulk_s,
            s.p50_ms,
            s.p99_ms,
            s.alone,
            s.with,
            s.beside_rate
        );
        samples.push(s);
    }
    let col = |f: fn(&Sample) -> f64| samples.iter().map(f).collect::<Vec<_>>();
    let rows = vec![
        vec![
            format!("bulk: {} devices, all succeeded (s)", a.fleet),
            fmt(&col(|s| s.bulk_s), 2),
        ],
        vec![
            format!("create → device p50 at {}/s (ms)", a.rate),
            fmt(&col(|s| s.p50_ms), 1),
        ],
        vec![
            format!("create → device p99 at {}/s (ms)", a.rate),
            fmt(&col(|s| s.p99_ms), 1),
        ],
        vec![
            "ingest alone (readings/s)".into(),
            fmt(&col(|s| s.alone), 0),
        ],
        vec![
            format!("ingest beside {} commands/s (readings/s)", a.beside),
            fmt(&col(|s| s.with), 0),
        ],
        vec!["ratio".into(), fmt(&col(|s| s.with / s.alone), 2)],
        vec![
            "commands succeeded/s beside ingest".into(),
            fmt(&col(|s| s.beside_rate), 0),
        ],
    ];
    table(&["measure", "median (min–max)"], &rows);
    if a.common.smoke {
        println!("smoke: ok");
    }
    Ok(())
}

/// Bulk creations in flight at once beside ingest.
const DRIVE_IN_FLIGHT: usize = 16;

async fn one(a: &CommandsArgs, bin: &std::path::Path, run: usize) -> anyhow::Result<Sample> {
    let dir = a.common.dir.join(format!("commands-{run}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let db = fresh_database(a.load.backend, &dir, &a.common.pg).await?;
    let fleet = add_devices(bin, &db, a.fleet, "cmd-", &dir).await?;
    let alone_tokens = add_devices(bin, &db, a.load.devices, "ia-", &dir).await?;
    let with_tokens = add_devices(bin, &db, a.load.devices, "ib-", &dir).await?;
    let op = telehub(
        bin,
        &db,
        &["token", "add", "bench-op", "--role", "operator"],
    )
    .await?;
    let op = op.trim().to_owned();
    // The ingest devices send as fast as acks come back: no per-device rate limit, so
    // `--messages` can make the load last long enough for a steady state.
    let mut settings = vec![
        "limits.device_readings_per_second=100000000".to_owned(),
        "limits.device_burst=100000000".to_owned(),
    ];
    settings.extend_from_slice(&a.common.settings);
    let env = settings_env(&settings)?;
    let hub = HubProcess::start_with(bin, &db, "127.0.0.1:0", &env, &[]).await?;
    let devices = Devices::connect(&hub.addr, &fleet).await?;
    let http = reqwest::Client::new();
    let names: Vec<String> = (1..=a.fleet).map(|i| format!("cmd-{i}")).collect();

    // 1. One bulk request for the whole fleet.
    let started = Instant::now();
    let bulk = json!({"devices": names, "name": "reboot"});
    post(
        &http,
        &format!("http://{}/v1/commands", hub.addr),
        &op,
        &bulk,
    )
    .await?;
    devices
        .wait_stored(a.fleet, Duration::from_secs(60))
        .await?;
    let bulk_s = started.elapsed().as_secs_f64();

    // 2. Create → device, one by one at a steady rate.
    let mut latencies = timed(a, &hub.addr, &op, &devices).await?;
    latencies.sort_by(f64::total_cmp);

    // 3. Ingest alone and beside commands.
    let shape = Shape {
        messages: a.load.messages,
        batch: a.load.batch,
        window: a.load.window,
        values: ValueType::Number,
    };
    let readings = (a.load.devices * a.load.messages * a.load.batch) as f64;
    let (mut alone, mut with, mut beside_rate) = (0.0, 0.0, 0.0);
    let order = if run.is_multiple_of(2) {
        [0, 1]
    } else {
        [1, 0]
    };
    for part in order {
        if part == 0 {
            let (elapsed, _) = load(&shape, &hub.addr, &alone_tokens).await?;
            alone = readings / elapsed.as_secs_f64();
        } else {
            let before = devices.stored.load(Ordering::SeqCst);
            let stop = Arc::new(Notify::new());
            let driver = tokio::spawn(drive(
                http.clone(),
                format!("http://{}/v1/commands", hub.addr),
                op.clone(),
                names.clone(),
                a.beside,
                stop.clone(),
            ));
            let (elapsed, _) = load(&shape, &hub.addr, &with_tokens).await?;
            stop.notify_one();
            driver.await??;
            with = readings / elapsed.as_secs_f64();
            let done = devices.stored.load(Ordering::SeqCst) - before;
            beside_rate = done as f64 / elapsed.as_secs_f64();
        }
    }
    hub.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Sample {
        bulk_s,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        alone,
        with,
        beside_rate,
    })
}

/// Creates `a.timed` commands at `a.rate`/s for the first ten devices; each one's
/// create → receive time in ms.
async fn timed(
    a: &CommandsArgs,
    addr: &str,
    op: &str,
    devices: &Devices,
) -> anyhow::Result<Vec<f64>> {
    let http = reqwest::Client::new();
    let targets = a.fleet.clamp(1, 10);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(a.rate)));
    let mut requests = Vec::with_capacity(a.timed);
    for i in 0..a.timed {
        tick.tick().await;
        let url = format!("http://{addr}/v1/devices/cmd-{}/commands", i % targets + 1);
        let (http, op) = (http.clone(), op.to_owned());
        requests.push(tokio::spawn(async move {
            let sent = Instant::now();
            let c = post(&http, &url, &op, &json!({"name": "reboot"})).await?;
            let id = c["id"].as_str().context("a command id")?.to_owned();
            anyhow::Ok((id, sent))
        }));
    }
    let mut sent = Vec::with_capacity(a.timed);
    for r in requests {
        sent.push(r.await??);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = devices.received.lock().expect("lock").clone();
        let lat: Vec<f64> = sent
            .iter()
            .filter_map(|(id, at)| Some(got.get(id)?.duration_since(*at).as_secs_f64() * 1000.0))
            .collect();
        if lat.len() == sent.len() {
            return Ok(lat);
        }
        if Instant::now() > deadline {
            bail!(
                "only {} of {} timed commands reached their device",
                lat.len(),
                sent.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Creates `per_second` commands a second for the fleet (a bulk request every 100 ms,
/// devices taken in turn) until `stop`. Requests overlap (at most [`DRIVE_IN_FLIGHT`]):
/// beside a full ingest load one creation waits for a turn at the write lock, and
/// awaiting each before the next would measure that wait, not the hub's throughput.
async fn drive(
    http: reqwest::Client,
    url: String,
    op: String,
    names: Vec<String>,
    per_second: usize,
    stop: Arc<Notify>,
) -> anyhow::Result<()> {
    let per_tick = (per_second / 10).max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut in_flight = tokio::task::JoinSet::new();
    let mut next = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.notified() => break,
        }
        while in_flight.len() >= DRIVE_IN_FLIGHT {
            in_flight.join_next().await.context("a request task")???;
        }
        let devices: Vec<String> = (0..per_tick)
            .map(|k| names[(next + k) % names.len()].clone())
            .collect();
        next = (next + per_tick) % names.len();
        let (http, url, op) = (http.clone(), url.clone(), op.clone());
        in_flight.spawn(async move {
            post(
                &http,
                &url,
                &op,
                &json!({"devices": devices, "name": "reboot"}),
            )
            .await
        });
    }
    while let Some(done) = in_flight.join_next().await {
        done??;
    }
    Ok(())
}

async fn post(http: &reqwest::Client, url: &str, op: &str, body: &Value) -> anyhow::Result<Value> {
    let resp = http
        .post(url)
        .bearer_auth(op)
        .body(body.to_string())
        .send()
        .await?;
    let status = resp.status();
    let text = resp.text().await?;
    if status.as_u16() != 201 {
        bail!("creating commands: {status} {text}");
    }
    Ok(serde_json::from_str(&text)?)
}

/// Devices that take commands and answer each `ok` at once.
struct Devices {
    /// When each command's frame arrived, by id.
    received: Arc<Mutex<HashMap<String, Instant>>>,
    /// `result_stored` frames received.
    stored: Arc<AtomicUsize>,
    stored_changed: Arc<Notify>,
}

impl Devices {
    /// Connects one socket per token with `?commands=1`; returns once the hub answered a
    /// message on each (so each is attached to its commands).
    async fn connect(addr: &str, tokens: &[String]) -> anyhow::Result<Self> {
        let d = Self {
            received: Arc::default(),
            stored: Arc::default(),
            stored_changed: Arc::default(),
        };
        for token in tokens {
            let mut ws = attached(addr, token).await?;
            let (received, stored, changed) = (
                d.received.clone(),
                d.stored.clone(),
                d.stored_changed.clone(),
            );
            tokio::spawn(async move {
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Text(t) = msg else { continue };
                    let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else {
                        continue;
                    };
                    if let Some(id) = v["command"]["id"].as_str() {
                        received
                            .lock()
                            .expect("lock")
                            .insert(id.to_owned(), Instant::now());
                        let ack = json!({"command_ack": id}).to_string();
                        let result = json!({"command_result": id, "status": "ok"}).to_string();
                        if ws.feed(Message::Text(ack.into())).await.is_err()
                            || ws.send(Message::Text(result.into())).await.is_err()
                        {
                            return;
                        }
                    } else if v.get("result_stored").is_some() {
                        stored.fetch_add(1, Ordering::SeqCst);
                        changed.notify_waiters();
                    }
                }
            });
        }
        Ok(d)
    }

    async fn wait_stored(&self, n: usize, limit: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        while self.stored.load(Ordering::SeqCst) < n {
            let changed = self.stored_changed.notified();
            if self.stored.load(Ordering::SeqCst) >= n {
                break;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                bail!(
                    "{} of {n} results stored after {limit:?}",
                    self.stored.load(Ordering::SeqCst)
                );
            }
        }
        Ok(())
    }
}

pub(super) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A device socket with `?commands=1`, once the hub answered a message on it (so it is
/// attached to its commands and configurations).
pub(super) async fn attached(addr: &str, token: &str) -> anyhow::Result<Ws> {
    let mut ws = connect_retrying(addr, token).await?;
    let hello = r#"{"id":0,"readings":[{"sensor":"up","value":1}]}"#;
    ws.send(Message::Text(hello.into())).await?;
    loop {
        let msg = ws.next().await.context("hub closed a device socket")??;
        if let Message::Text(t) = msg
            && t.as_str().starts_with("{\"ack\"")
        {
            return Ok(ws);
        }
    }
}

/// Opens a device socket, retrying while the hub is busy opening others (503).
async fn connect_retrying(addr: &str, token: &str) -> anyhow::Result<Ws> {
    let mut tries = 0;
    loop {
        let mut req = format!("ws://{addr}/v1/ingest?commands=1").into_client_request()?;
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => return Ok(ws),
            Err(e) if tries < 50 => {
                tries += 1;
                tracing::debug!(error = %e, "device connect failed; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e).context("a device connects"),
        }
    }
}
