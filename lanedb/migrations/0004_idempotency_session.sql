-- 0004: the session that made an idempotent request, so that a retry from
-- a new connection of the same device can take over what the first
-- connection held (a presell claim).
ALTER TABLE idempotency ADD COLUMN session TEXT NOT NULL DEFAULT '';
