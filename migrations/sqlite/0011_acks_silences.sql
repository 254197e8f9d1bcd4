-- Acknowledging and silencing alerts (contract §16, docs/alerts.md "Acknowledging and
-- silencing"). Timestamps are microseconds since the Unix epoch, UTC.

-- The acknowledgement of a firing alert lives on its row: the row goes when the alert
-- resolves, so the next firing starts unacknowledged. Acknowledging bumps `version`, so
-- a hub about to send a `repeat` with the old version adopts the row instead.
ALTER TABLE alert_state ADD COLUMN ack_by TEXT;
ALTER TABLE alert_state ADD COLUMN ack_comment TEXT;
ALTER TABLE alert_state ADD COLUMN ack_us INTEGER;

-- `by` and `comment` of `acknowledged` events; `silenced` = 1 on events raised while a
-- silence matched (stored, never delivered).
ALTER TABLE alert_events ADD COLUMN by_name TEXT;
ALTER TABLE alert_events ADD COLUMN comment TEXT;
ALTER TABLE alert_events ADD COLUMN silenced INTEGER NOT NULL DEFAULT 0;

-- Silences: active while until_us is in the future. Deleting one sets until_us to the
-- time of deletion. `ended` = 1 once a hub has claimed its end and announced the alerts
-- still firing under it (conditional update: one hub of a cluster does it).
CREATE TABLE alert_silences (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    pattern    TEXT    NOT NULL,
    rule       TEXT,
    until_us   INTEGER NOT NULL,
    comment    TEXT    NOT NULL,
    by_name    TEXT    NOT NULL,
    created_us INTEGER NOT NULL,
    ended      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX alert_silences_open ON alert_silences (ended, until_us);
