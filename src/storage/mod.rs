//! Durable storage: the device registry, tokens, time series and readings, in SQLite
//! (embedded default) or PostgreSQL, behind one [`Store`] enum.
//!
//! - [`sqlite`] / [`postgres`]: one module per backend, runtime queries only.
//! - [`writer`]: the single writer task that group-commits readings and answers acks.
//! - [`series`]: the writer's cache of series ids and their newest timestamps.

mod postgres;
pub mod series;
mod sqlite;
pub mod writer;

use crate::auth::{DeviceRef, Principal, Role};
use crate::config::DatabaseSettings;
use crate::domain::{DeviceName, SensorName, Timestamp};
use serde::Serialize;
pub use series::{SeriesCache, SeriesKey};

/// Storage failures, phrased for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("device {0} already exists")]
    DeviceExists(String),
    #[error("device {0} does not exist; add it first with `telehub device add {0}`")]
    NoSuchDevice(String),
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

/// Storage, opened on one backend.
#[derive(Clone)]
pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Sqlite($s) => $e,
            Store::Postgres($s) => $e,
        }
    };
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

    pub async fn series_of(&self, device: &DeviceRef) -> Result<Vec<SeriesRow>, StorageError> {
        dispatch!(self, s => s.series_of(device.id).await)
    }

    pub async fn query_points(&self, q: RangeQuery) -> Result<Vec<Point>, StorageError> {
        dispatch!(self, s => s.query_points(q).await)
    }

    /// Buckets of `every_us` microseconds (aligned to the Unix epoch), at most `limit`.
    pub async fn query_buckets(
        &self,
        q: RangeQuery,
        every_us: i64,
        agg: Agg,
    ) -> Result<Vec<Bucket>, StorageError> {
        dispatch!(self, s => s.query_buckets(q, every_us, agg).await)
    }

    /// The writer's transaction: resolves series, inserts rows; returns which rows were new.
    pub(crate) async fn commit_rows(
        &self,
        batch: &mut writer::PreparedBatch,
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
