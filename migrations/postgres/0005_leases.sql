-- Named leases for jobs that run once per period across all replicas (the periodic
-- reconciliation). A row is taken by an upsert that only succeeds when the current
-- holder's lease has run out; the row lock makes concurrent takers queue.
CREATE TABLE leases (
    name        TEXT    PRIMARY KEY,
    owner       TEXT    NOT NULL,
    lease_until BIGINT  NOT NULL                     -- unix microseconds
);
