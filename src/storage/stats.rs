//! What is stored: rows (hot and compressed), series, devices, time extents, disk use
//! and the compactor's lag (`telehub stats`).
//!
//! Owns [`StoreStats`] and the counting statements. Uses the shared queries
//! ([`super::history::queries`]) and each backend's disk usage.

use super::compactor::lag_seconds;
use super::{StorageError, Store};
use crate::config::CompressAfter;
use crate::domain::Timestamp;
use serde::Serialize;

/// A summary of a store's contents.
#[derive(Debug, Clone, Serialize)]
pub struct StoreStats {
    pub backend: &'static str,
    /// Every stored reading: hot rows and compressed.
    pub readings: i64,
    /// PostgreSQL: partitions of `readings`, the DEFAULT one included (absent on SQLite).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readings_partitions: Option<usize>,
    /// Readings stored a row each (`readings`).
    pub hot_readings: i64,
    /// Readings in compressed blocks (`reading_blocks`).
    pub compressed_readings: i64,
    pub compressed_blocks: i64,
    /// The blocks' compressed data per reading they hold (table and index overhead aside:
    /// `disk` has those); null without blocks.
    pub bytes_per_compressed_reading: Option<f64>,
    /// How far behind the compactor is (see [`crate::storage::compactor::lag_seconds`]);
    /// null when `[storage] compress_after` is off.
    pub compactor_lag_seconds: Option<f64>,
    pub series: i64,
    pub devices: i64,
    pub rollup_minute_rows: i64,
    pub rollup_hour_rows: i64,
    /// Whether queries may read the rollups (see `[storage] rollups`).
    pub rollups_complete: bool,
    /// Oldest and newest raw reading.
    pub oldest: Option<Timestamp>,
    pub newest: Option<Timestamp>,
    /// Start of the oldest hour rollup: history reaches this far back once raw data expired.
    pub oldest_rollup: Option<Timestamp>,
    /// Bytes on disk: SQLite's files (database, WAL, shared memory), or PostgreSQL's
    /// `pg_total_relation_size` of telehub's tables.
    pub disk_bytes: u64,
    pub disk: Vec<DiskPart>,
}

/// One file (SQLite) or table (PostgreSQL) and its size.
#[derive(Debug, Clone, Serialize)]
pub struct DiskPart {
    pub name: String,
    pub bytes: u64,
}

/// telehub's tables, for PostgreSQL sizes.
pub(super) const TABLES: [&str; 10] = [
    "readings",
    "reading_blocks",
    "rollup_1m",
    "rollup_1h",
    "series",
    "devices",
    "tokens",
    "gateway_targets",
    "auth_epoch",
    "rollup_state",
];

/// What [`Store::stats`] counts, in the order it reads them.
const COUNTS: [&str; 9] = [
    "SELECT count(*) FROM readings",
    "SELECT count(*) FROM series",
    "SELECT count(*) FROM devices",
    "SELECT count(*) FROM rollup_1m",
    "SELECT count(*) FROM rollup_1h",
    // Per series through the primary key, not a scan of every reading.
    "SELECT min((SELECT min(ts) FROM readings r WHERE r.series_id = s.id)) FROM series s",
    "SELECT max((SELECT max(ts) FROM readings r WHERE r.series_id = s.id)) FROM series s",
    "SELECT min(bucket) FROM rollup_1h",
    // The oldest compressed reading (a series' newest is always a row).
    "SELECT min(start_ts) FROM reading_blocks",
];

impl Store {
    /// Counts rows (a full count of the readings: it takes a moment on large stores);
    /// the compactor's lag as of `now` for `compress_after`.
    pub async fn stats(
        &self,
        compress_after: CompressAfter,
        now: Timestamp,
    ) -> Result<StoreStats, StorageError> {
        let blocks = self.block_stats().await?;
        let lag = match compress_after.cutoff(now) {
            Some(cutoff) => Some(lag_seconds(self.oldest_compressible().await?, cutoff)),
            None => None,
        };
        let disk = dispatch!(self, s => s.disk_usage().await?);
        let (counts, complete) = dispatch!(self, s => {
            (s.scalars(&COUNTS).await?, s.rollups_complete().await?)
        });
        let partitions = self.partitions().await?.map(|p| p.len());
        let n = |i: usize| counts[i].unwrap_or(0);
        let t = |i: usize| counts[i].map(Timestamp::from_micros);
        Ok(StoreStats {
            backend: self.backend(),
            readings: n(0) + blocks.readings,
            readings_partitions: partitions,
            hot_readings: n(0),
            compressed_readings: blocks.readings,
            compressed_blocks: blocks.blocks,
            bytes_per_compressed_reading: (blocks.readings > 0)
                .then(|| blocks.bytes as f64 / blocks.readings as f64),
            compactor_lag_seconds: lag,
            series: n(1),
            devices: n(2),
            rollup_minute_rows: n(3),
            rollup_hour_rows: n(4),
            rollups_complete: complete,
            oldest: match (counts[5], counts[8]) {
                (Some(a), Some(b)) => Some(Timestamp::from_micros(a.min(b))),
                (a, b) => a.or(b).map(Timestamp::from_micros),
            },
            newest: t(6),
            oldest_rollup: t(7),
            disk_bytes: disk.iter().map(|d| d.bytes).sum(),
            disk,
        })
    }
}
