//! The SQLite backend (embedded default): WAL journal, a deliberate `synchronous`
//! level, one write connection (registry, alerts, maintenance; the storage writer has a
//! connection of its own, [`super::sqlite_commit`]) and a small read pool.
//!
//! Owns opening a SQLite database, its migrations, its disk usage, and its
//! [`Dialect`]: `BEGIN IMMEDIATE`, no row locks (one writer at a time), id lists passed
//! as JSON (`json_each`). The writer's statements are [`super::sqlite_commit`]'s. Uses
//! [`super::db`] and the settings in [`crate::config`].

use super::db::{Db, DbQuery, Dialect};
use super::stats::DiskPart;
use super::{OpenMode, StorageError};
use crate::config::{DatabaseSettings, SqliteSync};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite};
use std::str::FromStr;

/// Rows buffered between a read connection's thread and the query's task.
const READ_ROW_BUFFER: usize = 4096;

/// Opens with one write connection and a read pool of `max_connections`; with
/// [`OpenMode::Create`] the file and its folder are created when missing.
pub async fn open(s: &DatabaseSettings, mode: OpenMode) -> Result<Db<Sqlite>, StorageError> {
    let open_err = |cause| StorageError::Open {
        url: s.url.clone(),
        cause,
    };
    let opts = SqliteConnectOptions::from_str(&s.url)
        .map_err(open_err)?
        .create_if_missing(mode == OpenMode::Create)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(match s.sqlite_synchronous {
            SqliteSync::Full => SqliteSynchronous::Full,
            SqliteSync::Normal => SqliteSynchronous::Normal,
        })
        .busy_timeout(s.busy_timeout)
        .foreign_keys(true)
        .pragma("cache_size", "-16000");
    let file = opts.get_filename();
    let in_memory = file.as_os_str().is_empty() || file.to_str() == Some(":memory:");
    if mode == OpenMode::Existing && !in_memory && !file.exists() {
        return Err(StorageError::Missing(file.display().to_string()));
    }
    if mode == OpenMode::Create && !in_memory {
        create_private(file).map_err(|e| open_err(sqlx::Error::Io(e)))?;
    }
    if !in_memory {
        warn_if_readable_by_others(file);
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
    Ok(Db::new(write, read))
}

/// Creates the database's missing folders (mode 0700) and the file itself (0600) before
/// SQLite opens it: readings, token hashes and the webhook key are nobody else's to read.
/// SQLite gives its `-wal` and `-shm` files the database file's mode. Existing folders
/// and files keep theirs.
fn create_private(file: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
    {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other.map(drop),
    }
}

/// A database that others on the machine may read (made by an older telehub, or copied
/// with the umask's mode) is said once at start, with the fix.
fn warn_if_readable_by_others(file: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(file)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %file.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "the database file is readable by other users of this machine (readings, token hashes, the webhook key); fix: chmod 600 it and its -wal/-shm files, chmod 700 its folder"
        );
    }
}

impl Db<Sqlite> {
    pub async fn migrate(&self) -> Result<(), StorageError> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.write)
            .await?;
        Ok(())
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
}

impl Dialect for Sqlite {
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const LOCK_ROWS: &'static str = "";

    fn in_ids(column: &str, n: usize) -> String {
        format!("{column} IN (SELECT value FROM json_each(${n}))")
    }

    fn bind_ids<'q>(q: DbQuery<'q, Sqlite>, ids: &[i64]) -> DbQuery<'q, Sqlite> {
        q.bind(serde_json::to_string(ids).expect("ids serialise"))
    }
}
