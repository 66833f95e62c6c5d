-- 0012 (PostgreSQL): idempotency records are keyed ik first, as
-- ../0012_idempotency_ik_first.sql says why, in place.
ALTER TABLE idempotency DROP CONSTRAINT idempotency_pkey;
ALTER TABLE idempotency ADD PRIMARY KEY (ik, key_id);
