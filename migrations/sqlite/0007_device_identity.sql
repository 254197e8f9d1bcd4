-- Day two (docs/cli.md "Devices over their life"): device metadata, when each token was
-- last used, and unique names for viewer, operator and admin tokens.

-- A free text of at most 256 characters, and a location: the JSON object
-- {"lat": …, "lon": …, "name": …} (each part optional), as the API shows it.
ALTER TABLE devices ADD COLUMN description TEXT;
ALTER TABLE devices ADD COLUMN location TEXT;

-- Set when the token authenticates a request or a socket, at most once a minute.
ALTER TABLE tokens ADD COLUMN last_used_us INTEGER;
-- Set when what the token may do changed without revoking it (a gateway's list edited):
-- hubs close the sockets it opened before, as for a revocation, and it reconnects.
ALTER TABLE tokens ADD COLUMN grant_changed_us INTEGER;

-- `token add NAME` refuses a name in use. Earlier releases allowed duplicates: every
-- active one but the oldest is renamed NAME-ID (`token list` shows the new names).
UPDATE tokens SET label = label || '-' || id
 WHERE device_id IS NULL AND revoked_us IS NULL
   AND id NOT IN (SELECT min(id) FROM tokens
                   WHERE device_id IS NULL AND revoked_us IS NULL GROUP BY label);
CREATE UNIQUE INDEX tokens_active_label ON tokens (label)
 WHERE device_id IS NULL AND revoked_us IS NULL;
