-- Licenses and the durable work queue that drives them. The same tables as
-- migrations/sqlite/0001_licenses.sql; integers are BIGINT throughout so both stores
-- decode rows the same way (and a u32 tariff id fits), booleans are BOOLEAN.

CREATE TABLE licenses (
    id                 TEXT COLLATE "C" PRIMARY KEY, -- UUIDv7, also the upstream remoteid;
                                                     -- byte order = creation order, as in SQLite
    client             TEXT    NOT NULL,
    server_id          TEXT    NOT NULL,
    ip                 TEXT    NOT NULL,
    hostname           TEXT,
    panel              TEXT    NOT NULL,
    tariff_id          BIGINT  NOT NULL,
    nodes              BIGINT,
    period             BIGINT  NOT NULL,             -- upstream value: 1, 12 or -100
    auto_renew         BOOLEAN NOT NULL,
    state              TEXT    NOT NULL,
    license_key        TEXT,
    upstream_id        BIGINT,
    expire_time        BIGINT,                       -- unix microseconds
    last_error_code    TEXT,
    last_error_message TEXT,
    create_time        BIGINT  NOT NULL,
    update_time        BIGINT  NOT NULL
);

-- A server has at most one live license per client: this index, not a
-- check-then-insert, is what stops two concurrent orders from both going upstream.
CREATE UNIQUE INDEX licenses_one_live_per_server
    ON licenses (client, server_id)
    WHERE state NOT IN ('CANCELLED', 'FAILED');

CREATE INDEX licenses_server ON licenses (server_id);
CREATE INDEX licenses_ip ON licenses (ip);
CREATE UNIQUE INDEX licenses_upstream ON licenses (upstream_id) WHERE upstream_id IS NOT NULL;

CREATE TABLE operations (
    id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    license_id  TEXT COLLATE "C" NOT NULL REFERENCES licenses (id),
    kind        TEXT    NOT NULL,
    params      TEXT    NOT NULL,                    -- JSON of the operation kind
    phase       TEXT    NOT NULL,
    attempt     BIGINT  NOT NULL DEFAULT 0,
    checks      BIGINT  NOT NULL DEFAULT 0,
    failures    BIGINT  NOT NULL DEFAULT 0,
    run_after   BIGINT  NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    last_error  TEXT,
    create_time BIGINT  NOT NULL,
    update_time BIGINT  NOT NULL
);

CREATE INDEX operations_due ON operations (run_after)
    WHERE phase NOT IN ('DONE', 'FAILED');
CREATE INDEX operations_license ON operations (license_id);
