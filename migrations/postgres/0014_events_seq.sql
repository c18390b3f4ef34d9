-- Feed positions assigned after commit (see src/store/sequencer.rs). Writers insert
-- events with `seq` NULL and take no lock; a sequencing pass, serialised by an
-- advisory lock, numbers the committed ones in id order. Readers page by `seq`.
ALTER TABLE events ADD COLUMN seq BIGINT;

-- Positions so far were the ids: clients resume where they were.
UPDATE events SET seq = id;

CREATE UNIQUE INDEX events_seq ON events (seq);

-- A client's feed read: `WHERE client = $1 AND seq > $2 ORDER BY seq`.
DROP INDEX events_client;
CREATE INDEX events_client ON events (client, seq);

-- The events still waiting for a position: passes find them without a scan.
CREATE INDEX events_unsequenced ON events (id) WHERE seq IS NULL;
