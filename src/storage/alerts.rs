//! Alert storage (docs/protocol.md §9): rules, each rule's series that are not ok, the events,
//! and the webhook outbox — in SQL shared by both backends.
//!
//! Owns every statement on `alert_rules`, `alert_rules_epoch`, `alert_state`,
//! `alert_events`, `alert_outbox` and `alert_secret`. A state change, its event and its
//! outbox rows are written in one transaction ([`Db::record_alert`]), so a crash between
//! a firing and its delivery delivers after the restart and never announces twice. Each
//! state change is conditional on the row's `version`, so of several hubs sharing a
//! PostgreSQL database one decides it; outbox rows are claimed with a lease (and
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL, [`Dialect::LOCK_ROWS`]), so one hub sends each.
//! Uses [`super::db`] and [`crate::domain`].

use super::StorageError;
use super::db::{Db, Dialect, RowsAffected};
use crate::domain::{AlertEvent, AlertState, Timestamp, Value};
use serde::Serialize;
use sqlx::{AssertSqlSafe, ColumnIndex, Decode, Encode, Executor, Type};

/// A stored rule: its name, its protocol.md §9 JSON and when it was added.
#[derive(Debug, Clone, Serialize)]
pub struct AlertRuleRow {
    pub name: String,
    pub spec: String,
    pub created: Timestamp,
}

/// Which series of which rule: `sensor` is `None` for device-level rules (`offline`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlertKey {
    pub rule: String,
    pub device: String,
    pub sensor: Option<String>,
}

/// Makes every engine reload the rules (a rule, or the labels rules select by, changed).
pub(super) const BUMP_RULES_EPOCH: &str = "UPDATE alert_rules_epoch SET epoch = epoch + 1";
impl AlertKey {
    pub(super) fn sensor_col(&self) -> &str {
        self.sensor.as_deref().unwrap_or("")
    }
    /// The series key of the outbox (order is kept per webhook and this key).
    fn skey(&self) -> String {
        format!(
            "{}\u{1f}{}\u{1f}{}",
            self.rule,
            self.device,
            self.sensor_col()
        )
    }
}

/// A rule's series that is not ok: `pending` (threshold held, `for` not yet over) or
/// `firing`. `version` guards the next change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertStateRow {
    #[serde(flatten)]
    pub key: AlertKeyOut,
    pub state: String,
    pub severity: Option<String>,
    pub since: Timestamp,
    pub value: Option<Value>,
    /// When the last notification went out (firing, or a `repeat`).
    pub notified: Option<Timestamp>,
    /// Who acknowledged this firing alert, why and when (contract §16); null until then.
    pub acknowledged: Option<Acknowledgement>,
    #[serde(skip)]
    pub version: i64,
}

/// An acknowledgement of a firing alert: `{"by", "comment", "ts"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Acknowledgement {
    /// The acknowledging token's name.
    pub by: String,
    pub comment: String,
    pub ts: Timestamp,
}

/// [`AlertKey`] as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertKeyOut {
    pub rule: String,
    pub device: String,
    pub sensor: Option<String>,
}

impl AlertStateRow {
    pub fn key(&self) -> AlertKey {
        AlertKey {
            rule: self.key.rule.clone(),
            device: self.key.device.clone(),
            sensor: self.key.sensor.clone(),
        }
    }
}

/// A state change: the new row (ok is no row), and the version the caller last saw
/// (`None`: it saw no row).
#[derive(Debug, Clone)]
pub struct StateChange {
    pub key: AlertKey,
    pub new: Option<NewState>,
    pub expected: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewState {
    pub state: &'static str,
    pub severity: Option<String>,
    pub since: Timestamp,
    pub value: Option<Value>,
    pub notified: Option<Timestamp>,
}

/// What [`Db::record_alert`] did.
#[derive(Debug)]
pub enum Recorded {
    /// Written; the new version (0 for ok) and the event, when one was asked for.
    Done {
        version: i64,
        event: Option<Box<AlertEvent>>,
    },
    /// Another hub changed the row first; nothing was written.
    Conflict,
}

/// A webhook delivery claimed for sending.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub id: i64,
    pub url: String,
    pub attempts: i64,
    pub created: Timestamp,
    pub event: AlertEvent,
}

type EventColumns = (
    i64,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
);
type StateColumns = (
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    Option<String>,
    Option<i64>,
    i64,
    Option<String>,
    Option<String>,
    Option<i64>,
);

const EVENT_COLUMNS: &str = "id, rule, device, sensor, state, severity, value, ts_us, since_us, unit, rule_condition, url, by_name, comment, silenced";

fn event_of(c: EventColumns) -> AlertEvent {
    let (
        id,
        rule,
        device,
        sensor,
        state,
        severity,
        value,
        ts,
        since,
        unit,
        condition,
        url,
        by,
        comment,
        silenced,
    ) = c;
    AlertEvent {
        id,
        rule,
        device,
        sensor,
        state: AlertState::parse(&state).unwrap_or(AlertState::Firing),
        severity,
        value: value.and_then(|v| serde_json::from_str(&v).ok()),
        unit,
        condition,
        ts: Timestamp::from_micros(ts),
        since: Timestamp::from_micros(since),
        url,
        by,
        comment,
        silenced: silenced != 0,
    }
}

fn value_json(v: &Option<Value>) -> Option<String> {
    v.as_ref()
        .map(|v| serde_json::to_string(v).expect("a value serializes"))
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
    /// Adds rules `(name, spec)` in one transaction, all or none; names must be new.
    pub async fn add_alert_rules(&self, rules: &[(String, String)]) -> Result<(), StorageError> {
        let mut tx = self.begin_write().await?;
        let now = Timestamp::now().as_micros();
        for (name, spec) in rules {
            sqlx::query("INSERT INTO alert_rules (name, spec, created_us) VALUES ($1, $2, $3)")
                .bind(name.as_str())
                .bind(spec.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| match &e {
                    sqlx::Error::Database(d) if d.is_unique_violation() => {
                        StorageError::AlertRuleExists(name.clone())
                    }
                    _ => e.into(),
                })?;
        }
        sqlx::query(BUMP_RULES_EPOCH).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a rule and its states (its open alerts end without an event).
    pub async fn delete_alert_rule(&self, name: &str) -> Result<(), StorageError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM alert_state WHERE rule = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM alert_rules WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if done.rows() == 0 {
            return Err(StorageError::NoSuchAlertRule(name.to_owned()));
        }
        sqlx::query(BUMP_RULES_EPOCH).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn alert_rules(&self) -> Result<Vec<AlertRuleRow>, StorageError> {
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT name, spec, created_us FROM alert_rules ORDER BY name")
                .fetch_all(&self.read)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(name, spec, c)| AlertRuleRow {
                name,
                spec,
                created: Timestamp::from_micros(c),
            })
            .collect())
    }

    pub async fn alert_rule_count(&self) -> Result<i64, StorageError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM alert_rules")
            .fetch_one(&self.read)
            .await?)
    }

    /// Changes on every rule added or removed.
    pub async fn alert_rules_epoch(&self) -> Result<i64, StorageError> {
        Ok(sqlx::query_scalar("SELECT epoch FROM alert_rules_epoch")
            .fetch_one(&self.read)
            .await?)
    }

    /// Every series of every rule that is not ok.
    pub async fn alert_states(&self) -> Result<Vec<AlertStateRow>, StorageError> {
        let rows: Vec<StateColumns> = sqlx::query_as(
            "SELECT rule, device, sensor, state, severity, since_us, value, notified_us, version,
                    ack_by, ack_comment, ack_us
             FROM alert_state ORDER BY rule, device, sensor",
        )
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    rule,
                    device,
                    sensor,
                    state,
                    severity,
                    since,
                    value,
                    notified,
                    version,
                    ack_by,
                    ack_comment,
                    ack_us,
                )| {
                    AlertStateRow {
                        key: AlertKeyOut {
                            rule,
                            device,
                            sensor: (!sensor.is_empty()).then_some(sensor),
                        },
                        state,
                        severity,
                        since: Timestamp::from_micros(since),
                        value: value.and_then(|v| serde_json::from_str(&v).ok()),
                        notified: notified.map(Timestamp::from_micros),
                        acknowledged: match (ack_by, ack_us) {
                            (Some(by), Some(ts)) => Some(Acknowledgement {
                                by,
                                comment: ack_comment.unwrap_or_default(),
                                ts: Timestamp::from_micros(ts),
                            }),
                            _ => None,
                        },
                        version,
                    }
                },
            )
            .collect())
    }

    /// Events with `ts` in `[from, to)`, oldest first, at most `limit`.
    pub async fn alert_events(
        &self,
        from: Timestamp,
        to: Timestamp,
        after: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AlertEvent>, StorageError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM alert_events
             WHERE ts_us >= $1 AND ts_us < $2 AND id > $3 ORDER BY id LIMIT $4"
        );
        let rows: Vec<EventColumns> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(from.as_micros())
            .bind(to.as_micros())
            .bind(after.unwrap_or(i64::MIN))
            .bind(limit)
            .fetch_all(&self.read)
            .await?;
        Ok(rows.into_iter().map(event_of).collect())
    }

    /// Applies `change` if the row is still at the version the caller saw, and with
    /// `event` stores the event and one outbox row per webhook URL — all in one
    /// transaction.
    pub async fn record_alert(
        &self,
        change: &StateChange,
        event: Option<&AlertEvent>,
        webhooks: &[String],
    ) -> Result<Recorded, StorageError> {
        let k = &change.key;
        let mut tx = self.begin_write().await?;
        let (applied, version) = match (&change.new, change.expected) {
            (Some(n), expected) => {
                let sql = match expected {
                    None => {
                        "INSERT INTO alert_state
                         (rule, device, sensor, state, severity, since_us, value, notified_us, version)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1)
                         ON CONFLICT (rule, device, sensor) DO NOTHING"
                    }
                    Some(_) => {
                        "UPDATE alert_state SET state = $4, severity = $5, since_us = $6, value = $7,
                         notified_us = $8, version = version + 1
                         WHERE rule = $1 AND device = $2 AND sensor = $3 AND version = $9"
                    }
                };
                let q = sqlx::query(sql)
                    .bind(k.rule.as_str())
                    .bind(k.device.as_str())
                    .bind(k.sensor_col())
                    .bind(n.state)
                    .bind(n.severity.clone())
                    .bind(n.since.as_micros())
                    .bind(value_json(&n.value))
                    .bind(n.notified.map(Timestamp::as_micros));
                let q = match expected {
                    Some(v) => q.bind(v),
                    None => q,
                };
                let done = q.execute(&mut *tx).await?;
                (done.rows() == 1, expected.map_or(1, |v| v + 1))
            }
            (None, expected) => {
                let done = sqlx::query(
                    "DELETE FROM alert_state WHERE rule = $1 AND device = $2 AND sensor = $3
                     AND version = $4",
                )
                .bind(k.rule.as_str())
                .bind(k.device.as_str())
                .bind(k.sensor_col())
                .bind(expected.unwrap_or(0))
                .execute(&mut *tx)
                .await?;
                (done.rows() == 1, 0)
            }
        };
        if !applied {
            return Ok(Recorded::Conflict);
        }
        let event = match event {
            None => None,
            Some(e) => Some(Box::new(Self::insert_event(&mut tx, k, e, webhooks).await?)),
        };
        tx.commit().await?;
        Ok(Recorded::Done { version, event })
    }

    pub(super) async fn insert_event(
        tx: &mut DB::Connection,
        k: &AlertKey,
        e: &AlertEvent,
        webhooks: &[String],
    ) -> Result<AlertEvent, StorageError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO alert_events (rule, device, sensor, state, severity, value, ts_us, since_us,
                                       unit, rule_condition, url, by_name, comment, silenced)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
        )
        .bind(e.rule.as_str())
        .bind(e.device.as_str())
        .bind(e.sensor.clone())
        .bind(e.state.as_str())
        .bind(e.severity.clone())
        .bind(value_json(&e.value))
        .bind(e.ts.as_micros())
        .bind(e.since.as_micros())
        .bind(e.unit.clone())
        .bind(e.condition.clone())
        .bind(e.url.clone())
        .bind(e.by.clone())
        .bind(e.comment.clone())
        .bind(i64::from(e.silenced))
        .fetch_one(&mut *tx)
        .await?;
        let now = Timestamp::now().as_micros();
        for url in webhooks {
            sqlx::query(
                "INSERT INTO alert_outbox (event_id, url, skey, attempts, next_us, created_us)
                 VALUES ($1, $2, $3, 0, $4, $4)",
            )
            .bind(id)
            .bind(url.as_str())
            .bind(k.skey())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        Ok(AlertEvent { id, ..e.clone() })
    }

    /// Claims up to `limit` due deliveries (their series' oldest undelivered event for
    /// that webhook only, so each webhook gets a series' events in order), leasing them
    /// until `lease_until`: a hub that dies while sending leaves them to be retried then.
    pub async fn claim_outbox(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: i64,
    ) -> Result<Vec<OutboxItem>, StorageError> {
        let sql = format!(
            "UPDATE alert_outbox SET next_us = $1 WHERE id IN (
               SELECT o.id FROM alert_outbox o WHERE o.next_us <= $2
               AND NOT EXISTS (SELECT 1 FROM alert_outbox p
                               WHERE p.url = o.url AND p.skey = o.skey AND p.event_id < o.event_id)
               ORDER BY o.event_id LIMIT $3{})
             RETURNING id, event_id, url, attempts, created_us",
            DB::LOCK_ROWS
        );
        let mut tx = self.begin_write().await?;
        let claimed: Vec<(i64, i64, String, i64, i64)> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(lease_until.as_micros())
            .bind(now.as_micros())
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = claimed.iter().map(|c| c.1).collect();
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM alert_events WHERE {}",
            DB::in_ids("id", 1)
        );
        let events: Vec<EventColumns> = DB::bind_ids(sqlx::query(AssertSqlSafe(sql)), &ids)
            .try_map(|row| <EventColumns as sqlx::FromRow<'_, DB::Row>>::from_row(&row))
            .fetch_all(&self.read)
            .await?;
        let events: std::collections::HashMap<i64, AlertEvent> =
            events.into_iter().map(|c| (c.0, event_of(c))).collect();
        Ok(claimed
            .into_iter()
            .filter_map(|(id, event_id, url, attempts, created)| {
                Some(OutboxItem {
                    id,
                    url,
                    attempts,
                    created: Timestamp::from_micros(created),
                    event: events.get(&event_id)?.clone(),
                })
            })
            .collect())
    }

    /// A delivery succeeded, or expired: it leaves the outbox.
    pub async fn outbox_done(&self, id: i64) -> Result<(), StorageError> {
        sqlx::query("DELETE FROM alert_outbox WHERE id = $1")
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// A delivery failed: try again at `next`.
    pub async fn outbox_retry(&self, id: i64, next: Timestamp) -> Result<(), StorageError> {
        sqlx::query("UPDATE alert_outbox SET attempts = attempts + 1, next_us = $2 WHERE id = $1")
            .bind(id)
            .bind(next.as_micros())
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Deliveries not yet done.
    pub async fn outbox_pending(&self) -> Result<i64, StorageError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM alert_outbox")
            .fetch_one(&self.read)
            .await?)
    }

    /// The webhook signing key: the stored one, or `fresh` stored now if there is none
    /// (of hubs racing, the first one's wins).
    pub async fn alert_secret(&self, fresh: &str) -> Result<String, StorageError> {
        sqlx::query(
            "INSERT INTO alert_secret (id, secret) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(fresh)
        .execute(&self.write)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT secret FROM alert_secret WHERE id = 1")
                .fetch_one(&self.write)
                .await?,
        )
    }

    /// The newest stored reading time of a series (any hub's), by names.
    pub async fn latest_reading_ts(
        &self,
        device: &str,
        sensor: &str,
    ) -> Result<Option<Timestamp>, StorageError> {
        let ts: Option<i64> = sqlx::query_scalar(
            "SELECT max(r.ts) FROM readings r JOIN series s ON s.id = r.series_id
             JOIN devices d ON d.id = s.device_id WHERE d.name = $1 AND s.sensor = $2",
        )
        .bind(device)
        .bind(sensor)
        .fetch_one(&self.read)
        .await?;
        Ok(ts.map(Timestamp::from_micros))
    }
}
