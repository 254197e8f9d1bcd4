-- Cheaper rollups of compressed ranges (issue 31, docs/storage.md "Compressed blocks"):
-- when the compactor writes a sparse block (few readings a minute, see
-- `blocks::compact::SPARSE_PER_MINUTE`) it deletes the minute rollup rows of the block's
-- minutes in the same transaction and stores the block with `in_minute_rollups` false:
-- the minute summaries of those readings then come from decoding the block (queries,
-- and retention, which writes them back into `rollup_1m` when it drops the block).
-- `rollup_1m` summarises every reading that is not in such a block. Blocks written
-- before keep their minute rows (true). Hour rollups summarise every reading, as before.
ALTER TABLE reading_blocks ADD COLUMN in_minute_rollups BOOLEAN NOT NULL DEFAULT TRUE;
