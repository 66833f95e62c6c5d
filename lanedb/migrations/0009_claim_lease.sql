-- 0009: each claim keeps the lease it was given. Lanes of one store may
-- run with different leases (--presell-lease); a lane cuts a claim that
-- lapses later than one lease from now (a claim stamped by a clock that
-- read later: see CapClaims), and must judge each claim by its own lease,
-- not by the lane's. claim_lease_ms: the lease in milliseconds, written
-- with claim_expires_ms whenever that is set; NULL (a claim written before
-- this step, or by a program that does not set it): the judging lane's
-- own lease.
ALTER TABLE sales ADD COLUMN claim_lease_ms INTEGER;
