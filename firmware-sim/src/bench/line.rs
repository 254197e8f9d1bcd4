//! Line-protocol ingest (issue 17): C clients post B-line batches of InfluxDB line
//! protocol, one batch in flight each, to the hub's `/write` (SQLite, each batch answered
//! after its fsynced commit) and to Debian's InfluxDB 1.x ([`super::influxd`], WAL
//! fsynced per write), one after the other in each round, the order alternating from
//! round to round; points/s per server, medians over the rounds, and the ratio of each
//! round. `hub-json` and `hub-ws` send the same points to the hub as protocol.md §2 JSON batches (at
//! most 1000 readings, the hub's per-message limit) over `POST /v1/ingest` and over a
//! WebSocket (one message in flight too), to compare the transports.

use super::hub::{Common, HubProcess, add_devices, hub_binary, settings_env};
use super::influxd::{self, Influxd};
use super::stats::{fmt, table};
use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Barrier;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(clap::Args, Debug)]
pub struct LineArgs {
    /// Concurrent clients (each a device of its own on the hub).
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Lines (points) per request.
    #[arg(long, default_value_t = 5000)]
    batch: usize,
    /// Requests per client.
    #[arg(long, default_value_t = 20)]
    batches: usize,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// What to measure, in round order: hub, influxd, hub-json, hub-ws.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "hub,influxd")]
    servers: Vec<Server>,
    /// The InfluxDB 1.x server binary.
    #[arg(long, default_value = "influxd")]
    influxd: PathBuf,
    /// SQLite `synchronous` level of the hub.
    #[arg(long, default_value = "full")]
    sqlite_synchronous: String,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Server {
    /// Line protocol to the hub's `/write`.
    Hub,
    /// Line protocol to influxd's `/write`.
    Influxd,
    /// protocol.md §2 JSON batches to the hub's `POST /v1/ingest`.
    HubJson,
    /// protocol.md §2 JSON batches over one WebSocket per client.
    HubWs,
}

const SENSORS: usize = 5;
/// The hub's default `ingest.max_readings_per_message`.
const JSON_BATCH: usize = 1000;

impl Server {
    fn label(self) -> &'static str {
        match self {
            Server::Hub => "hub, line protocol (/write)",
            Server::Influxd => "influxd 1.x, line protocol (/write)",
            Server::HubJson => "hub, JSON batches (POST /v1/ingest)",
            Server::HubWs => "hub, JSON batches (WebSocket)",
        }
    }
    fn batch(self, lines: usize) -> usize {
        match self {
            Server::Hub | Server::Influxd => lines,
            Server::HubJson | Server::HubWs => lines.min(JSON_BATCH),
        }
    }
}

pub async fn run(mut a: LineArgs) -> anyhow::Result<()> {
    if a.common.smoke {
        (a.clients, a.batch, a.batches, a.rounds) = (2, 500, 2, 1);
    }
    let hub_bin = hub_binary(a.common.hub_bin.as_deref())?;
    std::fs::create_dir_all(&a.common.dir)?;
    let points = a.clients * a.batch * a.batches;
    eprintln!(
        "line-protocol ingest: {} clients × {} batches × {} points = {points} points per server, {} rounds, servers {:?}",
        a.clients, a.batches, a.batch, a.rounds, a.servers
    );
    let peer = if a.servers.contains(&Server::Influxd) {
        let bin = influxd::binary(&a.influxd)?;
        Some(Influxd::start(&bin, &a.common.dir.join("influxd")).await?)
    } else {
        None
    };
    let result = rounds(&a, &hub_bin, peer.as_ref(), points).await;
    if let Some(p) = peer {
        p.stop().await?;
    }
    let rates = result?;
    let mut rows: Vec<Vec<String>> = a
        .servers
        .iter()
        .enumerate()
        .map(|(s, server)| {
            let col: Vec<f64> = rates.iter().map(|r| r[s]).collect();
            vec![format!("{} points/s", server.label()), fmt(&col, 0)]
        })
        .collect();
    let position = |s: Server| a.servers.iter().position(|x| *x == s);
    let mut pairs: Vec<(usize, usize)> = (1..a.servers.len()).map(|s| (0, s)).collect();
    if let (Some(json), Some(ws)) = (position(Server::HubJson), position(Server::HubWs)) {
        pairs.push((json, ws));
    }
    for (x, y) in pairs {
        let ratio: Vec<f64> = rates.iter().map(|r| r[x] / r[y]).collect();
        rows.push(vec![
            format!("ratio {:?} / {:?} (per round)", a.servers[x], a.servers[y]),
            fmt(&ratio, 2),
        ]);
    }
    table(&["measure", "median (min–max)"], &rows);
    if a.common.smoke {
        println!("smoke: ok ({points} points per server)");
    }
    Ok(())
}

/// Every round measures every server, in an order that alternates between rounds;
/// returns points/s per round, in `a.servers` order.
async fn rounds(
    a: &LineArgs,
    hub_bin: &Path,
    peer: Option<&Influxd>,
    points: usize,
) -> anyhow::Result<Vec<Vec<f64>>> {
    let mut all = Vec::new();
    for r in 0..a.rounds {
        let mut order: Vec<usize> = (0..a.servers.len()).collect();
        if r % 2 == 1 {
            order.reverse();
        }
        let mut rates = vec![0.0; a.servers.len()];
        for s in order {
            let server = a.servers[s];
            let secs = match server {
                Server::Influxd => {
                    let peer = peer.expect("started when listed");
                    let db = format!("bench_{r}");
                    peer.create_database(&db).await?;
                    let url = format!("{}/write?db={db}&precision=u", peer.url);
                    let clients = vec![None; a.clients];
                    post_all(&url, &clients, &bodies(a, server)).await?
                }
                _ => on_hub(a, hub_bin, server, r, points).await?,
            };
            rates[s] = points as f64 / secs;
            eprintln!(
                "round {}: {}: {:.0} points/s",
                r + 1,
                server.label(),
                rates[s]
            );
        }
        all.push(rates);
    }
    Ok(all)
}

/// Starts a fresh hub, loads it, checks it stored every point, stops it; returns seconds.
async fn on_hub(
    a: &LineArgs,
    bin: &Path,
    server: Server,
    round: usize,
    points: usize,
) -> anyhow::Result<f64> {
    let dir = a.common.dir.join(format!("hub-{round}-{server:?}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let db_file = dir.join("hub.db");
    let db = format!("sqlite://{}", db_file.display());
    let tokens = add_devices(bin, &db, a.clients, "line-", &dir).await?;
    let mut env = settings_env(&a.common.settings)?;
    for (k, v) in [
        (
            "TELEHUB_DATABASE__SQLITE_SYNCHRONOUS",
            a.sqlite_synchronous.as_str(),
        ),
        // A client here sends far more than a device's default 2000 readings/s.
        ("TELEHUB_LIMITS__DEVICE_READINGS_PER_SECOND", "1000000000"),
        ("TELEHUB_LIMITS__DEVICE_BURST", "1000000000"),
    ] {
        if !env.iter().any(|(key, _)| key == k) {
            env.push((k.into(), v.into()));
        }
    }
    let hub = HubProcess::start(bin, &db, &env).await?;
    let bodies = bodies(a, server);
    let tokens: Vec<Option<String>> = tokens.into_iter().map(Some).collect();
    let secs = match server {
        Server::Hub => {
            let url = format!("http://{}/write?db=bench&precision=u", hub.addr);
            post_all(&url, &tokens, &bodies).await
        }
        Server::HubJson => {
            post_all(&format!("http://{}/v1/ingest", hub.addr), &tokens, &bodies).await
        }
        _ => over_websockets(&hub.addr, &tokens, &bodies).await,
    };
    hub.stop().await?;
    let secs = secs?;
    let stored = count_rows(&db_file).await?;
    if stored != points {
        bail!("the hub stored {stored} readings of {points}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(secs)
}

/// Client `c`'s request bodies: the same points for every server, in its wire form.
fn bodies(a: &LineArgs, server: Server) -> Vec<Vec<String>> {
    let per_request = server.batch(a.batch);
    let per_client = a.batch * a.batches;
    let base = chrono::Utc::now().timestamp_micros() - 3_600_000_000;
    (0..a.clients)
        .map(|c| {
            let mut out = Vec::new();
            let mut text = String::new();
            for p in 0..per_client {
                // Each sensor's points are 1 ms apart.
                let ts = base + (p / SENSORS) as i64 * 1000;
                let (sensor, value) = (p % SENSORS, p % 1000);
                let json = matches!(server, Server::HubJson | Server::HubWs);
                let first = p % per_request == 0;
                let written = match json {
                    false => writeln!(text, "s{sensor},client=c{c} value={value}.5 {ts}"),
                    true if first => write!(
                        text,
                        r#"{{"readings":[{{"sensor":"s{sensor}","value":{value}.5,"ts":{}}}"#,
                        ts as f64 / 1e6
                    ),
                    true => write!(
                        text,
                        r#",{{"sensor":"s{sensor}","value":{value}.5,"ts":{}}}"#,
                        ts as f64 / 1e6
                    ),
                };
                written.expect("writing to a String");
                if (p + 1) % per_request == 0 || p + 1 == per_client {
                    if json {
                        text.push_str("]}");
                    }
                    out.push(std::mem::take(&mut text));
                }
            }
            out
        })
        .collect()
}

/// Each client posts its bodies one after the other (token: `Authorization: Bearer`);
/// returns the seconds from the common start to the last answer.
async fn post_all(
    url: &str,
    tokens: &[Option<String>],
    bodies: &[Vec<String>],
) -> anyhow::Result<f64> {
    let http = reqwest::Client::new();
    let start = Arc::new(Barrier::new(tokens.len() + 1));
    let mut tasks = Vec::new();
    for (token, bodies) in tokens.iter().zip(bodies.iter().cloned()) {
        let (http, url, token, start) =
            (http.clone(), url.to_owned(), token.clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            for body in bodies {
                let mut req = http.post(&url).body(body);
                if let Some(t) = &token {
                    req = req.header("authorization", format!("Bearer {t}"));
                }
                let resp = req.send().await?;
                if !resp.status().is_success() {
                    bail!("{url}: {} {}", resp.status(), resp.text().await?);
                }
            }
            anyhow::Ok(())
        }));
    }
    timed(&start, tasks).await
}

/// Each client sends its bodies over its own WebSocket, waiting for each ack.
async fn over_websockets(
    addr: &str,
    tokens: &[Option<String>],
    bodies: &[Vec<String>],
) -> anyhow::Result<f64> {
    let start = Arc::new(Barrier::new(tokens.len() + 1));
    let mut tasks = Vec::new();
    for (token, bodies) in tokens.iter().zip(bodies.iter().cloned()) {
        let mut req = format!("ws://{addr}/v1/ingest").into_client_request()?;
        let token = token.as_deref().context("a device token")?;
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            for body in bodies {
                ws.send(Message::Text(body.into())).await?;
                let reply = loop {
                    match ws.next().await.context("the hub closed the socket")?? {
                        Message::Text(t) => break t,
                        _ => continue,
                    }
                };
                if !reply.as_str().starts_with("{\"ack\"") {
                    bail!("refused: {}", reply.as_str());
                }
            }
            let _ = ws.close(None).await;
            anyhow::Ok(())
        }));
    }
    timed(&start, tasks).await
}

/// Readings in the hub's SQLite file (the `sqlite3` shell).
/// Releases the clients waiting on `start` at once; seconds until every task has ended.
async fn timed(
    start: &Barrier,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
) -> anyhow::Result<f64> {
    start.wait().await;
    let started = Instant::now();
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed().as_secs_f64())
}

async fn count_rows(db: &Path) -> anyhow::Result<usize> {
    let out = tokio::process::Command::new("sqlite3")
        .arg(db)
        .arg("SELECT count(*) FROM readings")
        .output()
        .await
        .context("running sqlite3 (apt-get install sqlite3)")?;
    if !out.status.success() {
        bail!("sqlite3: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?.trim().parse()?)
}
