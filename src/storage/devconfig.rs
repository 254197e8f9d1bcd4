//! Desired configurations (protocol.md §14): each device's desired document and version,
//! the state it last reported, and the history of both (the last `keep` of each kind),
//! in SQL shared by both backends. A new desired version is a conditional upsert on the
//! version read in the same transaction, so of two concurrent writers one gets `If-Match`'s
//! 409. `seq` orders the history: hubs poll it for desired versions set elsewhere.

use super::db::{Db, Dialect};
use super::registry::DeviceFilter;
use super::{StorageError, Store};
use crate::domain::{DeviceName, Timestamp};
use serde::Serialize;
use serde_json::{Map, Value as Json};
use sqlx::{AssertSqlSafe, ColumnIndex, Decode, Encode, Executor, Type};
use std::collections::HashMap;

/// A device's configuration as `GET /v1/devices/NAME/config` shows it. A device never
/// configured has version 0, an empty desired document and is in sync.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigRow {
    pub desired: Map<String, Json>,
    pub version: u64,
    pub reported: Option<Map<String, Json>>,
    pub reported_version: Option<u64>,
    pub in_sync: bool,
    pub updated: Option<Timestamp>,
    pub reported_at: Option<Timestamp>,
}

/// One entry of `GET /v1/devices/NAME/config/history`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryRow {
    pub kind: String,
    pub version: u64,
    pub document: Map<String, Json>,
    pub by: Option<String>,
    pub ts: Timestamp,
}

/// A device's desired document as a poll of storage finds it: a version set (anywhere),
/// or one its device has not reported applying.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredChange {
    /// Its place in the listing it came from, where the next page starts: the history
    /// `seq` ([`Db::desired_changes`]) or the device id ([`Db::unsynced_configs`]).
    pub cursor: i64,
    pub device: String,
    pub version: u64,
    pub desired: Map<String, Json>,
}

/// What a write of the desired document did.
#[derive(Debug, Clone, PartialEq)]
pub enum SetDesired {
    Stored(ConfigRow),
    /// `If-Match` named another version than the current one: nothing changed.
    VersionMismatch {
        current: u64,
    },
}

/// What a device's report did.
#[derive(Debug, Clone, PartialEq)]
pub enum Reported {
    Stored(ConfigRow),
    /// It reported a version newer than any desired one: nothing stored.
    Ahead {
        desired: u64,
    },
}

/// `device_config` columns: version, desired, updated, reported version, reported, reported at.
type ConfigColumns = (i64, String, i64, Option<i64>, Option<String>, Option<i64>);

const CONFIG_COLUMNS: &str = "SELECT version, desired, updated_us, reported_version, reported, \
                              reported_at_us FROM device_config WHERE device_id = $1";

/// A stored document (written only from a checked object; anything else reads as `{}`).
pub(super) fn document(text: &str) -> Map<String, Json> {
    match serde_json::from_str(text) {
        Ok(Json::Object(m)) => m,
        _ => Map::new(),
    }
}

pub(super) fn version(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn row_of(c: Option<ConfigColumns>) -> ConfigRow {
    let Some((v, desired, updated, rv, reported, reported_at)) = c else {
        return ConfigRow {
            desired: Map::new(),
            version: 0,
            reported: None,
            reported_version: None,
            in_sync: true,
            updated: None,
            reported_at: None,
        };
    };
    ConfigRow {
        desired: document(&desired),
        version: version(v),
        reported: reported.as_deref().map(document),
        reported_version: rv.map(version),
        in_sync: rv.unwrap_or(0) == v,
        updated: (v > 0).then(|| Timestamp::from_micros(updated)),
        reported_at: reported_at.map(Timestamp::from_micros),
    }
}

impl<DB> Db<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> i64: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> Option<i64>: Encode<'r, DB> + Decode<'r, DB>,
    for<'r> &'r str: Encode<'r, DB> + Type<DB>,
    for<'r> Option<&'r str>: Encode<'r, DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> Option<String>: Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn config_columns(
        tx: &mut DB::Connection,
        id: i64,
    ) -> Result<Option<ConfigColumns>, StorageError> {
        Ok(sqlx::query_as(CONFIG_COLUMNS)
            .bind(id)
            .fetch_optional(tx)
            .await?)
    }

    /// Appends a history entry and drops the oldest of its kind beyond `keep`.
    async fn record(
        tx: &mut DB::Connection,
        entry: (i64, &str, i64, &str, Option<&str>),
        now: i64,
        keep: usize,
    ) -> Result<(), StorageError> {
        let (id, kind, v, doc, by) = entry;
        sqlx::query(
            "INSERT INTO device_config_history (device_id, kind, version, document, by_token, ts_us)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(kind)
        .bind(v)
        .bind(doc)
        .bind(by)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM device_config_history WHERE device_id = $1 AND kind = $2 AND seq <=
               (SELECT seq FROM device_config_history WHERE device_id = $1 AND kind = $2
                 ORDER BY seq DESC LIMIT 1 OFFSET $3)",
        )
        .bind(id)
        .bind(kind)
        .bind(keep as i64)
        .execute(tx)
        .await?;
        Ok(())
    }

    /// Records `entry` in the history, commits, and returns the config as stored.
    async fn record_and_commit(
        mut tx: sqlx::Transaction<'static, DB>,
        entry: (i64, &str, i64, &str, Option<&str>),
        now: i64,
        keep: usize,
    ) -> Result<ConfigRow, StorageError> {
        Self::record(&mut tx, entry, now, keep).await?;
        let row = row_of(Self::config_columns(&mut tx, entry.0).await?);
        tx.commit().await?;
        Ok(row)
    }

    /// The id of device `name` on the read pool; `None` when it does not exist or is revoked.
    async fn live_or_none(
        conn: &mut DB::Connection,
        name: &DeviceName,
    ) -> Result<Option<i64>, StorageError> {
        match Self::live_device(conn, name).await {
            Ok(id) => Ok(Some(id)),
            Err(StorageError::NoSuchDevice(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores `desired` (a checked JSON object's text) as the next version of device
    /// `name`, unless `if_match` names another version than the current one.
    pub async fn set_desired(
        &self,
        name: &DeviceName,
        desired: &str,
        if_match: Option<u64>,
        by: Option<&str>,
        keep: usize,
    ) -> Result<SetDesired, StorageError> {
        let now = Timestamp::now().as_micros();
        let mut tx = self.begin_write().await?;
        let id = Self::live_device(&mut tx, name).await?;
        let current = Self::config_columns(&mut tx, id).await?.map_or(0, |c| c.0);
        if if_match.is_some_and(|m| m != version(current)) {
            return Ok(SetDesired::VersionMismatch {
                current: version(current),
            });
        }
        let next = current + 1;
        let stored: Option<i64> = sqlx::query_scalar(
            "INSERT INTO device_config (device_id, version, desired, updated_us)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (device_id) DO UPDATE SET version = excluded.version,
               desired = excluded.desired, updated_us = excluded.updated_us
             WHERE device_config.version = $5
             RETURNING version",
        )
        .bind(id)
        .bind(next)
        .bind(desired)
        .bind(now)
        .bind(current)
        .fetch_optional(&mut *tx)
        .await?;
        if stored.is_none() {
            // Another writer stored a version between our read and write.
            let current = Self::config_columns(&mut tx, id).await?.map_or(0, |c| c.0);
            return Ok(SetDesired::VersionMismatch {
                current: version(current),
            });
        }
        let entry = (id, "desired", next, desired, by);
        Self::record_and_commit(tx, entry, now, keep)
            .await
            .map(SetDesired::Stored)
    }

    /// Stores what device `name` reports it applied: version `v` (at most the desired
    /// version) and its `state` (a checked JSON object's text).
    pub async fn report_config(
        &self,
        name: &DeviceName,
        v: u64,
        state: &str,
        keep: usize,
    ) -> Result<Reported, StorageError> {
        let now = Timestamp::now().as_micros();
        let v = i64::try_from(v).unwrap_or(i64::MAX);
        let mut tx = self.begin_write().await?;
        let id = Self::live_device(&mut tx, name).await?;
        let desired = Self::config_columns(&mut tx, id).await?.map_or(0, |c| c.0);
        if v > desired {
            return Ok(Reported::Ahead {
                desired: version(desired),
            });
        }
        sqlx::query(
            "INSERT INTO device_config (device_id, version, desired, updated_us,
                                        reported_version, reported, reported_at_us)
             VALUES ($1, 0, '{}', $2, $3, $4, $2)
             ON CONFLICT (device_id) DO UPDATE SET reported_version = excluded.reported_version,
               reported = excluded.reported, reported_at_us = excluded.reported_at_us",
        )
        .bind(id)
        .bind(now)
        .bind(v)
        .bind(state)
        .execute(&mut *tx)
        .await?;
        let entry = (id, "reported", v, state, None);
        Self::record_and_commit(tx, entry, now, keep)
            .await
            .map(Reported::Stored)
    }

    /// Device `name`'s configuration (`None`: no such device, or revoked).
    pub async fn device_config(
        &self,
        name: &DeviceName,
    ) -> Result<Option<ConfigRow>, StorageError> {
        let mut conn = self.read.acquire().await?;
        let Some(id) = Self::live_or_none(&mut conn, name).await? else {
            return Ok(None);
        };
        Ok(Some(row_of(Self::config_columns(&mut conn, id).await?)))
    }

    /// The stored history of device `name`, newest first (`None`: no such device).
    pub async fn config_history(
        &self,
        name: &DeviceName,
    ) -> Result<Option<Vec<HistoryRow>>, StorageError> {
        let mut conn = self.read.acquire().await?;
        let Some(id) = Self::live_or_none(&mut conn, name).await? else {
            return Ok(None);
        };
        let rows: Vec<(String, i64, String, Option<String>, i64)> = sqlx::query_as(
            "SELECT kind, version, document, by_token, ts_us FROM device_config_history
             WHERE device_id = $1 ORDER BY seq DESC",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        Ok(Some(
            rows.into_iter()
                .map(|(kind, v, doc, by, ts)| HistoryRow {
                    kind,
                    version: version(v),
                    document: document(&doc),
                    by,
                    ts: Timestamp::from_micros(ts),
                })
                .collect(),
        ))
    }

    /// Desired versions written after `after` (in `seq`), oldest first, at most `limit`.
    pub async fn desired_changes(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<DesiredChange>, StorageError> {
        let rows: Vec<(i64, String, i64, String)> = sqlx::query_as(
            "SELECT h.seq, d.name, h.version, h.document FROM device_config_history h
             JOIN devices d ON d.id = h.device_id
             WHERE h.seq > $1 AND h.kind = 'desired' ORDER BY h.seq LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(desired_rows(rows))
    }

    /// The newest history `seq` (0 when empty).
    pub async fn last_config_seq(&self) -> Result<i64, StorageError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM device_config_history")
            .fetch_one(&self.read)
            .await?;
        Ok(seq.unwrap_or(0))
    }
}

/// `(cursor, device, version, desired JSON)` rows as [`DesiredChange`]s.
pub(super) fn desired_rows(rows: Vec<(i64, String, i64, String)>) -> Vec<DesiredChange> {
    rows.into_iter()
        .map(|(cursor, device, v, doc)| DesiredChange {
            cursor,
            device,
            version: version(v),
            desired: document(&doc),
        })
        .collect()
}

/// Read by the registry's device listing, under its (fewer) bounds.
impl<DB> Db<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> i64: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> &'r str: Encode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// Whether each configured device is in sync, by device id (devices never
    /// configured are absent).
    pub async fn config_sync_by_id(
        &self,
        filter: DeviceFilter<'_>,
    ) -> Result<HashMap<i64, bool>, StorageError> {
        let mut sql =
            "SELECT device_id, version, reported_version FROM device_config WHERE version > 0"
                .to_owned();
        if let Some(sub) = filter.subquery() {
            sql = format!("{sql} AND device_id IN {sub}");
        }
        let rows: Vec<(i64, i64, Option<i64>)> = filter
            .bind(sqlx::query_as(AssertSqlSafe(sql)))
            .fetch_all(&self.read)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, v, rv)| (id, rv == Some(v)))
            .collect())
    }
}

impl Store {
    /// See [`Db::set_desired`].
    pub async fn set_desired(
        &self,
        name: &DeviceName,
        desired: &str,
        if_match: Option<u64>,
        by: Option<&str>,
        keep: usize,
    ) -> Result<SetDesired, StorageError> {
        dispatch!(self, s => s.set_desired(name, desired, if_match, by, keep).await)
    }

    /// See [`Db::report_config`].
    pub async fn report_config(
        &self,
        name: &DeviceName,
        v: u64,
        state: &str,
        keep: usize,
    ) -> Result<Reported, StorageError> {
        dispatch!(self, s => s.report_config(name, v, state, keep).await)
    }

    pub async fn device_config(
        &self,
        name: &DeviceName,
    ) -> Result<Option<ConfigRow>, StorageError> {
        dispatch!(self, s => s.device_config(name).await)
    }

    pub async fn config_history(
        &self,
        name: &DeviceName,
    ) -> Result<Option<Vec<HistoryRow>>, StorageError> {
        dispatch!(self, s => s.config_history(name).await)
    }

    pub async fn desired_changes(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<DesiredChange>, StorageError> {
        dispatch!(self, s => s.desired_changes(after, limit).await)
    }

    pub async fn last_config_seq(&self) -> Result<i64, StorageError> {
        dispatch!(self, s => s.last_config_seq().await)
    }
}
