//! The PostgreSQL backend: a connection pool, readings inserted in bulk with
//! `UNNEST` arrays (one statement per batch, not one per row).

use super::history::RollupFlag;
use super::pending;
use super::rollup::{self, RollupRow};
use super::stats::{DiskPart, TABLES};
use super::writer::PreparedBatch;
use super::{DeviceRow, Point, RangeQuery, SeriesRow, StorageError, TokenRow};
use crate::auth::{self, DeviceRef, Principal, Role};
use crate::config::DatabaseSettings;
use crate::domain::{DeviceName, SensorName, Timestamp};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Postgres, Row, Transaction};
use std::collections::HashSet;
use std::str::FromStr;

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Cached `rollup_state.complete`.
    pub rollups: RollupFlag,
}

impl PgStore {
    pub async fn open(s: &DatabaseSettings) -> Result<Self, StorageError> {
        let open_err = |source| StorageError::Open {
            url: crate::config::redact_url(&s.url),
            source,
        };
        let opts = PgConnectOptions::from_str(&s.url).map_err(open_err)?;
        let pool = PgPoolOptions::new()
            .max_connections(s.max_connections.max(2))
            .acquire_timeout(s.busy_timeout)
            .connect_with(opts)
            .await
            .map_err(open_err)?;
        Ok(Self {
            pool,
            rollups: RollupFlag::default(),
        })
    }

    pub async fn migrate(&self) -> Result<(), StorageError> {
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// The pool queries, the writer and maintenance share.
    pub fn reader(&self) -> &PgPool {
        &self.pool
    }

    pub fn writer(&self) -> &PgPool {
        &self.pool
    }

    /// `pg_total_relation_size` (table, indexes, TOAST) of each of telehub's tables.
    pub async fn disk_usage(&self) -> Result<Vec<DiskPart>, StorageError> {
        let rows = sqlx::query(
            "SELECT t, pg_total_relation_size(to_regclass(t)) FROM unnest($1::text[]) t
             WHERE to_regclass(t) IS NOT NULL",
        )
        .bind(&TABLES[..])
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| DiskPart {
                name: r.get(0),
                bytes: r.get::<i64, _>(1).max(0) as u64,
            })
            .collect())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn add_devices(
        &self,
        names: &[DeviceName],
        gateway_for: &[DeviceName],
    ) -> Result<Vec<(DeviceName, String)>, StorageError> {
        let now = Timestamp::now().as_micros();
        let mut tx = self.pool.begin().await?;
        let mut targets = Vec::new();
        for t in gateway_for {
            let id: Option<i64> =
                sqlx::query_scalar("SELECT id FROM devices WHERE name = $1 AND revoked_us IS NULL")
                    .bind(t.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            targets.push(id.ok_or_else(|| StorageError::UnknownTarget(t.to_string()))?);
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
            if !targets.is_empty() {
                sqlx::query("INSERT INTO gateway_targets (gateway_id, device_id) SELECT $1, unnest($2::bigint[])")
                    .bind(id)
                    .bind(&targets)
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
        let mut tx = self.pool.begin().await?;
        let token = insert_token(&mut tx, role, None, label, Timestamp::now().as_micros()).await?;
        tx.commit().await?;
        Ok(token)
    }

    pub async fn revoke_tokens(&self, label: &str) -> Result<u64, StorageError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE tokens SET revoked_us = $1 WHERE label = $2 AND role IN ('viewer','admin') AND revoked_us IS NULL",
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
        .fetch_all(&self.pool)
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
        let mut tx = self.pool.begin().await?;
        let device_id = match device {
            Some(d) => Some(
                sqlx::query_scalar::<_, i64>(
                    "SELECT id FROM devices WHERE name = $1 AND revoked_us IS NULL",
                )
                .bind(d.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StorageError::NoSuchDevice(d.to_string()))?,
            ),
            None => None,
        };
        let revoked = sqlx::query(
            "UPDATE tokens SET revoked_us = $1 WHERE role = $2 AND label = $3 AND device_id IS NOT DISTINCT FROM $4 AND revoked_us IS NULL",
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
        Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tokens WHERE role IN ('viewer','admin') AND revoked_us IS NULL)")
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn revoke_device(&self, name: &DeviceName) -> Result<(), StorageError> {
        let now = Timestamp::now().as_micros();
        let mut tx = self.pool.begin().await?;
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM devices WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let id = id.ok_or_else(|| StorageError::NoSuchDevice(name.to_string()))?;
        sqlx::query("UPDATE devices SET revoked_us = coalesce(revoked_us, $1) WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE tokens SET revoked_us = coalesce(revoked_us, $1) WHERE device_id = $2")
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
        .fetch_all(&self.pool)
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
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let targets = sqlx::query("SELECT g.gateway_id, d.name FROM gateway_targets g JOIN devices d ON d.id = g.device_id ORDER BY d.name")
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        Ok(super::assemble_devices(devices, sensors, targets))
    }

    pub async fn authenticate(&self, hash: &[u8; 32]) -> Result<Option<Principal>, StorageError> {
        let row = sqlx::query(
            "SELECT t.id, t.role, d.id, d.name FROM tokens t LEFT JOIN devices d ON d.id = t.device_id
             WHERE t.hash = $1 AND t.revoked_us IS NULL AND d.revoked_us IS NULL",
        )
        .bind(&hash[..])
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let targets = match row.get::<Option<i64>, _>(2) {
            Some(gw) => sqlx::query(
                "SELECT d.id, d.name FROM gateway_targets g JOIN devices d ON d.id = g.device_id
                 WHERE g.gateway_id = $1 AND d.revoked_us IS NULL",
            )
            .bind(gw)
            .fetch_all(&self.pool)
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
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn revoked_among(&self, token_ids: &[i64]) -> Result<Vec<i64>, StorageError> {
        let valid: HashSet<i64> =
            sqlx::query_scalar("SELECT id FROM tokens WHERE revoked_us IS NULL AND id = ANY($1)")
                .bind(token_ids)
                .fetch_all(&self.pool)
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
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM devices WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(&self.pool)
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
            sqlx::query_as("SELECT id, revoked_us FROM devices WHERE name = $1")
                .bind(name.as_str())
                .fetch_optional(&self.pool)
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
            sqlx::query("SELECT id, sensor, unit FROM series WHERE device_id = $1 ORDER BY sensor")
                .bind(device_id)
                .fetch_all(&self.pool)
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
            "SELECT ts, value FROM readings WHERE series_id = $1 AND ts >= $2 AND ts < $3 ORDER BY ts LIMIT $4",
        )
        .bind(q.series)
        .bind(q.start_us())
        .bind(q.to.as_micros())
        .bind(q.limit.min(i64::MAX as usize) as i64)
        .fetch_all(&self.pool)
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
        let mut tx = self.pool.begin().await?;
        let unresolved: Vec<_> = batch
            .unresolved()
            .map(|(i, k, u)| (i, k.clone(), u.map(|u| u.as_str().to_owned())))
            .collect();
        for (i, key, unit) in unresolved {
            let row = sqlx::query(
                "WITH s AS (INSERT INTO series (device_id, sensor, unit) VALUES ($1, $2, $3)
                   ON CONFLICT (device_id, sensor) DO UPDATE SET unit = coalesce(excluded.unit, series.unit) RETURNING id)
                 SELECT s.id, (SELECT max(ts) FROM readings r WHERE r.series_id = s.id) FROM s",
            )
            .bind(key.device_id)
            .bind(key.sensor.as_str())
            .bind(unit)
            .fetch_one(&mut *tx)
            .await?;
            batch.resolve(i, row.get(0), row.get(1));
        }
        for (id, unit) in batch.unit_changes() {
            sqlx::query("UPDATE series SET unit = $1 WHERE id = $2")
                .bind(unit)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let (fresh, maybe) = batch.split_rows();
        let columns = |rows: &mut dyn Iterator<Item = &super::RowValues>| {
            let (mut s, mut t, mut v) = (Vec::new(), Vec::new(), Vec::new());
            for r in rows {
                s.push(r.series);
                t.push(r.ts);
                v.push(r.value);
            }
            (s, t, v)
        };
        const INSERT: &str = "INSERT INTO readings (series_id, ts, value)
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::float8[]) ON CONFLICT DO NOTHING";
        if !fresh.is_empty() {
            let (s, t, v) = columns(&mut fresh.iter());
            sqlx::query(INSERT)
                .bind(s)
                .bind(t)
                .bind(v)
                .execute(&mut *tx)
                .await?;
        }
        let mut maybe_inserted = Vec::with_capacity(maybe.len());
        if !maybe.is_empty() {
            let (s, t, v) = columns(&mut maybe.iter().map(|(_, r)| r));
            let mut new: HashSet<(i64, i64)> =
                sqlx::query(AssertSqlSafe(format!("{INSERT} RETURNING series_id, ts")))
                    .bind(s)
                    .bind(t)
                    .bind(v)
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect();
            // The first of several equal keys is the one stored.
            maybe_inserted.extend(maybe.iter().map(|(_, r)| new.remove(&(r.series, r.ts))));
        }
        if let Some(staged) = batch.stage_rollups(&fresh, &maybe, &maybe_inserted) {
            for (level, rows) in staged.levels() {
                upsert_rollups(&mut tx, level.table(), rows).await?;
            }
            pending::store_horizons::<Postgres>(staged, &self.rollups, &mut tx).await?;
        }
        sqlx::query("UPDATE devices SET last_seen_us = $1 WHERE id = ANY($2)")
            .bind(batch.now_us)
            .bind(&batch.touched)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if let Some(staged) = &batch.staged {
            self.rollups.set_horizons(staged.horizons());
        }
        Ok(batch.inserted_flags(&maybe, &maybe_inserted))
    }
}

/// One `INSERT .. SELECT FROM UNNEST .. ON CONFLICT DO UPDATE` for all of a level's rows
/// (one row per bucket, so no row is updated twice by the statement).
async fn upsert_rollups(
    tx: &mut Transaction<'static, Postgres>,
    table: &str,
    rows: &[RollupRow],
) -> Result<(), StorageError> {
    if rows.is_empty() {
        return Ok(());
    }
    let ints = |f: fn(&RollupRow) -> i64| rows.iter().map(f).collect::<Vec<i64>>();
    let floats = |f: fn(&RollupRow) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
    let sql = format!(
        "INSERT INTO {table} ({}) SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[],
           $4::float8[], $5::float8[], $6::float8[], $7::bigint[], $8::bigint[], $9::float8[],
           $10::float8[], $11::bigint[], $12::bigint[]) {}",
        rollup::COLUMNS,
        rollup::upsert_set(table)
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(ints(|r| r.series))
        .bind(ints(|r| r.bucket))
        .bind(ints(|r| r.s.n))
        .bind(floats(|r| r.s.sum))
        .bind(floats(|r| r.s.min))
        .bind(floats(|r| r.s.max))
        .bind(ints(|r| r.s.first_ts))
        .bind(ints(|r| r.s.last_ts))
        .bind(floats(|r| r.s.first))
        .bind(floats(|r| r.s.last))
        .bind(ints(|r| r.s.min_ts))
        .bind(ints(|r| r.s.max_ts))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn insert_token(
    tx: &mut Transaction<'static, Postgres>,
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
