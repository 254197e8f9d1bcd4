-- Value types (contract §10). A series keeps one type, fixed by its first stored reading:
-- 'number', 'boolean' or 'string'. Existing series hold numbers, and keep every reading.
-- Readings of every type stay in `readings` (series, ts, one 8-byte value), so numeric
-- rows are as compact as before and the rollups need no change: a boolean is stored as
-- 0 or 1 (so sum/n is the fraction true and min/max order false < true); a string is
-- stored as the id of its text in `text_values` (its rollup keeps count, first and last
-- exactly; other aggregates are refused for strings).
ALTER TABLE series ADD COLUMN kind TEXT NOT NULL DEFAULT 'number'
    CHECK (kind IN ('number', 'boolean', 'string'));

-- Each distinct string value once; never deleted, so an id always reads back.
CREATE TABLE text_values (
    id   INTEGER PRIMARY KEY,
    text TEXT    NOT NULL UNIQUE
);
