//! One compaction step, block retention, and the block figures of `telehub stats`.
//!
//! A step is one short transaction on the write pool (on SQLite the maintenance
//! connection, which takes turns with the writer's at the write lock, as retention
//! does): it claims the series (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so the writer's
//! duplicate check of that series waits for it, and another hub's compactor skips it),
//! finds the oldest UTC day of its hot rows, and, once that whole day is older than the
//! cutoff, deletes up to one block's share of the day's rows (`RETURNING` them) and
//! inserts them as a block, in the same transaction: a crash leaves each reading either
//! a row or in a block, never both, never neither. A series' newest reading always
//! stays a row, so "newest stored" reads (`latest`, the writer's fresh-row test, no-data
//! alerts) never look into blocks.
//!
//! Owns [`CompactStep`], [`BlockStats`] and their SQL (shared by both backends). Uses
//! [`super::codec`].

use super::codec::{self, Columns};
use crate::storage::StorageError;
use crate::storage::db::{Db, Dialect};
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

/// Compressed readings, their blocks and the blocks' bytes (the `data` blobs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockStats {
    pub readings: i64,
    pub blocks: i64,
    pub bytes: i64,
}

const INSERT_BLOCK: &str = "INSERT INTO reading_blocks
     (series_id, start_ts, end_ts, n, sum_v, min_v, max_v, first_v, last_v, data)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

impl<DB> Db<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> i64: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> f64: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> Vec<u8>: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> Option<i64>: Decode<'r, DB>,
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
        // The newest reading stays a row.
        let bound = day_end.min(newest);
        let due: i64 =
            sqlx::query_scalar("SELECT count(*) FROM readings WHERE series_id = $1 AND ts < $2")
                .bind(series)
                .bind(bound)
                .fetch_one(&mut *tx)
                .await?;
        if due == 0 {
            return Ok(CompactStep::default());
        }
        // Equal blocks: a day of 8,640 readings makes three of 2,880, not 4,096 + 4,096 + 448.
        let blocks = (due as usize).div_ceil(block_rows.max(1));
        let take = (due as usize).div_ceil(blocks);
        let mut rows: Vec<(i64, f64)> = sqlx::query_as(
            "DELETE FROM readings WHERE series_id = $1 AND ts IN
               (SELECT ts FROM readings WHERE series_id = $1 AND ts < $2 ORDER BY ts LIMIT $3)
             RETURNING ts, value",
        )
        .bind(series)
        .bind(bound)
        .bind(take as i64)
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
        sqlx::query(INSERT_BLOCK)
            .bind(series)
            .bind(c.ts[0])
            .bind(c.ts[c.len() - 1])
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

    /// Deletes the blocks of `series` whose every reading is older than `cutoff` (µs):
    /// retention drops whole blocks. Returns how many readings went with them.
    pub async fn drop_blocks_before(&self, series: i64, cutoff: i64) -> Result<u64, sqlx::Error> {
        let gone: Vec<i64> = sqlx::query_scalar(
            "DELETE FROM reading_blocks WHERE series_id = $1 AND end_ts < $2 RETURNING n",
        )
        .bind(series)
        .bind(cutoff)
        .fetch_all(&self.write)
        .await?;
        Ok(gone.iter().map(|&n| n.max(0) as u64).sum())
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

    /// The oldest hot reading that is not its series' newest (the compactor leaves those
    /// as rows): how far behind the compactor is.
    pub async fn oldest_compressible(&self) -> Result<Option<i64>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT min((SELECT min(ts) FROM readings r WHERE r.series_id = s.id
                 AND r.ts < (SELECT max(ts) FROM readings m WHERE m.series_id = s.id)))
             FROM series s",
        )
        .fetch_one(&self.read)
        .await
    }
}
