-- One price for every paid call (an order, a renewal, a panel change), recorded on its
-- ACCEPTED audit entry whether or not the client has a money cap: the amount in
-- `cost_cents` with its currency here, or, when the price could not be read, NULL
-- there and the reason in `cost_unknown`. Entries written before this have neither.
ALTER TABLE audit_log ADD COLUMN cost_currency TEXT;
ALTER TABLE audit_log ADD COLUMN cost_unknown TEXT;

-- The change-feed event of a paid call (an order's CREATED, a renewal's RENEWED, a
-- panel change's PANEL_CHANGED) carries the same price.
ALTER TABLE events ADD COLUMN cost_cents BIGINT;
ALTER TABLE events ADD COLUMN cost_currency TEXT;
ALTER TABLE events ADD COLUMN cost_unknown TEXT;
