-- Device labels and desired configuration (contract §14). Timestamps are microseconds
-- since the Unix epoch, UTC.

-- At most 16 labels per device (checked by the hub); the (key, value) index answers
-- `/v1/devices?label=k:v` and bulk commands by label.
CREATE TABLE device_labels (
    device_id BIGINT NOT NULL REFERENCES devices(id),
    key       TEXT    NOT NULL,
    value     TEXT    NOT NULL,
    PRIMARY KEY (device_id, key)
);
CREATE INDEX device_labels_pair ON device_labels (key, value);

-- A device's desired configuration (a JSON object) and the one it last reported.
-- A change is a conditional UPDATE on the version the writer read (`If-Match`).
CREATE TABLE device_config (
    device_id        BIGINT PRIMARY KEY REFERENCES devices(id),
    version          BIGINT NOT NULL,
    desired          TEXT    NOT NULL,
    updated_us       BIGINT NOT NULL,
    reported_version BIGINT,
    reported         TEXT,
    reported_at_us   BIGINT
);

-- Every desired and reported version, the last `[device_config] history` of each kind
-- per device kept. seq is the order of writing: hubs poll it for desired versions set
-- elsewhere (another hub, the CLI).
CREATE TABLE device_config_history (
    seq       BIGSERIAL PRIMARY KEY,
    device_id BIGINT NOT NULL REFERENCES devices(id),
    kind      TEXT    NOT NULL CHECK (kind IN ('desired', 'reported')),
    version   BIGINT NOT NULL,
    document  TEXT    NOT NULL,
    by_token  TEXT,
    ts_us     BIGINT NOT NULL
);
CREATE INDEX device_config_history_device ON device_config_history (device_id, kind, seq);
