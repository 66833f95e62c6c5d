-- 0001: the lane's reference data, sales and API keys.
-- Money is INTEGER cents (columns end in _cents); quantities are INTEGER in
-- the product's unit (grams for weighed goods); date-times are TEXT
-- "YYYY-MM-DD HH:MM:SS", store local time unless the name ends in utc.

CREATE TABLE locations (
    locid       INTEGER PRIMARY KEY CHECK (locid > 0),
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
    geolat      REAL,
    geolong     REAL,
    active      INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1))
);

-- One row: who this lane is. A lane belongs to one location.
CREATE TABLE lane (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    lane_no     INTEGER NOT NULL CHECK (lane_no > 0),
    locid       INTEGER NOT NULL REFERENCES locations (locid),
    storename   TEXT    NOT NULL,
    currency    TEXT    NOT NULL CHECK (length(currency) = 3),
    timezone    TEXT    NOT NULL DEFAULT 'UTC'
);

CREATE TABLE departments (
    depid       INTEGER PRIMARY KEY,
    physkey     TEXT    NOT NULL UNIQUE,
    description TEXT    NOT NULL,
    color       TEXT    NOT NULL DEFAULT '',
    sortorder   INTEGER NOT NULL DEFAULT 0,
    deleted     INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1))
);

-- measurement: 0 = sold by the unit (qty counts items),
--              1 = weighed (qty in grams, price_cents is per kilogram).
CREATE TABLE products (
    pid         INTEGER PRIMARY KEY CHECK (pid > 0),
    physkey     TEXT    NOT NULL UNIQUE,
    description TEXT    NOT NULL,
    shortname   TEXT    NOT NULL DEFAULT '',
    plu         TEXT    UNIQUE,
    depid       INTEGER REFERENCES departments (depid),
    price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
    cost_cents  INTEGER NOT NULL DEFAULT 0 CHECK (cost_cents >= 0),
    measurement INTEGER NOT NULL DEFAULT 0 CHECK (measurement IN (0, 1)),
    active      INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1))
);
CREATE INDEX products_depid ON products (depid);

-- A product may carry several barcodes; a barcode names one product.
CREATE TABLE product_barcodes (
    barcode     TEXT    PRIMARY KEY,
    pid         INTEGER NOT NULL REFERENCES products (pid) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX product_barcodes_pid ON product_barcodes (pid);

-- discount_bps: customer discount in basis points (1000 = 10%).
CREATE TABLE customers (
    cid          INTEGER PRIMARY KEY CHECK (cid <> 0),
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
    discount_bps INTEGER NOT NULL DEFAULT 0 CHECK (discount_bps BETWEEN 0 AND 10000)
);
CREATE INDEX customers_name ON customers (name);

CREATE TABLE staff (
    tid         INTEGER PRIMARY KEY CHECK (tid > 0),
    physkey     TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    firstname   TEXT    NOT NULL DEFAULT '',
    lastname    TEXT    NOT NULL DEFAULT '',
    active      INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1))
);

-- code is site-specific; globalcode is Fieldpine's global code
-- (1 cash, 3 eftpos, 200 charge account, 200108 PxPay, 200109 Windcave
-- manual, 564000 web sale).
CREATE TABLE payment_types (
    code         INTEGER PRIMARY KEY,
    globalcode   INTEGER NOT NULL UNIQUE,
    typestr      TEXT    NOT NULL,
    custspell    TEXT    NOT NULL DEFAULT '',
    saleeffect   INTEGER NOT NULL DEFAULT 1,
    visibleflags INTEGER NOT NULL DEFAULT 0,
    onlineflags  INTEGER NOT NULL DEFAULT 0
);

-- phase: 0 active, 1 completed, 5 parked (presold), 10000 void.
-- sid is the lane's sale number, given when the sale completes.
CREATE TABLE sales (
    physkey         TEXT    PRIMARY KEY,
    random_key      TEXT    NOT NULL UNIQUE,
    sid             INTEGER UNIQUE,
    phase           INTEGER NOT NULL DEFAULT 0,
    startdt         TEXT    NOT NULL,
    completeddt     TEXT,
    completeddtutc  TEXT,
    saletotal_cents INTEGER NOT NULL DEFAULT 0,
    teller          INTEGER REFERENCES staff (tid),
    cid             INTEGER REFERENCES customers (cid),
    location        INTEGER REFERENCES locations (locid),
    salestype       INTEGER NOT NULL DEFAULT 0,
    externalid      TEXT    NOT NULL DEFAULT '',
    comments        TEXT    NOT NULL DEFAULT '',
    identification  TEXT    NOT NULL DEFAULT '',
    printflags      INTEGER NOT NULL DEFAULT 0,
    restartflags    INTEGER NOT NULL DEFAULT 0,
    originalsid     INTEGER,
    posversion      TEXT    NOT NULL DEFAULT '',
    created_by      TEXT    NOT NULL DEFAULT '',
    updated_utc     TEXT    NOT NULL,
    version         INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX sales_phase ON sales (phase, startdt);
CREATE INDEX sales_cid ON sales (cid);

-- seqnce is the line's stable position within its sale.
-- pidflag: 0 product, 5 modifier. pricecause per SPEC 9.2 (8 = customer %).
CREATE TABLE sale_lines (
    sale_physkey           TEXT    NOT NULL REFERENCES sales (physkey) ON DELETE CASCADE,
    seqnce                 INTEGER NOT NULL CHECK (seqnce > 0),
    pid                    INTEGER NOT NULL REFERENCES products (pid),
    pidflag                INTEGER NOT NULL DEFAULT 0,
    description            TEXT    NOT NULL,
    plu                    TEXT    NOT NULL DEFAULT '',
    qty                    INTEGER NOT NULL CHECK (qty > 0),
    unitprice_cents        INTEGER NOT NULL,
    prediscountprice_cents INTEGER NOT NULL,
    totalprice_cents       INTEGER NOT NULL,
    pricecause             INTEGER NOT NULL DEFAULT 0,
    pricecausedata         INTEGER NOT NULL DEFAULT 0,
    linesource             INTEGER NOT NULL DEFAULT 0,
    serialno               TEXT    NOT NULL DEFAULT '' CHECK (length(serialno) <= 64),
    PRIMARY KEY (sale_physkey, seqnce)
) WITHOUT ROWID;
CREATE INDEX sale_lines_pid ON sale_lines (pid);

-- type is payment_types.code. Failed attempts are stored too (payflags).
CREATE TABLE payments (
    sale_physkey TEXT    NOT NULL REFERENCES sales (physkey) ON DELETE CASCADE,
    sequence     INTEGER NOT NULL CHECK (sequence > 0),
    type         INTEGER NOT NULL REFERENCES payment_types (code),
    amount_cents INTEGER NOT NULL,
    dt           TEXT    NOT NULL,
    eftid        INTEGER,
    authcode     TEXT    NOT NULL DEFAULT '' CHECK (length(authcode) <= 24),
    cardno       TEXT    NOT NULL DEFAULT '',
    externalref  TEXT    NOT NULL DEFAULT '',
    payflags     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sale_physkey, sequence)
) WITHOUT ROWID;

-- API keys: the key itself is never stored, only salt and SHA-256 of
-- salt||secret. key_id is the public part of the key used to find the row.
-- scopes: comma-separated list of presell, counter, display, debug, admin.
CREATE TABLE api_keys (
    key_id      TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    scopes      TEXT    NOT NULL,
    salt        BLOB    NOT NULL,
    hash        BLOB    NOT NULL,
    created_utc TEXT    NOT NULL,
    revoked_utc TEXT
) WITHOUT ROWID;
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (name) WHERE revoked_utc IS NULL;
