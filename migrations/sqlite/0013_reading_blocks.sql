-- Compressed cold storage (issue 31, docs/storage.md "Compressed blocks"): the compactor
-- moves a series' readings older than `[storage] compress_after` out of `readings` into
-- blocks of up to `[storage] block_rows` readings, deleting the rows in the same
-- transaction, so each reading is in exactly one of the two tables. `data` is the block
-- codec's bytes (timestamps and values, pcodec); the other columns summarise the block
-- (n, sum, min, max, first and last value) without decoding it. Blocks of one series never
-- share a reading; a late reading compacted later makes a block that may overlap the
-- time range of an older one. Timestamps are microseconds since the Unix epoch, UTC.
CREATE TABLE reading_blocks (
    id        INTEGER PRIMARY KEY,
    series_id INTEGER NOT NULL,
    start_ts  INTEGER NOT NULL,
    end_ts    INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    sum_v     REAL    NOT NULL,
    min_v     REAL    NOT NULL,
    max_v     REAL    NOT NULL,
    first_v   REAL    NOT NULL,
    last_v    REAL    NOT NULL,
    data      BLOB    NOT NULL,
    UNIQUE (series_id, start_ts)
);
