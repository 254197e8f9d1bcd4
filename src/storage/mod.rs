//! Durable storage: the device registry, tokens, time series and readings, in SQLite
//! (embedded default) or PostgreSQL, behind one [`Store`] enum.
//!
//! - [`sqlite`] / [`postgres`]: one module per backend, runtime queries only.
//! - [`writer`]: the single writer task that group-commits readings and answers acks.
//! - [`series`]: the writer's cache of series ids and their newest timestamps.
//! - [`rollup`]: 1-minute and 1-hour summaries the writer maintains with the readings.
//! - [`pending`]: the open rollup buckets the writer holds back, and their horizons.
//! - [`history`]: bucket queries answered from rollups, M4 downsampling, shared SQL.
//! - [`retention`]: the background task deleting expired history in small batches.
//! - [`stats`]: sizes and extents of what is stored.

/// Runs `$e` with `$s` bound to whichever backend `$self` (a [`Store`]) holds.
macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Sqlite($s) => $e,
            Store::Postgres($s) => $e,
        }
    };
}

pub mod history;
pub mod pending;
mod postgres;
pub mod retention;
pub mod rollup;
pub mod series;
mod sqlite;
pub mod stats;
pub mod writer;

use crate::auth::{DeviceRef, Principal, Role};
use crate::config::DatabaseSettings;
use crate::domain::{DeviceName, SensorName, Timestamp};
use history::{History, Need, SummaryQuery, Table};
use serde::Serialize;
pub use series::{SeriesCache, SeriesKey};

/// Storage failures, phrased for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("device {0} already exists")]
    DeviceExists(String),
    #[error("device {0} does not exist; add it first with `telehub device add {0}`")]
    NoSuchDevice(String),
    /// A device named as a gateway target does not exist (or is revoked).
    #[error("gateway_for: device {0} does not exist; add it first with `telehub device add {0}`")]
    UnknownTarget(String),
    #[error("cannot open database {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("cannot apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// One stored point of a raw query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub ts: Timestamp,
    pub value: f64,
}

/// One bucket of an aggregate query: `ts` is the bucket start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    pub ts: Timestamp,
    pub value: f64,
    pub count: i64,
}

/// Aggregate functions for bucketed queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Agg {
    Avg,
    Min,
    Max,
    Sum,
    Count,
    First,
    Last,
}

impl Agg {
    pub fn parse(s: &str) -> Option<Self> {
        <Self as clap::ValueEnum>::from_str(s, false).ok()
    }
}

/// A device as listed by `device list` and `/v1/devices`.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceRow {
    pub name: String,
    pub created: Timestamp,
    pub revoked: bool,
    pub last_seen: Option<Timestamp>,
    pub sensors: Vec<String>,
    pub gateway_for: Vec<String>,
}

/// A viewer or admin token as listed by `token list` (the secret is never stored).
#[derive(Debug, Clone, Serialize)]
pub struct TokenRow {
    pub label: String,
    pub role: String,
    pub created: Timestamp,
    pub revoked: bool,
}

fn token_row(label: String, role: String, created: i64, revoked: Option<i64>) -> TokenRow {
    TokenRow {
        label,
        role,
        created: Timestamp::from_micros(created),
        revoked: revoked.is_some(),
    }
}

/// A time series: one sensor of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRow {
    pub id: i64,
    pub sensor: SensorName,
    pub unit: Option<String>,
}

/// A row the writer inserts: series id, timestamp, value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowValues {
    pub series: i64,
    pub ts: i64,
    pub value: f64,
}

/// A raw-points query: `[from, to)`, strictly after `after` when paginating.
#[derive(Debug, Clone, Copy)]
pub struct RangeQuery {
    pub series: i64,
    pub from: Timestamp,
    pub to: Timestamp,
    pub after: Option<Timestamp>,
    pub limit: usize,
}

impl RangeQuery {
    /// The first time a page may hold: `from`, or just after the cursor. One lower bound,
    /// so the database seeks straight to it (two let SQLite seek on `from` and filter the
    /// rest, which made each page rescan the pages before it).
    pub fn start_us(&self) -> i64 {
        let from = self.from.as_micros();
        self.after
            .map_or(from, |a| from.max(a.as_micros().saturating_add(1)))
    }
}

/// Storage, opened on one backend.
#[derive(Clone)]
pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

impl Store {
    /// Opens (creating a SQLite file and its folder when missing) and migrates.
    pub async fn open(settings: &DatabaseSettings) -> Result<Self, StorageError> {
        let store = if settings.url.starts_with("sqlite:") {
            Store::Sqlite(sqlite::SqliteStore::open(settings).await?)
        } else {
            Store::Postgres(postgres::PgStore::open(settings).await?)
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Whether this hub's writer is the only one storing readings: a SQLite file is one
    /// process's; the hubs of a cluster share a PostgreSQL database, each with its own
    /// writer. Only a single writer may hold rollup buckets back ([`pending`]): the
    /// horizons in `rollup_state` are one writer's.
    pub fn single_writer(&self) -> bool {
        matches!(self, Store::Sqlite(_))
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    async fn migrate(&self) -> Result<(), StorageError> {
        dispatch!(self, s => s.migrate().await)
    }

    /// A cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> Result<(), StorageError> {
        dispatch!(self, s => s.ping().await)
    }

    pub async fn close(&self) {
        dispatch!(self, s => s.close().await)
    }

    /// Adds a device and returns its new token; `gateway_for` devices must exist.
    pub async fn add_device(
        &self,
        name: &DeviceName,
        gateway_for: &[DeviceName],
    ) -> Result<String, StorageError> {
        dispatch!(self, s => s.add_devices(std::slice::from_ref(name), gateway_for).await)
            .map(|mut v| v.pop().expect("one device").1)
    }

    /// Adds several devices in one transaction; all or none.
    pub async fn add_devices(
        &self,
        names: &[DeviceName],
    ) -> Result<Vec<(DeviceName, String)>, StorageError> {
        dispatch!(self, s => s.add_devices(names, &[]).await)
    }

    pub async fn add_token(&self, label: &str, role: Role) -> Result<String, StorageError> {
        dispatch!(self, s => s.add_token(label, role).await)
    }

    /// Revokes every viewer/admin token labelled `label`; returns how many.
    pub async fn revoke_tokens(&self, label: &str) -> Result<u64, StorageError> {
        dispatch!(self, s => s.revoke_tokens(label).await)
    }

    /// Viewer and admin tokens (never the secrets).
    pub async fn list_tokens(&self) -> Result<Vec<TokenRow>, StorageError> {
        dispatch!(self, s => s.list_tokens().await)
    }

    /// Revokes the unrevoked tokens labelled `label` with `role` — for a device token,
    /// those of `device`, which must exist unrevoked — and issues a fresh one with the
    /// same label. Tokens are stored only as hashes, so this is how a caller that must
    /// hold a token again gets one (`serve --demo` on every start) without piling them up.
    pub async fn reissue_token(
        &self,
        label: &str,
        role: Role,
        device: Option<&DeviceName>,
    ) -> Result<String, StorageError> {
        dispatch!(self, s => s.reissue_token(label, role, device).await)
    }

    /// Whether any unrevoked viewer or admin token exists.
    pub async fn has_viewer_token(&self) -> Result<bool, StorageError> {
        dispatch!(self, s => s.has_viewer_token().await)
    }

    /// Revokes a device and all its tokens; running hubs close its sockets.
    pub async fn revoke_device(&self, name: &DeviceName) -> Result<(), StorageError> {
        dispatch!(self, s => s.revoke_device(name).await)
    }

    pub async fn list_devices(&self) -> Result<Vec<DeviceRow>, StorageError> {
        dispatch!(self, s => s.list_devices().await)
    }

    /// The principal a token hash belongs to, if the token is valid and unrevoked.
    pub async fn authenticate(&self, hash: &[u8; 32]) -> Result<Option<Principal>, StorageError> {
        dispatch!(self, s => s.authenticate(hash).await)
    }

    /// Changes on every revocation.
    pub async fn auth_epoch(&self) -> Result<i64, StorageError> {
        dispatch!(self, s => s.auth_epoch().await)
    }

    /// Which of `token_ids` are revoked (or no longer exist).
    pub async fn revoked_among(&self, token_ids: &[i64]) -> Result<Vec<i64>, StorageError> {
        dispatch!(self, s => s.revoked_among(token_ids).await)
    }

    pub async fn find_device(&self, name: &DeviceName) -> Result<Option<DeviceRef>, StorageError> {
        dispatch!(self, s => s.find_device(name).await)
    }

    /// A device and whether it is revoked (for ingest paths without a token, like MQTT).
    pub async fn device_state(
        &self,
        name: &DeviceName,
    ) -> Result<Option<(DeviceRef, bool)>, StorageError> {
        dispatch!(self, s => s.device_state(name).await)
    }

    pub async fn series_of(&self, device: &DeviceRef) -> Result<Vec<SeriesRow>, StorageError> {
        dispatch!(self, s => s.series_of(device.id).await)
    }

    pub async fn query_points(&self, q: RangeQuery) -> Result<Vec<Point>, StorageError> {
        dispatch!(self, s => s.query_points(q).await)
    }

    /// Buckets of `every_us` microseconds (aligned to the Unix epoch), at most `limit`,
    /// read from the coarsest rollup that answers them exactly (see [`history`]).
    pub async fn query_buckets(
        &self,
        q: RangeQuery,
        every_us: i64,
        agg: Agg,
    ) -> Result<Vec<Bucket>, StorageError> {
        let rows = self.summaries(&q, every_us, agg.need()).await?;
        Ok(rows
            .into_iter()
            .map(|(b, s)| Bucket {
                ts: Timestamp::from_micros(b),
                value: agg.of(&s),
                count: s.n,
            })
            .collect())
    }

    /// At most `max_points` points of `[from, to)` for a chart, by M4: per time column, the
    /// first, minimum, maximum and last reading (real readings, so extremes are kept).
    /// When the range holds no more than `max_points` readings, they are returned as is.
    pub async fn downsample(
        &self,
        q: RangeQuery,
        max_points: usize,
    ) -> Result<Vec<Point>, StorageError> {
        let (from, to) = (q.from.as_micros(), q.to.as_micros());
        let every = history::m4_every(from, to, max_points);
        let q = RangeQuery {
            limit: usize::MAX,
            after: None,
            ..q
        };
        let columns = self.summaries(&q, every, Need::All).await?;
        let total: i64 = columns.iter().map(|(_, s)| s.n).sum();
        if total as usize <= max_points {
            let raw = self
                .query_points(RangeQuery {
                    limit: max_points,
                    ..q
                })
                .await?;
            // Raw data of old ranges may have expired while their rollups remain.
            if raw.len() as i64 == total {
                return Ok(raw);
            }
        }
        Ok(history::m4_points(&columns))
    }

    /// How many readings `[from, to)` of a series holds (from rollups where they answer).
    pub async fn count(&self, q: RangeQuery) -> Result<i64, StorageError> {
        const HOUR: i64 = rollup::Level::Hour.width_us();
        let span = q.to.as_micros() - q.from.as_micros();
        let every = rollup::ceil(span.max(1), HOUR);
        let q = RangeQuery {
            limit: usize::MAX,
            ..q
        };
        let rows = self.summaries(&q, every, Need::Sum).await?;
        Ok(rows.iter().map(|(_, s)| s.n).sum())
    }

    async fn summaries(
        &self,
        q: &RangeQuery,
        every: i64,
        need: Need,
    ) -> Result<Vec<history::BucketSummary>, StorageError> {
        let sq = SummaryQuery {
            series: q.series,
            from: q.from.as_micros(),
            to: q.to.as_micros(),
            every,
            limit: q.limit,
            need,
        };
        Ok(dispatch!(self, s => {
            let h = History(s.reader());
            // A hub's writer keeps the horizons in memory; other processes read them.
            let rollups = match (s.rollups.get(), s.rollups.horizons()) {
                (Some(false), _) => None,
                (Some(true), Some(horizons)) => Some(horizons),
                _ => {
                    let (complete, horizons) = h.rollup_state().await?;
                    s.rollups.set(complete);
                    complete.then_some(horizons)
                }
            };
            h.summaries(&sq, rollups).await?
        }))
    }

    /// Makes the rollups match the setting before the writer starts: with rollups on,
    /// rebuilds them from raw data if they are not complete (after the migration that
    /// added them, or a run with rollups off), or from the horizons on if a writer held
    /// buckets back when it stopped (a crash); with rollups off, marks them incomplete
    /// so queries read raw data.
    pub async fn prepare_rollups(&self, enabled: bool) -> Result<(), StorageError> {
        dispatch!(self, s => {
            let h = History(s.writer());
            let (complete, [minute, hour]) = h.rollup_state().await?;
            match (enabled, complete) {
                (true, false) => {
                    tracing::info!("rebuilding rollups from raw readings (once)…");
                    let started = std::time::Instant::now();
                    h.rebuild_rollups(i64::MIN).await?;
                    tracing::info!(took = ?started.elapsed(), "rollups rebuilt");
                }
                (true, true) if minute.min(hour) != pending::NO_HORIZON => {
                    let from = rollup::floor(minute.min(hour), rollup::Level::Hour.width_us());
                    let since = Timestamp::from_micros(from);
                    tracing::info!(%since, "rebuilding the rollups the writer held back when it stopped");
                    h.rebuild_rollups(from).await?;
                }
                (false, true) => h.abandon_rollups().await?,
                _ => {}
            }
            s.rollups.set(enabled);
            if enabled {
                s.rollups.set_horizons([pending::NO_HORIZON; 2]);
            }
        });
        Ok(())
    }

    /// A series id in one round trip: `None` when the device does not exist, `Some(None)`
    /// when it has no such sensor.
    pub async fn find_series(
        &self,
        device: &DeviceName,
        sensor: &SensorName,
    ) -> Result<Option<Option<i64>>, StorageError> {
        let (d, s) = (device.as_str(), sensor.as_str());
        Ok(dispatch!(self, st => History(st.reader()).find_series(d, s).await)?)
    }

    /// Every series id, for maintenance that walks series one by one.
    pub async fn series_ids(&self) -> Result<Vec<i64>, StorageError> {
        Ok(dispatch!(self, s => History(s.reader()).series_ids().await)?)
    }

    /// Deletes at most `limit` rows of `table` for `series` older than `cutoff` (µs), in
    /// one short statement on the writer's connection; returns how many.
    pub async fn delete_before(
        &self,
        table: Table,
        series: i64,
        cutoff: i64,
        limit: usize,
    ) -> Result<u64, StorageError> {
        Ok(
            dispatch!(self, s => History(s.writer()).delete_before(table, series, cutoff, limit).await)?,
        )
    }

    /// Records that raw readings before `horizon` (µs) are gone.
    pub async fn advance_raw_horizon(&self, horizon: i64) -> Result<(), StorageError> {
        Ok(dispatch!(self, s => History(s.writer()).advance_raw_horizon(horizon).await)?)
    }

    /// The writer's transaction: resolves series, inserts rows, writes the rollups
    /// [`writer::PreparedBatch::stage_rollups`] stages; returns which rows were new.
    pub(crate) async fn commit_rows(
        &self,
        batch: &mut writer::PreparedBatch<'_>,
    ) -> Result<Vec<bool>, StorageError> {
        dispatch!(self, s => s.commit_rows(batch).await)
    }
}

/// Builds [`DeviceRow`]s from the three registry queries every backend runs:
/// devices `(id, name, created, revoked, last_seen)`, series `(device id, sensor)`,
/// and gateway targets `(gateway id, target name)`.
fn assemble_devices(
    devices: Vec<(i64, String, i64, bool, Option<i64>)>,
    sensors: Vec<(i64, String)>,
    targets: Vec<(i64, String)>,
) -> Vec<DeviceRow> {
    let mut by_id: std::collections::HashMap<i64, DeviceRow> = std::collections::HashMap::new();
    let order: Vec<i64> = devices.iter().map(|d| d.0).collect();
    for (id, name, created, revoked, last_seen) in devices {
        by_id.insert(
            id,
            DeviceRow {
                name,
                created: Timestamp::from_micros(created),
                revoked,
                last_seen: last_seen.map(Timestamp::from_micros),
                sensors: Vec::new(),
                gateway_for: Vec::new(),
            },
        );
    }
    for (id, sensor) in sensors {
        if let Some(d) = by_id.get_mut(&id) {
            d.sensors.push(sensor);
        }
    }
    for (id, target) in targets {
        if let Some(d) = by_id.get_mut(&id) {
            d.gateway_for.push(target);
        }
    }
    order
        .into_iter()
        .filter_map(|id| by_id.remove(&id))
        .collect()
}

/// Builds a [`Principal`] from a token row and, for gateways, their target devices.
fn principal(
    token_id: i64,
    role: String,
    device_id: Option<i64>,
    device_name: Option<String>,
    targets: Vec<(i64, String)>,
) -> Option<Principal> {
    match Role::parse(&role)? {
        Role::Viewer => Some(Principal::Viewer { token_id }),
        Role::Admin => Some(Principal::Admin { token_id }),
        Role::Device => {
            let device = DeviceRef {
                id: device_id?,
                name: DeviceName::parse(&device_name?).ok()?,
            };
            let gateway_for = targets
                .into_iter()
                .filter_map(|(id, name)| {
                    let name = DeviceName::parse(&name).ok()?;
                    Some((name.clone(), DeviceRef { id, name }))
                })
                .collect();
            Some(Principal::Device {
                token_id,
                device,
                gateway_for,
            })
        }
    }
}
