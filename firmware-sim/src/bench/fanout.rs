//! Fan-out (issue 3, scenario 4): one device → N dashboard subscribers. The device's rate
//! doubles from `--start-rate` until a step fails (not everything delivered, something
//! dropped, or p99 latency ≥ `--p99-ms`), then `--refine` bisection steps narrow it; the
//! best passing step's deliveries/s is the result (a failing step is retried once, so
//! one noisy step does not end the search). The same load, run the same way,
//! measures the peer: a minimal Node `ws` broadcast server (`bench/node-broadcast`, the
//! classic `clients.forEach(c => c.send(msg))`) on the same machine. Runs alternate hub
//! and peer, each with a fresh process.
//!
//! `--burst N` measures memory instead: N readings sent as fast as the devices can, to
//! every subscriber, while the hub's RSS is sampled; it reports the peak (hub only).

use super::hub::{Backend, Common, hub_binary, rss_bytes_of};
use super::live_load::{Devices, LiveHub, Load, Server, Step, Subscribers};
use super::peer::{NodePeer, Servers, Which, check_peer};
use super::stats::{fmt, table};
use anyhow::Context;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct FanoutArgs {
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    #[arg(long, default_value_t = 1)]
    devices: usize,
    /// Readings per device message (the peer relays each message as one frame).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// The first step's rate, readings/s from all devices together.
    #[arg(long, default_value_t = 10.0)]
    start_rate: f64,
    /// Stop doubling here.
    #[arg(long, default_value_t = 1_000_000.0)]
    max_rate: f64,
    /// Bisection steps between the last passing and the first failing rate.
    #[arg(long, default_value_t = 3)]
    refine: usize,
    /// How long each step sends.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    step: Duration,
    /// A step passes only if its p99 latency is under this.
    #[arg(long, default_value_t = 50.0)]
    p99_ms: f64,
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Loopback source addresses the subscribers are spread over.
    #[arg(long, default_value_t = 8)]
    sources: u8,
    /// The hub, and the Node peer beside it.
    #[command(flatten)]
    servers: Servers,
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: Backend,
    /// Instead of the rate search: send this many readings at `--max-rate` and report the
    /// hub's peak RSS while every subscriber receives them (hub only).
    #[arg(long)]
    burst: Option<u64>,
    #[command(flatten)]
    common: Common,
}

pub async fn run(mut a: FanoutArgs) -> anyhow::Result<()> {
    if a.common.smoke {
        (a.subscribers, a.start_rate, a.max_rate, a.refine, a.runs) = (20, 100.0, 200.0, 0, 1);
        a.step = Duration::from_millis(500);
    }
    let bin = hub_binary(a.common.hub_bin.as_deref())?;
    if let Some(n) = a.burst {
        return burst(&a, &bin, if a.common.smoke { n.min(2_000) } else { n }).await;
    }
    let (with_hub, with_peer) = (
        a.servers.which.contains(&Which::Hub),
        a.servers.which.contains(&Which::Peer),
    );
    if with_peer {
        check_peer(&a.servers.script)?;
    }
    eprintln!(
        "fan-out: {} device(s) → {} subscribers, messages of {}, steps of {:?}, pass: all delivered and p99 < {} ms",
        a.devices, a.subscribers, a.batch, a.step, a.p99_ms
    );
    let (mut hub_best, mut peer_best) = (Vec::new(), Vec::new());
    for i in 0..a.runs {
        if with_hub {
            let hub = LiveHub::start(&bin, &a.common, a.backend, a.devices, "fanout").await?;
            eprintln!("run {}: hub", i + 1);
            let best = search(&a, &hub.server, hub.process.pid()).await?;
            hub.stop().await?;
            hub_best.push(best.context("the hub failed even the first step: lower --start-rate")?);
        }
        if with_peer {
            let peer = NodePeer::start(&a.servers.script).await?;
            eprintln!("run {}: peer (Node ws)", i + 1);
            let best = search(&a, &Server::Peer { addr: peer.addr }, peer.pid()).await?;
            drop(peer);
            peer_best
                .push(best.context("the peer failed even the first step: lower --start-rate")?);
        }
    }
    let mut rows = Vec::new();
    if with_hub {
        rows.push(row("telehub", &hub_best));
    }
    if with_peer {
        rows.push(row("Node ws broadcast", &peer_best));
    }
    if with_hub && with_peer {
        let ratios: Vec<f64> = hub_best
            .iter()
            .zip(&peer_best)
            .map(|(h, p)| h.deliveries_per_s / p.deliveries_per_s)
            .collect();
        println!(
            "ratio telehub / Node deliveries/s, per run: {}",
            fmt(&ratios, 2)
        );
    }
    table(
        &[
            "server",
            "device readings/s",
            "deliveries/s",
            "p50 ms",
            "p99 ms",
            "server CPU µs per delivery",
        ],
        &rows,
    );
    if a.common.smoke {
        println!("smoke: ok");
    }
    Ok(())
}

/// `--burst N`: per run, a fresh hub, N readings at `--max-rate`, the peak RSS sampled
/// every 20 ms until every subscriber has them (or 120 s).
async fn burst(a: &FanoutArgs, bin: &std::path::Path, n: u64) -> anyhow::Result<()> {
    eprintln!(
        "fan-out burst: {n} readings in messages of {} → {} subscribers, at up to {:.0}/s",
        a.batch, a.subscribers, a.max_rate
    );
    let mut rows = Vec::new();
    for i in 0..a.runs {
        let hub = LiveHub::start(bin, &a.common, a.backend, a.devices, "fanout-burst").await?;
        let pid = hub.process.pid();
        let mut load = Load {
            devices: Devices::open(&hub.server, a.devices).await?,
            subscribers: Subscribers::open(&hub.server, a.subscribers, a.sources).await?,
            n_subscribers: a.subscribers,
            server_pid: pid,
        };
        load.warm_up().await?;
        let before = rss_bytes_of(pid)?;
        let mut peak = before;
        let duration = Duration::from_secs_f64(n as f64 / a.max_rate);
        let step = load.step(a.max_rate, a.batch, duration, Duration::from_secs(120));
        tokio::pin!(step);
        let step = loop {
            tokio::select! {
                s = &mut step => break s?,
                () = tokio::time::sleep(Duration::from_millis(20)) => {
                    peak = peak.max(rss_bytes_of(pid)?);
                }
            }
        };
        eprintln!("run {}: {step}", i + 1);
        hub.stop().await?;
        let mib = |b: u64| format!("{:.1}", b as f64 / (1024.0 * 1024.0));
        rows.push(vec![
            format!("{}", i + 1),
            format!("{}/{}", step.delivered, step.expected),
            step.lagged.to_string(),
            mib(before),
            mib(peak),
        ]);
    }
    table(
        &[
            "run",
            "delivered",
            "lagged",
            "hub RSS before MiB",
            "hub RSS peak MiB",
        ],
        &rows,
    );
    if a.common.smoke {
        println!("smoke: ok");
    }
    Ok(())
}

fn row(name: &str, best: &[Step]) -> Vec<String> {
    let col = |f: fn(&Step) -> f64| best.iter().map(f).collect::<Vec<_>>();
    vec![
        name.into(),
        fmt(&col(|s| s.sent_rate), 0),
        fmt(&col(|s| s.deliveries_per_s), 0),
        fmt(&col(|s| s.p50_ms), 2),
        fmt(&col(|s| s.p99_ms), 2),
        fmt(
            &col(|s| 1e6 * s.server_cpu_s / s.delivered.max(1) as f64),
            2,
        ),
    ]
}

/// Doubles the rate until a step fails, then bisects; returns the best passing step.
async fn search(a: &FanoutArgs, server: &Server, pid: u32) -> anyhow::Result<Option<Step>> {
    let mut load = Load {
        devices: Devices::open(server, a.devices).await?,
        subscribers: Subscribers::open(server, a.subscribers, a.sources).await?,
        n_subscribers: a.subscribers,
        server_pid: pid,
    };
    load.warm_up().await?;
    let grace = Duration::from_secs(2);
    let mut best: Option<Step> = None;
    let mut failed: Option<f64> = None;
    let mut rate = a.start_rate;
    let mut bisections = 0;
    loop {
        let mut s = load.step(rate, a.batch, a.step, grace).await?;
        if !s.passes(a.p99_ms) {
            // One retry: on a shared machine a single step can fail from noise alone.
            load.subscribers.settle(Duration::from_secs(30)).await?;
            s = load.step(rate, a.batch, a.step, grace).await?;
        }
        let pass = s.passes(a.p99_ms);
        eprintln!(
            "  {rate:>9.0} readings/s: {s} → {}",
            if pass { "pass" } else { "fail" }
        );
        if pass {
            best = Some(s);
        } else {
            failed = Some(rate);
            // Let the server drain what it still holds before the next step.
            load.subscribers.settle(Duration::from_secs(30)).await?;
        }
        let lo = best.as_ref().map_or(0.0, |b| b.target_rate);
        rate = match failed {
            None if rate * 2.0 <= a.max_rate => rate * 2.0,
            None => break,
            Some(_) if bisections >= a.refine || best.is_none() => break,
            Some(hi) => {
                bisections += 1;
                (lo + hi) / 2.0
            }
        };
    }
    Ok(best)
}
