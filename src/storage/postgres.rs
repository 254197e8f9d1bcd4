//! The PostgreSQL backend: one connection pool shared by queries, the writer and
//! maintenance.
//!
//! Owns opening a PostgreSQL database, its migrations, its disk usage, and its
//! [`Dialect`]: plain `BEGIN`, claimed rows locked `FOR UPDATE SKIP LOCKED`, id lists
//! bound as arrays (`ANY`). The writer's statements are [`super::pg_commit`]'s. Uses
//! [`super::db`] and the settings in [`crate::config`].

use super::StorageError;
use super::db::{Db, DbQuery, Dialect};
use super::stats::{DiskPart, TABLES};
use crate::config::DatabaseSettings;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgSslMode};
use sqlx::{Connection, Postgres, Row};
use std::str::FromStr;

/// Opens a pool of `max_connections` (at least two: the writer and one query).
pub async fn open(s: &DatabaseSettings) -> Result<Db<Postgres>, StorageError> {
    let open_err = |cause| StorageError::Open {
        url: crate::config::redact_url(&s.url),
        cause,
    };
    let opts = loopback_in_clear(
        PgConnectOptions::from_str(&s.url).map_err(open_err)?,
        &s.url,
    );
    let pool = match PgPoolOptions::new()
        .max_connections(s.max_connections.max(2))
        .acquire_timeout(s.busy_timeout)
        .connect_with(opts.clone())
        .await
    {
        Ok(pool) => pool,
        // The pool retries until its timeout and then says only "pool timed out": one
        // direct attempt names the cause (connection refused, no such host, bad password).
        Err(sqlx::Error::PoolTimedOut) => {
            let direct = tokio::time::timeout(s.busy_timeout, PgConnection::connect_with(&opts));
            return Err(open_err(match direct.await {
                Ok(Err(cause)) => cause,
                _ => sqlx::Error::PoolTimedOut,
            }));
        }
        Err(e) => return Err(open_err(e)),
    };
    Ok(Db::new(pool.clone(), pool))
}

/// Without an `sslmode` (in the URL or `PGSSLMODE`), libpq's default `prefer` encrypts
/// whenever the server offers TLS, also over loopback, where it protects nothing and
/// halved ingest (BENCHMARKS.md, "PostgreSQL over TLS"). So a server on this machine
/// (127.0.0.0/8, ::1, `localhost`, a Unix socket) is spoken to in clear unless `sslmode`
/// says otherwise; every other host keeps `prefer`.
fn loopback_in_clear(opts: PgConnectOptions, url: &str) -> PgConnectOptions {
    let explicit = url.contains("sslmode=") || std::env::var_os("PGSSLMODE").is_some();
    let host = opts
        .get_host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = opts.get_socket().is_some()
        || host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if explicit || !loopback {
        opts
    } else {
        opts.ssl_mode(PgSslMode::Disable)
    }
}

impl Db<Postgres> {
    pub async fn migrate(&self) -> Result<(), StorageError> {
        sqlx::migrate!("./migrations/postgres")
            .run(&self.write)
            .await?;
        Ok(())
    }

    /// `pg_total_relation_size` (table, indexes, TOAST) of each of telehub's tables, a
    /// partitioned one summed over its partitions.
    pub async fn disk_usage(&self) -> Result<Vec<DiskPart>, StorageError> {
        let rows = sqlx::query(
            // A partitioned table (`readings`) has no storage of its own: its size is
            // its partitions'. `pg_partition_tree` of a plain table lists nothing.
            "SELECT t, coalesce((SELECT sum(pg_total_relation_size(p.relid))::bigint
                                 FROM pg_partition_tree(to_regclass(t)) p),
                                pg_total_relation_size(to_regclass(t)))
             FROM unnest($1::text[]) t WHERE to_regclass(t) IS NOT NULL",
        )
        .bind(&TABLES[..])
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| DiskPart {
                name: r.get(0),
                bytes: r.get::<i64, _>(1).max(0) as u64,
            })
            .collect())
    }
}

impl Dialect for Postgres {
    const BEGIN_WRITE: &'static str = "BEGIN";
    const LOCK_ROWS: &'static str = " FOR UPDATE SKIP LOCKED";

    fn in_ids(column: &str, n: usize) -> String {
        format!("{column} = ANY(${n})")
    }

    fn bind_ids<'q>(q: DbQuery<'q, Postgres>, ids: &[i64]) -> DbQuery<'q, Postgres> {
        q.bind(ids)
    }
}
