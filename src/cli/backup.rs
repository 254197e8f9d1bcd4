//! `telehub backup FILE [--force]`: a consistent copy of the SQLite database, taken while
//! the hub runs (meaning in [`crate::storage::backup`]); PostgreSQL is refused with a
//! pointer to `pg_dump`.

use super::UsageError;
use crate::config::Settings;
use crate::storage::{OpenMode, Store};
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Where to write the copy (a new file, made readable by its owner only).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Replace FILE if it exists (a symbolic link there is replaced, not followed).
    #[arg(long)]
    force: bool,
}

pub async fn run(settings: Settings, args: &BackupArgs) -> anyhow::Result<()> {
    let store = Store::open_with(&settings.database, OpenMode::Existing).await?;
    let started = Instant::now();
    eprintln!("copying the database to {} …", args.file.display());
    let done = store.backup(&args.file, args.force).await;
    store.close().await;
    let report = done.map_err(|e| -> anyhow::Error {
        if e.is_usage_error() {
            UsageError(e.to_string()).into()
        } else {
            e.into()
        }
    })?;
    eprintln!(
        "backup written and checked: {} ({} bytes in {:.1} s); restore by stopping the hub and putting it in place of the database file",
        args.file.display(),
        report.bytes,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
