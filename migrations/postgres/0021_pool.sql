-- The license pool (design.md §11): a parked license keeps its paid upstream license
-- but no server, so it leaves the one-live-license indexes; a license whose parked
-- upstream license was taken by another is REUSED history. The two links say which
-- license took which; the last IP and key change upstream (`real_ipchange`,
-- `real_keychange`, read when the license was parked) tell when the upstream's
-- cooldowns let it move.
ALTER TABLE licenses ADD COLUMN reused_from TEXT;
ALTER TABLE licenses ADD COLUMN reused_by TEXT;
ALTER TABLE licenses ADD COLUMN pool_ip_changed BIGINT;   -- unix microseconds
ALTER TABLE licenses ADD COLUMN pool_key_changed BIGINT;  -- unix microseconds

DROP INDEX licenses_one_live_per_server;
CREATE UNIQUE INDEX licenses_one_live_per_server
    ON licenses (client, server_id)
    WHERE state NOT IN ('CANCELLED', 'FAILED', 'PARKED', 'REUSED');

DROP INDEX licenses_one_live_per_ip;
CREATE UNIQUE INDEX licenses_one_live_per_ip
    ON licenses (ip)
    WHERE state NOT IN ('CANCELLED', 'FAILED', 'PARKED', 'REUSED');

-- An order's pick from the pool: parked licenses of a tariff.
CREATE INDEX licenses_parked ON licenses (tariff_id, expire_time)
    WHERE state = 'PARKED';

-- A REUSED license keeps the upstream id it had as history; the license that took it
-- holds it now.
DROP INDEX licenses_upstream;
CREATE UNIQUE INDEX licenses_upstream ON licenses (upstream_id)
    WHERE upstream_id IS NOT NULL AND state <> 'REUSED';
