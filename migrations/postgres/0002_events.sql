-- The change feed: one row per visible change of a license, with the license as it was
-- right after it. Identity values are handed out at insert time, not at commit, so the
-- store takes a transaction-level advisory lock before inserting events and holds it to
-- commit: ids then increase in commit order, and a reader resuming after an id misses
-- nothing (see src/store/postgres.rs, EVENTS_LOCK).
CREATE TABLE events (
    id         BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    license_id TEXT COLLATE "C" NOT NULL REFERENCES licenses (id),
    client     TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    license    TEXT    NOT NULL,  -- JSON snapshot
    time       BIGINT  NOT NULL
);

CREATE INDEX events_license ON events (license_id);
CREATE INDEX operations_open_license ON operations (license_id, id)
    WHERE phase NOT IN ('DONE', 'FAILED');
