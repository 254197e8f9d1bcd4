//! The block side of every raw read: the readings of `[from, to)` held in a series'
//! blocks, decoded, for the history queries to merge with hot rows
//! ([`crate::storage::history::queries`]).
//!
//! Owns [`Order`], [`Db::block_points`] and [`Db::sparse_block_points`]. Runs on the read pool, SQL shared by both
//! backends. Uses [`super::codec`].

use super::codec;
use crate::storage::StorageError;
use crate::storage::db::{Db, Dialect};
use futures_util::TryStreamExt;
use sqlx::{ColumnIndex, Decode, Encode, Executor, Type};

/// Which end of a range a limited read keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// The earliest readings.
    Oldest,
    /// The latest readings.
    Newest,
}

impl<DB> Db<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'r> i64: Encode<'r, DB> + Decode<'r, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// The readings of `[from, to)` held in blocks of `series`, ascending: all of them,
    /// or at least the `limit` at the `order` end of the range (blocks are decoded in
    /// that order until no further block can hold one of those).
    pub async fn block_points(
        &self,
        series: i64,
        from: i64,
        to: i64,
        order: Order,
        limit: usize,
    ) -> Result<Vec<(i64, f64)>, StorageError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let sql = match order {
            Order::Oldest => {
                "SELECT start_ts, end_ts, data FROM reading_blocks
                 WHERE series_id = $1 AND end_ts >= $2 AND start_ts < $3 ORDER BY start_ts"
            }
            Order::Newest => {
                "SELECT start_ts, end_ts, data FROM reading_blocks
                 WHERE series_id = $1 AND end_ts >= $2 AND start_ts < $3 ORDER BY end_ts DESC"
            }
        };
        let mut rows = sqlx::query_as::<_, (i64, i64, Vec<u8>)>(sql)
            .bind(series)
            .bind(from)
            .bind(to)
            .fetch(&self.read);
        let mut points: Vec<(i64, f64)> = Vec::new();
        while let Some((start, end, data)) = rows.try_next().await? {
            if points.len() >= limit {
                // Keep the `limit` at our end; stop when the next block lies beyond them.
                match order {
                    Order::Oldest => {
                        points.sort_unstable_by_key(|p| p.0);
                        points.truncate(limit);
                        if start > points[limit - 1].0 {
                            break;
                        }
                    }
                    Order::Newest => {
                        points.sort_unstable_by_key(|p| std::cmp::Reverse(p.0));
                        points.truncate(limit);
                        if end < points[limit - 1].0 {
                            break;
                        }
                    }
                }
            }
            let block = codec::decode(&data)?;
            points.extend(block.pairs().filter(|p| p.0 >= from && p.0 < to));
        }
        points.sort_unstable_by_key(|p| p.0);
        Ok(points)
    }

    /// The readings of `[from, to)` in the sparse blocks of `series` (those whose minutes
    /// are not in `rollup_1m`, see [`super::compact`]), ascending: what the minute rows
    /// of that range leave out.
    pub async fn sparse_block_points(
        &self,
        series: i64,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, f64)>, StorageError> {
        let blocks: Vec<(Vec<u8>,)> = sqlx::query_as(
            "SELECT data FROM reading_blocks
             WHERE series_id = $1 AND end_ts >= $2 AND start_ts < $3 AND NOT in_minute_rollups",
        )
        .bind(series)
        .bind(from)
        .bind(to)
        .fetch_all(&self.read)
        .await?;
        let mut points: Vec<(i64, f64)> = Vec::new();
        for (data,) in blocks {
            let block = codec::decode(&data)?;
            points.extend(block.pairs().filter(|p| p.0 >= from && p.0 < to));
        }
        points.sort_unstable_by_key(|p| p.0);
        Ok(points)
    }
}
