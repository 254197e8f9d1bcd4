//! `[database]`, `[writer]`, `[storage]` and `[retention]`: where readings are stored,
//! how the writer batches them, and how long history is kept.

use super::SettingError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` or `postgres://user@host/db`. PostgreSQL URLs take libpq's TLS
    /// parameters: `sslmode` (`disable`, `prefer` (default; `disable` for a loopback
    /// host), `require`, `verify-ca`, `verify-full`), `sslrootcert` (PEM CA file; default: the system's CA store),
    /// `sslcert`/`sslkey` (client certificate).
    pub url: String,
    /// SQLite `synchronous` level: `full` (acked readings survive power loss) or
    /// `normal` (they survive a crash of the hub process, not of the machine).
    pub sqlite_synchronous: SqliteSync,
    /// Connections in the read pool (queries, HTTP history).
    pub max_connections: u32,
    /// How long a statement waits for a lock or a connection before failing.
    #[serde(with = "humantime_serde")]
    pub busy_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    Full,
    Normal,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriterSettings {
    /// Messages waiting for the storage writer at most; when full, device sockets stop being read.
    pub queue_capacity: usize,
    /// Rows committed in one transaction at most. Batches only grow when messages queue
    /// during a commit (saturation); then fewer, larger commits rewrite each index page
    /// less often (measured: 50,000 over 10,000 gave 1.3–1.6× ingest on both backends, BENCHMARKS.md).
    pub max_batch_rows: usize,
    /// How long the writer waits for more messages after the first before committing.
    /// 0 (default): commit at once; whatever queues during a commit forms the next batch,
    /// so batches still grow under load and an idle hub adds no wait to a reading's path.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// Back-off after a failed commit before the writer tries storage again.
    #[serde(with = "humantime_serde")]
    pub retry_backoff: Duration,
    /// SQLite: how often the WAL is checkpointed (copied into the database file) from a
    /// connection of its own, off the commit path. 0: SQLite checkpoints inside a
    /// commit every 1,000 pages, as it does by default (a latency spike each time).
    #[serde(with = "humantime_serde")]
    pub checkpoint_interval: Duration,
    /// PostgreSQL: new readings from which a transaction loads them with binary `COPY`
    /// instead of one `INSERT … SELECT FROM UNNEST` (a `COPY` costs two more round trips;
    /// below this, the insert rides in the same statement as the rollups and `last_seen`).
    /// Ignored by SQLite.
    pub copy_min_rows: usize,
    /// Set from `[limits] max_series_per_device` when the hub starts (not a `[writer]` key).
    #[serde(skip)]
    pub max_series_per_device: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSettings {
    /// Maintain 1-minute and 1-hour rollups as readings arrive (bucket queries then read
    /// them). Off: queries read raw data, and the hub rebuilds the rollups when it next
    /// starts with them on.
    pub rollups: bool,
    /// PostgreSQL: the time span of one partition of `readings` (docs/storage.md,
    /// "Partitions"), a whole number of hours from 1 h to 366 days; partitions start at
    /// multiples of it since the Unix epoch (UTC midnight for whole days). Changing it
    /// applies to partitions created afterwards. Ignored by SQLite.
    #[serde(with = "humantime_serde")]
    pub partition_interval: Duration,
    /// PostgreSQL: partitions kept ready after the current one (1 to 64), besides the
    /// current and the previous one.
    pub partitions_ahead: u32,
    /// PostgreSQL: how often the partition manager runs (it also runs at start): creates
    /// the partitions ahead and moves readings out of the DEFAULT partition.
    #[serde(with = "humantime_serde")]
    pub partition_check_interval: Duration,
    /// PostgreSQL: how long creating, attaching or dropping a partition waits for its
    /// lock on `readings` before giving up until the next pass (so it never queues
    /// ingest behind a long query).
    #[serde(with = "humantime_serde")]
    pub partition_lock_timeout: Duration,
    /// Readings older than this are moved into compressed blocks (docs/storage.md
    /// "Compressed blocks"), a day of one series at a time once the whole UTC day is
    /// older; `"off"`: every reading stays a row of its own.
    pub compress_after: CompressAfter,
    /// Readings in one compressed block (a day of a series is cut into about equal
    /// blocks of about this many, each ending at a minute's end, so a block may hold up
    /// to a minute's readings more).
    pub block_rows: usize,
    /// How often a compaction pass starts.
    #[serde(with = "humantime_serde")]
    pub compress_interval: Duration,
    /// Pause after each block (one short transaction), so the writer is never held up for long.
    #[serde(with = "humantime_serde")]
    pub compress_pause: Duration,
}

/// When readings are compressed: after a duration, or never (`"off"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressAfter {
    After(Duration),
    Off,
}

impl CompressAfter {
    /// The newest time (µs) a compressed reading may have at `now`, if compression is on.
    pub fn cutoff(self, now: crate::domain::Timestamp) -> Option<i64> {
        match self {
            CompressAfter::Off => None,
            CompressAfter::After(d) => Some(now.saturating_sub(d).as_micros()),
        }
    }
}

impl Serialize for CompressAfter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            CompressAfter::Off => s.serialize_str("off"),
            CompressAfter::After(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for CompressAfter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim() == "off" {
            return Ok(CompressAfter::Off);
        }
        crate::domain::parse_duration(&s)
            .map(CompressAfter::After)
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "{s:?} is not a storage.compress_after: use e.g. \"1d\", \"12h\" or \"off\""
                ))
            })
    }
}

/// How long each kind of history is kept; a background task deletes what is older.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Raw readings, e.g. "30d", or "forever".
    pub raw: Keep,
    /// 1-minute rollups; at least as long as `raw`.
    pub minute: Keep,
    /// 1-hour rollups; at least as long as `minute`.
    pub hour: Keep,
    /// How often a retention pass starts.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Rows one DELETE removes at most (one short transaction).
    pub batch_rows: usize,
    /// Pause between two DELETEs, so the writer is never held up for long.
    #[serde(with = "humantime_serde")]
    pub pause: Duration,
    /// Set from `[storage] partition_lock_timeout` when the hub starts (not a
    /// `[retention]` key): how long dropping an expired partition waits for its lock.
    #[serde(skip)]
    pub partition_lock_timeout: Duration,
}

/// A retention period: a duration, or `"forever"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Keep {
    For(Duration),
    Forever,
}

impl Keep {
    /// The oldest time still kept at `now`, rounded down to a whole hour so that raw data
    /// and minute rollups are always deleted in whole rollup buckets.
    pub fn cutoff(self, now: crate::domain::Timestamp) -> Option<i64> {
        const HOUR: i64 = 3_600_000_000;
        match self {
            Keep::Forever => None,
            Keep::For(d) => Some(now.saturating_sub(d).as_micros().div_euclid(HOUR) * HOUR),
        }
    }
}

impl Serialize for Keep {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Keep::Forever => s.serialize_str("forever"),
            Keep::For(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Keep {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim() == "forever" {
            return Ok(Keep::Forever);
        }
        crate::domain::parse_duration(&s)
            .map(Keep::For)
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "{s:?} is not a retention period: use e.g. \"30d\", \"1y\" or \"forever\""
                ))
            })
    }
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            rollups: true,
            partition_interval: Duration::from_secs(86_400),
            partitions_ahead: 3,
            partition_check_interval: Duration::from_secs(3600),
            partition_lock_timeout: Duration::from_secs(2),
            compress_after: CompressAfter::After(Duration::from_secs(86_400)),
            block_rows: 4096,
            compress_interval: Duration::from_secs(600),
            compress_pause: Duration::from_millis(20),
        }
    }
}

impl Default for RetentionSettings {
    fn default() -> Self {
        let days = |d: u64| Keep::For(Duration::from_secs(d * 86_400));
        Self {
            raw: days(30),
            minute: Keep::For(humantime::parse_duration("1y").expect("valid")), // 365.25 days
            hour: Keep::Forever,
            interval: Duration::from_secs(3600),
            batch_rows: 5_000,
            pause: Duration::from_millis(20),
            partition_lock_timeout: StorageSettings::default().partition_lock_timeout,
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://telehub-data/telehub.db".into(),
            sqlite_synchronous: SqliteSync::Full,
            max_connections: 4,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

impl Default for WriterSettings {
    fn default() -> Self {
        Self {
            queue_capacity: 4096,
            max_batch_rows: 50_000,
            linger: Duration::ZERO,
            retry_backoff: Duration::from_millis(500),
            checkpoint_interval: Duration::from_secs(1),
            copy_min_rows: 1_000,
            max_series_per_device: 1_000,
        }
    }
}

impl DatabaseSettings {
    pub fn validate(&self) -> Result<(), SettingError> {
        let u = &self.url;
        if u.starts_with("sqlite:")
            || u.starts_with("postgres://")
            || u.starts_with("postgresql://")
        {
            Ok(())
        } else {
            Err(SettingError::Rule(
                "database.url must start with sqlite:// or postgres://",
            ))
        }
    }
}

impl WriterSettings {
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.queue_capacity == 0 || self.max_batch_rows == 0 {
            return Err(SettingError::Rule(
                "writer.queue_capacity and writer.max_batch_rows must be ≥ 1",
            ));
        }
        Ok(())
    }
}

impl StorageSettings {
    pub fn validate(&self) -> Result<(), SettingError> {
        let hours = self.partition_interval.as_secs() / 3600;
        if self.partition_interval != Duration::from_secs(hours * 3600)
            || !(1..=366 * 24).contains(&hours)
        {
            return Err(SettingError::Rule(
                "storage.partition_interval must be a whole number of hours from 1h to 366d (e.g. \"1d\", \"6h\", \"7d\")",
            ));
        }
        if !(1..=64).contains(&self.partitions_ahead) {
            return Err(SettingError::Rule(
                "storage.partitions_ahead must be from 1 to 64",
            ));
        }
        if self.partition_check_interval.is_zero() || self.partition_lock_timeout.is_zero() {
            return Err(SettingError::Rule(
                "storage.partition_check_interval and storage.partition_lock_timeout must be > 0",
            ));
        }
        if !(16..=65_536).contains(&self.block_rows) || self.compress_interval.is_zero() {
            return Err(SettingError::Rule(
                "storage.block_rows must be 16 to 65536 and storage.compress_interval > 0",
            ));
        }
        Ok(())
    }
}

impl RetentionSettings {
    pub fn validate(&self) -> Result<(), SettingError> {
        if !(self.raw <= self.minute && self.minute <= self.hour) {
            return Err(SettingError::Rule(
                "retention: rollups must be kept at least as long as what they summarise (raw ≤ minute ≤ hour)",
            ));
        }
        if self.batch_rows == 0 || self.interval.is_zero() {
            return Err(SettingError::Rule(
                "retention.batch_rows and retention.interval must be > 0",
            ));
        }
        Ok(())
    }
}
