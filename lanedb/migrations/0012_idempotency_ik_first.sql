-- 0012: idempotency records are keyed ik first. The tablet page makes
-- time-ordered iks (UUIDv7), so ik-first keys are written at the index's
-- end, a page or two per commit; keyed by API key first, each change of a
-- group-commit batch (each from another tablet, so another key) landed on
-- an index page of its own, a 4 KB WAL frame per change. A lookup names
-- both columns, so either order finds it; the unique pair is the same.
-- SQLite cannot change a primary key in place: the table is made again,
-- its rows kept.
CREATE TABLE idempotency_ik_first (
    key_id       TEXT NOT NULL,
    ik           TEXT NOT NULL,
    endpoint     TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    reply        BLOB NOT NULL,
    created_utc  TEXT NOT NULL,
    session      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (ik, key_id)
);
INSERT INTO idempotency_ik_first (key_id, ik, endpoint, request_hash, reply, created_utc, session)
    SELECT key_id, ik, endpoint, request_hash, reply, created_utc, session FROM idempotency;
DROP TABLE idempotency;
ALTER TABLE idempotency_ik_first RENAME TO idempotency;
CREATE INDEX idempotency_created ON idempotency (created_utc);
