//! Compressed cold storage (issue 31, docs/storage.md "Compressed blocks"): readings older
//! than `[storage] compress_after` live in `reading_blocks`, one row per block of up to
//! `[storage] block_rows` readings of one series; newer ones stay a row each in `readings`.
//! Every reading is in exactly one of the two; every read of raw readings merges them.
//!
//! - [`codec`]: a block's bytes (pure).
//! - [`merge`]: merging hot rows with decoded blocks, transitions and bucket summaries of
//!   merged points (pure).
//! - [`reads`]: the block reads of the history queries, generic over the backend.
//! - [`compact`]: one compaction step (one short transaction), block retention and the
//!   block figures of `telehub stats`.
//!
//! The task that runs compaction is [`super::compactor`]; the writer's duplicate check
//! against blocks is in [`super::commit`].

pub mod codec;
pub mod compact;
pub mod merge;
pub mod reads;

pub use codec::{CodecError, Columns};
pub use compact::{BlockStats, CompactStep, Expiry};

use super::{StorageError, Store};

impl Store {
    /// One compaction step of `series` (see [`compact`]).
    pub async fn compact_step(
        &self,
        series: i64,
        cutoff: i64,
        block_rows: usize,
    ) -> Result<CompactStep, StorageError> {
        dispatch!(self, db => db.compact_step(series, cutoff, block_rows).await)
    }

    /// Drops the expired blocks of `series` whole, keeping the minute summaries retention
    /// keeps; returns their readings (see [`compact`]).
    pub async fn drop_blocks_before(
        &self,
        series: i64,
        expiry: Expiry,
    ) -> Result<u64, StorageError> {
        dispatch!(self, db => db.drop_blocks_before(series, expiry).await)
    }

    /// Compressed readings, blocks and their bytes.
    pub async fn block_stats(&self) -> Result<BlockStats, StorageError> {
        Ok(dispatch!(self, db => db.block_stats().await)?)
    }

    /// The oldest reading the compactor may still move (µs), if any.
    pub async fn oldest_compressible(&self) -> Result<Option<i64>, StorageError> {
        Ok(dispatch!(self, db => db.oldest_compressible().await)?)
    }
}
