//! The compactor: a background task moving readings older than `[storage]
//! compress_after` into compressed blocks ([`super::blocks`]), bounded like retention.
//!
//! A pass walks every series and runs compaction steps ([`Store::compact_step`]: one
//! block, one short transaction each; on SQLite on the maintenance connection, so the
//! storage writer waits for at most one of them) until the series has nothing due,
//! pausing `compress_pause` after each block. Readings are compressed a UTC day of a
//! series at a time, once that whole day is older than `compress_after`; a series'
//! newest minute always stays rows. Sparse series' minute rollups go with their rows
//! ([`super::blocks::compact`]). At the end of a pass it sets the lag metric.
//!
//! Owns the compactor task and [`CompactReport`]. Uses [`super::blocks`],
//! [`crate::config`] and [`crate::metrics`].

use super::blocks::compact::BLOCK_WINDOW_US;
use super::{StorageError, Store};
use crate::config::StorageSettings;
use crate::domain::Timestamp;
use crate::metrics::Metrics;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What one pass moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactReport {
    pub readings: u64,
    pub blocks: u64,
    pub bytes: u64,
    /// False when the pass stopped early for shutdown.
    pub complete: bool,
}

/// Runs passes every `compress_interval` until `shutdown` is cancelled (none when
/// `compress_after` is off); the first pass starts at once.
pub fn spawn(
    store: Store,
    settings: StorageSettings,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match run_pass(&store, &settings, Timestamp::now(), &metrics, &shutdown).await {
                Ok(r) if r.readings > 0 => tracing::info!(
                    readings = r.readings,
                    blocks = r.blocks,
                    bytes = r.bytes,
                    "compactor: compressed old readings"
                ),
                Ok(_) => tracing::debug!("compactor: nothing due"),
                Err(e) => {
                    tracing::warn!(error = %e, "compaction pass failed; retrying next interval")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(settings.compress_interval) => {}
                _ = shutdown.cancelled() => break,
            }
        }
    })
}

/// One compaction pass as of `now`.
pub async fn run_pass(
    store: &Store,
    settings: &StorageSettings,
    now: Timestamp,
    metrics: &Metrics,
    stop: &CancellationToken,
) -> Result<CompactReport, StorageError> {
    let mut report = CompactReport::default();
    let Some(cutoff) = settings.compress_after.cutoff(now) else {
        report.complete = true;
        return Ok(report);
    };
    let m = &metrics.compactor;
    for id in store.series_ids().await? {
        loop {
            if stop.is_cancelled() {
                return Ok(report);
            }
            let step = store.compact_step(id, cutoff, settings.block_rows).await?;
            if step.readings == 0 {
                break;
            }
            report.readings += step.readings;
            report.blocks += 1;
            report.bytes += step.bytes;
            m.readings.inc_by(step.readings);
            m.blocks.inc();
            m.bytes.inc_by(step.bytes);
            tokio::select! {
                _ = tokio::time::sleep(settings.compress_pause) => {}
                _ = stop.cancelled() => return Ok(report),
            }
        }
    }
    let lag = lag_seconds(store.oldest_compressible().await?, cutoff);
    m.lag_seconds.set(lag.round() as i64);
    m.passes.inc();
    report.complete = true;
    Ok(report)
}

/// How far (s) the oldest reading still a row lies before the newest day boundary the
/// compactor may reach at `cutoff` (0: caught up).
pub fn lag_seconds(oldest_row: Option<i64>, cutoff: i64) -> f64 {
    let boundary = cutoff.div_euclid(BLOCK_WINDOW_US) * BLOCK_WINDOW_US;
    oldest_row.map_or(0.0, |t| (boundary - t).max(0) as f64 / 1e6)
}
