-- What a paid call bought, beside its price on the ACCEPTED audit entry: the panel
-- (an order's, the license's at a renewal, the new one of a panel change) and the
-- period as the upstream states it (1, 12, or -100 for a trial), so the cost report
-- can group a month's calls by panel and set the reseller's selling price beside
-- them even after the license moved on. Entries written before this have neither;
-- the report then reads the license's current panel and period.
ALTER TABLE audit_log ADD COLUMN cost_panel TEXT;
ALTER TABLE audit_log ADD COLUMN cost_period BIGINT;

-- The cost report reads a month of the log at once.
CREATE INDEX audit_log_time ON audit_log (time);
