//! One compaction step, block retention, and the block figures of `telehub stats`.
//!
//! A step is one short transaction on the write pool (on SQLite the maintenance
//! connection, which takes turns with the writer's at the write lock, as retention
//! does): it claims the series (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so the writer's
//! duplicate check of that series waits for it, and another hub's compactor skips it),
//! finds the oldest UTC day of its hot rows, and, once that whole day is older than the
//! cutoff, deletes up to about one block's share of the day's rows, ending at a minute's
//! end (`RETURNING` them), and inserts them as a block, in the same transaction: a crash
//! leaves each reading either a row or in a block, never both, never neither. A series'
//! newest minute always stays rows, so "newest stored" reads (`latest`, the writer's
//! fresh-row test, no-data alerts) never look into blocks, and neither does the minute
//! bucket the writer may hold back ([`crate::storage::open_buckets`]).
//!
//! Minute rollups: a sparse block ([`is_sparse`]: few readings a minute) takes its
//! minutes' `rollup_1m` rows with it, deleted in the same transaction, and is stored
//! with `in_minute_rollups` false; queries then summarise those minutes from the block
//! ([`super::reads`]), and retention writes them back into `rollup_1m` when it drops the
//! block. So `rollup_1m` summarises exactly the readings not in sparse blocks. Hour
//! rollups keep every reading. A block is kept in the minute rollups (dense, or when a
//! kept block overlaps its minutes, or before the raw horizon, where a minute row may
//! hold readings retention deleted) when deleting the rows would lose other readings.
//!
//! Owns [`CompactStep`], [`BlockStats`], [`Expiry`], [`SPARSE_PER_MINUTE`] and their SQL (shared by
//! both backends). Uses [`super::codec`] and [`super::merge`].

use super::codec::{self, Columns};
use super::merge;
use crate::storage::StorageError;
use crate::storage::db::{Db, Dialect};
use crate::storage::history::maintenance::upsert_summaries;
use crate::storage::rollup::{Level, floor};
use sqlx::{AssertSqlSafe, ColumnIndex, Decode, Encode, Executor, Type};

/// Readings are compressed by whole UTC days of one series.
pub const BLOCK_WINDOW_US: i64 = 86_400_000_000;

/// What one step did: `readings` moved into one block of `bytes` (0 readings: nothing
/// of this series is due).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactStep {
    pub readings: u64,
    pub bytes: u64,
}

/// What retention expires from blocks: those whose every reading is older than `raw`
/// (µs) go; the minute summaries of sparse ones are kept from `minutes` on (`None`: all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    pub raw: i64,
    pub minutes: Option<i64>,
}

/// Compressed readings, their blocks and the blocks' bytes (the `data` blobs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockStats {
    pub readings: i64,
    pub blocks: i64,
    pub bytes: i64,
}

/// Without the closing parenthesis: the `in_minute_rollups` literal follows.
const INSERT_BLOCK: &str = "INSERT INTO reading_blocks
     (series_id, start_ts, end_ts, n, sum_v, min_v, max_v, first_v, last_v, data, in_minute_rollups)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10";

const MINUTE_US: i64 = Level::Minute.width_us();

/// A block holding at most this many readings per minute it spans (on average) is
/// sparse: its minutes are summarised from its own data, not kept in `rollup_1m` (a
/// minute row costs ~100 bytes, more than 30 compressed readings; decoding a day of
/// such a series for a 1-minute bucket query is ≤ 43,200 readings, ~1.5 ms). Denser
/// series keep their minute rows: there a row costs < 3.4 bytes a reading, and decoding
/// a day of 100 Hz readings would take far longer than the ≤ 5 ms a 1-day query may.
pub const SPARSE_PER_MINUTE: usize = 30;

/// Whether a block of `n` readings from `start` to `end` (µs) is sparse.
pub fn is_sparse(n: usize, start: i64, end: i64) -> bool {
    let minutes = (floor(end, MINUTE_US) - floor(start, MINUTE_US)) / MINUTE_US + 1;
    n as i64 <= SPARSE_PER_MINUTE as i64 * minutes
}

/// Whether a block of `series` whose readings are kept in `rollup_1m` has readings in
/// the minutes `[first, last]` (then those minute rows stay).
async fn overlaps_rollup_block<DB>(
    tx: &mut sqlx::Transaction<'static, DB>,
    series: i64,
    [first, last]: [i64; 2],
) -> Result<bool, sqlx::Error>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> i64: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM reading_blocks WHERE series_id = $1 AND in_minute_rollups
           AND end_ts >= $2 AND start_ts < $3",
    )
    .bind(series)
    .bind(first)
    .bind(last + MINUTE_US)
    .fetch_one(&mut **tx)
    .await?;
    Ok(n > 0)
}

impl<DB> Db<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> i64: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> f64: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> Vec<u8>: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> Option<i64>: Decode<'r, DB>,
    for<'r> bool: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// Moves at most `block_rows` of `series`' oldest hot readings into a block, when
    /// their whole UTC day is older than `cutoff` (µs).
    pub async fn compact_step(
        &self,
        series: i64,
        cutoff: i64,
        block_rows: usize,
    ) -> Result<CompactStep, StorageError> {
        let mut tx = self.begin_write().await?;
        let claim = format!("SELECT id FROM series WHERE id = $1 {}", DB::LOCK_ROWS);
        let claimed: Option<i64> = sqlx::query_scalar(AssertSqlSafe(claim))
            .bind(series)
            .fetch_optional(&mut *tx)
            .await?;
        if claimed.is_none() {
            return Ok(CompactStep::default());
        }
        let (oldest, newest): (Option<i64>, Option<i64>) =
            sqlx::query_as("SELECT min(ts), max(ts) FROM readings WHERE series_id = $1")
                .bind(series)
                .fetch_one(&mut *tx)
                .await?;
        let (Some(oldest), Some(newest)) = (oldest, newest) else {
            return Ok(CompactStep::default());
        };
        let day_end = (oldest.div_euclid(BLOCK_WINDOW_US) + 1) * BLOCK_WINDOW_US;
        if day_end > cutoff {
            return Ok(CompactStep::default());
        }
        let (raw_horizon, minute_horizon): (i64, i64) =
            sqlx::query_as("SELECT raw_horizon, minute_horizon FROM rollup_state")
                .fetch_one(&mut *tx)
                .await?;
        // The newest minute stays rows (the newest reading with it, and the minute the
        // writer may hold back), and so does everything from the minute horizon on.
        let bound = day_end
            .min(floor(newest, MINUTE_US))
            .min(floor(minute_horizon, MINUTE_US));
        let due: i64 =
            sqlx::query_scalar("SELECT count(*) FROM readings WHERE series_id = $1 AND ts < $2")
                .bind(series)
                .bind(bound)
                .fetch_one(&mut *tx)
                .await?;
        if due == 0 {
            return Ok(CompactStep::default());
        }
        // Equal blocks: a day of 8,640 readings makes three of 2,880, not 4,096 + 4,096 + 448;
        // each ends at a minute's end, so a block holds every hot reading of its minutes.
        let blocks = (due as usize).div_ceil(block_rows.max(1));
        let take = (due as usize).div_ceil(blocks);
        let nth: i64 = sqlx::query_scalar(
            "SELECT ts FROM readings WHERE series_id = $1 AND ts < $2 ORDER BY ts LIMIT 1 OFFSET $3",
        )
        .bind(series)
        .bind(bound)
        .bind(take as i64 - 1)
        .fetch_one(&mut *tx)
        .await?;
        let cut = (floor(nth, MINUTE_US) + MINUTE_US).min(bound);
        let mut rows: Vec<(i64, f64)> = sqlx::query_as(
            "DELETE FROM readings WHERE series_id = $1 AND ts < $2 RETURNING ts, value",
        )
        .bind(series)
        .bind(cut)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(CompactStep::default());
        }
        rows.sort_unstable_by_key(|r| r.0);
        let c = Columns {
            ts: rows.iter().map(|r| r.0).collect(),
            values: rows.iter().map(|r| r.1).collect(),
        };
        let data = codec::encode(&c)?;
        let (sum, min, max) = c.values.iter().fold(
            (0.0, f64::INFINITY, f64::NEG_INFINITY),
            |(s, lo, hi), &v| (s + v, lo.min(v), hi.max(v)),
        );
        let step = CompactStep {
            readings: c.len() as u64,
            bytes: data.len() as u64,
        };
        let (start, end) = (c.ts[0], c.ts[c.len() - 1]);
        let minutes = [floor(start, MINUTE_US), floor(end, MINUTE_US)];
        let summarised = is_sparse(c.len(), start, end)
            && start >= raw_horizon
            && !overlaps_rollup_block(&mut tx, series, minutes).await?;
        if summarised {
            // Its readings leave `rollup_1m` with it (no other reading of these minutes
            // is there: the block took every hot one, and no block kept in the rollups
            // overlaps them).
            sqlx::query(
                "DELETE FROM rollup_1m WHERE series_id = $1 AND bucket >= $2 AND bucket <= $3",
            )
            .bind(series)
            .bind(minutes[0])
            .bind(minutes[1])
            .execute(&mut *tx)
            .await?;
        }
        let insert = format!(
            "{INSERT_BLOCK}, {})",
            ["TRUE", "FALSE"][usize::from(summarised)]
        );
        sqlx::query(AssertSqlSafe(insert))
            .bind(series)
            .bind(start)
            .bind(end)
            .bind(c.len() as i64)
            .bind(sum)
            .bind(min)
            .bind(max)
            .bind(c.values[0])
            .bind(c.values[c.len() - 1])
            .bind(data)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(step)
    }

    /// Deletes the blocks of `series` whose every reading is older than `expiry.raw`:
    /// retention drops whole blocks, a few per short transaction. A block whose minutes
    /// are not in `rollup_1m` (a sparse one) writes their summaries there first, in the
    /// same transaction, from `expiry.minutes` on: minute rollups outlive raw readings.
    /// Returns how many readings went with them.
    pub async fn drop_blocks_before(
        &self,
        series: i64,
        expiry: Expiry,
    ) -> Result<u64, StorageError> {
        let Expiry {
            raw: cutoff,
            minutes: keep_minutes,
        } = expiry;
        let mut gone = 0;
        loop {
            let mut tx = self.begin_write().await?;
            let page: Vec<(i64, i64, bool, Vec<u8>)> = sqlx::query_as(
                "SELECT start_ts, n, in_minute_rollups, data FROM reading_blocks
                 WHERE series_id = $1 AND end_ts < $2 ORDER BY start_ts LIMIT 16",
            )
            .bind(series)
            .bind(cutoff)
            .fetch_all(&mut *tx)
            .await?;
            if page.is_empty() {
                return Ok(gone);
            }
            for (start, n, in_minute_rollups, data) in page {
                if !in_minute_rollups {
                    let from = keep_minutes.unwrap_or(i64::MIN);
                    let block = codec::decode(&data)?;
                    let points: Vec<(i64, f64)> = block.pairs().filter(|p| p.0 >= from).collect();
                    let minutes = merge::bucket_summaries(&points, MINUTE_US, usize::MAX);
                    upsert_summaries(&mut tx, Level::Minute, series, &minutes).await?;
                }
                sqlx::query("DELETE FROM reading_blocks WHERE series_id = $1 AND start_ts = $2")
                    .bind(series)
                    .bind(start)
                    .execute(&mut *tx)
                    .await?;
                gone += n.max(0) as u64;
            }
            tx.commit().await?;
        }
    }

    /// Compressed readings, blocks and blob bytes.
    pub async fn block_stats(&self) -> Result<BlockStats, sqlx::Error> {
        let (readings, blocks, bytes): (i64, i64, i64) = sqlx::query_as(
            "SELECT CAST(coalesce(sum(n), 0) AS BIGINT), count(*),
                    CAST(coalesce(sum(length(data)), 0) AS BIGINT) FROM reading_blocks",
        )
        .fetch_one(&self.read)
        .await?;
        Ok(BlockStats {
            readings,
            blocks,
            bytes,
        })
    }

    /// The oldest hot reading before its series' newest minute (the compactor leaves that
    /// minute as rows): how far behind the compactor is.
    pub async fn oldest_compressible(&self) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT min((SELECT min(ts) FROM readings r WHERE r.series_id = s.id
                 AND r.ts < (SELECT max(ts) / 60000000 * 60000000 FROM readings m
                              WHERE m.series_id = s.id)))
             FROM series s",
        )
        .fetch_one(&self.read)
        .await
    }
}
