//! A device's identity over its life (docs/cli.md "Devices over their life"): its tokens
//! (added, listed with their last use, revoked one by one or all), the devices a gateway
//! may act for (edited in place), and what an operator says about it (description and
//! location). In SQL shared by both backends; the registry ([`super::registry`]) keeps
//! adding, listing and authenticating.

use super::db::{Db, Dialect, RowsAffected};
use super::registry::{BUMP_AUTH_EPOCH, LIVE_DEVICE_ID};
use super::{StorageError, Store};
use crate::auth::Role;
use crate::domain::{Description, DeviceName, Location, Timestamp};
use serde::Serialize;
use sqlx::{ColumnIndex, Decode, Encode, Executor, Type};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A device token as `device token list` shows it (never the secret).
#[derive(Debug, Clone, Serialize)]
pub struct DeviceTokenRow {
    pub id: i64,
    pub created: Timestamp,
    /// When it last authenticated a request or a socket (to the minute), if ever.
    pub last_used: Option<Timestamp>,
    pub revoked: Option<Timestamp>,
}

/// Which of a device's tokens to revoke.
#[derive(Debug, Clone, Copy)]
pub enum Revoke {
    One(i64),
    All,
}

/// A change to the devices a gateway may act for.
#[derive(Debug, Clone, Default)]
pub struct GatewayEdit {
    /// Replace the whole list (`PATCH`), applied before `add` and `remove`.
    pub replace: Option<Vec<DeviceName>>,
    pub add: Vec<DeviceName>,
    pub remove: Vec<DeviceName>,
}

/// A change to a device's metadata: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct AboutEdit {
    pub description: Option<Option<Description>>,
    pub location: Option<Option<Location>>,
}

/// How often a token's `last_used` is written at most.
const LAST_USED_RESOLUTION_US: i64 = 60_000_000;

impl<DB> Db<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> i64: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> Option<i64>: Encode<'r, DB>,
    for<'r> Option<String>: Encode<'r, DB>,
    for<'r> &'r str: Encode<'r, DB> + Type<DB>,
    for<'r> &'r [u8]: Encode<'r, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// The id of device `name` in `tx`, revoked or not, and whether it is revoked.
    async fn device_row(
        tx: &mut DB::Connection,
        name: &DeviceName,
    ) -> Result<(i64, bool), StorageError> {
        let row: Option<(i64, Option<i64>)> =
            sqlx::query_as("SELECT id, revoked_us FROM devices WHERE name = $1")
                .bind(name.as_str())
                .fetch_optional(tx)
                .await?;
        row.map(|(id, revoked)| (id, revoked.is_some()))
            .ok_or_else(|| StorageError::NoSuchDevice(name.to_string()))
    }

    /// Issues another token for `name` (the others keep working). A revoked device is
    /// active again with it; returns `(token id, secret, whether it was revoked)`.
    pub async fn add_device_token(
        &self,
        name: &DeviceName,
    ) -> Result<(i64, String, bool), StorageError> {
        let now = Timestamp::now().as_micros();
        let mut tx = self.begin_write().await?;
        let (id, was_revoked) = Self::device_row(&mut tx, name).await?;
        if was_revoked {
            sqlx::query("UPDATE devices SET revoked_us = NULL WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let (token, hash) = crate::auth::new_token();
        let token_id: i64 = sqlx::query_scalar(
            "INSERT INTO tokens (hash, role, device_id, label, created_us)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(&hash[..])
        .bind(Role::Device.as_str())
        .bind(id)
        .bind(name.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((token_id, token, was_revoked))
    }

    /// Every token of device `name`, oldest first.
    pub async fn list_device_tokens(
        &self,
        name: &DeviceName,
    ) -> Result<Vec<DeviceTokenRow>, StorageError> {
        let mut conn = self.read.acquire().await?;
        let (id, _) = Self::device_row(&mut conn, name).await?;
        let rows: Vec<(i64, i64, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT id, created_us, last_used_us, revoked_us FROM tokens
             WHERE device_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, created, last_used, revoked)| DeviceTokenRow {
                id,
                created: Timestamp::from_micros(created),
                last_used: last_used.map(Timestamp::from_micros),
                revoked: revoked.map(Timestamp::from_micros),
            })
            .collect())
    }

    /// Revokes one token of device `name`, or all; the device stays (`device token add`
    /// gives it a new one). Returns how many were revoked.
    pub async fn revoke_device_tokens(
        &self,
        name: &DeviceName,
        which: Revoke,
    ) -> Result<u64, StorageError> {
        let now = Timestamp::now().as_micros();
        let mut tx = self.begin_write().await?;
        let (id, _) = Self::device_row(&mut tx, name).await?;
        let done =
            match which {
                Revoke::All => sqlx::query(
                    "UPDATE tokens SET revoked_us = $1 WHERE device_id = $2 AND revoked_us IS NULL",
                )
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?,
                Revoke::One(token) => {
                    let exists: Option<Option<i64>> = sqlx::query_scalar(
                        "SELECT revoked_us FROM tokens WHERE id = $1 AND device_id = $2",
                    )
                    .bind(token)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if exists.is_none() {
                        return Err(StorageError::NoSuchToken {
                            device: name.to_string(),
                            id: token,
                        });
                    }
                    sqlx::query(
                        "UPDATE tokens SET revoked_us = $1 WHERE id = $2 AND revoked_us IS NULL",
                    )
                    .bind(now)
                    .bind(token)
                    .execute(&mut *tx)
                    .await?
                }
            };
        if done.rows() > 0 {
            sqlx::query(BUMP_AUTH_EPOCH).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(done.rows())
    }

    /// Edits the devices gateway `name` may act for; every named device must exist
    /// unrevoked. Returns the new list, sorted. A socket keeps the list it authenticated
    /// with: when the list changes, the gateway's tokens are marked changed and the auth
    /// epoch bumped, so hubs close its sockets (1008) and it reconnects with the new list.
    pub async fn edit_gateway(
        &self,
        name: &DeviceName,
        edit: &GatewayEdit,
    ) -> Result<Vec<String>, StorageError> {
        let mut tx = self.begin_write().await?;
        let (gateway, revoked) = Self::device_row(&mut tx, name).await?;
        if revoked {
            return Err(StorageError::NoSuchDevice(name.to_string()));
        }
        let before = Self::targets(&mut tx, gateway).await?;
        if let Some(list) = &edit.replace {
            sqlx::query("DELETE FROM gateway_targets WHERE gateway_id = $1")
                .bind(gateway)
                .execute(&mut *tx)
                .await?;
            for t in list {
                Self::add_target(&mut tx, gateway, t).await?;
            }
        }
        for t in &edit.add {
            Self::add_target(&mut tx, gateway, t).await?;
        }
        for t in &edit.remove {
            sqlx::query(
                "DELETE FROM gateway_targets WHERE gateway_id = $1
                 AND device_id = (SELECT id FROM devices WHERE name = $2)",
            )
            .bind(gateway)
            .bind(t.as_str())
            .execute(&mut *tx)
            .await?;
        }
        let list = Self::targets(&mut tx, gateway).await?;
        if list != before {
            sqlx::query(
                "UPDATE tokens SET grant_changed_us = $1 WHERE device_id = $2 AND revoked_us IS NULL",
            )
            .bind(Timestamp::now().as_micros())
            .bind(gateway)
            .execute(&mut *tx)
            .await?;
            sqlx::query(BUMP_AUTH_EPOCH).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(list)
    }

    /// The names of the devices `gateway` may act for, sorted.
    async fn targets(tx: &mut DB::Connection, gateway: i64) -> Result<Vec<String>, StorageError> {
        Ok(sqlx::query_scalar(
            "SELECT d.name FROM gateway_targets g JOIN devices d ON d.id = g.device_id
             WHERE g.gateway_id = $1 ORDER BY d.name",
        )
        .bind(gateway)
        .fetch_all(tx)
        .await?)
    }

    /// Lets `gateway` act for `target` (already allowed: nothing changes).
    async fn add_target(
        tx: &mut DB::Connection,
        gateway: i64,
        target: &DeviceName,
    ) -> Result<(), StorageError> {
        let id: Option<i64> = sqlx::query_scalar(LIVE_DEVICE_ID)
            .bind(target.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let id = id.ok_or_else(|| StorageError::UnknownTarget(target.to_string()))?;
        sqlx::query(
            "INSERT INTO gateway_targets (gateway_id, device_id) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
        )
        .bind(gateway)
        .bind(id)
        .execute(tx)
        .await?;
        Ok(())
    }

    /// Sets or clears device `name`'s description and location.
    pub async fn edit_about(
        &self,
        name: &DeviceName,
        edit: &AboutEdit,
    ) -> Result<(), StorageError> {
        let mut tx = self.begin_write().await?;
        let (id, revoked) = Self::device_row(&mut tx, name).await?;
        if revoked {
            return Err(StorageError::NoSuchDevice(name.to_string()));
        }
        if let Some(d) = &edit.description {
            sqlx::query("UPDATE devices SET description = $1 WHERE id = $2")
                .bind(d.as_ref().map(|d| d.as_str().to_owned()))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(l) = &edit.location {
            let json = l
                .as_ref()
                .map(|l| serde_json::to_string(l).expect("a location serializes"));
            sqlx::query("UPDATE devices SET location = $1 WHERE id = $2")
                .bind(json)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The name (label) of token `token_id`, if it exists.
    pub async fn token_label(&self, token_id: i64) -> Result<Option<String>, StorageError> {
        Ok(sqlx::query_scalar("SELECT label FROM tokens WHERE id = $1")
            .bind(token_id)
            .fetch_optional(&self.read)
            .await?)
    }

    /// Records that `token_id` was used at `now`, unless that was already recorded
    /// within the last minute (so a busy token costs one write a minute).
    pub async fn touch_token(&self, token_id: i64, now: Timestamp) -> Result<(), StorageError> {
        let now = now.as_micros();
        sqlx::query(
            "UPDATE tokens SET last_used_us = $1
             WHERE id = $2 AND (last_used_us IS NULL OR last_used_us < $3)",
        )
        .bind(now)
        .bind(token_id)
        .bind(now - LAST_USED_RESOLUTION_US)
        .execute(&self.write)
        .await?;
        Ok(())
    }
}

/// At most this many `last_used` writes run at once; beyond it a use is not recorded
/// (the next one, a minute later at most, is).
const MAX_TOUCHES_IN_FLIGHT: usize = 32;
static TOUCHES_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Records a use of `token_id`, last recorded at `last_used_us`, when the record is a
/// minute old: on a task of its own, so authentication never waits for the write.
pub fn record_use(store: &Store, token_id: i64, last_used_us: Option<i64>) {
    let now = Timestamp::now();
    let due = last_used_us.is_none_or(|t| t < now.as_micros() - LAST_USED_RESOLUTION_US);
    if !due || TOUCHES_IN_FLIGHT.fetch_add(1, Ordering::AcqRel) >= MAX_TOUCHES_IN_FLIGHT {
        if due {
            TOUCHES_IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
        }
        return;
    }
    let store = store.clone();
    tokio::spawn(async move {
        if let Err(e) = dispatch!(store, s => s.touch_token(token_id, now).await) {
            tracing::debug!(error = %e, token_id, "cannot record a token's last use");
        }
        TOUCHES_IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
    });
}

impl Store {
    /// See [`Db::add_device_token`].
    pub async fn add_device_token(
        &self,
        name: &DeviceName,
    ) -> Result<(i64, String, bool), StorageError> {
        dispatch!(self, s => s.add_device_token(name).await)
    }

    pub async fn list_device_tokens(
        &self,
        name: &DeviceName,
    ) -> Result<Vec<DeviceTokenRow>, StorageError> {
        dispatch!(self, s => s.list_device_tokens(name).await)
    }

    /// See [`Db::revoke_device_tokens`].
    pub async fn revoke_device_tokens(
        &self,
        name: &DeviceName,
        which: Revoke,
    ) -> Result<u64, StorageError> {
        dispatch!(self, s => s.revoke_device_tokens(name, which).await)
    }

    /// See [`Db::edit_gateway`].
    pub async fn edit_gateway(
        &self,
        name: &DeviceName,
        edit: &GatewayEdit,
    ) -> Result<Vec<String>, StorageError> {
        dispatch!(self, s => s.edit_gateway(name, edit).await)
    }

    pub async fn edit_about(
        &self,
        name: &DeviceName,
        edit: &AboutEdit,
    ) -> Result<(), StorageError> {
        dispatch!(self, s => s.edit_about(name, edit).await)
    }

    /// See [`Db::token_label`].
    pub async fn token_label(&self, token_id: i64) -> Result<Option<String>, StorageError> {
        dispatch!(self, s => s.token_label(token_id).await)
    }
}
