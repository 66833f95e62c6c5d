-- 0011: the idempotency table becomes an ordinary (rowid) table. Clustered
-- on its primary key (WITHOUT ROWID), a row holds at most about a quarter
-- of a page before the rest spills onto an overflow page of its own; a
-- stored reply (the sale's view, about 1 KB) always spilled, so each record
-- took a 4 KB page mostly empty: 60 MB for 22,000 records. In a rowid table
-- a record holds up to a whole page, and new ones are appended in order.
-- The primary key stays, as a unique index.
CREATE TABLE idempotency_rowid (
    key_id       TEXT NOT NULL,
    ik           TEXT NOT NULL,
    endpoint     TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    reply        BLOB NOT NULL,
    created_utc  TEXT NOT NULL,
    session      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (key_id, ik)
);
INSERT INTO idempotency_rowid (key_id, ik, endpoint, request_hash, reply, created_utc, session)
    SELECT key_id, ik, endpoint, request_hash, reply, created_utc, session FROM idempotency;
DROP TABLE idempotency;
ALTER TABLE idempotency_rowid RENAME TO idempotency;
CREATE INDEX idempotency_created ON idempotency (created_utc);
