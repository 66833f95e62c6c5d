-- 0002: what SalesBuilder and presell tablets need on a sale, and the
-- idempotency record that makes a retried request exactly-once.

-- holder_key / holder_name: the API key (id and name) that may change the
-- sale now: its creator until a counter takes it. created_by (0001) is the
-- name of the key that created it.
-- presell = 1 for a sale made on a presell socket; when submitted (phase 5)
-- it carries a ticket that is unique among the lane's open presells.
-- next_seqnce: the seqnce the next line gets (seqnce never repeats in a sale).
ALTER TABLE sales ADD COLUMN holder_key     TEXT    NOT NULL DEFAULT '';
ALTER TABLE sales ADD COLUMN holder_name    TEXT    NOT NULL DEFAULT '';
ALTER TABLE sales ADD COLUMN presell        INTEGER NOT NULL DEFAULT 0 CHECK (presell IN (0, 1));
ALTER TABLE sales ADD COLUMN ticket         INTEGER;
ALTER TABLE sales ADD COLUMN ticket_word    TEXT;
ALTER TABLE sales ADD COLUMN ticket_barcode TEXT;
ALTER TABLE sales ADD COLUMN submitted_utc  TEXT;
ALTER TABLE sales ADD COLUMN voided_utc     TEXT;
ALTER TABLE sales ADD COLUMN voided_by      TEXT;
ALTER TABLE sales ADD COLUMN next_seqnce    INTEGER NOT NULL DEFAULT 1;

-- A ticket (and its barcode) names one open presell: open means active or
-- parked. Completed and voided sales keep their ticket, which is then free.
CREATE UNIQUE INDEX sales_open_ticket ON sales (ticket)
    WHERE ticket IS NOT NULL AND phase IN (0, 5);
CREATE UNIQUE INDEX sales_open_ticket_barcode ON sales (ticket_barcode)
    WHERE ticket_barcode IS NOT NULL AND phase IN (0, 5);
-- "This key's top active sale" and "this key's open sales".
CREATE INDEX sales_holder ON sales (holder_key, phase, updated_utc);

-- Counters the lane hands out (next ticket number).
CREATE TABLE lane_counters (
    name  TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

-- One row per request that carried an idempotency key (ik), written in the
-- same transaction as the request's effect. request_hash covers the
-- endpoint and its arguments; reply is the stored reply body.
CREATE TABLE idempotency (
    ik           TEXT PRIMARY KEY,
    key_id       TEXT NOT NULL,
    endpoint     TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    reply        BLOB NOT NULL,
    created_utc  TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX idempotency_created ON idempotency (created_utc);
