-- 0002 (PostgreSQL): what SalesBuilder and presell tablets need on a sale,
-- and the idempotency record that makes a retried request exactly-once.
-- The same as ../0002_salesbuilder.sql; see there for what each column means.

ALTER TABLE sales ADD COLUMN holder_key     TEXT    NOT NULL DEFAULT '';
ALTER TABLE sales ADD COLUMN holder_name    TEXT    NOT NULL DEFAULT '';
ALTER TABLE sales ADD COLUMN presell        BIGINT  NOT NULL DEFAULT 0 CHECK (presell IN (0, 1));
ALTER TABLE sales ADD COLUMN ticket         BIGINT;
ALTER TABLE sales ADD COLUMN ticket_word    TEXT;
ALTER TABLE sales ADD COLUMN ticket_barcode TEXT;
ALTER TABLE sales ADD COLUMN submitted_utc  TEXT;
ALTER TABLE sales ADD COLUMN voided_utc     TEXT;
ALTER TABLE sales ADD COLUMN voided_by      TEXT;
ALTER TABLE sales ADD COLUMN next_seqnce    BIGINT  NOT NULL DEFAULT 1;

-- A ticket (and its barcode) names one open presell store-wide: open means
-- active or parked. These unique partial indexes are what keep two
-- instances from handing out the same ticket. The ticket word is spelled
-- from the ticket number, so the ticket's index keeps words unique too.
CREATE UNIQUE INDEX sales_open_ticket ON sales (ticket)
    WHERE ticket IS NOT NULL AND phase IN (0, 5);
CREATE UNIQUE INDEX sales_open_ticket_barcode ON sales (ticket_barcode)
    WHERE ticket_barcode IS NOT NULL AND phase IN (0, 5);
CREATE INDEX sales_holder ON sales (holder_key, phase, updated_utc);

CREATE TABLE lane_counters (
    name  TEXT    PRIMARY KEY,
    value BIGINT  NOT NULL
);

CREATE TABLE idempotency (
    ik           TEXT  PRIMARY KEY,
    key_id       TEXT  NOT NULL,
    endpoint     TEXT  NOT NULL,
    request_hash BYTEA NOT NULL,
    reply        BYTEA NOT NULL,
    created_utc  TEXT  NOT NULL
);
CREATE INDEX idempotency_created ON idempotency (created_utc);
