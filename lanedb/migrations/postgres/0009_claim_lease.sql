-- 0009 (PostgreSQL): each claim keeps the lease it was given.
-- The same as ../0009_claim_lease.sql; see there for what the column means.

ALTER TABLE sales ADD COLUMN claim_lease_ms BIGINT;
