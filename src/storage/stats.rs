//! What is stored: rows, series, devices, time extents and disk use (`telehub stats`).
//!
//! Owns [`StoreStats`] and the counting statements. Uses the shared queries
//! ([`super::history::queries`]) and each backend's disk usage.

use super::{StorageError, Store};
use crate::domain::Timestamp;
use serde::Serialize;

/// A summary of a store's contents.
#[derive(Debug, Clone, Serialize)]
pub struct StoreStats {
    pub backend: &'static str,
    pub readings: i64,
    /// PostgreSQL: partitions of `readings`, the DEFAULT one included (absent on SQLite).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readings_partitions: Option<usize>,
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
pub(super) const TABLES: [&str; 9] = [
    "readings",
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
const COUNTS: [&str; 8] = [
    "SELECT count(*) FROM readings",
    "SELECT count(*) FROM series",
    "SELECT count(*) FROM devices",
    "SELECT count(*) FROM rollup_1m",
    "SELECT count(*) FROM rollup_1h",
    // Per series through the primary key, not a scan of every reading.
    "SELECT min((SELECT min(ts) FROM readings r WHERE r.series_id = s.id)) FROM series s",
    "SELECT max((SELECT max(ts) FROM readings r WHERE r.series_id = s.id)) FROM series s",
    "SELECT min(bucket) FROM rollup_1h",
];

impl Store {
    /// Counts rows (a full count of the readings: it takes a moment on large stores).
    pub async fn stats(&self) -> Result<StoreStats, StorageError> {
        let disk = dispatch!(self, s => s.disk_usage().await?);
        let (counts, complete) = dispatch!(self, s => {
            (s.scalars(&COUNTS).await?, s.rollups_complete().await?)
        });
        let partitions = self.partitions().await?.map(|p| p.len());
        let n = |i: usize| counts[i].unwrap_or(0);
        let t = |i: usize| counts[i].map(Timestamp::from_micros);
        Ok(StoreStats {
            backend: self.backend(),
            readings: n(0),
            readings_partitions: partitions,
            series: n(1),
            devices: n(2),
            rollup_minute_rows: n(3),
            rollup_hour_rows: n(4),
            rollups_complete: complete,
            oldest: t(5),
            newest: t(6),
            oldest_rollup: t(7),
            disk_bytes: disk.iter().map(|d| d.bytes).sum(),
            disk,
        })
    }
}
