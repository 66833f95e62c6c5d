-- 0008 (PostgreSQL): an idempotency key belongs to the API key that used
-- it. The same as ../0008_idempotency_per_key.sql, in place.
ALTER TABLE idempotency DROP CONSTRAINT idempotency_pkey;
ALTER TABLE idempotency ADD PRIMARY KEY (key_id, ik);
