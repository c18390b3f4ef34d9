-- The reconciler's latest drift report, so that every replica (and a restarted
-- process) can show it. One row (id = 1); a run replaces it only with a newer report.
CREATE TABLE drift_reports (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    generate_time INTEGER NOT NULL,  -- unix microseconds
    report        TEXT    NOT NULL   -- JSON of service::DriftReport
);
