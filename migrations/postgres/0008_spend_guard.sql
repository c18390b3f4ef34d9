-- The spend guard counts a client's recent paid calls (orders, renewals, panel
-- changes) and adds up what they cost from here.
CREATE INDEX audit_log_client_time ON audit_log (client, time);
-- What an accepted paid call was priced at (hundredths of the account's currency),
-- recorded while the client has a money cap.
ALTER TABLE audit_log ADD COLUMN cost_cents BIGINT;
