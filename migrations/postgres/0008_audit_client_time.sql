-- The spend guard counts a client's recent renewals and panel changes from here.
CREATE INDEX audit_log_client_time ON audit_log (client, time);
