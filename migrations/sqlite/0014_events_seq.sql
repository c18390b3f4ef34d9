-- The feed position, read by the same queries as on PostgreSQL (where it is assigned
-- after commit, see src/store/sequencer.rs). SQLite has one writer at a time, so ids
-- already increase in commit order: the position is the id itself, a virtual column
-- (computed, not stored).
ALTER TABLE events ADD COLUMN seq INTEGER GENERATED ALWAYS AS (id) VIRTUAL;

CREATE UNIQUE INDEX events_seq ON events (seq);

-- A client's feed read: `WHERE client = ?1 AND seq > ?2 ORDER BY seq`.
DROP INDEX events_client;
CREATE INDEX events_client ON events (client, seq);
