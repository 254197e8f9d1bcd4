//! Durable storage: the device registry, tokens, time series and readings, in SQLite
//! (embedded default) or PostgreSQL, behind one [`Store`] enum.
//!
//! Owns everything that touches the database. Uses [`crate::domain`], [`crate::auth`]
//! (roles, principals, token hashes), [`crate::config`] (settings) and
//! [`crate::metrics`]; nothing above them.
//!
//! How it is cut (an arrow is "uses"; none points back):
//! - [`Store`] (here): the public API, dispatching to one opened database.
//! - `db`: [`Db`](db::Db), a backend's pools, and `Dialect`, the few things the backends
//!   do differently. `sqlite` / `postgres`: opening, migrations, disk usage and that
//!   dialect, one module per backend; nothing else is written twice. `pg_copy`: binary
//!   `COPY` of fresh readings into PostgreSQL.
//! - The shared SQL layer, generic over the database: `registry` (devices, tokens,
//!   authentication), [`history`] (queries, bucket plans, M4, rollup maintenance),
//!   `commit` (the writer's transaction, top to bottom, over `CommitTx`, the statements
//!   of one transaction), `batch` (a transaction's rows, grouped and checked).
//! - `sqlite_commit` / `pg_commit`: each backend's `CommitTx` and how it runs one —
//!   SQLite whole on a dedicated thread with its own connection, PostgreSQL on the pool;
//!   `sqlite_checkpoint`: SQLite's WAL checkpoints on a thread of their own.
//! - `committer`: the backend choice — the writer's `Committer`, over the two above.
//! - [`writer`]: the single writer task — queue, group commit, acks, publishing what was
//!   stored — on top of `commit`.
//! - [`series`]: the writer's cache of series ids and their newest timestamps.
//! - [`rollup`]: 1-minute and 1-hour summaries the writer maintains with the readings.
//! - `open_buckets`: the open rollup buckets the writer holds back.
//! - `horizons`: how far the rollup tables are complete, and this process's cache of it.
//! - [`retention`]: the background task deleting expired history in small batches.
//! - [`partitions`]: PostgreSQL's time partitions of `readings`: the manager creating
//!   them ahead and emptying the DEFAULT one, and retention's whole-partition drops.
//! - [`blocks`]: compressed cold storage (codec, merged reads, compaction steps);
//!   [`compactor`]: the background task moving old readings into blocks.
//! - [`stats`]: sizes and extents of what is stored.
//! - [`alerts`]: alert rules, states, events and the webhook outbox.
//! - [`alert_acks`]: acknowledgements and silences of alerts.
//! - [`identity`]: a device's tokens, gateway list and metadata over its life.
//! - `labels`: device labels and the devices a selector picks (protocol.md §14).
//! - [`devconfig`]: desired and reported device configurations and their history.
//! - [`commands`]: commands to devices and their conditional state changes (docs/commands.md).
//! - [`backup`]: a consistent, checked copy of a SQLite database while the hub runs.

/// Runs `$e` with `$s` bound to whichever backend `$self` (a [`Store`]) holds.
macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Sqlite($s) => $e,
            Store::Postgres($s) => $e,
        }
    };
}

pub mod alert_acks;
pub mod alerts;
pub mod backup;
mod batch;
pub mod blocks;
pub mod commands;
mod commit;
mod committer;
pub mod compactor;
mod db;
pub mod devconfig;
pub mod devconfig_unsynced;
pub mod history;
mod horizons;
pub mod identity;
mod labels;
mod open_buckets;
pub mod partitions;
mod pg_commit;
mod pg_copy;
mod postgres;
mod registry;
pub mod retention;
pub mod rollup;
pub mod series;
mod sqlite;
mod sqlite_checkpoint;
mod sqlite_commit;
pub mod stats;
pub mod writer;

use crate::auth::{DeviceRef, Principal, Role};
use crate::config::DatabaseSettings;
use crate::domain::{AlertEvent, DeviceName, SensorName, Timestamp, Value};
use alert_acks::{Acked, AckedRow, NewAck, NewSilence, SilenceRow};
use alerts::{AlertRuleRow, AlertStateRow, OutboxItem, Recorded, StateChange};
use commands::{Changed, CommandFilter, CommandRow, NewCommand, OpenBounds, Transition};
use db::Db;
pub use registry::{DeviceFilter, DeviceRow, Latest, TokenRow};
use serde::Serialize;
pub use series::{SeriesCache, SeriesKey};
use sqlx::{Postgres, Sqlite};

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
    #[error("cannot open database {url}: {}", open_reason(cause))]
    /// `cause` is not a `source`: [`open_reason`] already words it, without sqlx's "at line N".
    Open { url: String, cause: sqlx::Error },
    /// [`OpenMode::Existing`] on a SQLite file that is not there.
    #[error("no database at {0} (create it with telehub migrate or serve)")]
    Missing(String),
    #[error("cannot apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query that cannot be answered as asked (an aggregate the series' type lacks).
    #[error("{0}")]
    InvalidQuery(String),
    #[error("an alert rule named {0} already exists; remove it first with `telehub alert rm {0}`")]
    AlertRuleExists(String),
    #[error("no alert rule named {0}")]
    NoSuchAlertRule(String),
    /// `POST /v1/alerts/ack` (or `telehub alert ack`) naming an alert that is not firing.
    #[error(
        "that alert is not firing; `telehub alert status` (or GET /v1/alerts) lists firing alerts"
    )]
    NotFiring,
    #[error("no active silence {0}; `telehub alert silences` (or GET /v1/silences) lists them")]
    NoSuchSilence(i64),
    /// A silence beyond `[alerts] max_silences`.
    #[error(
        "at most {0} active silences (alerts.max_silences); remove some first with `telehub alert unsilence ID`"
    )]
    TooManySilences(usize),
    /// A creation would leave more open commands than `[commands]` allows.
    #[error("too many open commands: {0}")]
    TooManyCommands(String),
    /// `device token revoke --token-id` naming a token the device does not have.
    #[error(
        "device {device} has no token {id}; `telehub device token list {device}` shows its tokens"
    )]
    NoSuchToken { device: String, id: i64 },
    /// `token add` with a name an active token has.
    #[error(
        "a token named {0} exists; pick another name, or revoke it first with `telehub token revoke {0}`"
    )]
    TokenNameTaken(String),
    /// A device named twice in one `gateway_for` list.
    #[error("gateway_for: device {0} is listed twice; list each device once")]
    DuplicateTarget(String),
    /// A write the database refused by one of its rules (a unique name or pair, a
    /// reference, a check) that no check before it caught: the caller's mistake, which
    /// retrying cannot fix (never `unavailable`). Built by `From<sqlx::Error>`.
    #[error(
        "refused: {0}; nothing was changed (check for a name or entry given twice or already stored)"
    )]
    Conflict(String),
    #[error("database error: {0}")]
    Db(sqlx::Error),
    /// A storage thread (SQLite's commit or checkpoint thread) could not be started.
    #[error("cannot start a storage thread: {0}")]
    Thread(std::io::Error),
    /// The storage writer's connection could not be opened, or its thread stopped.
    #[error(
        "the storage writer has no database connection; see the log, fix the cause and restart"
    )]
    WriterUnavailable,
    /// From the SQLite writer's own connection ([`sqlite_commit`]).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A compressed block that cannot be written or read back.
    #[error(transparent)]
    Block(#[from] blocks::CodecError),
}

/// Why a database could not be opened, in the server's own words (without the
/// "at line N" of its source file that sqlx appends), with what to do where we know it.
fn open_reason(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) if d.code().as_deref() == Some("3D000") => format!(
            "{}; create it first (`createdb NAME`, or `CREATE DATABASE name` in psql)",
            d.message()
        ),
        sqlx::Error::Database(d) => d.message().to_owned(),
        other => other.to_string(),
    }
}

impl From<sqlx::Error> for StorageError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(d) if d.kind() != sqlx::error::ErrorKind::Other => {
                Self::Conflict(crate::domain::untrusted(d.message()).to_string())
            }
            _ => Self::Db(e),
        }
    }
}

impl StorageError {
    /// A mistake in what the caller asked for that the database caught (a name given
    /// twice, a rule it refused): exit 2 on the command line, as a usage error.
    pub fn is_usage_error(&self) -> bool {
        matches!(self, Self::DuplicateTarget(_) | Self::Conflict(_))
    }
}

/// One stored point of a raw query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub ts: Timestamp,
    pub value: Value,
}

/// One bucket of an aggregate query: `ts` is the bucket start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    pub ts: Timestamp,
    /// A number, or for `min`/`max`/`first`/`last` of a boolean or string series, a
    /// value of the series' type.
    pub value: Value,
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

/// Whether opening may create the database: only commands that write (`serve`,
/// `migrate`, `device add`, `token add`) create one; read-only commands refuse a SQLite
/// file that is not there rather than leave an empty one (and its folders) behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    Create,
    Existing,
}

/// Storage, opened on one backend.
#[derive(Clone)]
pub enum Store {
    Sqlite(Db<Sqlite>),
    Postgres(Db<Postgres>),
}

impl Store {
    /// Opens (creating a SQLite file and its folder when missing) and migrates.
    pub async fn open(settings: &DatabaseSettings) -> Result<Self, StorageError> {
        Self::open_with(settings, OpenMode::Create).await
    }

    /// Opens and migrates; with [`OpenMode::Existing`], a missing SQLite file is
    /// [`StorageError::Missing`] and nothing is created.
    pub async fn open_with(
        settings: &DatabaseSettings,
        mode: OpenMode,
    ) -> Result<Self, StorageError> {
        let store = if settings.url.starts_with("sqlite:") {
            Store::Sqlite(sqlite::open(settings, mode).await?)
        } else {
            Store::Postgres(postgres::open(settings).await?)
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Whether this hub's writer is the only one storing readings: a SQLite file is one
    /// process's; the hubs of a cluster share a PostgreSQL database, each with its own
    /// writer. Only a single writer may hold rollup buckets back (`open_buckets`): the
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
        self.add_gateway(name, gateway_for, false).await
    }

    /// [`Self::add_device`]; with `create_missing`, `gateway_for` devices that do not
    /// exist are added too (without a token: `device token add` gives them one).
    pub async fn add_gateway(
        &self,
        name: &DeviceName,
        gateway_for: &[DeviceName],
        create_missing: bool,
    ) -> Result<String, StorageError> {
        let one = std::slice::from_ref(name);
        dispatch!(self, s => s.add_devices(one, gateway_for, create_missing).await)
            .map(|mut v| v.pop().expect("one device").1)
    }

    /// Adds several devices in one transaction; all or none.
    pub async fn add_devices(
        &self,
        names: &[DeviceName],
    ) -> Result<Vec<(DeviceName, String)>, StorageError> {
        dispatch!(self, s => s.add_devices(names, &[], false).await)
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

    /// Whether any unrevoked viewer, operator or admin token exists.
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

    /// The devices `filter` selects (revoked ones included), narrowed in SQL.
    pub async fn list_devices_where(
        &self,
        filter: DeviceFilter<'_>,
    ) -> Result<Vec<DeviceRow>, StorageError> {
        dispatch!(self, s => s.list_devices_where(filter).await)
    }

    /// The principal a token hash belongs to, if the token is valid and unrevoked. Its
    /// `last_used` is recorded (to the minute) by a task of its own, off the caller's path.
    pub async fn authenticate(&self, hash: &[u8; 32]) -> Result<Option<Principal>, StorageError> {
        let Some((principal, last_used)) = dispatch!(self, s => s.authenticate(hash).await)? else {
            return Ok(None);
        };
        identity::record_use(self, principal.token_id(), last_used);
        Ok(Some(principal))
    }

    /// Changes on every revocation.
    pub async fn auth_epoch(&self) -> Result<i64, StorageError> {
        dispatch!(self, s => s.auth_epoch().await)
    }

    /// Which of `token_ids` are revoked (or no longer exist), or had their grant changed
    /// at or after `since` (a gateway's list edited).
    pub async fn revoked_among(
        &self,
        token_ids: &[i64],
        since: Timestamp,
    ) -> Result<Vec<i64>, StorageError> {
        dispatch!(self, s => s.revoked_among(token_ids, since).await)
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

    /// Adds rules `(name, spec)`, all or none.
    pub async fn add_alert_rules(&self, rules: &[(String, String)]) -> Result<(), StorageError> {
        dispatch!(self, s => s.add_alert_rules(rules).await)
    }

    pub async fn delete_alert_rule(&self, name: &str) -> Result<(), StorageError> {
        dispatch!(self, s => s.delete_alert_rule(name).await)
    }

    pub async fn alert_rules(&self) -> Result<Vec<AlertRuleRow>, StorageError> {
        dispatch!(self, s => s.alert_rules().await)
    }

    pub async fn alert_rule_count(&self) -> Result<i64, StorageError> {
        dispatch!(self, s => s.alert_rule_count().await)
    }

    pub async fn alert_rules_epoch(&self) -> Result<i64, StorageError> {
        dispatch!(self, s => s.alert_rules_epoch().await)
    }

    pub async fn alert_states(&self) -> Result<Vec<AlertStateRow>, StorageError> {
        dispatch!(self, s => s.alert_states().await)
    }

    /// Events stored in `[from, to)` with an id above `after`, by id, at most `limit`.
    pub async fn alert_events(
        &self,
        from: Timestamp,
        to: Timestamp,
        after: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AlertEvent>, StorageError> {
        dispatch!(self, s => s.alert_events(from, to, after, limit).await)
    }

    /// See [`alert_acks`]: the acknowledgement, its event and outbox rows, in one transaction.
    pub async fn acknowledge_alert(
        &self,
        ack: &NewAck,
        event: impl FnOnce(&AckedRow) -> AlertEvent,
        targets: &[String],
    ) -> Result<Acked, StorageError> {
        dispatch!(self, s => s.acknowledge_alert(ack, event, targets).await)
    }

    pub async fn add_silence(
        &self,
        silence: &NewSilence,
        now: Timestamp,
        max_active: usize,
    ) -> Result<i64, StorageError> {
        dispatch!(self, s => s.add_silence(silence, now, max_active).await)
    }

    pub async fn active_silences(&self, now: Timestamp) -> Result<Vec<SilenceRow>, StorageError> {
        dispatch!(self, s => s.active_silences(now).await)
    }

    pub async fn end_silence(&self, id: i64, now: Timestamp) -> Result<(), StorageError> {
        dispatch!(self, s => s.end_silence(id, now).await)
    }

    pub async fn ended_silences(&self, now: Timestamp) -> Result<Vec<SilenceRow>, StorageError> {
        dispatch!(self, s => s.ended_silences(now).await)
    }

    pub async fn claim_silence_end(&self, id: i64) -> Result<bool, StorageError> {
        dispatch!(self, s => s.claim_silence_end(id).await)
    }

    /// See [`alerts`]: a state change, its event and outbox rows, in one transaction.
    pub async fn record_alert(
        &self,
        change: &StateChange,
        event: Option<&AlertEvent>,
        webhooks: &[String],
    ) -> Result<Recorded, StorageError> {
        dispatch!(self, s => s.record_alert(change, event, webhooks).await)
    }

    pub async fn claim_outbox(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: i64,
    ) -> Result<Vec<OutboxItem>, StorageError> {
        dispatch!(self, s => s.claim_outbox(now, lease_until, limit).await)
    }

    pub async fn outbox_done(&self, id: i64) -> Result<(), StorageError> {
        dispatch!(self, s => s.outbox_done(id).await)
    }

    pub async fn outbox_retry(&self, id: i64, next: Timestamp) -> Result<(), StorageError> {
        dispatch!(self, s => s.outbox_retry(id, next).await)
    }

    pub async fn outbox_pending(&self) -> Result<i64, StorageError> {
        dispatch!(self, s => s.outbox_pending().await)
    }

    pub async fn alert_secret(&self, fresh: &str) -> Result<String, StorageError> {
        dispatch!(self, s => s.alert_secret(fresh).await)
    }

    pub async fn latest_reading_ts(
        &self,
        device: &str,
        sensor: &str,
    ) -> Result<Option<Timestamp>, StorageError> {
        dispatch!(self, s => s.latest_reading_ts(device, sensor).await)
    }

    /// See [`commands`]: creates commands all or none, within `bounds`.
    pub async fn create_commands(
        &self,
        new: &[NewCommand],
        bounds: OpenBounds,
    ) -> Result<Vec<CommandRow>, StorageError> {
        dispatch!(self, s => s.create_commands(new, bounds).await)
    }

    pub async fn command(&self, id: &str) -> Result<Option<CommandRow>, StorageError> {
        dispatch!(self, s => s.command(id).await)
    }

    pub async fn list_commands(&self, f: &CommandFilter) -> Result<Vec<CommandRow>, StorageError> {
        dispatch!(self, s => s.list_commands(f).await)
    }

    pub async fn open_commands(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<CommandRow>, StorageError> {
        dispatch!(self, s => s.open_commands(after, limit).await)
    }

    pub async fn last_command_seq(&self) -> Result<i64, StorageError> {
        dispatch!(self, s => s.last_command_seq().await)
    }

    pub async fn open_command_count(&self) -> Result<i64, StorageError> {
        dispatch!(self, s => s.open_command_count().await)
    }

    /// See [`commands`]: one conditional state change.
    pub async fn change_command(
        &self,
        id: &str,
        t: &Transition,
        now: Timestamp,
    ) -> Result<Changed, StorageError> {
        dispatch!(self, s => s.change_command(id, t, now).await)
    }

    /// See [`commands`]: several conditional state changes in one transaction.
    pub async fn change_commands(
        &self,
        changes: &[(&str, &Transition, Timestamp)],
    ) -> Result<Vec<Changed>, StorageError> {
        dispatch!(self, s => s.change_commands(changes).await)
    }
}
