-- The audit log: one row per action that buys or changes a license when it is
-- accepted (outcome ACCEPTED, written by the service), and one more when its upstream
-- work ends (SUCCEEDED, FAILED or NEEDS_ATTENTION, written by the worker). Append
-- only; rows outlive their license and are never rewritten.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    time        INTEGER NOT NULL,  -- unix microseconds
    client      TEXT    NOT NULL,  -- who: the client that made the call
    action      TEXT    NOT NULL,  -- ORDER, RENEW, CHANGE_IP, ..., ADOPT
    license_id  TEXT    NOT NULL,
    server_id   TEXT    NOT NULL,
    request_id  TEXT,              -- the caller's Idempotency-Key / requestId
    upstream_id INTEGER,           -- the BILLmanager license id, once known
    outcome     TEXT    NOT NULL,
    detail      TEXT               -- why it failed, for people
);

CREATE INDEX audit_log_license ON audit_log (license_id, id);
-- The spend guard counts a client's recent orders.
CREATE INDEX licenses_client_created ON licenses (client, create_time);
