-- Rollups: per series, 1-minute and 1-hour summaries of the readings, maintained by the
-- storage writer in the same transaction as the readings they summarise. `bucket` is the
-- bucket start (µs, aligned to the Unix epoch). min_ts/max_ts are the earliest times the
-- minimum/maximum occur; first/last are by timestamp, so late data combines exactly.

CREATE TABLE rollup_1m (
    series_id INTEGER NOT NULL,
    bucket    INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    sum_v     REAL    NOT NULL,
    min_v     REAL    NOT NULL,
    max_v     REAL    NOT NULL,
    first_ts  INTEGER NOT NULL,
    last_ts   INTEGER NOT NULL,
    first_v   REAL    NOT NULL,
    last_v    REAL    NOT NULL,
    min_ts    INTEGER NOT NULL,
    max_ts    INTEGER NOT NULL,
    PRIMARY KEY (series_id, bucket)
) WITHOUT ROWID;

CREATE TABLE rollup_1h (
    series_id INTEGER NOT NULL,
    bucket    INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    sum_v     REAL    NOT NULL,
    min_v     REAL    NOT NULL,
    max_v     REAL    NOT NULL,
    first_ts  INTEGER NOT NULL,
    last_ts   INTEGER NOT NULL,
    first_v   REAL    NOT NULL,
    last_v    REAL    NOT NULL,
    min_ts    INTEGER NOT NULL,
    max_ts    INTEGER NOT NULL,
    PRIMARY KEY (series_id, bucket)
) WITHOUT ROWID;

-- complete: the rollups summarise every raw reading at or after raw_horizon. It is false
-- until the hub (re)builds them at start: after this migration, and after a run with
-- `[storage] rollups = false`. Queries read raw data while it is false.
-- raw_horizon: retention has deleted every raw reading before this time (µs).
CREATE TABLE rollup_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    complete    BOOLEAN NOT NULL,
    raw_horizon INTEGER NOT NULL
);
INSERT INTO rollup_state (id, complete, raw_horizon) VALUES (1, FALSE, -9223372036854775808);
