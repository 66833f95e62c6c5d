-- 0003: counter recall. A submitted presell (phase 5) is claimed by one
-- device at a time with a lease held in the lane DB itself; every presell
-- state change is journalled.

-- claim_session: the session (one socket, or one counter program run) that
-- holds the claim; claim_key/claim_name: its API key id and name;
-- claim_expires_ms: when the lease lapses (Unix milliseconds, UTC). A claim
-- whose lease has lapsed is no claim: anyone may take the presell.
ALTER TABLE sales ADD COLUMN claim_session    TEXT;
ALTER TABLE sales ADD COLUMN claim_key        TEXT;
ALTER TABLE sales ADD COLUMN claim_name       TEXT;
ALTER TABLE sales ADD COLUMN claim_expires_ms INTEGER;

-- Open presells, newest first, without scanning historic sales.
CREATE INDEX sales_open_presells ON sales (submitted_utc DESC)
    WHERE presell = 1 AND phase IN (0, 5);

-- The journal: one row per sale or presell event, written in the same
-- transaction as the change. seq orders every event of the lane.
-- family: 'sale' or 'presell'; event: created, submitted, claimed,
-- released, completed, voided, expired, …; actor: key name or 'sweeper';
-- detail: JSON with event-specific facts (ticket, reason, …).
CREATE TABLE journal (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at_utc  TEXT    NOT NULL,
    family  TEXT    NOT NULL,
    event   TEXT    NOT NULL,
    physkey TEXT    NOT NULL,
    actor   TEXT    NOT NULL DEFAULT '',
    detail  TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX journal_physkey ON journal (physkey, seq);
