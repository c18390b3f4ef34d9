-- A panel license is bound to an IP: a second live license on one IP (whatever client
-- or server id ordered it) is money paid for nothing. This index, not a
-- check-then-insert, refuses it, as licenses_one_live_per_server does per server.
CREATE UNIQUE INDEX licenses_one_live_per_ip
    ON licenses (ip)
    WHERE state NOT IN ('CANCELLED', 'FAILED');
