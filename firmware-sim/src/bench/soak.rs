//! `bench soak` (issue 28, not CI): a steady load held for a long time, to see whether the
//! hub's memory stays flat and its latency steady. D devices send R readings/s in total
//! while S dashboard sockets subscribed to everything record each reading's
//! device → dashboard latency; every period (a minute by default) the hub's RSS and CPU
//! and the period's latency percentiles are printed as one row, and at the end the whole
//! table, an ASCII plot of RSS and p99, and whether RSS stayed flat after warm-up.
//!
//! Each period is one [`Load::step`] of the latency benchmark: devices send for the period,
//! then at most `grace` passes for the last readings to arrive before the next period starts
//! (readings stamped before a period began are not counted in it).

use super::hub::{Backend, Common, hub_binary, rss_bytes_of};
use super::live_load::{Devices, LiveHub, Load, Step, Subscribers};
use super::stats::table;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct SoakArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: Backend,
    /// How many periods to run (a period is a minute unless `--period` says otherwise).
    #[arg(long, default_value_t = 30)]
    minutes: usize,
    /// Length of one measured period (one table row).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    period: Duration,
    /// Readings per second, all devices together.
    #[arg(long, default_value_t = 5_000.0)]
    rate: f64,
    #[arg(long, default_value_t = 100)]
    devices: usize,
    /// Readings per message.
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// Dashboard sockets (live feed, subscribed to `*`).
    #[arg(long, default_value_t = 100)]
    dashboards: usize,
    /// Periods counted as warm-up when judging whether RSS is flat.
    #[arg(long, default_value_t = 5)]
    warm_up: usize,
    /// RSS growth after warm-up (first to last period, relative) still called flat.
    #[arg(long, default_value_t = 0.10)]
    flat_within: f64,
    #[command(flatten)]
    common: Common,
}

/// One period's row.
struct Minute {
    step: Step,
    rss_mib: f64,
}

pub async fn run(mut a: SoakArgs) -> anyhow::Result<()> {
    if a.common.smoke {
        (
            a.minutes,
            a.period,
            a.rate,
            a.devices,
            a.dashboards,
            a.warm_up,
        ) = (3, Duration::from_secs(1), 400.0, 4, 4, 1);
    }
    anyhow::ensure!(a.minutes > 0, "--minutes must be at least 1");
    let bin = hub_binary(a.common.hub_bin.as_deref())?;
    eprintln!(
        "soak, {:?}: {} devices, {} readings/s in messages of {}, {} dashboards, {} × {:?}",
        a.backend, a.devices, a.rate, a.batch, a.dashboards, a.minutes, a.period
    );
    let hub = LiveHub::start(&bin, &a.common, a.backend, a.devices, "soak").await?;
    let pid = hub.process.pid();
    let mut load = Load {
        devices: Devices::open(&hub.server, a.devices).await?,
        subscribers: Subscribers::open(&hub.server, a.dashboards, 1).await?,
        n_subscribers: a.dashboards,
        server_pid: pid,
    };
    load.warm_up().await?;
    let grace = Duration::from_secs(5).min(a.period);
    let mut minutes = Vec::with_capacity(a.minutes);
    for i in 0..a.minutes {
        let step = load.step(a.rate, a.batch, a.period, grace).await?;
        let rss_mib = rss_bytes_of(pid)? as f64 / (1024.0 * 1024.0);
        eprintln!("period {}: RSS {rss_mib:.1} MiB, {step}", i + 1);
        minutes.push(Minute { step, rss_mib });
    }
    hub.stop().await?;
    report(&a, &minutes);
    if a.common.smoke {
        println!("smoke: ok");
    }
    Ok(())
}

fn report(a: &SoakArgs, minutes: &[Minute]) {
    let rows: Vec<Vec<String>> = minutes
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let s = &m.step;
            vec![
                (i + 1).to_string(),
                format!("{:.0}", s.sent_rate),
                format!("{:.4}", s.delivered as f64 / s.expected.max(1) as f64),
                s.lagged.to_string(),
                format!("{:.1}", s.p50_ms),
                format!("{:.1}", s.p99_ms),
                format!("{:.0}", s.max_ms),
                format!("{:.0}", 100.0 * s.server_cpu_s / s.duration.as_secs_f64()),
                format!("{:.1}", m.rss_mib),
            ]
        })
        .collect();
    table(
        &[
            "period",
            "readings/s sent",
            "delivered",
            "lagged",
            "p50 ms",
            "p99 ms",
            "max ms",
            "hub CPU %",
            "hub RSS MiB",
        ],
        &rows,
    );
    println!();
    let rss: Vec<f64> = minutes.iter().map(|m| m.rss_mib).collect();
    let p99: Vec<f64> = minutes.iter().map(|m| m.step.p99_ms).collect();
    println!("```text");
    plot("hub RSS (MiB)", &rss);
    plot("latency p99 (ms)", &p99);
    println!("```");
    println!("{}", flatness(&rss, a.warm_up, a.flat_within));
}

/// One bar per period, scaled from zero to the largest value.
fn plot(title: &str, values: &[f64]) {
    const WIDTH: f64 = 50.0;
    let top = values
        .iter()
        .copied()
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE);
    println!("{title}");
    for (i, v) in values.iter().enumerate() {
        let bar = "#".repeat((v / top * WIDTH).round().max(0.0) as usize);
        println!("{:>4} {bar:<50} {v:.1}", i + 1);
    }
}

/// Says whether RSS grew by more than `within` (relative) from the first period after
/// `warm_up` to the last, and by how much.
fn flatness(rss: &[f64], warm_up: usize, within: f64) -> String {
    let after = &rss[warm_up.min(rss.len().saturating_sub(1))..];
    let (first, last) = (after[0], after[after.len() - 1]);
    let max = after.iter().copied().fold(f64::MIN, f64::max);
    let growth = (last - first) / first.max(f64::MIN_POSITIVE);
    let verdict = if growth <= within { "flat" } else { "NOT flat" };
    format!(
        "RSS after warm-up ({} period(s)): {first:.1} → {last:.1} MiB (max {max:.1}), {:+.1} %: {verdict} (threshold {:.0} %)",
        warm_up,
        100.0 * growth,
        100.0 * within
    )
}

#[cfg(test)]
mod tests {
    use super::flatness;

    #[test]
    fn rss_that_stays_within_the_threshold_after_warm_up_is_flat() {
        let rss = [10.0, 50.0, 60.0, 61.0, 62.0];
        assert!(flatness(&rss, 2, 0.10).ends_with("flat (threshold 10 %)"));
        assert!(!flatness(&rss, 2, 0.10).contains("NOT"));
        assert!(flatness(&[60.0, 61.0, 80.0], 0, 0.10).contains("NOT flat"));
        // More warm-up periods than periods: judged on the last one alone.
        assert!(!flatness(&[5.0, 9.0], 7, 0.10).contains("NOT"));
    }
}
