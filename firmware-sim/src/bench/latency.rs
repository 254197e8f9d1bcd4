//! Device → dashboard latency (issue 3): D devices send R readings/s in total to a hub
//! process, each reading stamped with the wall clock as it is sent; S dashboard sockets
//! subscribed to everything record when each reading arrives. The hub broadcasts after
//! commit, so the figure includes parsing, the group commit (and its fsync) and fan-out.
//! In the same run, the same load through the Node `ws` relay (no parsing, no storage: one
//! frame in, the same frame out) gives the floor of the two WebSocket hops and the load
//! generator on this machine.

use super::hub::{Backend, Common, hub_binary};
use super::live_load::{Devices, LiveHub, Load, Server, Step, Subscribers};
use super::peer::{NodePeer, Servers, Which, check_peer};
use super::stats::{fmt, table};
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct LatencyArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: Backend,
    #[arg(long, default_value_t = 100)]
    devices: usize,
    /// Readings per second, all devices together.
    #[arg(long, default_value_t = 10_000.0)]
    rate: f64,
    /// Readings per message (one stamp per message).
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// Dashboard sockets subscribed to `*`.
    #[arg(long, default_value_t = 1)]
    subscribers: usize,
    /// How long each run sends.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The hub, and the Node peer beside it.
    #[command(flatten)]
    servers: Servers,
    #[command(flatten)]
    common: Common,
}

pub async fn run(mut a: LatencyArgs) -> anyhow::Result<()> {
    if a.common.smoke {
        (a.devices, a.rate, a.duration, a.runs) = (4, 400.0, Duration::from_millis(500), 1);
    }
    let bin = hub_binary(a.common.hub_bin.as_deref())?;
    eprintln!(
        "latency, {:?}: {} devices, {} readings/s in messages of {}, {} subscriber(s), {:?} × {} runs",
        a.backend, a.devices, a.rate, a.batch, a.subscribers, a.duration, a.runs
    );
    let (with_hub, with_peer) = (
        a.servers.which.contains(&Which::Hub),
        a.servers.which.contains(&Which::Peer),
    );
    if with_peer {
        check_peer(&a.servers.script)?;
    }
    let (mut hub_steps, mut peer_steps) = (Vec::new(), Vec::new());
    for i in 0..a.runs {
        if with_hub {
            let hub = LiveHub::start(&bin, &a.common, a.backend, a.devices, "latency").await?;
            let s = measure(&a, &hub.server, hub.process.pid()).await?;
            eprintln!("run {}, hub: {s}", i + 1);
            hub.stop().await?;
            hub_steps.push(s);
        }
        if with_peer {
            let peer = NodePeer::start(&a.servers.script).await?;
            let s = measure(&a, &Server::Peer { addr: peer.addr }, peer.pid()).await?;
            eprintln!("run {}, peer: {s}", i + 1);
            peer_steps.push(s);
        }
    }
    let mut rows = Vec::new();
    if with_hub {
        rows.push(row("telehub (parse, commit, fan-out)", &hub_steps));
    }
    if with_peer {
        rows.push(row("Node ws relay (floor: the two hops)", &peer_steps));
    }
    table(
        &[
            "server",
            "readings/s sent",
            "delivered",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
        ],
        &rows,
    );
    if a.common.smoke {
        println!("smoke: ok");
    }
    Ok(())
}

async fn measure(a: &LatencyArgs, server: &Server, pid: u32) -> anyhow::Result<Step> {
    let mut load = Load {
        devices: Devices::open(server, a.devices).await?,
        subscribers: Subscribers::open(server, a.subscribers, 1).await?,
        n_subscribers: a.subscribers,
        server_pid: pid,
    };
    load.warm_up().await?;
    load.step(a.rate, a.batch, a.duration, Duration::from_secs(5))
        .await
}

fn row(name: &str, steps: &[Step]) -> Vec<String> {
    let col = |f: fn(&Step) -> f64| steps.iter().map(f).collect::<Vec<_>>();
    vec![
        name.into(),
        fmt(&col(|s| s.sent_rate), 0),
        fmt(&col(|s| s.delivered as f64 / s.expected.max(1) as f64), 4),
        fmt(&col(|s| s.p50_ms), 2),
        fmt(&col(|s| s.p99_ms), 2),
        fmt(&col(|s| s.p999_ms), 2),
        fmt(&col(|s| s.max_ms), 1),
    ]
}
