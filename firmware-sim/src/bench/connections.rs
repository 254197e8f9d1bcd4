//! Memory per idle socket: open N sockets (spread over several 127.0.0.x source
//! addresses), let them sit idle, and compare the server's RSS with its RSS before.
//! Device sockets (`/v1/ingest`) or dashboard sockets (`/v1/live`, subscribed to `*`),
//! on the hub and, in the same run, on the minimal Node `ws` server of
//! `bench/node-broadcast` (sockets on `/device` or `/live` that it accepts and holds).
//! Each server is one process, so N is bounded by its open-file limit (`ulimit -n`;
//! 20,000 on the reference machine).

use super::hub::{Common, HubProcess, add_viewer, hub_binary, open_file_limit, settings_env};
use super::hub::{rss_bytes_of, telehub};
use super::peer::{NodePeer, Servers, Which, check_peer};
use super::stats::{fmt, table};
use anyhow::{Context, bail};
use futures_util::SinkExt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(clap::Args, Debug)]
pub struct ConnArgs {
    /// Idle sockets to open (several values: one row each).
    #[arg(long, value_delimiter = ',', default_value = "1000,5000,10000")]
    count: Vec<usize>,
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Distinct 127.0.0.x source addresses to spread sockets over.
    #[arg(long, default_value_t = 8)]
    sources: u8,
    /// Which sockets: device (`/v1/ingest`) or live (`/v1/live`, subscribed to `*`).
    #[arg(long, value_enum, default_value = "device")]
    kind: Kind,
    /// The hub, and the Node peer beside it.
    #[command(flatten)]
    servers: Servers,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Device,
    Live,
}

/// Where to open sockets and what each says once open.
struct Target {
    addr: SocketAddr,
    path: &'static str,
    token: Option<String>,
    /// Sent once after the handshake (a dashboard's subscription).
    hello: Option<&'static str>,
}

const SUBSCRIBE_ALL: &str = r#"{"subscribe":["*"]}"#;

/// One measurement: RSS before (after one warm-up socket) and after N idle sockets.
struct Sample {
    before: u64,
    after: u64,
}

pub async fn run(mut a: ConnArgs) -> anyhow::Result<()> {
    if a.common.smoke {
        (a.count, a.runs) = (vec![200], 1);
    }
    let bin = hub_binary(a.common.hub_bin.as_deref())?;
    let limit = open_file_limit()?;
    if let Some(max) = a.count.iter().max()
        && *max + 100 > limit
    {
        bail!("open-file limit is {limit}: raise it (`ulimit -n 20000`) or lower --count");
    }
    if a.servers.which.contains(&Which::Peer) {
        check_peer(&a.servers.script)?;
    }
    let mut rows = Vec::new();
    for &n in &a.count {
        let mut per_socket: Vec<(Which, Vec<f64>, Vec<f64>)> = a
            .servers
            .which
            .iter()
            .map(|&w| (w, Vec::new(), Vec::new()))
            .collect();
        for i in 0..a.runs {
            for (which, per, total) in &mut per_socket {
                let s = match which {
                    Which::Hub => measure_hub(&a, &bin, n, i).await?,
                    Which::Peer => measure_peer(&a, &a.servers.script, n).await?,
                };
                let bytes = s.after.saturating_sub(s.before) as f64 / n as f64;
                eprintln!(
                    "{} {n} {:?} sockets, run {}: RSS {:.1} → {:.1} MiB, {bytes:.0} B per socket, load {}",
                    name(*which),
                    a.kind,
                    i + 1,
                    mib(s.before),
                    mib(s.after),
                    load_average()
                );
                per.push(bytes);
                total.push(mib(s.after));
            }
        }
        for (which, per, total) in &per_socket {
            rows.push(vec![
                name(*which).to_owned(),
                n.to_string(),
                fmt(per, 0),
                fmt(total, 1),
            ]);
        }
    }
    table(
        &[
            "server",
            &format!("idle {:?} sockets", a.kind).to_lowercase(),
            "RSS per socket, bytes",
            "RSS total, MiB",
        ],
        &rows,
    );
    println!("load average at the end: {}", load_average());
    if a.common.smoke {
        println!("smoke: ok");
    }
    Ok(())
}

fn name(w: Which) -> &'static str {
    match w {
        Which::Hub => "telehub",
        Which::Peer => "Node ws",
    }
}

async fn measure_hub(a: &ConnArgs, bin: &Path, n: usize, run: usize) -> anyhow::Result<Sample> {
    let dir = a.common.dir.join(format!("conn-{run}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let db = format!("sqlite://{}", dir.join("hub.db").display());
    let (path, token, hello) = match a.kind {
        Kind::Device => {
            let out = telehub(bin, &db, &["device", "add", "idle-1"]).await?;
            ("/v1/ingest", out.trim().to_owned(), None)
        }
        Kind::Live => ("/v1/live", add_viewer(bin, &db).await?, Some(SUBSCRIBE_ALL)),
    };
    let hub = HubProcess::start(bin, &db, &settings_env(&a.common.settings)?).await?;
    let target = Target {
        addr: hub.addr.parse()?,
        path,
        token: Some(token),
        hello,
    };
    let sample = measure(&target, hub.pid(), n, a.sources).await?;
    hub.stop().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(sample)
}

async fn measure_peer(a: &ConnArgs, script: &Path, n: usize) -> anyhow::Result<Sample> {
    let peer = NodePeer::start(script).await?;
    let target = match a.kind {
        Kind::Device => Target {
            addr: peer.addr,
            path: "/device",
            token: None,
            hello: None,
        },
        Kind::Live => Target {
            addr: peer.addr,
            path: "/live",
            token: None,
            hello: Some(SUBSCRIBE_ALL),
        },
    };
    let sample = measure(&target, peer.pid(), n, a.sources).await?;
    drop(peer);
    Ok(sample)
}

/// Opens one warm-up socket, reads the RSS of `pid`, opens `n` more, reads it again.
async fn measure(t: &Target, pid: u32, n: usize, sources: u8) -> anyhow::Result<Sample> {
    // One socket first, so one-time allocations are not counted per socket.
    let warm = open(t, Ipv4Addr::LOCALHOST).await?;
    let before = settled_rss(pid).await?;
    let mut socks = Vec::with_capacity(n);
    for k in 0..n {
        let src = Ipv4Addr::new(127, 0, 0, 1 + (k % sources.max(1) as usize) as u8);
        socks.push(open(t, src).await.with_context(|| format!("socket {k}"))?);
    }
    let after = settled_rss(pid).await?;
    drop(socks);
    drop(warm);
    Ok(Sample { before, after })
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// The 1, 5 and 15 minute load averages, from /proc.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn open(t: &Target, src: Ipv4Addr) -> anyhow::Result<Ws> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(src.into(), 0))?;
    let tcp = sock.connect(t.addr).await?;
    let mut req = format!("ws://{}{}", t.addr, t.path).into_client_request()?;
    if let Some(token) = &t.token {
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
    }
    let (mut ws, _) = tokio_tungstenite::client_async(req, tcp).await?;
    if let Some(hello) = t.hello {
        ws.send(Message::text(hello)).await?;
    }
    Ok(ws)
}

/// RSS once it stops changing (allocator and kernel settle after a burst).
async fn settled_rss(pid: u32) -> anyhow::Result<u64> {
    let mut last = rss_bytes_of(pid)?;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = rss_bytes_of(pid)?;
        if now.abs_diff(last) < 64 * 1024 {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}
