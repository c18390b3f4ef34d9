-- A client's change feed reads `WHERE client = ? AND id > ? ORDER BY id`: without this
-- index every read scanned the whole history.
CREATE INDEX events_client ON events (client, id);

-- Retention deletes by age.
CREATE INDEX events_time ON events (time);

-- The highest event id that retention has deleted: a reader resuming from before it
-- has missed events and is told so (EVENTS_EXPIRED) instead of silently skipping them.
CREATE TABLE events_horizon (
    singleton      INTEGER PRIMARY KEY CHECK (singleton = 1),
    purged_through INTEGER NOT NULL
);
INSERT INTO events_horizon (singleton, purged_through) VALUES (1, 0);
