-- telehub schema for SQLite. Timestamps are microseconds since the Unix epoch, UTC.

CREATE TABLE devices (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    created_us  INTEGER NOT NULL,
    revoked_us  INTEGER,
    last_seen_us INTEGER
);

-- Devices a gateway device may publish for.
CREATE TABLE gateway_targets (
    gateway_id INTEGER NOT NULL REFERENCES devices(id),
    device_id  INTEGER NOT NULL REFERENCES devices(id),
    PRIMARY KEY (gateway_id, device_id)
) WITHOUT ROWID;

-- Secrets are stored only as SHA-256 hashes.
CREATE TABLE tokens (
    id         INTEGER PRIMARY KEY,
    hash       BLOB    NOT NULL UNIQUE,
    role       TEXT    NOT NULL CHECK (role IN ('device', 'viewer', 'admin')),
    device_id  INTEGER REFERENCES devices(id),
    label      TEXT    NOT NULL,
    created_us INTEGER NOT NULL,
    revoked_us INTEGER
);

-- Bumped on every revocation so running hubs notice and close affected sockets.
CREATE TABLE auth_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch INTEGER NOT NULL
);
INSERT INTO auth_epoch (id, epoch) VALUES (1, 0);

-- One row per (device, sensor) time series.
CREATE TABLE series (
    id        INTEGER PRIMARY KEY,
    device_id INTEGER NOT NULL REFERENCES devices(id),
    sensor    TEXT    NOT NULL,
    unit      TEXT,
    UNIQUE (device_id, sensor)
);

-- Readings clustered by series then time: a range scan of one series is one B-tree walk.
CREATE TABLE readings (
    series_id INTEGER NOT NULL,
    ts        INTEGER NOT NULL,
    value     REAL    NOT NULL,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;
