-- Request ids (Idempotency-Key / requestId), scoped per client. A row is written in
-- the same transaction as the work the request queued, so a request is either fully
-- recorded with its work or not at all: a replay after a crash finds either both or
-- neither, and never queues the work twice.
CREATE TABLE request_keys (
    client      TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,  -- the request's parameters; another body is a reuse
    response    TEXT    NOT NULL,  -- JSON of the result the first call returned
    busy_until  INTEGER,           -- the first call is still waiting until then
    create_time INTEGER NOT NULL,
    PRIMARY KEY (client, key)
);

CREATE INDEX request_keys_age ON request_keys (create_time);
