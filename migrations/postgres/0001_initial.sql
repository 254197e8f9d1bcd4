-- telehub schema for PostgreSQL. Timestamps are microseconds since the Unix epoch, UTC.

CREATE TABLE devices (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT   NOT NULL UNIQUE,
    created_us   BIGINT NOT NULL,
    revoked_us   BIGINT,
    last_seen_us BIGINT
);

CREATE TABLE gateway_targets (
    gateway_id BIGINT NOT NULL REFERENCES devices(id),
    device_id  BIGINT NOT NULL REFERENCES devices(id),
    PRIMARY KEY (gateway_id, device_id)
);

CREATE TABLE tokens (
    id         BIGSERIAL PRIMARY KEY,
    hash       BYTEA  NOT NULL UNIQUE,
    role       TEXT   NOT NULL CHECK (role IN ('device', 'viewer', 'admin')),
    device_id  BIGINT REFERENCES devices(id),
    label      TEXT   NOT NULL,
    created_us BIGINT NOT NULL,
    revoked_us BIGINT
);

CREATE TABLE auth_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL
);
INSERT INTO auth_epoch (id, epoch) VALUES (1, 0);

CREATE TABLE series (
    id        BIGSERIAL PRIMARY KEY,
    device_id BIGINT NOT NULL REFERENCES devices(id),
    sensor    TEXT   NOT NULL,
    unit      TEXT,
    UNIQUE (device_id, sensor)
);

CREATE TABLE readings (
    series_id BIGINT           NOT NULL,
    ts        BIGINT           NOT NULL,
    value     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (series_id, ts)
);
