//! Desired configurations their devices have not reported applying (protocol.md §14):
//! what a transport that keeps no per-device state (MQTT's retained documents) hands
//! out again when it (re)connects, page by page in device id order.

use super::db::{Db, Dialect};
use super::devconfig::{DesiredChange, desired_rows};
use super::{StorageError, Store};
use sqlx::{ColumnIndex, Decode, Encode, Executor, Type};

impl<DB> Db<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> i64: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// Devices (not revoked) whose reported version is older than the desired one,
    /// with a device id above `after`, at most `limit`, in device id order (the
    /// `cursor` of each is its device id).
    pub async fn unsynced_configs(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<DesiredChange>, StorageError> {
        let rows: Vec<(i64, String, i64, String)> = sqlx::query_as(
            "SELECT c.device_id, d.name, c.version, c.desired FROM device_config c
             JOIN devices d ON d.id = c.device_id
             WHERE c.device_id > $1 AND c.version > 0 AND d.revoked_us IS NULL
               AND (c.reported_version IS NULL OR c.reported_version < c.version)
             ORDER BY c.device_id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(desired_rows(rows))
    }
}

impl Store {
    /// See [`Db::unsynced_configs`].
    pub async fn unsynced_configs(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<DesiredChange>, StorageError> {
        dispatch!(self, s => s.unsynced_configs(after, limit).await)
    }
}
