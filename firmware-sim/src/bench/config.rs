//! Desired configuration and labels (issue 26). Each run starts a fresh hub and database
//! with `--labelled` devices, each labelled `site=s<i mod 10>` (one `PUT …/labels` each),
//! connects `--fleet` of them with `?commands=1` (each reports every configuration it
//! gets at once, as applied), then measures:
//!
//! 1. the desired configuration of every connected device set (one `PUT …/config` per
//!    device, `--concurrency` at a time): the time from the first request until every
//!    device has its report stored (`config_stored`), checked `in_sync` in `/v1/devices`;
//! 2. `GET /v1/devices?label=site:s3` (a tenth of the devices) `--queries` times, one
//!    after another: p50 and p95.

use super::commands::{Ws, attached};
use super::hub::{
    Backend, Common, HubProcess, add_devices, fresh_database, hub_binary, open_file_limit,
    settings_env, telehub,
};
use super::stats::{fmt, percentile, table};
use anyhow::{Context, bail, ensure};
use futures_util::{SinkExt, StreamExt, stream};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

#[derive(clap::Args, Debug)]
pub struct ConfigArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: Backend,
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Connected devices whose desired configuration is set.
    #[arg(long, default_value_t = 1000)]
    fleet: usize,
    /// Devices in all (the fleet included), each with a `site` label.
    #[arg(long, default_value_t = 10_000)]
    labelled: usize,
    /// Label queries timed.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Requests in flight at once while labelling and setting configurations.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    #[command(flatten)]
    common: Common,
}

struct Sample {
    in_sync_s: f64,
    p50_ms: f64,
    p95_ms: f64,
    matched: usize,
}

pub async fn run(mut a: ConfigArgs) -> anyhow::Result<()> {
    if a.common.smoke {
        (a.fleet, a.labelled, a.queries, a.runs) = (20, 200, 20, 1);
    }
    ensure!(
        a.fleet <= a.labelled && a.concurrency > 0,
        "--fleet must be at most --labelled, and --concurrency at least 1"
    );
    if open_file_limit()? < a.fleet + 256 {
        bail!("the open-file limit is below --fleet + 256: raise it (ulimit -n)");
    }
    let bin = hub_binary(a.common.hub_bin.as_deref())?;
    std::fs::create_dir_all(&a.common.dir)?;
    let mut samples = Vec::new();
    for run in 0..a.runs {
        let s = one(&a, &bin, run).await?;
        eprintln!(
            "run {}: {} devices in sync after {:.2} s; ?label= ({} of {} devices) p50 {:.1} ms p95 {:.1} ms",
            run + 1,
            a.fleet,
            s.in_sync_s,
            s.matched,
            a.labelled,
            s.p50_ms,
            s.p95_ms
        );
        samples.push(s);
    }
    let col = |f: fn(&Sample) -> f64| samples.iter().map(f).collect::<Vec<_>>();
    let rows = vec![
        vec![
            format!(
                "desired set on {} connected devices → all in_sync (s)",
                a.fleet
            ),
            fmt(&col(|s| s.in_sync_s), 2),
        ],
        vec![
            format!("/v1/devices?label= on {} devices, p50 (ms)", a.labelled),
            fmt(&col(|s| s.p50_ms), 1),
        ],
        vec![
            format!("/v1/devices?label= on {} devices, p95 (ms)", a.labelled),
            fmt(&col(|s| s.p95_ms), 1),
        ],
    ];
    table(&["measure", "median (min–max)"], &rows);
    if a.common.smoke {
        println!("smoke: ok");
    }
    Ok(())
}

async fn one(a: &ConfigArgs, bin: &std::path::Path, run: usize) -> anyhow::Result<Sample> {
    let dir = a.common.dir.join(format!("config-{run}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let db = fresh_database(a.backend, &dir, &a.common.pg).await?;
    let fleet = add_devices(bin, &db, a.fleet, "cfg-", &dir).await?;
    if a.labelled > a.fleet {
        add_devices(bin, &db, a.labelled - a.fleet, "lab-", &dir).await?;
    }
    let admin = telehub(
        bin,
        &db,
        &["token", "add", "bench-admin", "--role", "admin"],
    )
    .await?;
    let admin = admin.trim().to_owned();
    let env = settings_env(&a.common.settings)?;
    let hub = HubProcess::start_with(bin, &db, "127.0.0.1:0", &env, &[]).await?;
    let base = format!("http://{}", hub.addr);
    let http = reqwest::Client::new();
    let names: Vec<String> = (1..=a.fleet)
        .map(|i| format!("cfg-{i}"))
        .chain((1..=a.labelled - a.fleet).map(|i| format!("lab-{i}")))
        .collect();

    let labels = names.iter().enumerate().map(|(i, name)| {
        let url = format!("{base}/v1/devices/{name}/labels");
        (url, json!({"site": format!("s{}", i % 10)}))
    });
    put_all(&http, &admin, labels, a.concurrency).await?;

    let devices = Reporters::connect(&hub.addr, &fleet).await?;
    let started = Instant::now();
    let configs = names[..a.fleet].iter().map(|name| {
        let url = format!("{base}/v1/devices/{name}/config");
        (url, json!({"desired": {"interval_s": 10}}))
    });
    put_all(&http, &admin, configs, a.concurrency).await?;
    devices.wait(a.fleet, Duration::from_secs(60)).await?;
    let in_sync_s = started.elapsed().as_secs_f64();
    let listed = get(&http, &admin, &format!("{base}/v1/devices")).await?;
    let synced = listed
        .as_array()
        .context("a device list")?
        .iter()
        .filter(|d| d["name"].as_str().is_some_and(|n| n.starts_with("cfg-")))
        .filter(|d| d["in_sync"] == true)
        .count();
    ensure!(synced == a.fleet, "{synced} of {} devices in_sync", a.fleet);

    let url = format!("{base}/v1/devices?label=site:s3");
    let mut latencies = Vec::with_capacity(a.queries);
    let mut matched = 0;
    for _ in 0..a.queries {
        let t = Instant::now();
        let list = get(&http, &admin, &url).await?;
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        matched = list.as_array().map_or(0, Vec::len);
    }
    let want = (0..names.len()).filter(|i| i % 10 == 3).count();
    ensure!(
        matched == want,
        "?label=site:s3 listed {matched} devices, not {want}"
    );
    latencies.sort_by(f64::total_cmp);
    hub.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Sample {
        in_sync_s,
        p50_ms: percentile(&latencies, 50.0),
        p95_ms: percentile(&latencies, 95.0),
        matched,
    })
}

/// `PUT`s each body to its URL, `concurrency` at a time; every answer must be `200`.
async fn put_all(
    http: &reqwest::Client,
    token: &str,
    requests: impl Iterator<Item = (String, Value)>,
    concurrency: usize,
) -> anyhow::Result<()> {
    let puts = requests.map(|(url, body)| async move {
        let resp = http
            .put(&url)
            .bearer_auth(token)
            .body(body.to_string())
            .send()
            .await?;
        let status = resp.status();
        if status.as_u16() != 200 {
            bail!("PUT {url}: {status} {}", resp.text().await?);
        }
        anyhow::Ok(())
    });
    let mut results = stream::iter(puts).buffer_unordered(concurrency);
    while let Some(r) = results.next().await {
        r?;
    }
    Ok(())
}

async fn get(http: &reqwest::Client, token: &str, url: &str) -> anyhow::Result<Value> {
    let resp = http.get(url).bearer_auth(token).send().await?;
    let status = resp.status();
    let text = resp.text().await?;
    if status.as_u16() != 200 {
        bail!("GET {url}: {status} {text}");
    }
    Ok(serde_json::from_str(&text)?)
}

/// Devices that report every configuration they get as applied, at once.
struct Reporters {
    /// `config_stored` frames received.
    stored: Arc<AtomicUsize>,
    changed: Arc<Notify>,
}

impl Reporters {
    async fn connect(addr: &str, tokens: &[String]) -> anyhow::Result<Self> {
        let r = Self {
            stored: Arc::default(),
            changed: Arc::default(),
        };
        for token in tokens {
            let ws = attached(addr, token).await?;
            tokio::spawn(report(ws, r.stored.clone(), r.changed.clone()));
        }
        Ok(r)
    }

    async fn wait(&self, n: usize, limit: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.changed.notified();
            let got = self.stored.load(Ordering::SeqCst);
            if got >= n {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                bail!("{got} of {n} reports stored after {limit:?}");
            }
        }
    }
}

async fn report(mut ws: Ws, stored: Arc<AtomicUsize>, changed: Arc<Notify>) {
    while let Some(Ok(msg)) = ws.next().await {
        let Message::Text(t) = msg else { continue };
        let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else {
            continue;
        };
        if let Some(c) = v.get("config") {
            let frame =
                json!({"config_reported": {"version": c["version"], "state": c["desired"]}});
            if ws
                .send(Message::Text(frame.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
        } else if v.get("config_stored").is_some() {
            stored.fetch_add(1, Ordering::SeqCst);
            changed.notify_waiters();
        }
    }
}
