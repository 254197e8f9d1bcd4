//! Alerts (issue 15): what rules cost ingest, and how fast an event reaches a webhook.
//!
//! Each run measures every rule count of `--rules` side by side (a fresh hub and database
//! each; the order rotates from run to run so drift on a shared machine spreads evenly):
//! the ingest scenario's load (acked readings/s) with N threshold rules (`alert import`),
//! each pattern `bench-D/*` matching one device's 5 sensors (1 % of the series with 100
//! devices) and never met, so every reading is evaluated against N/100 rules. Then one
//! rule that every other reading flips (`> 0`, values ±1) and a local HTTP receiver: the
//! time from a device sending a reading to its event's webhook POST arriving (an upper
//! bound of commit → POST), at a steady 20 readings/s.

use super::hub::{
    Common, HubProcess, LoadArgs, add_devices, fresh_database, hub_binary, settings_env, telehub,
};
use super::ingest::{Shape, ValueType, load};
use super::stats::{fmt, percentile, table};
use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(clap::Args, Debug)]
pub struct AlertsArgs {
    #[command(flatten)]
    load: LoadArgs,
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Rule counts compared in each run.
    #[arg(long, value_delimiter = ',', default_value = "0,100,10000")]
    rules: Vec<usize>,
    /// Events timed per configuration for the latency.
    #[arg(long, default_value_t = 200)]
    events: usize,
    #[command(flatten)]
    common: Common,
}

struct Sample {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
}

pub async fn run(mut a: AlertsArgs) -> anyhow::Result<()> {
    if a.common.smoke {
        (a.load.devices, a.load.messages, a.runs, a.events) = (4, 5, 1, 10);
        a.rules = vec![0, 10];
    }
    let bin = hub_binary(a.common.hub_bin.as_deref())?;
    std::fs::create_dir_all(&a.common.dir)?;
    let mut samples: HashMap<usize, Vec<Sample>> = HashMap::new();
    for run in 0..a.runs {
        let mut order = a.rules.clone();
        let shift = run % order.len().max(1);
        order.rotate_left(shift);
        for &n in &order {
            let s = one(&a, &bin, run, n).await?;
            eprintln!(
                "run {} rules {n}: {:.0} readings/s, send→POST p50 {:.1} ms p99 {:.1} ms",
                run + 1,
                s.rate,
                s.p50_ms,
                s.p99_ms
            );
            samples.entry(n).or_default().push(s);
        }
    }
    let base = &samples[&a.rules[0]];
    let rows: Vec<Vec<String>> = a
        .rules
        .iter()
        .map(|n| {
            let s = &samples[n];
            let col = |f: fn(&Sample) -> f64| s.iter().map(f).collect::<Vec<_>>();
            let ratios: Vec<f64> = s.iter().zip(base).map(|(x, b)| x.rate / b.rate).collect();
            vec![
                n.to_string(),
                fmt(&col(|s| s.rate), 0),
                fmt(&ratios, 2),
                fmt(&col(|s| s.p50_ms), 1),
                fmt(&col(|s| s.p99_ms), 1),
            ]
        })
        .collect();
    table(
        &[
            "rules",
            "acked readings/s",
            "ratio to first",
            "send→POST p50 (ms)",
            "send→POST p99 (ms)",
        ],
        &rows,
    );
    if a.common.smoke {
        println!("smoke: ok");
    }
    Ok(())
}

async fn one(a: &AlertsArgs, bin: &Path, run: usize, rules: usize) -> anyhow::Result<Sample> {
    let dir = a.common.dir.join(format!("alerts-{run}-{rules}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let db = fresh_database(a.load.backend, &dir, &a.common.pg).await?;
    let tokens = add_devices(bin, &db, a.load.devices, "bench-", &dir).await?;
    let admin = telehub(
        bin,
        &db,
        &["token", "add", "bench-admin", "--role", "admin"],
    )
    .await?;
    let admin = admin.trim().to_owned();
    // N rules, imported in one transaction before the hub starts.
    let file = dir.join("rules.jsonl");
    let lines: Vec<String> = (0..rules)
        .map(|i| {
            serde_json::json!({"name": format!("r{i}"), "pattern": format!("bench-{}/*", i % a.load.devices + 1),
                "kind": "threshold", "op": ">", "value": 1e12})
            .to_string()
        })
        .collect();
    std::fs::write(&file, lines.join("\n"))?;
    telehub(
        bin,
        &db,
        &["alert", "import", file.to_str().context("a UTF-8 path")?],
    )
    .await?;
    let (url, posts) = receiver().await?;
    let config = dir.join("hub.toml");
    std::fs::write(&config, format!("[[alerts.webhooks]]\nurl = \"{url}\"\n"))?;
    let env = settings_env(&a.common.settings)?;
    let extra = ["--config", config.to_str().context("a UTF-8 path")?];
    let hub = HubProcess::start_with(bin, &db, "127.0.0.1:0", &env, &extra).await?;
    let http = reqwest::Client::new();
    let rule_url = format!("http://{}/v1/alert-rules", hub.addr);
    let shape = Shape {
        messages: a.load.messages,
        batch: a.load.batch,
        window: a.load.window,
        values: ValueType::Number,
    };
    let (elapsed, _) = load(&shape, &hub.addr, &tokens).await?;
    let rate = (a.load.devices * a.load.messages * a.load.batch) as f64 / elapsed.as_secs_f64();
    let lat = serde_json::json!({"name": "lat", "pattern": "bench-1/lat", "kind": "threshold", "op": ">", "value": 0});
    // Answered once this hub's engine evaluates with it.
    post(&http, &rule_url, &admin, &lat).await?;
    let mut latencies = latency(&hub.addr, &tokens[0], a.events, &posts).await?;
    hub.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    latencies.sort_by(f64::total_cmp);
    Ok(Sample {
        rate,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
    })
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    admin: &str,
    rule: &serde_json::Value,
) -> anyhow::Result<()> {
    let resp = http
        .post(url)
        .bearer_auth(admin)
        .body(rule.to_string())
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!(
            "adding a rule: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
    Ok(())
}

/// Events received: arrival time by the event's `ts`.
type Posts = Arc<Mutex<HashMap<String, Instant>>>;

/// A minimal local HTTP/1.1 receiver (keep-alive, answers 200) recording when each
/// event arrived.
async fn receiver() -> anyhow::Result<(String, Posts)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let posts: Posts = Arc::default();
    let record = posts.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        let mut chunk = [0u8; 4096];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < end + 4 + len {
                        let mut chunk = [0u8; 4096];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let at = Instant::now();
                    let body: Vec<u8> = buf.drain(..end + 4 + len).skip(end + 4).collect();
                    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
                        && let Some(ts) = v["ts"].as_str()
                    {
                        record.lock().expect("lock").insert(ts.to_owned(), at);
                    }
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                    if sock.write_all(ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok((url, posts))
}

/// Sends `events` readings that each flip the `lat` rule, 50 ms apart; returns each one's
/// send → POST time in ms.
async fn latency(
    addr: &str,
    token: &str,
    events: usize,
    posts: &Posts,
) -> anyhow::Result<Vec<f64>> {
    let mut req = format!("ws://{addr}/v1/ingest").into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    let base = chrono::Utc::now().timestamp_micros() - 600_000_000;
    let mut sent = Vec::with_capacity(events);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    for i in 0..events {
        tick.tick().await;
        let ts = base + i as i64 * 1000;
        let value = if i % 2 == 0 { 1 } else { -1 };
        let msg = format!(
            r#"{{"id":{i},"readings":[{{"sensor":"lat","value":{value},"ts":{:.6}}}]}}"#,
            ts as f64 / 1e6
        );
        let key = telehub_client::domain::Timestamp::from_micros(ts).to_rfc3339();
        sent.push((key, Instant::now()));
        ws.send(Message::Text(msg.into())).await?;
        // The ack (read so the socket never backs up).
        let _ = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while posts.lock().expect("lock").len() < events && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = posts.lock().expect("lock").clone();
    let _ = ws.close(None).await;
    let lat: Vec<f64> = sent
        .iter()
        .filter_map(|(k, at)| Some(got.get(k)?.duration_since(*at).as_secs_f64() * 1000.0))
        .collect();
    if lat.len() < events {
        bail!("only {} of {events} events reached the webhook", lat.len());
    }
    Ok(lat)
}
