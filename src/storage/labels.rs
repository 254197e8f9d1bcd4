//! Device labels (protocol.md §14): replacing a device's labels (which makes alert
//! engines reload their rules, as a rule change does), reading every device's
//! (for `/v1/devices` and the alert engine), and the devices a selector picks (bulk
//! commands, `?label=`). In SQL shared by both backends; values are checked by
//! [`crate::domain::Labels`] before they get here, and a stored row that no longer
//! parses is left out rather than failing a listing.

use super::alerts::BUMP_RULES_EPOCH;
use super::db::{Db, Dialect};
use super::registry::{DeviceFilter, LIVE_DEVICE_ID};
use super::{StorageError, Store};
use crate::domain::{DeviceName, LabelKey, LabelValue, Labels};
use sqlx::{AssertSqlSafe, ColumnIndex, Decode, Encode, Executor, Type};
use std::collections::HashMap;

/// `(device id, key, value)` rows grouped into each device's labels.
fn group(rows: Vec<(i64, String, String)>) -> HashMap<i64, Labels> {
    let mut pairs: HashMap<i64, Vec<(LabelKey, LabelValue)>> = HashMap::new();
    for (id, k, v) in rows {
        let Ok(key) = LabelKey::parse(&k) else {
            continue;
        };
        if let Ok(value) = LabelValue::parse(&key, &v) {
            pairs.entry(id).or_default().push((key, value));
        }
    }
    pairs
        .into_iter()
        .filter_map(|(id, p)| Some((id, Labels::from_pairs(p).ok()?)))
        .collect()
}

impl<DB> Db<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> i64: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> &'r str: Encode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// The id of device `name`, which must exist unrevoked.
    pub(super) async fn live_device(
        conn: &mut DB::Connection,
        name: &DeviceName,
    ) -> Result<i64, StorageError> {
        let id: Option<i64> = sqlx::query_scalar(LIVE_DEVICE_ID)
            .bind(name.as_str())
            .fetch_optional(conn)
            .await?;
        id.ok_or_else(|| StorageError::NoSuchDevice(name.to_string()))
    }

    /// Replaces the labels of device `name` (which must exist unrevoked); returns the
    /// alert rules' new epoch.
    pub async fn set_labels(
        &self,
        name: &DeviceName,
        labels: &Labels,
    ) -> Result<i64, StorageError> {
        let mut tx = self.begin_write().await?;
        let id = Self::live_device(&mut tx, name).await?;
        sqlx::query("DELETE FROM device_labels WHERE device_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // Alert rules select devices by label: the engines reload them.
        sqlx::query(BUMP_RULES_EPOCH).execute(&mut *tx).await?;
        for (k, v) in labels.iter() {
            sqlx::query("INSERT INTO device_labels (device_id, key, value) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(k.as_str())
                .bind(v.as_str())
                .execute(&mut *tx)
                .await?;
        }
        let epoch: i64 = sqlx::query_scalar("SELECT epoch FROM alert_rules_epoch")
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(epoch)
    }

    /// Every device's labels, by device id (devices without labels are absent).
    pub async fn labels_by_id(
        &self,
        filter: DeviceFilter<'_>,
    ) -> Result<HashMap<i64, Labels>, StorageError> {
        let sql = match filter.subquery() {
            Some(sub) => {
                format!("SELECT device_id, key, value FROM device_labels WHERE device_id IN {sub}")
            }
            None => "SELECT device_id, key, value FROM device_labels".to_owned(),
        };
        let rows = filter
            .bind(sqlx::query_as(AssertSqlSafe(sql)))
            .fetch_all(&self.read)
            .await?;
        Ok(group(rows))
    }

    /// The labels of every unrevoked device that has any, by name.
    pub async fn labels_by_name(&self) -> Result<HashMap<String, Labels>, StorageError> {
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT d.id, d.name, l.key, l.value FROM device_labels l
             JOIN devices d ON d.id = l.device_id WHERE d.revoked_us IS NULL",
        )
        .fetch_all(&self.read)
        .await?;
        let names: HashMap<i64, String> = rows.iter().map(|r| (r.0, r.1.clone())).collect();
        let by_id = group(rows.into_iter().map(|(id, _, k, v)| (id, k, v)).collect());
        Ok(by_id
            .into_iter()
            .filter_map(|(id, l)| Some((names.get(&id)?.clone(), l)))
            .collect())
    }

    /// The unrevoked devices carrying every label of `selector` (not empty), sorted.
    pub async fn devices_labelled(
        &self,
        selector: &Labels,
    ) -> Result<Vec<DeviceName>, StorageError> {
        let Some((k, v)) = selector.iter().next() else {
            return Ok(Vec::new());
        };
        // The first pair narrows through the (key, value) index; the rest are checked here.
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT d.id, d.name, l.key, l.value FROM device_labels l
             JOIN devices d ON d.id = l.device_id
             WHERE d.revoked_us IS NULL AND l.device_id IN
               (SELECT device_id FROM device_labels WHERE key = $1 AND value = $2)",
        )
        .bind(k.as_str())
        .bind(v.as_str())
        .fetch_all(&self.read)
        .await?;
        let names: HashMap<i64, String> = rows.iter().map(|r| (r.0, r.1.clone())).collect();
        let by_id = group(rows.into_iter().map(|(id, _, k, v)| (id, k, v)).collect());
        let mut out: Vec<DeviceName> = by_id
            .into_iter()
            .filter(|(_, l)| l.has_all(selector))
            .filter_map(|(id, _)| DeviceName::parse(names.get(&id)?).ok())
            .collect();
        out.sort();
        Ok(out)
    }
}

impl Store {
    /// See [`Db::set_labels`].
    pub async fn set_labels(
        &self,
        name: &DeviceName,
        labels: &Labels,
    ) -> Result<i64, StorageError> {
        dispatch!(self, s => s.set_labels(name, labels).await)
    }

    /// See [`Db::labels_by_name`].
    pub async fn labels_by_name(&self) -> Result<HashMap<String, Labels>, StorageError> {
        dispatch!(self, s => s.labels_by_name().await)
    }

    /// See [`Db::devices_labelled`].
    pub async fn devices_labelled(
        &self,
        selector: &Labels,
    ) -> Result<Vec<DeviceName>, StorageError> {
        dispatch!(self, s => s.devices_labelled(selector).await)
    }
}
