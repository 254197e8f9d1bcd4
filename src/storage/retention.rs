//! Retention: a background task that deletes history older than `[retention]` allows,
//! in small batches so the storage writer is never held up for long.
//!
//! A pass walks the tables from finest to coarsest (raw readings, minute rollups, hour
//! rollups) and, per series, deletes rows older than the table's cutoff with bounded
//! `DELETE`s (`batch_rows` at most, each its own short transaction; on SQLite on the
//! writer's own connection, so the writer waits for at most one of them), pausing
//! `pause` after each one that deleted something. Cutoffs are whole hours, so raw data
//! and minute rollups always go in whole rollup buckets, and the configuration keeps
//! rollups at least as long as what they summarise: once raw readings expire, the
//! rollups remain the source for older ranges. On PostgreSQL, raw readings go first
//! by whole partitions ([`super::partitions`]): those that end before the cutoff are
//! dropped, and the bounded deletes then find only the partition straddling it (and
//! the DEFAULT one).
//!
//! Compressed blocks ([`super::blocks`]) are dropped whole, with the raw readings, once
//! their newest reading is older than the raw cutoff; a sparse block, whose minutes are
//! not in `rollup_1m`, writes its minute summaries there in the same transaction.
//!
//! Owns the retention task and [`RetentionReport`]. Uses the [`Store`]'s maintenance
//! statements ([`super::history::maintenance`]), [`crate::config`] and [`crate::metrics`].

use super::blocks::Expiry;
use super::history::Table;
use super::rollup::Level;
use super::{StorageError, Store};
use crate::config::RetentionSettings;
use crate::domain::Timestamp;
use crate::metrics::Metrics;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Rows one pass deleted, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub raw: u64,
    pub minute: u64,
    pub hour: u64,
    /// False when the pass stopped early for shutdown.
    pub complete: bool,
}

impl RetentionReport {
    pub fn total(&self) -> u64 {
        self.raw + self.minute + self.hour
    }
}

/// Runs passes every `interval` until `shutdown` is cancelled; the first pass starts at once.
pub fn spawn(
    store: Store,
    settings: RetentionSettings,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match run_pass(&store, &settings, Timestamp::now(), &metrics, &shutdown).await {
                Ok(r) if r.total() > 0 => tracing::info!(
                    raw = r.raw,
                    minute_rollups = r.minute,
                    hour_rollups = r.hour,
                    "retention: deleted expired history"
                ),
                Ok(_) => tracing::debug!("retention: nothing expired"),
                Err(e) => {
                    tracing::warn!(error = %e, "retention pass failed; retrying next interval")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(settings.interval) => {}
                _ = shutdown.cancelled() => break,
            }
        }
    })
}

/// One retention pass as of `now`.
pub async fn run_pass(
    store: &Store,
    settings: &RetentionSettings,
    now: Timestamp,
    metrics: &Metrics,
    stop: &CancellationToken,
) -> Result<RetentionReport, StorageError> {
    let mut report = RetentionReport::default();
    let series = store.series_ids().await?;
    let tables = [
        (Table::Raw, settings.raw),
        (Table::Rollup(Level::Minute), settings.minute),
        (Table::Rollup(Level::Hour), settings.hour),
    ];
    for (table, keep) in tables {
        let Some(cutoff) = keep.cutoff(now) else {
            continue;
        };
        let deleted = match table {
            Table::Raw => &mut report.raw,
            Table::Rollup(Level::Minute) => &mut report.minute,
            Table::Rollup(Level::Hour) => &mut report.hour,
        };
        let counter = metrics.retention_deleted(table.name());
        if table == Table::Raw {
            // PostgreSQL: whole partitions first; the deletes below take the rest.
            let n = (store.drop_expired_partitions(cutoff, settings.partition_lock_timeout, stop))
                .await?;
            *deleted += n;
            counter.inc_by(n);
        }
        for &id in &series {
            loop {
                if stop.is_cancelled() {
                    return Ok(report);
                }
                let n = store
                    .delete_before(table, id, cutoff, settings.batch_rows)
                    .await?;
                *deleted += n;
                counter.inc_by(n);
                if n > 0 {
                    tokio::select! {
                        _ = tokio::time::sleep(settings.pause) => {}
                        _ = stop.cancelled() => return Ok(report),
                    }
                }
                if (n as usize) < settings.batch_rows {
                    break;
                }
            }
            if table == Table::Raw {
                // Compressed blocks go whole, once every reading in them has expired.
                let expiry = Expiry {
                    raw: cutoff,
                    minutes: settings.minute.cutoff(now),
                };
                let n = store.drop_blocks_before(id, expiry).await?;
                *deleted += n;
                counter.inc_by(n);
            }
        }
        if table == Table::Raw {
            store.advance_raw_horizon(cutoff).await?;
        }
    }
    metrics.retention_passes.inc();
    report.complete = true;
    Ok(report)
}
