//! The registry: devices, gateway targets, tokens and authentication, in SQL shared by
//! both backends.
//!
//! Owns [`DeviceRow`] and [`TokenRow`] and every statement on `devices`,
//! `gateway_targets`, `tokens` and `auth_epoch`. Uses [`super::db`] (the pools and the
//! id-list [`Dialect`] difference), [`crate::auth`] for roles, principals and token
//! hashes, and [`crate::domain`].

use super::StorageError;
use super::db::{Db, Dialect, RowsAffected};
use crate::auth::{self, DeviceRef, Principal, Role};
use crate::domain::{DeviceName, Labels, Location, Text, Timestamp, Value, ValueKind};
use serde::Serialize;
use sqlx::{AssertSqlSafe, ColumnIndex, Decode, Encode, Executor, Type};

/// A device as listed by `device list` and `/v1/devices`.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceRow {
    pub name: String,
    pub created: Timestamp,
    pub revoked: bool,
    pub last_seen: Option<Timestamp>,
    pub sensors: Vec<String>,
    pub gateway_for: Vec<String>,
    pub description: Option<String>,
    pub location: Option<Location>,
    pub labels: Labels,
    /// Whether it applied its desired configuration (protocol.md §14); `None`: it has none.
    pub in_sync: Option<bool>,
    /// Each sensor's newest stored reading, however old (docs/http-api.md).
    pub latest: std::collections::BTreeMap<String, Latest>,
}

/// A series' newest stored reading. Its value type is the stored value's, in this one place.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latest {
    pub ts: Timestamp,
    pub value: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// Which devices [`Db::list_devices_where`] reads.
#[derive(Debug, Clone, Copy)]
pub enum DeviceFilter<'a> {
    All,
    /// One device, by name.
    Named(&'a DeviceName),
    /// The devices carrying every one of these labels (none: every device).
    Labelled(&'a Labels),
}

impl DeviceFilter<'_> {
    /// A subquery of the device ids to read, on `$1` (and `$2`), or none for all.
    pub(super) fn subquery(&self) -> Option<&'static str> {
        match self {
            DeviceFilter::All => None,
            DeviceFilter::Named(_) => Some("(SELECT id FROM devices WHERE name = $1)"),
            DeviceFilter::Labelled(l) if l.iter().next().is_none() => None,
            // The first pair narrows through the (key, value) index; `admits` checks the rest.
            DeviceFilter::Labelled(_) => {
                Some("(SELECT device_id FROM device_labels WHERE key = $1 AND value = $2)")
            }
        }
    }

    /// Binds the subquery's parameters.
    pub(super) fn bind<'q, DB, O>(
        &self,
        query: sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments>,
    ) -> sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments>
    where
        DB: sqlx::Database,
        &'q str: Encode<'q, DB> + Type<DB>,
        Self: 'q,
    {
        match *self {
            DeviceFilter::All => query,
            DeviceFilter::Named(name) => query.bind(name.as_str()),
            DeviceFilter::Labelled(labels) => match labels.iter().next() {
                Some((k, v)) => query.bind(k.as_str()).bind(v.as_str()),
                None => query,
            },
        }
    }

    /// Whether a row read under the subquery belongs in the answer.
    fn admits(&self, row: &DeviceRow) -> bool {
        match self {
            DeviceFilter::All => true,
            DeviceFilter::Named(name) => row.name == name.as_str(),
            DeviceFilter::Labelled(labels) => row.labels.has_all(labels),
        }
    }
}

/// A series and its newest reading (none yet, or its raw readings expired): `(device id,
/// sensor, unit, ts, stored value, kind, text of a string value)`.
type SeriesColumns = (
    i64,
    String,
    Option<String>,
    Option<i64>,
    Option<f64>,
    String,
    Option<String>,
);

/// Every series with its newest raw reading, in one statement (the correlated `max(ts)`
/// is one index lookup per series on the `(series_id, ts)` key).
/// A string series stores its values as ids of `text_values`: the text comes along.
const SERIES_LATEST: &str = "SELECT s.device_id, s.sensor, s.unit, r.ts, r.value, s.kind, t.text
     FROM series s
     LEFT JOIN readings r ON r.series_id = s.id
      AND r.ts = (SELECT max(ts) FROM readings WHERE series_id = s.id)
     LEFT JOIN text_values t ON s.kind = 'string' AND t.id = CAST(r.value AS BIGINT)
     {narrow} ORDER BY s.sensor";

/// A viewer, operator or admin token as listed by `token list` (the secret is never stored).
#[derive(Debug, Clone, Serialize)]
pub struct TokenRow {
    pub label: String,
    pub role: String,
    pub created: Timestamp,
    pub revoked: bool,
    /// When it last authenticated a request or socket (to the minute), if ever.
    pub last_used: Option<Timestamp>,
}

/// A `tokens` row as `token list` reads it: label, role, created, revoked, last used.
type TokenColumns = (String, String, i64, Option<i64>, Option<i64>);

/// A token row as authentication reads it: token id, role, device id and name (for a
/// device token), last used.
type AuthColumns = (i64, String, Option<i64>, Option<String>, Option<i64>);

/// `SELECT` of a device's id by name; `$1` the name.
const DEVICE_ID: &str = "SELECT id FROM devices WHERE name = $1";
/// The same, for devices not revoked.
pub(super) const LIVE_DEVICE_ID: &str =
    "SELECT id FROM devices WHERE name = $1 AND revoked_us IS NULL";
pub(super) const BUMP_AUTH_EPOCH: &str = "UPDATE auth_epoch SET epoch = epoch + 1";

impl<DB> Db<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> i64: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> Option<i64>: Encode<'r, DB>,
    for<'r> &'r str: Encode<'r, DB> + Type<DB>,
    for<'r> &'r [u8]: Encode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> f64: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// A cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    /// Adds devices (each with a token) in one transaction; all or none. Each may
    /// publish for `gateway_for`, which must exist unrevoked.
    /// With `create_missing`, a `gateway_for` device that does not exist is added too
    /// (without a token: `device token add` gives it one); a revoked one is still refused.
    pub async fn add_devices(
        &self,
        names: &[DeviceName],
        gateway_for: &[DeviceName],
        create_missing: bool,
    ) -> Result<Vec<(DeviceName, String)>, StorageError> {
        let now = Timestamp::now().as_micros();
        let mut tx = self.begin_write().await?;
        if let Some(twice) = gateway_for
            .iter()
            .enumerate()
            .find_map(|(i, t)| gateway_for[..i].contains(t).then_some(t))
        {
            return Err(StorageError::DuplicateTarget(twice.to_string()));
        }
        let mut targets = Vec::new();
        for t in gateway_for {
            let row: Option<(i64, Option<i64>)> =
                sqlx::query_as("SELECT id, revoked_us FROM devices WHERE name = $1")
                    .bind(t.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            let id = match row {
                Some((id, None)) => id,
                None if create_missing => {
                    sqlx::query_scalar(
                        "INSERT INTO devices (name, created_us) VALUES ($1, $2) RETURNING id",
                    )
                    .bind(t.as_str())
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?
                }
                _ => return Err(StorageError::UnknownTarget(t.to_string())),
            };
            if !targets.contains(&id) {
                targets.push(id);
            }
        }
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO devices (name, created_us) VALUES ($1, $2) RETURNING id",
            )
            .bind(name.as_str())
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| unique_violation(e, name))?;
            for t in &targets {
                sqlx::query("INSERT INTO gateway_targets (gateway_id, device_id) VALUES ($1, $2)")
                    .bind(id)
                    .bind(*t)
                    .execute(&mut *tx)
                    .await?;
            }
            let token =
                Self::insert_token(&mut tx, Role::Device, Some(id), name.as_str(), now).await?;
            out.push((name.clone(), token));
        }
        tx.commit().await?;
        Ok(out)
    }

    pub async fn add_token(&self, label: &str, role: Role) -> Result<String, StorageError> {
        let mut tx = self.begin_write().await?;
        let now = Timestamp::now().as_micros();
        let token = match Self::insert_token(&mut tx, role, None, label, now).await {
            // The one rule an insert of a fresh random hash can break: an active token
            // has this name (`tokens_active_label`).
            Err(StorageError::Conflict(_)) => {
                return Err(StorageError::TokenNameTaken(label.to_owned()));
            }
            other => other?,
        };
        tx.commit().await?;
        Ok(token)
    }

    /// Revokes every viewer/operator/admin token labelled `label`; returns how many.
    pub async fn revoke_tokens(&self, label: &str) -> Result<u64, StorageError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE tokens SET revoked_us = $1
             WHERE label = $2 AND role IN ('viewer','operator','admin') AND revoked_us IS NULL",
        )
        .bind(Timestamp::now().as_micros())
        .bind(label)
        .execute(&mut *tx)
        .await?;
        sqlx::query(BUMP_AUTH_EPOCH).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows())
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenRow>, StorageError> {
        let rows: Vec<TokenColumns> = sqlx::query_as(
            "SELECT label, role, created_us, revoked_us, last_used_us FROM tokens
             WHERE role IN ('viewer','operator','admin') ORDER BY label, id",
        )
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(label, role, created, revoked, last_used)| TokenRow {
                label,
                role,
                created: Timestamp::from_micros(created),
                revoked: revoked.is_some(),
                last_used: last_used.map(Timestamp::from_micros),
            })
            .collect())
    }

    /// See [`super::Store::reissue_token`].
    pub async fn reissue_token(
        &self,
        label: &str,
        role: Role,
        device: Option<&DeviceName>,
    ) -> Result<String, StorageError> {
        let now = Timestamp::now().as_micros();
        let mut tx = self.begin_write().await?;
        let device_id = match device {
            Some(d) => Some(
                sqlx::query_scalar::<_, i64>(LIVE_DEVICE_ID)
                    .bind(d.as_str())
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| StorageError::NoSuchDevice(d.to_string()))?,
            ),
            None => None,
        };
        let revoked = sqlx::query(
            "UPDATE tokens SET revoked_us = $1 WHERE role = $2 AND label = $3
             AND device_id IS NOT DISTINCT FROM $4 AND revoked_us IS NULL",
        )
        .bind(now)
        .bind(role.as_str())
        .bind(label)
        .bind(device_id)
        .execute(&mut *tx)
        .await?;
        if revoked.rows() > 0 {
            sqlx::query(BUMP_AUTH_EPOCH).execute(&mut *tx).await?;
        }
        let token = Self::insert_token(&mut tx, role, device_id, label, now).await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Whether any unrevoked viewer, operator or admin token exists.
    pub async fn has_viewer_token(&self) -> Result<bool, StorageError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM tokens WHERE role IN ('viewer','operator','admin') AND revoked_us IS NULL",
        )
        .fetch_one(&self.read)
        .await?;
        Ok(n > 0)
    }

    /// Revokes a device and all its tokens.
    pub async fn revoke_device(&self, name: &DeviceName) -> Result<(), StorageError> {
        let now = Timestamp::now().as_micros();
        let mut tx = self.begin_write().await?;
        let id: Option<i64> = sqlx::query_scalar(DEVICE_ID)
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let id = id.ok_or_else(|| StorageError::NoSuchDevice(name.to_string()))?;
        for sql in [
            "UPDATE devices SET revoked_us = coalesce(revoked_us, $1) WHERE id = $2",
            "UPDATE tokens SET revoked_us = coalesce(revoked_us, $1) WHERE device_id = $2",
        ] {
            sqlx::query(sql)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(BUMP_AUTH_EPOCH).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_devices(&self) -> Result<Vec<DeviceRow>, StorageError> {
        self.list_devices_where(DeviceFilter::All).await
    }

    /// The devices `filter` selects, revoked ones included, by name. Each of the five
    /// reads is narrowed in SQL (a name through its unique index, labels through the
    /// `(key, value)` index on their first pair), so a filtered listing costs what it
    /// returns, not the size of the fleet.
    pub async fn list_devices_where(
        &self,
        filter: DeviceFilter<'_>,
    ) -> Result<Vec<DeviceRow>, StorageError> {
        let narrow = filter.subquery();
        let when = |col: &str, joiner: &str| match narrow {
            Some(sub) => format!("{joiner} {col} IN {sub}"),
            None => String::new(),
        };
        let devices_sql = format!(
            "SELECT id, name, created_us, revoked_us, last_seen_us, description, location
             FROM devices {} ORDER BY name",
            when("id", "WHERE")
        );
        let devices = filter
            .bind(sqlx::query_as(AssertSqlSafe(devices_sql)))
            .fetch_all(&self.read)
            .await?;
        let sensors_sql = SERIES_LATEST.replace("{narrow}", &when("s.device_id", "WHERE"));
        let sensors = filter
            .bind(sqlx::query_as(AssertSqlSafe(sensors_sql)))
            .fetch_all(&self.read)
            .await?;
        let targets_sql = format!(
            "SELECT g.gateway_id, d.name FROM gateway_targets g
             JOIN devices d ON d.id = g.device_id {} ORDER BY d.name",
            when("g.gateway_id", "WHERE")
        );
        let targets = filter
            .bind(sqlx::query_as(AssertSqlSafe(targets_sql)))
            .fetch_all(&self.read)
            .await?;
        let mut rows = assemble_devices(devices, sensors, targets);
        let mut labels = self.labels_by_id(filter).await?;
        let sync = self.config_sync_by_id(filter).await?;
        for (id, row) in &mut rows {
            row.labels = labels.remove(id).unwrap_or_default();
            row.in_sync = sync.get(id).copied();
        }
        Ok(rows
            .into_iter()
            .map(|(_, row)| row)
            .filter(|row| filter.admits(row))
            .collect())
    }

    /// The principal a token hash belongs to, if the token is valid and unrevoked, and
    /// when the token was last used (µs).
    pub async fn authenticate(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<(Principal, Option<i64>)>, StorageError> {
        let row: Option<AuthColumns> = sqlx::query_as(
            "SELECT t.id, t.role, d.id, d.name, t.last_used_us
             FROM tokens t LEFT JOIN devices d ON d.id = t.device_id
             WHERE t.hash = $1 AND t.revoked_us IS NULL AND d.revoked_us IS NULL",
        )
        .bind(&hash[..])
        .fetch_optional(&self.read)
        .await?;
        let Some((token_id, role, device_id, device_name, last_used)) = row else {
            return Ok(None);
        };
        let targets = match device_id {
            Some(gw) => sqlx::query_as(
                "SELECT d.id, d.name FROM gateway_targets g JOIN devices d ON d.id = g.device_id
                     WHERE g.gateway_id = $1 AND d.revoked_us IS NULL",
            )
            .bind(gw)
            .fetch_all(&self.read)
            .await?,
            None => Vec::new(),
        };
        Ok(principal(token_id, role, device_id, device_name, targets).map(|p| (p, last_used)))
    }

    /// Changes on every revocation.
    pub async fn auth_epoch(&self) -> Result<i64, StorageError> {
        Ok(sqlx::query_scalar("SELECT epoch FROM auth_epoch")
            .fetch_one(&self.read)
            .await?)
    }

    /// Which of `token_ids` are revoked (or no longer exist), or had their grant changed
    /// (a gateway's list edited) at or after `since`.
    pub async fn revoked_among(
        &self,
        token_ids: &[i64],
        since: Timestamp,
    ) -> Result<Vec<i64>, StorageError> {
        let sql = format!(
            "SELECT id FROM tokens WHERE revoked_us IS NULL
             AND (grant_changed_us IS NULL OR grant_changed_us < $1) AND {}",
            DB::in_ids("id", 2)
        );
        let query = sqlx::query(AssertSqlSafe(sql)).bind(since.as_micros());
        let valid: std::collections::HashSet<i64> = DB::bind_ids(query, token_ids)
            .try_map(|row: DB::Row| sqlx::Row::try_get(&row, 0))
            .fetch_all(&self.read)
            .await?
            .into_iter()
            .collect();
        Ok(token_ids
            .iter()
            .copied()
            .filter(|id| !valid.contains(id))
            .collect())
    }

    pub async fn find_device(&self, name: &DeviceName) -> Result<Option<DeviceRef>, StorageError> {
        Ok(self.device_state(name).await?.map(|(device, _)| device))
    }

    /// A device and whether it is revoked.
    pub async fn device_state(
        &self,
        name: &DeviceName,
    ) -> Result<Option<(DeviceRef, bool)>, StorageError> {
        let row: Option<(i64, Option<i64>)> =
            sqlx::query_as("SELECT id, revoked_us FROM devices WHERE name = $1")
                .bind(name.as_str())
                .fetch_optional(&self.read)
                .await?;
        Ok(row.map(|(id, revoked)| {
            let device = DeviceRef {
                id,
                name: name.clone(),
            };
            (device, revoked.is_some())
        }))
    }

    /// Issues a token: stores its hash and returns the secret.
    async fn insert_token(
        tx: &mut DB::Connection,
        role: Role,
        device_id: Option<i64>,
        label: &str,
        now: i64,
    ) -> Result<String, StorageError> {
        let (token, hash) = auth::new_token();
        sqlx::query(
            "INSERT INTO tokens (hash, role, device_id, label, created_us) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&hash[..])
        .bind(role.as_str())
        .bind(device_id)
        .bind(label)
        .bind(now)
        .execute(tx)
        .await?;
        Ok(token)
    }
}

fn unique_violation(e: sqlx::Error, name: &DeviceName) -> StorageError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StorageError::DeviceExists(name.to_string())
        }
        _ => e.into(),
    }
}

/// A `devices` row: id, name, created, revoked, last seen, description, location (JSON).
type DeviceColumns = (
    i64,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

/// Builds [`DeviceRow`]s (with their ids, labels still empty) from the three registry queries: devices `(id, name, created,
/// revoked, last_seen)`, series `(device id, sensor)`, gateway targets `(gateway id,
/// target name)`.
fn assemble_devices(
    devices: Vec<DeviceColumns>,
    sensors: Vec<SeriesColumns>,
    targets: Vec<(i64, String)>,
) -> Vec<(i64, DeviceRow)> {
    let mut by_id: std::collections::HashMap<i64, DeviceRow> = std::collections::HashMap::new();
    let order: Vec<i64> = devices.iter().map(|d| d.0).collect();
    for (id, name, created, revoked, last_seen, description, location) in devices {
        by_id.insert(
            id,
            DeviceRow {
                name,
                created: Timestamp::from_micros(created),
                revoked: revoked.is_some(),
                last_seen: last_seen.map(Timestamp::from_micros),
                sensors: Vec::new(),
                gateway_for: Vec::new(),
                description,
                // Written only from a checked [`Location`]; anything else reads as none.
                location: location.and_then(|l| serde_json::from_str(&l).ok()),
                labels: Labels::default(),
                in_sync: None,
                latest: Default::default(),
            },
        );
    }
    for (id, sensor, unit, ts, value, kind, text) in sensors {
        if let Some(d) = by_id.get_mut(&id) {
            if let (Some(ts), Some(value)) = (ts, value) {
                let ts = Timestamp::from_micros(ts);
                // A kind this build does not know reads as a number.
                let kind = ValueKind::parse(&kind).unwrap_or(ValueKind::Number);
                let text = text.and_then(|t| Text::parse(&t).ok());
                let value = super::history::values::decode(kind, value, |_| text);
                d.latest.insert(sensor.clone(), Latest { ts, value, unit });
            }
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
        .filter_map(|id| Some((id, by_id.remove(&id)?)))
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
        Role::Operator => Some(Principal::Operator { token_id }),
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
