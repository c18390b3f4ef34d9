-- When the last upstream attempt of an operation was sent (unix microseconds). A
-- request may land upstream until one request timeout after it was sent, so recovery
-- counts its settle period from here, not from a restart or a takeover.
ALTER TABLE operations ADD COLUMN sent_at BIGINT;

-- Operations already past their first attempt when this runs have no recorded send
-- time: count them as sent now, the latest moment their request could have left.
UPDATE operations
   SET sent_at = (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT
 WHERE attempt > 0 AND phase NOT IN ('DONE', 'FAILED');
