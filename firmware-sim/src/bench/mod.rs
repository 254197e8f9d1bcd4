//! `firmware-sim bench`: benchmark scenarios. Each runs the hub as a separate process,
//! repeats the measurement, reports medians with the min–max spread, and measures the
//! ceiling or peer it is compared with in the same run.
//!
//! | module | scenario |
//! |---|---|
//! | [`ingest`] | acked readings/s into SQLite or PostgreSQL vs a raw bulk load of the same rows |
//! | [`alerts`] | acked readings/s with 0, 100 and 10,000 alert rules side by side; send → webhook POST latency |
//! | [`config`] | desired configuration of 1,000 connected devices → all in sync; `/v1/devices?label=` on 10,000 devices |
//! | [`commands`] | bulk commands to 1,000 devices, create → device latency, ingest beside 1,000 commands/s |
//! | [`connections`] | memory per idle device or dashboard socket, beside a Node `ws` server |
//! | [`latency`] | device → dashboard latency at a steady rate, beside a bare Node `ws` relay |
//! | [`fanout`] | 1 device → N dashboards, deliveries/s vs a Node `ws` broadcast server |
//! | [`reconnect`] | a fleet reconnecting after a hub restart |
//! | [`soak`] | a steady load for half an hour: hub RSS and latency p99 per minute, whether RSS stays flat |
//! | [`line`] | line-protocol points/s beside InfluxDB 1.x; HTTP vs WebSocket JSON batches |
//! | [`query`] | Grafana's panel queries over `/query`, p50/p95 beside InfluxDB 1.x on the same data |
//! | [`influxd`] | the InfluxDB 1.x server it is compared with |
//! | [`live_load`] | paced devices and latency-recording subscribers for the two above |
//! | [`peer`] | the Node `ws` server they are compared with |
//! | [`hub`] | starting, measuring and stopping a hub process |
//! | [`stats`] | medians, percentiles, tables |

mod alerts;
mod commands;
mod config;
mod connections;
mod fanout;
mod hub;
mod influxd;
mod ingest;
mod latency;
mod line;
mod live_load;
mod peer;
mod query;
mod reconnect;
mod soak;
mod stats;

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Acked readings/s (and ack latency) beside a raw bulk load of the same rows.
    Ingest(ingest::IngestArgs),
    /// Memory per idle device or dashboard socket, hub and Node `ws` server in the same run.
    Connections(connections::ConnArgs),
    /// Device → dashboard latency p50/p99 at a steady rate.
    Latency(latency::LatencyArgs),
    /// 1 device → N dashboard subscribers: deliveries/s at p99 < 50 ms, beside a Node `ws` broadcast server.
    Fanout(fanout::FanoutArgs),
    /// Time for a fleet to reconnect and be acked after a hub restart.
    Reconnect(reconnect::ReconnectArgs),
    /// Line-protocol points/s, 10 clients × 5000-line batches, beside InfluxDB 1.x `influxd`.
    Line(line::LineArgs),
    /// Ingest with 0, 100 and 10,000 alert rules side by side; send → webhook POST latency.
    Alerts(alerts::AlertsArgs),
    /// Bulk commands to 1,000 connected devices, create → device latency, ingest beside 1,000 commands/s.
    Commands(commands::CommandsArgs),
    /// Desired configuration of 1,000 connected devices → all in sync; `?label=` on 10,000 devices.
    Config(config::ConfigArgs),
    /// Grafana's panel queries over `/query`: p50/p95 beside InfluxDB 1.x on the same data.
    Query(query::QueryArgs),
    /// A steady load for a long time (default 30 min at 5,000 readings/s, 100 dashboards): RSS and p99 per minute.
    Soak(soak::SoakArgs),
}

pub async fn run(b: BenchCommand) -> anyhow::Result<()> {
    match b {
        BenchCommand::Ingest(a) => ingest::run(a).await,
        BenchCommand::Connections(a) => connections::run(a).await,
        BenchCommand::Latency(a) => latency::run(a).await,
        BenchCommand::Fanout(a) => fanout::run(a).await,
        BenchCommand::Reconnect(a) => reconnect::run(a).await,
        BenchCommand::Line(a) => line::run(a).await,
        BenchCommand::Alerts(a) => alerts::run(a).await,
        BenchCommand::Commands(a) => commands::run(a).await,
        BenchCommand::Config(a) => config::run(a).await,
        BenchCommand::Query(a) => query::run(a).await,
        BenchCommand::Soak(a) => soak::run(a).await,
    }
}
