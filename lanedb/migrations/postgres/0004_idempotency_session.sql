-- 0004 (PostgreSQL): the session that made an idempotent request.
-- The same as ../0004_idempotency_session.sql.
ALTER TABLE idempotency ADD COLUMN session TEXT NOT NULL DEFAULT '';
