-- 0001 (PostgreSQL): the lane's reference data, sales and API keys.
-- The same schema as ../0001_init.sql, column for column: SQLite's INTEGER
-- is BIGINT here (SQLite's integers are 64-bit), REAL is DOUBLE PRECISION,
-- BLOB is BYTEA, TEXT stays TEXT. An SQLite INTEGER PRIMARY KEY is a plain
-- BIGINT PRIMARY KEY: greenlane always names the id it inserts. WITHOUT
-- ROWID has no meaning here (every table is a heap with its own indexes).
-- Money is BIGINT cents (columns end in _cents); date-times are TEXT
-- "YYYY-MM-DD HH:MM:SS", as in SQLite, so that both compare them alike.

CREATE TABLE locations (
    locid       BIGINT  PRIMARY KEY CHECK (locid > 0),
    physkey     TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    address1    TEXT    NOT NULL DEFAULT '',
    address2    TEXT    NOT NULL DEFAULT '',
    address3    TEXT    NOT NULL DEFAULT '',
    address4    TEXT    NOT NULL DEFAULT '',
    address5    TEXT    NOT NULL DEFAULT '',
    address6    TEXT    NOT NULL DEFAULT '',
    city        TEXT    NOT NULL DEFAULT '',
    phone       TEXT    NOT NULL DEFAULT '',
    geolat      DOUBLE PRECISION,
    geolong     DOUBLE PRECISION,
    active      BIGINT  NOT NULL DEFAULT 1 CHECK (active IN (0, 1))
);

-- One row: who this lane is. A lane belongs to one location.
CREATE TABLE lane (
    id          BIGINT  PRIMARY KEY CHECK (id = 1),
    lane_no     BIGINT  NOT NULL CHECK (lane_no > 0),
    locid       BIGINT  NOT NULL REFERENCES locations (locid),
    storename   TEXT    NOT NULL,
    currency    TEXT    NOT NULL CHECK (length(currency) = 3),
    timezone    TEXT    NOT NULL DEFAULT 'UTC'
);

CREATE TABLE departments (
    depid       BIGINT  PRIMARY KEY,
    physkey     TEXT    NOT NULL UNIQUE,
    description TEXT    NOT NULL,
    color       TEXT    NOT NULL DEFAULT '',
    sortorder   BIGINT  NOT NULL DEFAULT 0,
    deleted     BIGINT  NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1))
);

-- measurement: 0 = sold by the unit (qty counts items),
--              1 = weighed (qty in grams, price_cents is per kilogram).
CREATE TABLE products (
    pid         BIGINT  PRIMARY KEY CHECK (pid > 0),
    physkey     TEXT    NOT NULL UNIQUE,
    description TEXT    NOT NULL,
    shortname   TEXT    NOT NULL DEFAULT '',
    plu         TEXT    UNIQUE,
    depid       BIGINT  REFERENCES departments (depid),
    price_cents BIGINT  NOT NULL CHECK (price_cents >= 0),
    cost_cents  BIGINT  NOT NULL DEFAULT 0 CHECK (cost_cents >= 0),
    measurement BIGINT  NOT NULL DEFAULT 0 CHECK (measurement IN (0, 1)),
    active      BIGINT  NOT NULL DEFAULT 1 CHECK (active IN (0, 1))
);
CREATE INDEX products_depid ON products (depid);

-- A product may carry several barcodes; a barcode names one product.
CREATE TABLE product_barcodes (
    barcode     TEXT    PRIMARY KEY,
    pid         BIGINT  NOT NULL REFERENCES products (pid) ON DELETE CASCADE
);
CREATE INDEX product_barcodes_pid ON product_barcodes (pid);

-- discount_bps: customer discount in basis points (1000 = 10%).
CREATE TABLE customers (
    cid          BIGINT  PRIMARY KEY CHECK (cid <> 0),
    physkey      TEXT    NOT NULL UNIQUE,
    name         TEXT    NOT NULL,
    firstname    TEXT    NOT NULL DEFAULT '',
    lastname     TEXT    NOT NULL DEFAULT '',
    email        TEXT    NOT NULL DEFAULT '',
    phone        TEXT    NOT NULL DEFAULT '',
    address1     TEXT    NOT NULL DEFAULT '',
    address2     TEXT    NOT NULL DEFAULT '',
    address3     TEXT    NOT NULL DEFAULT '',
    city         TEXT    NOT NULL DEFAULT '',
    discount_bps BIGINT  NOT NULL DEFAULT 0 CHECK (discount_bps BETWEEN 0 AND 10000)
);
CREATE INDEX customers_name ON customers (name);

CREATE TABLE staff (
    tid         BIGINT  PRIMARY KEY CHECK (tid > 0),
    physkey     TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    firstname   TEXT    NOT NULL DEFAULT '',
    lastname    TEXT    NOT NULL DEFAULT '',
    active      BIGINT  NOT NULL DEFAULT 1 CHECK (active IN (0, 1))
);

-- code is site-specific; globalcode is Fieldpine's global code
-- (1 cash, 3 eftpos, 200 charge account, 200108 PxPay, 200109 Windcave
-- manual, 564000 web sale).
CREATE TABLE payment_types (
    code         BIGINT  PRIMARY KEY,
    globalcode   BIGINT  NOT NULL UNIQUE,
    typestr      TEXT    NOT NULL,
    custspell    TEXT    NOT NULL DEFAULT '',
    saleeffect   BIGINT  NOT NULL DEFAULT 1,
    visibleflags BIGINT  NOT NULL DEFAULT 0,
    onlineflags  BIGINT  NOT NULL DEFAULT 0
);

-- phase: 0 active, 1 completed, 5 parked (presold), 10000 void.
-- sid is the lane's sale number, given when the sale completes.
CREATE TABLE sales (
    physkey         TEXT    PRIMARY KEY,
    random_key      TEXT    NOT NULL UNIQUE,
    sid             BIGINT  UNIQUE,
    phase           BIGINT  NOT NULL DEFAULT 0,
    startdt         TEXT    NOT NULL,
    completeddt     TEXT,
    completeddtutc  TEXT,
    saletotal_cents BIGINT  NOT NULL DEFAULT 0,
    teller          BIGINT  REFERENCES staff (tid),
    cid             BIGINT  REFERENCES customers (cid),
    location        BIGINT  REFERENCES locations (locid),
    salestype       BIGINT  NOT NULL DEFAULT 0,
    externalid      TEXT    NOT NULL DEFAULT '',
    comments        TEXT    NOT NULL DEFAULT '',
    identification  TEXT    NOT NULL DEFAULT '',
    printflags      BIGINT  NOT NULL DEFAULT 0,
    restartflags    BIGINT  NOT NULL DEFAULT 0,
    originalsid     BIGINT,
    posversion      TEXT    NOT NULL DEFAULT '',
    created_by      TEXT    NOT NULL DEFAULT '',
    updated_utc     TEXT    NOT NULL,
    version         BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX sales_phase ON sales (phase, startdt);
CREATE INDEX sales_cid ON sales (cid);

-- seqnce is the line's stable position within its sale.
-- pidflag: 0 product, 5 modifier. pricecause per SPEC 9.2 (8 = customer %).
CREATE TABLE sale_lines (
    sale_physkey           TEXT    NOT NULL REFERENCES sales (physkey) ON DELETE CASCADE,
    seqnce                 BIGINT  NOT NULL CHECK (seqnce > 0),
    pid                    BIGINT  NOT NULL REFERENCES products (pid),
    pidflag                BIGINT  NOT NULL DEFAULT 0,
    description            TEXT    NOT NULL,
    plu                    TEXT    NOT NULL DEFAULT '',
    qty                    BIGINT  NOT NULL CHECK (qty > 0),
    unitprice_cents        BIGINT  NOT NULL,
    prediscountprice_cents BIGINT  NOT NULL,
    totalprice_cents       BIGINT  NOT NULL,
    pricecause             BIGINT  NOT NULL DEFAULT 0,
    pricecausedata         BIGINT  NOT NULL DEFAULT 0,
    linesource             BIGINT  NOT NULL DEFAULT 0,
    serialno               TEXT    NOT NULL DEFAULT '' CHECK (length(serialno) <= 64),
    PRIMARY KEY (sale_physkey, seqnce)
);
CREATE INDEX sale_lines_pid ON sale_lines (pid);

-- type is payment_types.code. Failed attempts are stored too (payflags).
CREATE TABLE payments (
    sale_physkey TEXT    NOT NULL REFERENCES sales (physkey) ON DELETE CASCADE,
    sequence     BIGINT  NOT NULL CHECK (sequence > 0),
    type         BIGINT  NOT NULL REFERENCES payment_types (code),
    amount_cents BIGINT  NOT NULL,
    dt           TEXT    NOT NULL,
    eftid        BIGINT,
    authcode     TEXT    NOT NULL DEFAULT '' CHECK (length(authcode) <= 24),
    cardno       TEXT    NOT NULL DEFAULT '',
    externalref  TEXT    NOT NULL DEFAULT '',
    payflags     BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (sale_physkey, sequence)
);

-- API keys: the key itself is never stored, only salt and SHA-256 of
-- salt||secret. key_id is the public part of the key used to find the row.
-- scopes: comma-separated list of presell, counter, display, debug, admin.
CREATE TABLE api_keys (
    key_id      TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    scopes      TEXT    NOT NULL,
    salt        BYTEA   NOT NULL,
    hash        BYTEA   NOT NULL,
    created_utc TEXT    NOT NULL,
    revoked_utc TEXT
);
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (name) WHERE revoked_utc IS NULL;
