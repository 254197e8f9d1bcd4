//! The SQLite backend (embedded default): WAL journal, a deliberate `synchronous`
//! level, one write connection (the writer task's) and a small read pool.

use super::history::RollupFlag;
use super::pending;
use super::rollup::{self, RollupRow};
use super::stats::DiskPart;
use super::writer::PreparedBatch;
use super::{DeviceRow, Point, RangeQuery, SeriesRow, StorageError, TokenRow};
use crate::auth::{self, DeviceRef, Principal, Role};
use crate::config::{DatabaseSettings, SqliteSync};
use crate::domain::{DeviceName, SensorName, Timestamp};
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, Sqlite, Transaction};
use std::collections::HashSet;
use std::str::FromStr;

#[derive(Clone)]
pub struct SqliteStore {
    /// One connection: SQLite has one writer at a time anyway.
    write: SqlitePool,
    read: SqlitePool,
    /// Cached `rollup_state.complete`.
    pub rollups: RollupFlag,
}

/// Rows buffered between a read connection's thread and the query's task.
const READ_ROW_BUFFER: usize = 4096;

/// Rows per multi-row INSERT; a batch is cut into chunks of these sizes so that only
/// four distinct statements are ever prepared.
const CHUNKS: [usize; 4] = [512, 64, 8, 1];

impl SqliteStore {
    pub async fn open(s: &DatabaseSettings) -> Result<Self, StorageError> {
        let open_err = |source| StorageError::Open {
            url: s.url.clone(),
            source,
        };
        let opts = SqliteConnectOptions::from_str(&s.url)
            .map_err(open_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match s.sqlite_synchronous {
                SqliteSync::Full => SqliteSynchronous::Full,
                SqliteSync::Normal => SqliteSynchronous::Normal,
            })
            .busy_timeout(s.busy_timeout)
            .foreign_keys(true)
            .pragma("cache_size", "-16000");
        if let Some(dir) = opts
            .get_filename()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|e| open_err(sqlx::Error::Io(e)))?;
        }
        let pool = |n: u32| {
            SqlitePoolOptions::new()
                .max_connections(n)
                .acquire_timeout(s.busy_timeout)
        };
        let write = pool(1).connect_with(opts.clone()).await.map_err(open_err)?;
        // sqlx hands rows from each connection's thread to the query's task through a
        // channel of this many rows; its default of 50 makes a 1,440-bucket answer
        // ping-pong between threads ~30 times. Bounded: ~1 MB per running query.
        let read = pool(s.max_connections.max(1))
            .connect_with(opts.row_buffer_size(READ_ROW_BUFFER))
            .await
            .map_err(open_err)?;
        Ok(Self {
            write,
            read,
            rollups: RollupFlag::default(),
        })
    }

    pub async fn migrate(&self) -> Result<(), StorageError> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.write)
            .await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    /// The read pool (queries).
    pub fn reader(&self) -> &SqlitePool {
        &self.read
    }

    /// The writer's single connection. Maintenance (retention) borrows it one short
    /// statement at a time, so the writer waits for at most one such statement.
    pub fn writer(&self) -> &SqlitePool {
        &self.write
    }

    /// Sizes of the database file and its WAL and shared-memory files.
    pub async fn disk_usage(&self) -> Result<Vec<DiskPart>, StorageError> {
        let file: String = sqlx::query("PRAGMA database_list")
            .fetch_one(&self.read)
            .await?
            .get(2);
        Ok(["", "-wal", "-shm"]
            .iter()
            .map(|suffix| {
                let name = format!("{file}{suffix}");
                let bytes = std::fs::metadata(&name).map_or(0, |m| m.len());
                DiskPart { name, bytes }
            })
            .collect())
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    pub async fn add_devices(
        &self,
        names: &[DeviceName],
        gateway_for: &[DeviceName],
    ) -> Result<Vec<(DeviceName, String)>, StorageError> {
        let now = Timestamp::now().as_micros();
        let mut tx = self.write.begin().await?;
        let mut targets = Vec::new();
        for t in gateway_for {
            let id: Option<i64> =
                sqlx::query_scalar("SELECT id FROM devices WHERE name = ? AND revoked_us IS NULL")
                    .bind(t.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            targets.push(id.ok_or_else(|| StorageError::UnknownTarget(t.to_string()))?);
        }
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO devices (name, created_us) VALUES (?, ?) RETURNING id",
            )
            .bind(name.as_str())
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| unique_violation(e, name))?;
            for t in &targets {
                sqlx::query("INSERT INTO gateway_targets (gateway_id, device_id) VALUES (?, ?)")
                    .bind(id)
                    .bind(t)
                    .execute(&mut *tx)
                    .await?;
            }
            let token = insert_token(&mut tx, Role::Device, Some(id), name.as_str(), now).await?;
            out.push((name.clone(), token));
        }
        tx.commit().await?;
        Ok(out)
    }

    pub async fn add_token(&self, label: &str, role: Role) -> Result<String, StorageError> {
        let mut tx = self.write.begin().await?;
        let token = insert_token(&mut tx, role, None, label, Timestamp::now().as_micros()).await?;
        tx.commit().await?;
        Ok(token)
    }

    pub async fn revoke_tokens(&self, label: &str) -> Result<u64, StorageError> {
        let mut tx = self.write.begin().await?;
        let done = sqlx::query(
            "UPDATE tokens SET revoked_us = ? WHERE label = ? AND role IN ('viewer','admin') AND revoked_us IS NULL",
        )
        .bind(Timestamp::now().as_micros())
        .bind(label)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE auth_epoch SET epoch = epoch + 1")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenRow>, StorageError> {
        let rows = sqlx::query(
            "SELECT label, role, created_us, revoked_us FROM tokens WHERE role IN ('viewer','admin') ORDER BY label, id",
        )
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| super::token_row(r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect())
    }

    pub async fn reissue_token(
        &self,
        label: &str,
        role: Role,
        device: Option<&DeviceName>,
    ) -> Result<String, StorageError> {
        let now = Timestamp::now().as_micros();
        let mut tx = self.write.begin().await?;
        let device_id = match device {
            Some(d) => Some(
                sqlx::query_scalar::<_, i64>(
                    "SELECT id FROM devices WHERE name = ? AND revoked_us IS NULL",
                )
                .bind(d.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StorageError::NoSuchDevice(d.to_string()))?,
            ),
            None => None,
        };
        let revoked = sqlx::query(
            "UPDATE tokens SET revoked_us = ? WHERE role = ? AND label = ? AND device_id IS ? AND revoked_us IS NULL",
        )
        .bind(now)
        .bind(role.as_str())
        .bind(label)
        .bind(device_id)
        .execute(&mut *tx)
        .await?;
        if revoked.rows_affected() > 0 {
            sqlx::query("UPDATE auth_epoch SET epoch = epoch + 1")
                .execute(&mut *tx)
                .await?;
        }
        let token = insert_token(&mut tx, role, device_id, label, now).await?;
        tx.commit().await?;
        Ok(token)
    }

    pub async fn has_viewer_token(&self) -> Result<bool, StorageError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM tokens WHERE role IN ('viewer','admin') AND revoked_us IS NULL",
        )
        .fetch_one(&self.read)
        .await?;
        Ok(n > 0)
    }

    pub async fn revoke_device(&self, name: &DeviceName) -> Result<(), StorageError> {
        let now = Timestamp::now().as_micros();
        let mut tx = self.write.begin().await?;
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM devices WHERE name = ?")
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let id = id.ok_or_else(|| StorageError::NoSuchDevice(name.to_string()))?;
        sqlx::query("UPDATE devices SET revoked_us = coalesce(revoked_us, ?) WHERE id = ?")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE tokens SET revoked_us = coalesce(revoked_us, ?) WHERE device_id = ?")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE auth_epoch SET epoch = epoch + 1")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_devices(&self) -> Result<Vec<DeviceRow>, StorageError> {
        let devices = sqlx::query(
            "SELECT id, name, created_us, revoked_us, last_seen_us FROM devices ORDER BY name",
        )
        .fetch_all(&self.read)
        .await?
        .into_iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get::<Option<i64>, _>(3).is_some(),
                r.get(4),
            )
        })
        .collect();
        let sensors = sqlx::query("SELECT device_id, sensor FROM series ORDER BY sensor")
            .fetch_all(&self.read)
            .await?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let targets = sqlx::query("SELECT g.gateway_id, d.name FROM gateway_targets g JOIN devices d ON d.id = g.device_id ORDER BY d.name")
            .fetch_all(&self.read)
            .await?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        Ok(super::assemble_devices(devices, sensors, targets))
    }

    pub async fn authenticate(&self, hash: &[u8; 32]) -> Result<Option<Principal>, StorageError> {
        let row = sqlx::query(
            "SELECT t.id, t.role, d.id, d.name FROM tokens t LEFT JOIN devices d ON d.id = t.device_id
             WHERE t.hash = ? AND t.revoked_us IS NULL AND d.revoked_us IS NULL",
        )
        .bind(&hash[..])
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let targets = match row.get::<Option<i64>, _>(2) {
            Some(gw) => sqlx::query(
                "SELECT d.id, d.name FROM gateway_targets g JOIN devices d ON d.id = g.device_id
                 WHERE g.gateway_id = ? AND d.revoked_us IS NULL",
            )
            .bind(gw)
            .fetch_all(&self.read)
            .await?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect(),
            None => Vec::new(),
        };
        Ok(super::principal(
            row.get(0),
            row.get(1),
            row.get(2),
            row.get(3),
            targets,
        ))
    }

    pub async fn auth_epoch(&self) -> Result<i64, StorageError> {
        Ok(sqlx::query_scalar("SELECT epoch FROM auth_epoch")
            .fetch_one(&self.read)
            .await?)
    }

    pub async fn revoked_among(&self, token_ids: &[i64]) -> Result<Vec<i64>, StorageError> {
        let valid: HashSet<i64> =
            sqlx::query_scalar("SELECT id FROM tokens WHERE revoked_us IS NULL")
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
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM devices WHERE name = ?")
            .bind(name.as_str())
            .fetch_optional(&self.read)
            .await?;
        Ok(id.map(|id| DeviceRef {
            id,
            name: name.clone(),
        }))
    }

    pub async fn device_state(
        &self,
        name: &DeviceName,
    ) -> Result<Option<(DeviceRef, bool)>, StorageError> {
        let row: Option<(i64, Option<i64>)> =
            sqlx::query_as("SELECT id, revoked_us FROM devices WHERE name = ?")
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

    pub async fn series_of(&self, device_id: i64) -> Result<Vec<SeriesRow>, StorageError> {
        let rows =
            sqlx::query("SELECT id, sensor, unit FROM series WHERE device_id = ? ORDER BY sensor")
                .bind(device_id)
                .fetch_all(&self.read)
                .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some(SeriesRow {
                    id: r.get(0),
                    sensor: SensorName::parse(r.get(1)).ok()?,
                    unit: r.get(2),
                })
            })
            .collect())
    }

    pub async fn query_points(&self, q: RangeQuery) -> Result<Vec<Point>, StorageError> {
        let rows = sqlx::query(
            "SELECT ts, value FROM readings WHERE series_id = ? AND ts >= ? AND ts < ? ORDER BY ts LIMIT ?",
        )
        .bind(q.series)
        .bind(q.start_us())
        .bind(q.to.as_micros())
        .bind(q.limit.min(i64::MAX as usize) as i64)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Point {
                ts: Timestamp::from_micros(r.get(0)),
                value: r.get(1),
            })
            .collect())
    }

    pub(crate) async fn commit_rows(
        &self,
        batch: &mut PreparedBatch<'_>,
    ) -> Result<Vec<bool>, StorageError> {
        let mut tx = self.write.begin().await?;
        let unresolved: Vec<_> = batch
            .unresolved()
            .map(|(i, k, u)| (i, k.clone(), u.map(|u| u.as_str().to_owned())))
            .collect();
        for (i, key, unit) in unresolved {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO series (device_id, sensor, unit) VALUES (?, ?, ?)
                 ON CONFLICT (device_id, sensor) DO UPDATE SET unit = coalesce(excluded.unit, unit) RETURNING id",
            )
            .bind(key.device_id)
            .bind(key.sensor.as_str())
            .bind(unit)
            .fetch_one(&mut *tx)
            .await?;
            let max_ts: Option<i64> =
                sqlx::query_scalar("SELECT max(ts) FROM readings WHERE series_id = ?")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
            batch.resolve(i, id, max_ts);
        }
        for (id, unit) in batch.unit_changes() {
            sqlx::query("UPDATE series SET unit = ? WHERE id = ?")
                .bind(unit)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let (fresh, maybe) = batch.split_rows();
        let inserted = exec_chunked(&mut tx, &fresh, insert_sql, |q, r| {
            q.bind(r.series).bind(r.ts).bind(r.value)
        })
        .await?;
        if inserted as usize != fresh.len() {
            tracing::warn!(
                expected = fresh.len(),
                inserted,
                "another writer stored some of these readings first; rollups may count them twice"
            );
        }
        let mut maybe_inserted = Vec::with_capacity(maybe.len());
        for (_, r) in &maybe {
            let done = sqlx::query(
                "INSERT OR IGNORE INTO readings (series_id, ts, value) VALUES (?, ?, ?)",
            )
            .bind(r.series)
            .bind(r.ts)
            .bind(r.value)
            .execute(&mut *tx)
            .await?;
            maybe_inserted.push(done.rows_affected() == 1);
        }
        if let Some(staged) = batch.stage_rollups(&fresh, &maybe, &maybe_inserted) {
            for (level, rows) in staged.levels() {
                let sql = |n| upsert_sql(level.table(), n);
                exec_chunked(&mut tx, rows, sql, bind_rollup).await?;
            }
            pending::store_horizons::<Sqlite>(staged, &self.rollups, &mut tx).await?;
        }
        // One statement for every device of the batch (one per device cost a round trip
        // to the connection's thread each: most of a 1,000-device commit).
        sqlx::query(
            "UPDATE devices SET last_seen_us = ? WHERE id IN (SELECT value FROM json_each(?))",
        )
        .bind(batch.now_us)
        .bind(serde_json::to_string(&batch.touched).expect("ids serialise"))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if let Some(staged) = &batch.staged {
            self.rollups.set_horizons(staged.horizons());
        }
        Ok(batch.inserted_flags(&maybe, &maybe_inserted))
    }
}

type SqliteQuery = sqlx::query::Query<'static, Sqlite, SqliteArguments>;

/// Runs a multi-row statement over `rows` in chunks of [`CHUNKS`] sizes (so only four
/// distinct statements are prepared per kind); `sql(n)` is the statement for `n` rows.
/// Returns the rows affected.
async fn exec_chunked<T>(
    tx: &mut Transaction<'static, Sqlite>,
    rows: &[T],
    sql: impl Fn(usize) -> String,
    bind: impl Fn(SqliteQuery, &T) -> SqliteQuery,
) -> Result<u64, StorageError> {
    let (mut rest, mut affected) = (rows, 0);
    for size in CHUNKS {
        if rest.len() < size {
            continue;
        }
        let sql = sql(size);
        while rest.len() >= size {
            let (chunk, tail) = rest.split_at(size);
            let q = chunk
                .iter()
                .fold(sqlx::query(AssertSqlSafe(sql.clone())), &bind);
            affected += q.execute(&mut **tx).await?.rows_affected();
            rest = tail;
        }
    }
    Ok(affected)
}

fn values(head: &str, per_row: usize, rows: usize) -> String {
    let tuple = format!("({})", vec!["?"; per_row].join(","));
    let mut sql = String::from(head);
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&tuple);
    }
    sql
}

fn insert_sql(rows: usize) -> String {
    values(
        "INSERT OR IGNORE INTO readings (series_id, ts, value) VALUES ",
        3,
        rows,
    )
}

fn upsert_sql(table: &str, rows: usize) -> String {
    let head = format!("INSERT INTO {table} ({}) VALUES ", rollup::COLUMNS);
    values(&head, 12, rows) + &rollup::upsert_set(table)
}

fn bind_rollup(q: SqliteQuery, r: &RollupRow) -> SqliteQuery {
    let s = &r.s;
    q.bind(r.series)
        .bind(r.bucket)
        .bind(s.n)
        .bind(s.sum)
        .bind(s.min)
        .bind(s.max)
        .bind(s.first_ts)
        .bind(s.last_ts)
        .bind(s.first)
        .bind(s.last)
        .bind(s.min_ts)
        .bind(s.max_ts)
}

async fn insert_token(
    tx: &mut Transaction<'static, Sqlite>,
    role: Role,
    device_id: Option<i64>,
    label: &str,
    now: i64,
) -> Result<String, StorageError> {
    let (token, hash) = auth::new_token();
    sqlx::query(
        "INSERT INTO tokens (hash, role, device_id, label, created_us) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&hash[..])
    .bind(role.as_str())
    .bind(device_id)
    .bind(label)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(token)
}

fn unique_violation(e: sqlx::Error, name: &DeviceName) -> StorageError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            StorageError::DeviceExists(name.to_string())
        }
        _ => StorageError::Db(e),
    }
}
