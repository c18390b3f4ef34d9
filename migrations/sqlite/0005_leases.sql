-- Named leases for jobs that run once per period across all processes sharing the
-- database (the periodic reconciliation). A row is taken by an upsert that only
-- succeeds when the current holder's lease has run out.
CREATE TABLE leases (
    name        TEXT    PRIMARY KEY,
    owner       TEXT    NOT NULL,
    lease_until INTEGER NOT NULL                     -- unix microseconds
);
