-- Horizons of the rollups (µs): the storage writer holds the open (newest, recent) bucket
-- of each series back in memory and writes it once it closes, so rollup rows at or after
-- a level's horizon may lack readings; queries read finer sources there. Stored in the
-- writer's transactions; the maximum means nothing is held back. After a crash, the hub
-- rebuilds the rollups from the lower horizon on at start.
ALTER TABLE rollup_state ADD COLUMN minute_horizon INTEGER NOT NULL DEFAULT 9223372036854775807;
ALTER TABLE rollup_state ADD COLUMN hour_horizon INTEGER NOT NULL DEFAULT 9223372036854775807;
