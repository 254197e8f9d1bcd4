//! Online backups of a SQLite database (docs/operations.md, "Backups"): a consistent copy
//! taken while the hub keeps writing, with `VACUUM INTO` (one read transaction, so the copy
//! is the database as of one commit), then checked with `PRAGMA quick_check` before it is
//! called good. PostgreSQL has its own tools (`pg_dump`); this module refuses it by name.
//!
//! Owns [`Store::backup`] and [`BackupError`].

use super::{StorageError, Store};
use std::path::{Path, PathBuf};

/// Why a backup was not made.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The target exists and `--force` was not given.
    #[error("{0} exists; pick a new file, or pass --force to replace it")]
    Exists(PathBuf),
    /// The hub stores in PostgreSQL.
    #[error(
        "telehub backup copies a SQLite database; this hub stores in PostgreSQL: back it up with pg_dump (docs/operations.md, Backups)"
    )]
    Postgres,
    /// The target file could not be made (a missing folder, no permission, a full disk).
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The copy was written but does not pass `quick_check`; it was removed.
    #[error(
        "the copy at {path} failed its integrity check ({detail}) and was removed; retry, and check the disk"
    )]
    Damaged { path: PathBuf, detail: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl BackupError {
    /// A mistake the caller can fix by asking differently (CLI exit 2).
    pub fn is_usage_error(&self) -> bool {
        matches!(self, Self::Exists(_) | Self::Postgres)
    }
}

/// What a finished backup holds.
#[derive(Debug, Clone, Copy)]
pub struct BackupReport {
    pub bytes: u64,
}

impl Store {
    /// Writes a consistent copy of this SQLite database to `target` (a new file, mode 0600,
    /// or with `force` a replaced one; a symbolic link there is replaced, never followed),
    /// and checks it. The hub may keep running and writing meanwhile.
    pub async fn backup(&self, target: &Path, force: bool) -> Result<BackupReport, BackupError> {
        let Store::Sqlite(db) = self else {
            return Err(BackupError::Postgres);
        };
        let create = |source| BackupError::Create {
            path: target.to_owned(),
            source,
        };
        if std::fs::symlink_metadata(target).is_ok() {
            if !force {
                return Err(BackupError::Exists(target.to_owned()));
            }
            std::fs::remove_file(target).map_err(create)?;
        }
        // VACUUM INTO writes into an empty file as it finds it: made here first, so the copy
        // of token hashes and the webhook key is the owner's alone from its first byte.
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(target)
                .map_err(create)?;
        }
        let path = target.to_string_lossy().into_owned();
        let copied = sqlx::query("VACUUM INTO ?1")
            .bind(&path)
            .execute(&db.read)
            .await;
        if let Err(e) = copied {
            let _ = std::fs::remove_file(target);
            return Err(StorageError::from(e).into());
        }
        let checked = tokio::task::spawn_blocking({
            let target = target.to_owned();
            move || quick_check(&target)
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        if let Err(detail) = checked {
            let _ = std::fs::remove_file(target);
            return Err(BackupError::Damaged {
                path: target.to_owned(),
                detail,
            });
        }
        let bytes = std::fs::metadata(target).map_err(create)?.len();
        Ok(BackupReport { bytes })
    }
}

/// `PRAGMA quick_check` on the copy, read-only: `Ok` when SQLite answers "ok".
fn quick_check(path: &Path) -> Result<(), String> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| e.to_string())?;
    let answer: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    (answer == "ok").then_some(()).ok_or(answer)
}
