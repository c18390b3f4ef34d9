-- Licenses and the durable work queue that drives them.

CREATE TABLE licenses (
    id                 TEXT    PRIMARY KEY,          -- UUIDv7, also the upstream remoteid
    client             TEXT    NOT NULL,
    server_id          TEXT    NOT NULL,
    ip                 TEXT    NOT NULL,
    hostname           TEXT,
    panel              TEXT    NOT NULL,
    tariff_id          INTEGER NOT NULL,
    nodes              INTEGER,
    period             INTEGER NOT NULL,             -- upstream value: 1, 12 or -100
    auto_renew         INTEGER NOT NULL,
    state              TEXT    NOT NULL,
    license_key        TEXT,
    upstream_id        INTEGER,
    expire_time        INTEGER,                      -- unix microseconds
    last_error_code    TEXT,
    last_error_message TEXT,
    create_time        INTEGER NOT NULL,
    update_time        INTEGER NOT NULL
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
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    license_id  TEXT    NOT NULL REFERENCES licenses (id),
    kind        TEXT    NOT NULL,
    params      TEXT    NOT NULL,                    -- JSON of the operation kind
    phase       TEXT    NOT NULL,
    attempt     INTEGER NOT NULL DEFAULT 0,
    checks      INTEGER NOT NULL DEFAULT 0,
    failures    INTEGER NOT NULL DEFAULT 0,
    run_after   INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    last_error  TEXT,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL
);

CREATE INDEX operations_due ON operations (run_after)
    WHERE phase NOT IN ('DONE', 'FAILED');
CREATE INDEX operations_license ON operations (license_id);
