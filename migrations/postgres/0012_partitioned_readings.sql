-- Raw readings partitioned by time (docs/storage.md "Partitions (PostgreSQL)"): `readings`
-- becomes a table PARTITION BY RANGE (ts) (ts in µs since the Unix epoch, UTC), so
-- retention drops whole partitions instead of deleting rows one by one, and the layout is
-- the one a distributed PostgreSQL (Citus) distributes by series (deploy/README.md).
--
-- The primary key (series_id, ts) stays: it includes the partition key, as PostgreSQL
-- requires. A DEFAULT partition takes any reading no partition covers, so no write can
-- fail for lack of a partition; the hub's partition manager (src/storage/partitions.rs)
-- creates partitions ahead of time and moves rows out of the DEFAULT partition.
--
-- Existing readings are moved in place: the old table is renamed, one partition of a UTC
-- day (the default `[storage] partition_interval`) is made for each day that holds
-- readings, named `readings_pYYYYMMDD` as the manager names them, the rows are copied
-- over (routed by PostgreSQL), and the old table is dropped. This rewrites the table
-- once: it takes time and disk in proportion to the readings (deploy/README.md).

ALTER TABLE readings RENAME TO readings_unpartitioned;
ALTER TABLE readings_unpartitioned RENAME CONSTRAINT readings_pkey TO readings_unpartitioned_pkey;

CREATE TABLE readings (
    series_id BIGINT           NOT NULL,
    ts        BIGINT           NOT NULL,
    value     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (series_id, ts)
) PARTITION BY RANGE (ts);

DO $$
DECLARE
    day_us CONSTANT BIGINT := 86400000000;
    day BIGINT;
BEGIN
    FOR day IN
        SELECT DISTINCT floor(ts::numeric / day_us)::bigint FROM readings_unpartitioned ORDER BY 1
    LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF readings FOR VALUES FROM (%s) TO (%s)',
            'readings_p' || to_char(to_timestamp(day * 86400) AT TIME ZONE 'UTC', 'YYYYMMDD'),
            day * day_us,
            (day + 1) * day_us);
    END LOOP;
END $$;

CREATE TABLE readings_default PARTITION OF readings DEFAULT;

INSERT INTO readings (series_id, ts, value)
    SELECT series_id, ts, value FROM readings_unpartitioned;

DROP TABLE readings_unpartitioned;
