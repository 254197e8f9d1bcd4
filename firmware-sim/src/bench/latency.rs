//! Device → dashboard latency (issue 3): D devices send R readings/s in total to a hub
//! process, each reading stamped with the wall clock as it is sent; S dashboard sockets
//! subscribed to everything record when each reading arrives. The hub broadcasts after
//! commit, so the figure includes parsing, the group commit (and its fsync) and fan-out.

use super::hub::{Backend, Common, hub_binary};
use super::live_load::{Devices, LiveHub, Load, Subscribers};
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
    let mut steps = Vec::new();
    for i in 0..a.runs {
        let hub = LiveHub::start(&bin, &a.common, a.backend, a.devices, "latency").await?;
        let mut load = Load {
            devices: Devices::open(&hub.server, a.devices).await?,
            subscribers: Subscribers::open(&hub.server, a.subscribers, 1).await?,
            n_subscribers: a.subscribers,
            server_pid: hub.process.pid(),
        };
        load.warm_up().await?;
        let s = load
            .step(a.rate, a.batch, a.duration, Duration::from_secs(5))
            .await?;
        eprintln!("run {}: {s}", i + 1);
        drop(load);
        hub.stop().await?;
        steps.push(s);
    }
    let col = |f: fn(&super::live_load::Step) -> f64| steps.iter().map(f).collect::<Vec<_>>();
    table(
        &["measure", "median (min–max)"],
        &[
            vec!["readings/s sent".into(), fmt(&col(|s| s.sent_rate), 0)],
            vec![
                "delivered / expected".into(),
                fmt(&col(|s| s.delivered as f64 / s.expected.max(1) as f64), 4),
            ],
            vec!["latency p50 (ms)".into(), fmt(&col(|s| s.p50_ms), 2)],
            vec!["latency p99 (ms)".into(), fmt(&col(|s| s.p99_ms), 2)],
            vec!["latency p99.9 (ms)".into(), fmt(&col(|s| s.p999_ms), 2)],
            vec!["latency max (ms)".into(), fmt(&col(|s| s.max_ms), 1)],
        ],
    );
    if a.common.smoke {
        println!("smoke: ok");
    }
    Ok(())
}
