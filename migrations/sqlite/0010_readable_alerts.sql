-- Day two (docs/alerts.md "Notifications"): each alert event keeps what its readable
-- message needs: the series' unit, the rule's condition in words and the link to the
-- dashboard view of the series. NULL for events stored by earlier releases.
ALTER TABLE alert_events ADD COLUMN unit TEXT;
ALTER TABLE alert_events ADD COLUMN rule_condition TEXT;
ALTER TABLE alert_events ADD COLUMN url TEXT;
