//! SQL on a test database behind the hub's back, with a connection of its own, on either
//! backend: the same query text (`$N` placeholders work on both) runs on whichever
//! backend the URL names.

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Connection, FromRow, PgPool, SqlitePool};

/// A value for a `$N` placeholder.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Int(i64),
    Text(&'a str),
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Self::Text(v)
    }
}

/// A row type both backends can decode.
pub trait AnyRow:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}
impl<T> AnyRow for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

enum Pool {
    Sqlite(SqlitePool),
    Pg(PgPool),
}

/// Runs `$body` with `$pool` the open pool; the same code, typed for each backend.
macro_rules! on_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        match $pool {
            Pool::Sqlite($p) => $body,
            Pool::Pg($p) => $body,
        }
    };
}

/// `$query` with each of `$params` bound in turn.
macro_rules! bound {
    ($query:expr, $params:expr) => {{
        let mut q = $query;
        for p in $params {
            q = match *p {
                Param::Int(v) => q.bind(v),
                Param::Text(s) => q.bind(s),
            };
        }
        q
    }};
}

impl Pool {
    async fn open(url: &str) -> Self {
        if url.starts_with("sqlite:") {
            Self::Sqlite(
                SqlitePool::connect(url)
                    .await
                    .expect("open the SQLite test database"),
            )
        } else {
            Self::Pg(
                PgPool::connect(url)
                    .await
                    .expect("open the PostgreSQL test database"),
            )
        }
    }

    async fn close(self) {
        on_pool!(self, |p| p.close().await)
    }
}

/// The rows `sql` returns on the database at `url`.
pub async fn sql_rows<T: AnyRow>(url: &str, sql: &'static str, params: &[Param<'_>]) -> Vec<T> {
    let pool = Pool::open(url).await;
    let rows = on_pool!(&pool, |p| bound!(sqlx::query_as(sql), params)
        .fetch_all(p)
        .await);
    pool.close().await;
    rows.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Runs `sql` (no rows back) on the database at `url`.
pub async fn sql_exec(url: &str, sql: &'static str) {
    let pool = Pool::open(url).await;
    let done = on_pool!(&pool, |p| sqlx::query(sql).execute(p).await.map(|_| ()));
    pool.close().await;
    done.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Runs an administrative statement (CREATE/DROP/ALTER DATABASE, ...) on the PostgreSQL
/// server at `server`, with a connection of its own.
pub async fn pg_admin(server: &str, sql: &str) {
    let mut conn = sqlx::PgConnection::connect(server)
        .await
        .unwrap_or_else(|e| panic!("connect to the PostgreSQL server {server}: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = conn.close().await;
}

/// (sensor, ts µs, value) of every reading stored for `device`, by sensor and time.
pub async fn stored_readings(url: &str, device: &str) -> Vec<(String, i64, f64)> {
    const Q: &str = "SELECT s.sensor, r.ts, r.value FROM readings r JOIN series s ON s.id = r.series_id
                     JOIN devices d ON d.id = s.device_id WHERE d.name = $1 ORDER BY s.sensor, r.ts";
    sql_rows(url, Q, &[device.into()]).await
}

/// How many readings the database holds, of every device.
pub async fn total_readings(url: &str) -> i64 {
    let rows: Vec<(i64,)> = sql_rows(url, "SELECT count(*) FROM readings", &[]).await;
    rows[0].0
}
