//! `firmware-sim bench`: benchmark scenarios. Each runs the hub as a separate process,
//! repeats the measurement, reports medians with the min–max spread, and measures the
//! ceiling or peer it is compared with in the same run.
//!
//! | module | scenario |
//! |---|---|
//! | [`ingest`] | acked readings/s into SQLite or PostgreSQL vs a raw bulk load of the same rows |
//! | [`connections`] | hub memory per idle device socket |
//! | [`hub`] | starting, measuring and stopping a hub process |
//! | [`stats`] | medians, percentiles, tables |

mod connections;
mod hub;
mod ingest;
mod stats;

#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Acked readings/s (and ack latency) beside a raw bulk load of the same rows.
    Ingest(ingest::IngestArgs),
    /// Hub memory per idle device socket.
    Connections(connections::ConnArgs),
}

pub async fn run(b: BenchCommand) -> anyhow::Result<()> {
    match b {
        BenchCommand::Ingest(a) => ingest::run(a).await,
        BenchCommand::Connections(a) => connections::run(a).await,
    }
}
