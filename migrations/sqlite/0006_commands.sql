-- Commands (contract §13). Timestamps are microseconds since the Unix epoch, UTC.

-- The `operator` role: SQLite cannot change a CHECK constraint, so `tokens` is rebuilt
-- with the wider one (nothing references it).
CREATE TABLE tokens_new (
    id         INTEGER PRIMARY KEY,
    hash       BLOB    NOT NULL UNIQUE,
    role       TEXT    NOT NULL CHECK (role IN ('device', 'viewer', 'operator', 'admin')),
    device_id  INTEGER REFERENCES devices(id),
    label      TEXT    NOT NULL,
    created_us INTEGER NOT NULL,
    revoked_us INTEGER
);
INSERT INTO tokens_new (id, hash, role, device_id, label, created_us, revoked_us)
    SELECT id, hash, role, device_id, label, created_us, revoked_us FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_new RENAME TO tokens;

-- One row per command. seq is the creation order: each device's FIFO, and the cursor
-- of listings (newest first). id is the opaque name the API and devices use. A state
-- change is a conditional UPDATE on the state (and attempts) the hub last saw, so of
-- two hubs only one sends, or finishes, a command.
CREATE TABLE commands (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT    NOT NULL UNIQUE,
    device_id   INTEGER NOT NULL REFERENCES devices(id),
    name        TEXT    NOT NULL,
    params      TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('queued', 'sent', 'received', 'succeeded',
                                                  'failed', 'rejected', 'expired', 'canceled')),
    created_us  INTEGER NOT NULL,
    expires_us  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    sent_us     INTEGER,
    received_us INTEGER,
    finished_us INTEGER,
    result      TEXT,
    error       TEXT
);
-- The next deliverable command of a device: its open commands in creation order.
CREATE INDEX commands_open ON commands (device_id, seq)
    WHERE state IN ('queued', 'sent', 'received');
-- A device's commands, newest first.
CREATE INDEX commands_device ON commands (device_id, seq);
