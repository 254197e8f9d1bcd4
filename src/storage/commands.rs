//! Command storage (docs/commands.md): the `commands` table, in SQL shared by both backends.
//!
//! Owns [`CommandRow`], [`CommandState`] and every statement on `commands`. Commands are
//! created all or none ([`Db::create_commands`], bounded per device and in all); each
//! later state change is one conditional `UPDATE` on the state (and, for sends, the
//! attempts) the caller last saw ([`Db::change_command`]; several in one transaction:
//! [`Db::change_commands`]), so of several hubs sharing a
//! PostgreSQL database one sends, or finishes, a command, and a terminal state is
//! stored once and never changes. [`CommandRow::to_device_command`] maps a row to the
//! command object of [`crate::protocol::commands`]. Uses [`super::db`], [`crate::domain`]
//! and [`crate::protocol`].

use super::StorageError;
use super::db::{Db, Dialect, RowsAffected};
use crate::domain::{DeviceName, Timestamp};
use crate::protocol::commands::{CommandId, CommandName, DeviceCommand};
use serde::Serialize;
use serde_json::Value as Json;
use sqlx::{AssertSqlSafe, ColumnIndex, Decode, Encode, Executor, Type};

/// Where a command is in its life (docs/commands.md). Terminal states never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CommandState {
    Queued,
    Sent,
    Received,
    Succeeded,
    Failed,
    Rejected,
    Expired,
    Canceled,
}

impl CommandState {
    pub const ALL: [CommandState; 8] = [
        Self::Queued,
        Self::Sent,
        Self::Received,
        Self::Succeeded,
        Self::Failed,
        Self::Rejected,
        Self::Expired,
        Self::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Received => "received",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Queued | Self::Sent | Self::Received)
    }
}

/// The SQL list of the states that are not terminal.
const OPEN: &str = "('queued', 'sent', 'received')";

/// A command as the API shows it (docs/commands.md).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandRow {
    pub id: String,
    pub device: String,
    pub name: String,
    pub params: Json,
    pub state: CommandState,
    pub created: Timestamp,
    pub expires: Timestamp,
    pub attempts: i64,
    pub sent: Option<Timestamp>,
    pub received: Option<Timestamp>,
    pub finished: Option<Timestamp>,
    pub result: Option<Json>,
    pub error: Option<String>,
    /// Creation order: a device's FIFO, and the cursor of listings.
    #[serde(skip)]
    pub seq: i64,
}

impl CommandRow {
    /// The command object a device is handed (docs/commands.md): with `device` when it
    /// goes to a gateway. `None` when the stored row does not make one (it was not
    /// written by this hub's checks: a name or id off the rules, params not an object).
    pub fn to_device_command(&self, with_device: bool) -> Option<DeviceCommand> {
        let params = match &self.params {
            Json::Object(p) => p.clone(),
            _ => return None,
        };
        Some(DeviceCommand {
            id: CommandId::parse(&self.id).ok()?,
            device: if with_device {
                Some(DeviceName::parse(&self.device).ok()?)
            } else {
                None
            },
            name: CommandName::parse(&self.name).ok()?,
            params,
            expires: self.expires,
        })
    }
}

/// A command to create; `params` is the JSON text of an object.
#[derive(Debug, Clone)]
pub struct NewCommand {
    pub id: String,
    pub device: DeviceName,
    pub name: String,
    pub params: String,
    pub created: Timestamp,
    pub expires: Timestamp,
}

/// How many open commands a creation may leave behind.
#[derive(Debug, Clone, Copy)]
pub struct OpenBounds {
    pub per_device: i64,
    pub total: i64,
}

/// `GET /v1/commands` and `command list`: newest first, before `before` (a `seq`).
#[derive(Debug, Clone, Default)]
pub struct CommandFilter {
    pub device: Option<DeviceName>,
    pub state: Option<CommandState>,
    pub from: Option<Timestamp>,
    pub before: Option<i64>,
    pub limit: i64,
}

/// A state change to apply when the command is still where the caller last saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// An operator cancels an open command.
    Cancel,
    /// Its `expires` passed before the device answered.
    Expire,
    /// Handed to the device's transport, for the `attempts + 1`th time: only from
    /// `queued`, or `sent` with `attempts` sends so far, and before it expires.
    Send { attempts: i64 },
    /// Sent `attempts` times without an answer.
    GiveUp { attempts: i64, error: String },
    /// The device acknowledged it.
    Receive,
    /// The device's answer: `succeeded`, `failed` or `rejected`.
    Finish {
        state: CommandState,
        result: Option<Json>,
        error: Option<String>,
    },
}

/// What [`Db::change_command`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Changed {
    /// Applied; the command as stored now.
    Done(CommandRow),
    /// Not applicable (already terminal, or changed by another hub): the stored command.
    Unchanged(CommandRow),
    Missing,
}

type Columns = (
    i64,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

const SELECT: &str = "SELECT c.seq, c.id, d.name, c.name, c.params, c.state, c.created_us,
     c.expires_us, c.attempts, c.sent_us, c.received_us, c.finished_us, c.result, c.error
     FROM commands c JOIN devices d ON d.id = c.device_id";

fn row_of(c: Columns) -> CommandRow {
    let (seq, id, device, name, params, state, created, expires, attempts) =
        (c.0, c.1, c.2, c.3, c.4, c.5, c.6, c.7, c.8);
    let (sent, received, finished, result, error) = (c.9, c.10, c.11, c.12, c.13);
    CommandRow {
        id,
        device,
        name,
        params: serde_json::from_str(&params).unwrap_or(Json::Null),
        state: CommandState::parse(&state).unwrap_or(CommandState::Failed),
        created: Timestamp::from_micros(created),
        expires: Timestamp::from_micros(expires),
        attempts,
        sent: sent.map(Timestamp::from_micros),
        received: received.map(Timestamp::from_micros),
        finished: finished.map(Timestamp::from_micros),
        result: result.and_then(|r| serde_json::from_str(&r).ok()),
        error,
        seq,
    }
}

/// A bound parameter of a statement built at run time.
enum Param {
    Int(i64),
    Text(String),
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
    /// Creates `new` in one transaction, all or none: every device must exist unrevoked,
    /// and no device may be left with more open commands than `bounds` allow, nor the
    /// database. Returns the commands as stored, in the order given.
    pub async fn create_commands(
        &self,
        new: &[NewCommand],
        bounds: OpenBounds,
    ) -> Result<Vec<CommandRow>, StorageError> {
        let mut tx = self.begin_write().await?;
        let open: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM commands WHERE state IN {OPEN}"
        )))
        .fetch_one(&mut *tx)
        .await?;
        if open + new.len() as i64 > bounds.total {
            return Err(StorageError::TooManyCommands(format!(
                "{open} commands are open; at most {} (commands.max_open)",
                bounds.total
            )));
        }
        let mut devices = std::collections::HashMap::new();
        let mut out = Vec::with_capacity(new.len());
        for c in new {
            let device_id = match devices.get(c.device.as_str()) {
                Some(&id) => id,
                None => {
                    let id = self.open_room(&mut tx, &c.device, new, bounds).await?;
                    devices.insert(c.device.as_str(), id);
                    id
                }
            };
            let seq: i64 = sqlx::query_scalar(
                "INSERT INTO commands (id, device_id, name, params, state, created_us, expires_us)
                 VALUES ($1, $2, $3, $4, 'queued', $5, $6) RETURNING seq",
            )
            .bind(c.id.as_str())
            .bind(device_id)
            .bind(c.name.as_str())
            .bind(c.params.as_str())
            .bind(c.created.as_micros())
            .bind(c.expires.as_micros())
            .fetch_one(&mut *tx)
            .await?;
            out.push(CommandRow {
                id: c.id.clone(),
                device: c.device.to_string(),
                name: c.name.clone(),
                params: serde_json::from_str(&c.params).unwrap_or(Json::Null),
                state: CommandState::Queued,
                created: c.created,
                expires: c.expires,
                attempts: 0,
                sent: None,
                received: None,
                finished: None,
                result: None,
                error: None,
                seq,
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    /// The id of `device` (unrevoked), checking it has room for its share of `new`.
    async fn open_room(
        &self,
        tx: &mut DB::Connection,
        device: &DeviceName,
        new: &[NewCommand],
        bounds: OpenBounds,
    ) -> Result<i64, StorageError> {
        let id: i64 =
            sqlx::query_scalar("SELECT id FROM devices WHERE name = $1 AND revoked_us IS NULL")
                .bind(device.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StorageError::NoSuchDevice(device.to_string()))?;
        let open: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM commands WHERE device_id = $1 AND state IN {OPEN}"
        )))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let adding = new.iter().filter(|c| &c.device == device).count() as i64;
        if open + adding > bounds.per_device {
            return Err(StorageError::TooManyCommands(format!(
                "device {device} has {open} open commands; at most {} (commands.max_open_per_device)",
                bounds.per_device
            )));
        }
        Ok(id)
    }

    /// One command as last committed. Read on the read pool: on SQLite the write pool's
    /// one connection waits its turn behind the readings' commits, and a device's every
    /// acknowledgement and answer reads its command first.
    pub async fn command(&self, id: &str) -> Result<Option<CommandRow>, StorageError> {
        let row: Option<Columns> =
            sqlx::query_as(AssertSqlSafe(format!("{SELECT} WHERE c.id = $1")))
                .bind(id)
                .fetch_optional(&self.read)
                .await?;
        Ok(row.map(row_of))
    }

    /// Commands matching `f`, newest first.
    pub async fn list_commands(&self, f: &CommandFilter) -> Result<Vec<CommandRow>, StorageError> {
        let mut conds = Vec::new();
        let mut params = Vec::new();
        let mut cond = |sql: &str, p: Param| {
            params.push(p);
            conds.push(sql.replace('?', &format!("${}", params.len())));
        };
        if let Some(d) = &f.device {
            cond("d.name = ?", Param::Text(d.to_string()));
        }
        if let Some(s) = f.state {
            cond("c.state = ?", Param::Text(s.as_str().into()));
        }
        if let Some(t) = f.from {
            cond("c.created_us >= ?", Param::Int(t.as_micros()));
        }
        if let Some(b) = f.before {
            cond("c.seq < ?", Param::Int(b));
        }
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        let sql = format!(
            "{SELECT}{filter} ORDER BY c.seq DESC LIMIT ${}",
            params.len() + 1
        );
        let mut q = sqlx::query_as::<_, Columns>(AssertSqlSafe(sql));
        for p in params {
            q = match p {
                Param::Int(i) => q.bind(i),
                Param::Text(t) => q.bind(t),
            };
        }
        let rows = q.bind(f.limit).fetch_all(&self.read).await?;
        Ok(rows.into_iter().map(row_of).collect())
    }

    /// Open commands created after `after` (a `seq`), oldest first, at most `limit`.
    pub async fn open_commands(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<CommandRow>, StorageError> {
        let sql =
            format!("{SELECT} WHERE c.seq > $1 AND c.state IN {OPEN} ORDER BY c.seq LIMIT $2");
        let rows: Vec<Columns> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(after)
            .bind(limit)
            .fetch_all(&self.write)
            .await?;
        Ok(rows.into_iter().map(row_of).collect())
    }

    /// The newest command's `seq` (0 when there is none).
    pub async fn last_command_seq(&self) -> Result<i64, StorageError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM commands")
            .fetch_one(&self.write)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    /// Open commands now.
    pub async fn open_command_count(&self) -> Result<i64, StorageError> {
        let sql = format!("SELECT count(*) FROM commands WHERE state IN {OPEN}");
        Ok(sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_one(&self.read)
            .await?)
    }

    /// Applies `t` to command `id` at `now` if it is still where `t` expects.
    pub async fn change_command(
        &self,
        id: &str,
        t: &Transition,
        now: Timestamp,
    ) -> Result<Changed, StorageError> {
        let mut out = self.change_commands(&[(id, t, now)]).await?;
        Ok(out.pop().expect("one change, one outcome"))
    }

    /// Applies each change in the order given, in one transaction, each if its command
    /// is still where it expects (after the changes before it); the outcomes in order.
    pub async fn change_commands(
        &self,
        changes: &[(&str, &Transition, Timestamp)],
    ) -> Result<Vec<Changed>, StorageError> {
        let mut tx = self.begin_write().await?;
        let mut out = Vec::with_capacity(changes.len());
        for &(id, t, now) in changes {
            let (set, cond) = change_sql(t);
            let sql = format!("UPDATE commands SET {set} WHERE id = $1 AND {cond}");
            let q = sqlx::query(AssertSqlSafe(sql))
                .bind(id)
                .bind(now.as_micros());
            let q = match t {
                Transition::Send { attempts } => q.bind(*attempts),
                Transition::GiveUp { attempts, error } => q.bind(*attempts).bind(error.clone()),
                Transition::Finish {
                    state,
                    result,
                    error,
                } => q
                    .bind(state.as_str())
                    .bind(result.as_ref().map(Json::to_string))
                    .bind(error.clone()),
                _ => q,
            };
            let applied = q.execute(&mut *tx).await?.rows() == 1;
            let row: Option<Columns> =
                sqlx::query_as(AssertSqlSafe(format!("{SELECT} WHERE c.id = $1")))
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            out.push(match (row.map(row_of), applied) {
                (None, _) => Changed::Missing,
                (Some(row), true) => Changed::Done(row),
                (Some(row), false) => Changed::Unchanged(row),
            });
        }
        tx.commit().await?;
        Ok(out)
    }
}

/// The `SET` and the condition of a transition's conditional `UPDATE` (`$1` the id,
/// `$2` the time, then the transition's own values).
fn change_sql(t: &Transition) -> (String, String) {
    let open = format!("state IN {OPEN}");
    match t {
        Transition::Cancel => ("state = 'canceled', finished_us = $2".into(), open),
        Transition::Expire => (
            "state = 'expired', finished_us = $2".into(),
            format!("{open} AND expires_us <= $2"),
        ),
        Transition::Send { .. } => (
            "state = 'sent', attempts = attempts + 1, sent_us = $2".into(),
            "state IN ('queued', 'sent') AND attempts = $3 AND expires_us > $2".into(),
        ),
        Transition::GiveUp { .. } => (
            "state = 'failed', finished_us = $2, error = $4".into(),
            "state = 'sent' AND attempts = $3".into(),
        ),
        Transition::Receive => (
            "state = 'received', received_us = $2".into(),
            "state = 'sent'".into(),
        ),
        Transition::Finish { .. } => (
            "state = $3, finished_us = $2, result = $4, error = $5,
             received_us = coalesce(received_us, $2)"
                .to_string(),
            "state IN ('sent', 'received')".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_as_they_print_and_only_the_answers_end_a_command() {
        for s in CommandState::ALL {
            assert_eq!(CommandState::parse(s.as_str()), Some(s));
        }
        let open: Vec<_> = CommandState::ALL
            .into_iter()
            .filter(|s| !s.is_terminal())
            .map(CommandState::as_str)
            .collect();
        assert_eq!(open, ["queued", "sent", "received"]);
        assert_eq!(OPEN, "('queued', 'sent', 'received')");
    }
}
