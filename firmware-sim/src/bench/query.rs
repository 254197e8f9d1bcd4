//! Grafana's panels read back (issue 27): the same readings loaded into the hub (SQLite)
//! and into Debian's InfluxDB 1.x ([`super::influxd`]), then the two panel queries Grafana
//! sends asked of both over `/query`, one request at a time, alternating server from round
//! to round: a 30-day `GROUP BY time(1h)` panel over every device and a 6-hour
//! `GROUP BY time(10s)` panel. Latency p50/p95 per server and panel, and a check that both
//! answered the same numbers.

use super::hub::{Common, HubProcess, add_devices, add_viewer, hub_binary, settings_env};
use super::influxd::{self, Influxd};
use super::stats::{percentile, table};
use anyhow::{Context, bail};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    #[arg(long, default_value_t = 10)]
    devices: usize,
    /// Days of history loaded (one reading per device every --every-secs).
    #[arg(long, default_value_t = 30)]
    days: u64,
    #[arg(long, default_value_t = 10)]
    every_secs: u64,
    /// Requests per panel and server in each round (after 3 unmeasured ones).
    #[arg(long, default_value_t = 50)]
    requests: usize,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The InfluxDB 1.x server binary.
    #[arg(long, default_value = "influxd")]
    influxd: PathBuf,
    #[command(flatten)]
    common: Common,
}

/// Lines per write request.
const BATCH: usize = 5000;

pub async fn run(mut a: QueryArgs) -> anyhow::Result<()> {
    if a.common.smoke {
        (a.devices, a.days, a.every_secs, a.requests, a.rounds) = (2, 1, 60, 3, 1);
    }
    let hub_bin = hub_binary(a.common.hub_bin.as_deref())?;
    let dir = &a.common.dir;
    let _ = std::fs::remove_dir_all(dir.join("query-hub"));
    std::fs::create_dir_all(dir.join("query-hub"))?;
    let db = format!("sqlite://{}", dir.join("query-hub/hub.db").display());
    let tokens = add_devices(&hub_bin, &db, a.devices, "q", &dir.join("query-hub")).await?;
    let viewer = add_viewer(&hub_bin, &db).await?;
    let mut env = settings_env(&a.common.settings)?;
    for (k, v) in [
        ("TELEHUB_LIMITS__DEVICE_READINGS_PER_SECOND", "1000000000"),
        ("TELEHUB_LIMITS__DEVICE_BURST", "1000000000"),
    ] {
        env.push((k.into(), v.into()));
    }
    let hub = HubProcess::start(&hub_bin, &db, &env).await?;
    let peer = Influxd::start(&influxd::binary(&a.influxd)?, &dir.join("query-influxd")).await?;
    let result = measure(&a, &hub.addr, &tokens, &viewer, &peer).await;
    hub.stop().await?;
    peer.stop().await?;
    result
}

async fn measure(
    a: &QueryArgs,
    hub: &str,
    tokens: &[String],
    viewer: &str,
    peer: &Influxd,
) -> anyhow::Result<()> {
    peer.create_database("telehub").await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    // An hour short of the span, so raw retention (30 days by default) keeps everything.
    let start = now - a.days * 86_400 + 3_600;
    let points = (now - start) / a.every_secs;
    eprintln!(
        "query: loading {} devices × {points} readings into the hub and influxd",
        a.devices
    );
    let t = Instant::now();
    load(a, tokens, start, points, |k| {
        (
            format!("http://{hub}/write?db=telehub&precision=s"),
            Some(tokens[k].clone()),
            String::new(),
        )
    })
    .await?;
    eprintln!("query: hub loaded in {:.1} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    load(a, tokens, start, points, |k| {
        (
            format!("{}/write?db=telehub&precision=s", peer.url),
            None,
            format!(",device=q{}", k + 1),
        )
    })
    .await?;
    eprintln!(
        "query: influxd loaded in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let devices: Vec<String> = (1..=a.devices).map(|k| format!("q{k}")).collect();
    let ms = |s: u64| format!("{}ms", s * 1000);
    let panel = |from: u64, every: &str| {
        format!(
            r#"SELECT mean("value") FROM "temperature" WHERE ("device" =~ /^({})$/) AND time >= {} and time <= {} GROUP BY time({every}), "device" fill(null)"#,
            devices.join("|"),
            ms(from),
            ms(now)
        )
    };
    let panels = [
        (
            format!("{}-day panel, GROUP BY time(1h)", a.days),
            panel(now - a.days * 86_400, "1h"),
        ),
        (
            "6-hour panel, GROUP BY time(10s)".to_owned(),
            panel(now - 6 * 3_600, "10s"),
        ),
    ];
    let http = reqwest::Client::new();
    let servers = [
        (
            "hub (SQLite)",
            format!("http://{hub}/query"),
            Some(viewer.to_owned()),
        ),
        ("influxd 1.x", format!("{}/query", peer.url), None),
    ];
    let mut rows = Vec::new();
    for (label, q) in &panels {
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
        let mut answers: Vec<Value> = vec![Value::Null; servers.len()];
        for r in 0..a.rounds {
            let mut order: Vec<usize> = (0..servers.len()).collect();
            if r % 2 == 1 {
                order.reverse();
            }
            for s in order {
                let (_, url, token) = &servers[s];
                for i in 0..a.requests + 3 {
                    let mut req = http.get(url).query(&[
                        ("db", "telehub"),
                        ("q", q.as_str()),
                        ("epoch", "ms"),
                    ]);
                    if let Some(t) = token {
                        req = req.query(&[("u", "grafana"), ("p", t.as_str())]);
                    }
                    let t = Instant::now();
                    let resp = req.send().await?;
                    let ok = resp.status().is_success();
                    let body: Value = resp.json().await?;
                    let took = t.elapsed();
                    if !ok || body["results"][0].get("error").is_some() {
                        bail!("{url}: {body}");
                    }
                    if i >= 3 {
                        times[s].push(took.as_secs_f64() * 1000.0);
                    }
                    answers[s] = body;
                }
            }
        }
        same_numbers(&answers[0], &answers[1])
            .with_context(|| format!("{label}: the hub and influxd disagree"))?;
        let mut cells = vec![label.clone()];
        for t in &mut times {
            t.sort_by(f64::total_cmp);
            cells.push(format!(
                "{:.1} / {:.1}",
                percentile(t, 50.0),
                percentile(t, 95.0)
            ));
        }
        rows.push(cells);
    }
    table(&["panel (p50 / p95 ms)", servers[0].0, servers[1].0], &rows);
    if a.common.smoke {
        println!("smoke: ok");
    }
    Ok(())
}

/// Posts every device's readings of `temperature` in batches, the devices concurrently.
/// `target(k)` gives device k's URL, token and line tags.
async fn load(
    a: &QueryArgs,
    tokens: &[String],
    start: u64,
    points: u64,
    target: impl Fn(usize) -> (String, Option<String>, String),
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()?;
    let mut tasks = Vec::new();
    for k in 0..tokens.len() {
        let (url, token, tags) = target(k);
        let (http, every) = (http.clone(), a.every_secs);
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while i < points {
                let end = (i + BATCH as u64).min(points);
                let body: String = (i..end)
                    .map(|j| {
                        let v = 20.0 + ((j * 7 + k as u64 * 13) % 400) as f64 / 16.0;
                        format!("temperature{tags} value={v} {}\n", start + j * every)
                    })
                    .collect();
                let mut req = http.post(&url).body(body);
                if let Some(t) = &token {
                    req = req.header("authorization", format!("Token {t}"));
                }
                let resp = req.send().await?;
                if !resp.status().is_success() {
                    bail!("{url}: {} {}", resp.status(), resp.text().await?);
                }
                i = end;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// The same series, times and values (to 1e-9) in both answers.
fn same_numbers(hub: &Value, influx: &Value) -> anyhow::Result<()> {
    let series = |v: &Value| {
        v["results"][0]["series"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let (h, i) = (series(hub), series(influx));
    if h.len() != i.len() {
        bail!("{} series vs {}", h.len(), i.len());
    }
    for (h, i) in h.iter().zip(&i) {
        if h["tags"] != i["tags"] {
            bail!("tags {} vs {}", h["tags"], i["tags"]);
        }
        let (hv, iv) = (
            h["values"].as_array().context("values")?,
            i["values"].as_array().context("values")?,
        );
        if hv.len() != iv.len() {
            bail!("{}: {} rows vs {}", h["tags"], hv.len(), iv.len());
        }
        for (a, b) in hv.iter().zip(iv) {
            let close = match (a[1].as_f64(), b[1].as_f64()) {
                (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                (None, None) => true,
                _ => false,
            };
            if a[0] != b[0] || !close {
                bail!("{}: row {a} vs {b}", h["tags"]);
            }
        }
    }
    Ok(())
}
