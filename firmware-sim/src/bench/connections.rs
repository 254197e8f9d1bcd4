//! Hub memory per idle device socket: open N authenticated device sockets (spread over
//! several 127.0.0.x source addresses), let them sit idle, and compare the hub's RSS
//! with its RSS before. The hub is one process, so N is bounded by its open-file limit
//! (`ulimit -n`; 20,000 on the reference machine).

use super::hub::{Common, HubProcess, hub_binary, open_file_limit, settings_env, telehub};
use super::stats::{fmt, table};
use anyhow::{Context, bail};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
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
    #[command(flatten)]
    common: Common,
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
    let mut rows = Vec::new();
    for &n in &a.count {
        let mut per_socket = Vec::new();
        let mut total_mib = Vec::new();
        for i in 0..a.runs {
            let dir = a.common.dir.join(format!("conn-{i}"));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            let db = format!("sqlite://{}", dir.join("hub.db").display());
            let token = telehub(&bin, &db, &["device", "add", "idle-1"])
                .await?
                .trim()
                .to_owned();
            let hub = HubProcess::start(&bin, &db, &settings_env(&a.common.settings)?).await?;
            let addr: SocketAddr = hub.addr.parse()?;
            // One socket first, so one-time allocations are not counted per socket.
            let warm = open(addr, Ipv4Addr::LOCALHOST, &token).await?;
            let before = settled_rss(&hub).await?;
            let mut socks = Vec::with_capacity(n);
            for k in 0..n {
                let src = Ipv4Addr::new(127, 0, 0, 1 + (k % a.sources as usize) as u8);
                socks.push(
                    open(addr, src, &token)
                        .await
                        .with_context(|| format!("socket {k}"))?,
                );
            }
            let after = settled_rss(&hub).await?;
            let per = (after.saturating_sub(before)) as f64 / n as f64;
            eprintln!(
                "{n} sockets, run {}: RSS {:.1} → {:.1} MiB, {:.0} B per socket",
                i + 1,
                mib(before),
                mib(after),
                per
            );
            per_socket.push(per);
            total_mib.push(mib(after));
            drop(socks);
            drop(warm);
            hub.stop().await?;
            let _ = std::fs::remove_dir_all(&dir);
        }
        rows.push(vec![n.to_string(), fmt(&per_socket, 0), fmt(&total_mib, 1)]);
    }
    table(
        &[
            "idle sockets",
            "hub RSS per socket, bytes",
            "hub RSS total, MiB",
        ],
        &rows,
    );
    if a.common.smoke {
        println!("smoke: ok");
    }
    Ok(())
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn open(addr: SocketAddr, src: Ipv4Addr, token: &str) -> anyhow::Result<Ws> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(src.into(), 0))?;
    let tcp = sock.connect(addr).await?;
    let mut req = format!("ws://{addr}/v1/ingest").into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (ws, _) = tokio_tungstenite::client_async(req, tcp).await?;
    Ok(ws)
}

/// RSS once it stops changing (allocator and kernel settle after a burst).
async fn settled_rss(hub: &HubProcess) -> anyhow::Result<u64> {
    let mut last = hub.rss_bytes()?;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = hub.rss_bytes()?;
        if now.abs_diff(last) < 64 * 1024 {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}
