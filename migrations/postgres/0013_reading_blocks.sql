-- Compressed cold storage (issue 31, docs/storage.md "Compressed blocks"): the compactor
-- moves a series' readings older than `[storage] compress_after` out of `readings` into
-- blocks of up to `[storage] block_rows` readings, deleting the rows in the same
-- transaction, so each reading is in exactly one of the two tables. `data` is the block
-- codec's bytes (timestamps and values, pcodec); the other columns summarise the block
-- (n, sum, min, max, first and last value) without decoding it. Blocks of one series never
-- share a reading; a late reading compacted later makes a block that may overlap the
-- time range of an older one. Timestamps are microseconds since the Unix epoch, UTC.
CREATE TABLE reading_blocks (
    series_id BIGINT           NOT NULL,
    start_ts  BIGINT           NOT NULL,
    end_ts    BIGINT           NOT NULL,
    n         BIGINT           NOT NULL,
    sum_v     DOUBLE PRECISION NOT NULL,
    min_v     DOUBLE PRECISION NOT NULL,
    max_v     DOUBLE PRECISION NOT NULL,
    first_v   DOUBLE PRECISION NOT NULL,
    last_v    DOUBLE PRECISION NOT NULL,
    data      BYTEA            NOT NULL,
    PRIMARY KEY (series_id, start_ts)
);
-- The blob is already compressed: keep it in line when it fits, never TOAST-compress it again.
ALTER TABLE reading_blocks ALTER COLUMN data SET STORAGE EXTERNAL;
