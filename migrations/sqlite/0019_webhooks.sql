-- Webhook subscriptions: a client's URL that receives the change feed's events as
-- signed HTTP POSTs. The events table is the outbox: `last_event_id` is the last event id
-- delivered (or skipped as another type), written in the statement that ends a
-- successful delivery, so a restart or a kill -9 delivers again from there and loses
-- nothing. One delivery at a time per subscription, in feed order (so a license's
-- events arrive in order), by whichever process holds its lease
-- (`lease_owner` until `lease_until`, as operations are leased), so with
-- replicas each event is delivered by one of them.
CREATE TABLE webhook_subscriptions (
    id             TEXT    PRIMARY KEY,       -- UUIDv7
    client         TEXT    NOT NULL,          -- the owner
    all_clients    INTEGER NOT NULL,   -- 1: an admin's, every client's events
    url            TEXT    NOT NULL,
    event_types    TEXT    NOT NULL,          -- comma-separated kinds; empty: all
    secret         TEXT    NOT NULL,          -- the HMAC key
    last_event_id  INTEGER  NOT NULL,
    state          TEXT    NOT NULL,          -- ACTIVE or FAILING
    attempts       INTEGER NOT NULL DEFAULT 0, -- failed attempts at the event after last_event_id
    first_failure  INTEGER,                   -- when that event first failed (unix microseconds)
    next_attempt   INTEGER  NOT NULL,
    last_error     TEXT,
    delivered      INTEGER  NOT NULL DEFAULT 0,
    lease_owner    TEXT,
    lease_until    INTEGER,
    create_time    INTEGER  NOT NULL,
    update_time    INTEGER  NOT NULL
);

CREATE INDEX webhook_subscriptions_client ON webhook_subscriptions (client);
CREATE INDEX webhook_subscriptions_due ON webhook_subscriptions (next_attempt)
    WHERE state = 'ACTIVE';
