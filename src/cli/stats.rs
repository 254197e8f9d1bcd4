//! `telehub stats`: what storage holds — readings (hot and compressed), series, devices,
//! rollups, time extents, disk use and the compactor's lag — as a table or one JSON object. Works while the hub runs.

use super::output::table;
use crate::config::Settings;
use crate::storage::stats::StoreStats;
use crate::storage::{OpenMode, Store};
use clap::{Args, ValueEnum};
use std::io::Write;

#[derive(Args, Debug)]
pub struct StatsArgs {
    #[arg(long, value_enum, default_value = "table")]
    format: StatsFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StatsFormat {
    Table,
    Json,
}

pub async fn run(settings: Settings, args: &StatsArgs) -> anyhow::Result<()> {
    let store = Store::open_with(&settings.database, OpenMode::Existing).await?;
    let now = crate::domain::Timestamp::now();
    let stats = store.stats(settings.storage.compress_after, now).await;
    store.close().await;
    let stats = stats?;
    let mut out = std::io::stdout().lock();
    match args.format {
        StatsFormat::Json => writeln!(out, "{}", serde_json::to_string(&stats)?)?,
        StatsFormat::Table => table(&mut out, &["", "VALUE"], &rows(&stats))?,
    }
    Ok(())
}

fn rows(s: &StoreStats) -> Vec<Vec<String>> {
    let time = |t: Option<crate::domain::Timestamp>| t.map_or("-".into(), |t| t.to_rfc3339());
    let mut rows = vec![
        ("backend", s.backend.to_string()),
        ("readings", s.readings.to_string()),
        ("  hot (a row each)", s.hot_readings.to_string()),
        ("  compressed", s.compressed_readings.to_string()),
        ("compressed blocks", s.compressed_blocks.to_string()),
        (
            "bytes per compressed reading",
            s.bytes_per_compressed_reading
                .map_or("-".into(), |b| format!("{b:.2}")),
        ),
        (
            "compactor lag",
            s.compactor_lag_seconds
                .map_or("off".into(), |l| format!("{l:.0} s")),
        ),
        ("series", s.series.to_string()),
        ("devices", s.devices.to_string()),
        ("minute rollups", s.rollup_minute_rows.to_string()),
        ("hour rollups", s.rollup_hour_rows.to_string()),
        ("rollups complete", s.rollups_complete.to_string()),
        ("oldest reading", time(s.oldest)),
        ("newest reading", time(s.newest)),
        ("oldest rollup", time(s.oldest_rollup)),
        ("disk bytes", s.disk_bytes.to_string()),
    ];
    if let Some(n) = s.readings_partitions {
        rows.insert(2, ("readings partitions", n.to_string()));
    }
    rows.extend(
        s.disk
            .iter()
            .map(|d| ("  ", format!("{} {}", d.bytes, d.name))),
    );
    rows.into_iter()
        .map(|(k, v)| vec![k.to_string(), v])
        .collect()
}
