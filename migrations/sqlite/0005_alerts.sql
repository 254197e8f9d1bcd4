-- Alerts (contract §11). Timestamps are microseconds since the Unix epoch, UTC.

-- Rules as given (the §11 JSON, normalised), by name.
CREATE TABLE alert_rules (
    name       TEXT    PRIMARY KEY,
    spec       TEXT    NOT NULL,
    created_us INTEGER NOT NULL
);

-- Bumped on every rule change, so running hubs reload their rules.
CREATE TABLE alert_rules_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch INTEGER NOT NULL
);
INSERT INTO alert_rules_epoch (id, epoch) VALUES (1, 0);

-- Each rule's series that are not `ok` ('pending' or 'firing'); no row means ok.
-- sensor is '' for device-level rules (offline). version guards each change, so in a
-- cluster only one hub decides a transition.
CREATE TABLE alert_state (
    rule        TEXT    NOT NULL REFERENCES alert_rules(name) ON DELETE CASCADE,
    device      TEXT    NOT NULL,
    sensor      TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('pending', 'firing')),
    severity    TEXT,
    since_us    INTEGER NOT NULL,
    value       TEXT,
    notified_us INTEGER,
    version     INTEGER NOT NULL,
    PRIMARY KEY (rule, device, sensor)
);

-- Every firing/resolved event; value is the JSON of the reading's value.
CREATE TABLE alert_events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    rule     TEXT    NOT NULL,
    device   TEXT    NOT NULL,
    sensor   TEXT,
    state    TEXT    NOT NULL,
    severity TEXT,
    value    TEXT,
    ts_us    INTEGER NOT NULL,
    since_us INTEGER NOT NULL
);
CREATE INDEX alert_events_ts ON alert_events (ts_us);

-- Webhook deliveries not yet done: one row per event and webhook URL. skey names the
-- series (rule, device, sensor) so that each webhook gets a series' events in order.
CREATE TABLE alert_outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   INTEGER NOT NULL REFERENCES alert_events(id),
    url        TEXT    NOT NULL,
    skey       TEXT    NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_us    INTEGER NOT NULL,
    created_us INTEGER NOT NULL
);
CREATE INDEX alert_outbox_due ON alert_outbox (next_us);
CREATE INDEX alert_outbox_series ON alert_outbox (url, skey, event_id);

-- The webhook signing key, when `[alerts] secret` is not set.
CREATE TABLE alert_secret (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    secret TEXT    NOT NULL
);
