-- Commands (contract §13). Timestamps are microseconds since the Unix epoch, UTC.

-- The `operator` role.
ALTER TABLE tokens DROP CONSTRAINT tokens_role_check;
ALTER TABLE tokens ADD CONSTRAINT tokens_role_check
    CHECK (role IN ('device', 'viewer', 'operator', 'admin'));

-- One row per command. seq is the creation order: each device's FIFO, and the cursor
-- of listings (newest first). id is the opaque name the API and devices use. A state
-- change is a conditional UPDATE on the state (and attempts) the hub last saw, so of
-- two hubs only one sends, or finishes, a command.
CREATE TABLE commands (
    seq         BIGSERIAL PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,
    device_id   BIGINT  NOT NULL REFERENCES devices(id),
    name        TEXT    NOT NULL,
    params      TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('queued', 'sent', 'received', 'succeeded',
                                                  'failed', 'rejected', 'expired', 'canceled')),
    created_us  BIGINT  NOT NULL,
    expires_us  BIGINT  NOT NULL,
    attempts    BIGINT  NOT NULL DEFAULT 0,
    sent_us     BIGINT,
    received_us BIGINT,
    finished_us BIGINT,
    result      TEXT,
    error       TEXT
);
-- The next deliverable command of a device: its open commands in creation order.
CREATE INDEX commands_open ON commands (device_id, seq)
    WHERE state IN ('queued', 'sent', 'received');
-- A device's commands, newest first.
CREATE INDEX commands_device ON commands (device_id, seq);
