-- The change feed: one row per visible change of a license, with the license as it was
-- right after it. AUTOINCREMENT ids are assigned under SQLite's single write lock, so
-- they increase in commit order and a reader resuming after an id misses nothing.
CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    license_id TEXT    NOT NULL REFERENCES licenses (id),
    client     TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    license    TEXT    NOT NULL,  -- JSON snapshot
    time       INTEGER NOT NULL
);

CREATE INDEX events_license ON events (license_id);
CREATE INDEX operations_open_license ON operations (license_id, id)
    WHERE phase NOT IN ('DONE', 'FAILED');
