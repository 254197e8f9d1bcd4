//! Acknowledgements and silences of alerts (contract §16, docs/alerts.md), in SQL shared
//! by both backends.
//!
//! Owns the `ack_*` columns of `alert_state` and every statement on `alert_silences`.
//! An acknowledgement is one conditional `UPDATE` of a firing row (it bumps `version`, so
//! a hub about to send a `repeat` under the old version adopts the row instead), stored
//! in one transaction with its `acknowledged` event and outbox rows
//! ([`Db::acknowledge_alert`]). A silence is active while `until_us` lies ahead; deleting
//! one moves `until_us` to now. The end of each silence is claimed once
//! ([`Db::claim_silence_end`]), so one hub of a cluster announces what still fires.
//! Uses [`super::db`], [`super::alerts`] and [`crate::domain`].

use super::StorageError;
use super::alerts::AlertKey;
use super::db::{Db, Dialect, RowsAffected};
use crate::domain::{AlertEvent, Timestamp, Value};
use serde::Serialize;
use sqlx::{ColumnIndex, Decode, Encode, Executor, Type};

/// Who acknowledges which alert, and why.
#[derive(Debug, Clone)]
pub struct NewAck {
    pub key: AlertKey,
    /// The token's name.
    pub by: String,
    pub comment: String,
    pub ts: Timestamp,
}

/// The firing row as the acknowledgement found it: what its event repeats.
#[derive(Debug, Clone)]
pub struct AckedRow {
    pub severity: Option<String>,
    pub since: Timestamp,
    pub value: Option<Value>,
}

/// What [`Db::acknowledge_alert`] did.
#[derive(Debug)]
pub enum Acked {
    /// Stored: the row's new version and the stored event.
    Done {
        version: i64,
        event: Box<AlertEvent>,
    },
    /// That alert is not firing (no row, or only pending).
    NotFiring,
}

/// A silence as stored and listed: `{"id", "pattern", "rule", "until", "comment", "by",
/// "created"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SilenceRow {
    pub id: i64,
    pub pattern: String,
    pub rule: Option<String>,
    pub until: Timestamp,
    pub comment: String,
    pub by: String,
    pub created: Timestamp,
}

/// A silence to store.
#[derive(Debug, Clone)]
pub struct NewSilence {
    pub pattern: String,
    pub rule: Option<String>,
    pub until: Timestamp,
    pub comment: String,
    pub by: String,
}

type SilenceColumns = (i64, String, Option<String>, i64, String, String, i64);

const SILENCE_COLUMNS: &str = "id, pattern, rule, until_us, comment, by_name, created_us";

fn silence_of(c: SilenceColumns) -> SilenceRow {
    let (id, pattern, rule, until, comment, by, created) = c;
    SilenceRow {
        id,
        pattern,
        rule,
        until: Timestamp::from_micros(until),
        comment,
        by,
        created: Timestamp::from_micros(created),
    }
}

impl<DB> Db<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> i64: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> Option<i64>: Encode<'r, DB> + Decode<'r, DB>,
    for<'r> &'r str: Encode<'r, DB> + Type<DB>,
    for<'r> String: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> Option<String>: Encode<'r, DB> + Decode<'r, DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// Acknowledges the firing alert `ack.key`, and stores the event `event` makes of the
    /// row with one outbox row per target — in one transaction.
    pub async fn acknowledge_alert(
        &self,
        ack: &NewAck,
        event: impl FnOnce(&AckedRow) -> AlertEvent,
        targets: &[String],
    ) -> Result<Acked, StorageError> {
        let k = &ack.key;
        let mut tx = self.begin_write().await?;
        let row: Option<(Option<String>, i64, Option<String>, i64)> = sqlx::query_as(
            "UPDATE alert_state SET ack_by = $4, ack_comment = $5, ack_us = $6,
                    version = version + 1
             WHERE rule = $1 AND device = $2 AND sensor = $3 AND state = 'firing'
             RETURNING severity, since_us, value, version",
        )
        .bind(k.rule.as_str())
        .bind(k.device.as_str())
        .bind(k.sensor_col())
        .bind(ack.by.as_str())
        .bind(ack.comment.as_str())
        .bind(ack.ts.as_micros())
        .fetch_optional(&mut *tx)
        .await?;
        let Some((severity, since, value, version)) = row else {
            return Ok(Acked::NotFiring);
        };
        let acked = AckedRow {
            severity,
            since: Timestamp::from_micros(since),
            value: value.and_then(|v| serde_json::from_str(&v).ok()),
        };
        let e = event(&acked);
        let stored = Self::insert_event(&mut tx, k, &e, targets).await?;
        tx.commit().await?;
        Ok(Acked::Done {
            version,
            event: Box::new(stored),
        })
    }

    /// Stores a silence if fewer than `max_active` are active at `now`; its id.
    pub async fn add_silence(
        &self,
        s: &NewSilence,
        now: Timestamp,
        max_active: usize,
    ) -> Result<i64, StorageError> {
        let mut tx = self.begin_write().await?;
        let active: i64 =
            sqlx::query_scalar("SELECT count(*) FROM alert_silences WHERE until_us > $1")
                .bind(now.as_micros())
                .fetch_one(&mut *tx)
                .await?;
        if active >= max_active as i64 {
            return Err(StorageError::TooManySilences(max_active));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO alert_silences (pattern, rule, until_us, comment, by_name, created_us)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(s.pattern.as_str())
        .bind(s.rule.clone())
        .bind(s.until.as_micros())
        .bind(s.comment.as_str())
        .bind(s.by.as_str())
        .bind(now.as_micros())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The silences active at `now`, oldest first.
    pub async fn active_silences(&self, now: Timestamp) -> Result<Vec<SilenceRow>, StorageError> {
        let sql =
            format!("SELECT {SILENCE_COLUMNS} FROM alert_silences WHERE until_us > $1 ORDER BY id");
        let rows: Vec<SilenceColumns> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(now.as_micros())
            .fetch_all(&self.read)
            .await?;
        Ok(rows.into_iter().map(silence_of).collect())
    }

    /// Ends the active silence `id` at `now`; [`StorageError::NoSuchSilence`] when no
    /// active silence has that id.
    pub async fn end_silence(&self, id: i64, now: Timestamp) -> Result<(), StorageError> {
        let done =
            sqlx::query("UPDATE alert_silences SET until_us = $2 WHERE id = $1 AND until_us > $2")
                .bind(id)
                .bind(now.as_micros())
                .execute(&self.write)
                .await?;
        if done.rows() == 0 {
            return Err(StorageError::NoSuchSilence(id));
        }
        Ok(())
    }

    /// Silences over by `now` whose end no hub has claimed yet.
    pub async fn ended_silences(&self, now: Timestamp) -> Result<Vec<SilenceRow>, StorageError> {
        let sql = format!(
            "SELECT {SILENCE_COLUMNS} FROM alert_silences
             WHERE ended = 0 AND until_us <= $1 ORDER BY id"
        );
        let rows: Vec<SilenceColumns> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(now.as_micros())
            .fetch_all(&self.read)
            .await?;
        Ok(rows.into_iter().map(silence_of).collect())
    }

    /// Claims the end of silence `id`: `true` for the one caller that gets it.
    pub async fn claim_silence_end(&self, id: i64) -> Result<bool, StorageError> {
        let done = sqlx::query("UPDATE alert_silences SET ended = 1 WHERE id = $1 AND ended = 0")
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(done.rows() == 1)
    }
}
