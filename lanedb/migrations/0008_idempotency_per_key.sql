-- 0008: an idempotency key belongs to the API key that used it. With ik
-- alone the key, one API key could use another's ik first (a till's order
-- number is easy to guess) and leave that key's request refused as
-- ik_reused for the whole retention, or learn from the refusal that the
-- ik was used. SQLite cannot change a primary key in place: the table is
-- made again, its rows kept.
CREATE TABLE idempotency_by_key (
    key_id       TEXT NOT NULL,
    ik           TEXT NOT NULL,
    endpoint     TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    reply        BLOB NOT NULL,
    created_utc  TEXT NOT NULL,
    session      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (key_id, ik)
) WITHOUT ROWID;
INSERT INTO idempotency_by_key (key_id, ik, endpoint, request_hash, reply, created_utc, session)
    SELECT key_id, ik, endpoint, request_hash, reply, created_utc, session FROM idempotency;
DROP TABLE idempotency;
ALTER TABLE idempotency_by_key RENAME TO idempotency;
CREATE INDEX idempotency_created ON idempotency (created_utc);
