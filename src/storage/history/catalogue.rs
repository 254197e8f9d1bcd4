//! What history exists: every series of every device not revoked, with its value type,
//! for readers that find series by pattern (`/query`'s `SHOW` statements and `FROM
//! /regex/`). One statement both backends run; uses [`crate::storage::db`].

use crate::domain::ValueKind;
use crate::storage::db::{Db, Dialect};
use crate::storage::{StorageError, Store};
use sqlx::{Decode, Executor, Type};

/// One series: its id, device and sensor names, value type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogueRow {
    pub series: i64,
    pub device: String,
    pub sensor: String,
    pub kind: ValueKind,
}

impl<DB> Db<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    (i64, String, String, String): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    pub async fn catalogue(&self) -> Result<Vec<(i64, String, String, String)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT s.id, d.name, s.sensor, s.kind FROM series s
             JOIN devices d ON d.id = s.device_id
             WHERE d.revoked_us IS NULL ORDER BY s.sensor, d.name",
        )
        .fetch_all(&self.read)
        .await
    }
}

impl Store {
    /// Every series of the devices not revoked, by sensor then device name.
    pub async fn catalogue(&self) -> Result<Vec<CatalogueRow>, StorageError> {
        let rows = dispatch!(self, db => db.catalogue().await)?;
        Ok(rows
            .into_iter()
            .map(|(series, device, sensor, kind)| CatalogueRow {
                series,
                device,
                sensor,
                kind: ValueKind::parse(&kind).unwrap_or(ValueKind::Number),
            })
            .collect())
    }
}
