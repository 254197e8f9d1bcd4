//! Reconnect storm (issue 4, scenario 5): N devices — the library's [`DeviceClient`], with
//! its exponential backoff, full jitter and resend of unacked readings — connect to a hub
//! process and each get one reading acked. The hub is then restarted on the same address
//! (SIGTERM: a graceful restart; `--kill`: SIGKILL, a crash) while every device already
//! holds its next reading. Measured from the moment the new hub listens: the time until
//! every device is connected again and that reading is acked, per-device p50/p99, and how
//! many handshakes the hub refused (its handshake rate limit answering 503 + Retry-After).

use super::hub::{
    Common, HubProcess, add_devices, add_viewer, hub_binary, open_file_limit, settings_env,
};
use super::stats::{fmt, percentile, table};
use anyhow::{Context, bail};
use std::time::{Duration, Instant};
use telehub_client::client::{ClientConfig, DeviceClient};
use telehub_client::domain::{Reading, SensorName, Timestamp};
use telehub_client::protocol::ingest::DeviceReading;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(clap::Args, Debug)]
pub struct ReconnectArgs {
    #[arg(long, default_value_t = 10_000)]
    devices: usize,
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Restart with SIGKILL instead of SIGTERM.
    #[arg(long)]
    kill: bool,
    /// Give up on a run after this long.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    common: Common,
}

struct RunResult {
    first_connect_s: f64,
    down_s: f64,
    all_back_s: f64,
    p50_s: f64,
    p99_s: f64,
    refused: f64,
}

pub async fn run(mut a: ReconnectArgs) -> anyhow::Result<()> {
    if a.common.smoke {
        (a.devices, a.runs) = (50, 1);
    }
    let bin = hub_binary(a.common.hub_bin.as_deref())?;
    let limit = open_file_limit()?;
    if a.devices + 200 > limit {
        bail!("open-file limit is {limit}: raise it (`ulimit -n 20000`) or lower --devices");
    }
    eprintln!(
        "reconnect storm: {} devices, restart by {}, {} runs",
        a.devices,
        if a.kill { "SIGKILL" } else { "SIGTERM" },
        a.runs
    );
    let mut results = Vec::new();
    for i in 0..a.runs {
        let r = one_run(&a, &bin, i).await?;
        eprintln!(
            "run {}: first connect of all {:.2} s; hub down {:.2} s; all back and acked {:.2} s after it listened (device p50 {:.2} s, p99 {:.2} s); {} handshakes refused",
            i + 1,
            r.first_connect_s,
            r.down_s,
            r.all_back_s,
            r.p50_s,
            r.p99_s,
            r.refused
        );
        results.push(r);
    }
    let col = |f: fn(&RunResult) -> f64| results.iter().map(f).collect::<Vec<_>>();
    table(
        &["measure", "median (min–max)"],
        &[
            vec![
                format!(
                    "all {} devices connected and acked, cold start (s)",
                    a.devices
                ),
                fmt(&col(|r| r.first_connect_s), 2),
            ],
            vec![
                "hub down: stop → listening again (s)".into(),
                fmt(&col(|r| r.down_s), 2),
            ],
            vec![
                "all back and acked after the restart (s)".into(),
                fmt(&col(|r| r.all_back_s), 2),
            ],
            vec!["per device, p50 (s)".into(), fmt(&col(|r| r.p50_s), 2)],
            vec!["per device, p99 (s)".into(), fmt(&col(|r| r.p99_s), 2)],
            vec![
                "handshakes refused (503) after the restart".into(),
                fmt(&col(|r| r.refused), 0),
            ],
        ],
    );
    if a.common.smoke {
        println!("smoke: ok");
    }
    Ok(())
}

async fn one_run(a: &ReconnectArgs, bin: &std::path::Path, i: usize) -> anyhow::Result<RunResult> {
    let dir = a.common.dir.join(format!("reconnect-{i}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let db = format!("sqlite://{}", dir.join("hub.db").display());
    let tokens = add_devices(bin, &db, a.devices, "storm-", &dir).await?;
    let viewer = add_viewer(bin, &db).await?;
    // The whole fleet comes from 127.0.0.1 here; in the field it comes from many addresses.
    let mut settings = vec![format!("limits.max_connections_per_ip={}", a.devices + 100)];
    settings.extend_from_slice(&a.common.settings);
    let env = settings_env(&settings)?;
    let hub = HubProcess::start(bin, &db, &env).await?;
    let addr = hub.addr.clone();

    let started = Instant::now();
    let mut clients = Vec::with_capacity(tokens.len());
    for (k, token) in tokens.iter().enumerate() {
        let mut cfg = ClientConfig::new(format!("ws://{addr}"), token.clone());
        cfg.label = format!("storm-{}", k + 1);
        let client = DeviceClient::start(cfg)?;
        client.push(reading(1))?;
        clients.push(client);
    }
    wait_acked(&clients, 1, started, a.timeout)
        .await
        .context("the first connection of every device")?;
    let first_connect_s = started.elapsed().as_secs_f64();

    let stopped = Instant::now();
    if a.kill {
        hub.kill().await?;
    } else {
        hub.stop().await?;
    }
    for c in &clients {
        c.push(reading(2))?;
    }
    let hub = HubProcess::start_on(bin, &db, &addr, &env).await?;
    let listening = Instant::now();
    let down_s = (listening - stopped).as_secs_f64();
    let mut back = wait_acked(&clients, 2, listening, a.timeout)
        .await
        .context("reconnecting every device after the restart")?;
    let all_back_s = listening.elapsed().as_secs_f64();
    let refused = handshakes_refused(&addr, &viewer).await?;
    for c in clients {
        c.shutdown(Duration::ZERO).await;
    }
    hub.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    back.sort_by(f64::total_cmp);
    Ok(RunResult {
        first_connect_s,
        down_s,
        all_back_s,
        p50_s: percentile(&back, 50.0),
        p99_s: percentile(&back, 99.0),
        refused,
    })
}

/// One reading on sensor `storm`, stamped now (distinct per call: the identity is (device, sensor, ts)).
fn reading(n: u32) -> DeviceReading {
    DeviceReading {
        device: None,
        reading: Reading {
            sensor: SensorName::parse("storm").expect("a valid sensor name"),
            value: f64::from(n).into(),
            ts: Timestamp::from_micros(chrono::Utc::now().timestamp_micros()),
            unit: None,
        },
    }
}

/// Polls until every client has `acked` readings acked; returns each one's time since
/// `since`, in seconds (polling every 20 ms, so ±20 ms).
async fn wait_acked(
    clients: &[DeviceClient],
    acked: u64,
    since: Instant,
    timeout: Duration,
) -> anyhow::Result<Vec<f64>> {
    let mut waiting: Vec<usize> = (0..clients.len()).collect();
    let mut times = Vec::with_capacity(clients.len());
    while !waiting.is_empty() {
        if since.elapsed() > timeout {
            bail!(
                "{} of {} devices not acked after {timeout:?}",
                waiting.len(),
                clients.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t = since.elapsed().as_secs_f64();
        waiting.retain(|&k| {
            let done = clients[k].stats().acked >= acked;
            if done {
                times.push(t);
            }
            !done
        });
    }
    Ok(times)
}

/// The hub's count of handshakes refused for its handshake rate (from `/metrics`).
async fn handshakes_refused(addr: &str, viewer: &str) -> anyhow::Result<f64> {
    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    let req = format!(
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {viewer}\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await?;
    let mut body = String::new();
    tcp.read_to_string(&mut body).await?;
    Ok(body
        .lines()
        .filter(|l| l.starts_with("telehub_connections_refused_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .fold(0.0, |a, b| a + b))
}
