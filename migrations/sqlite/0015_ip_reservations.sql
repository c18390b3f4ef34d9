-- What a step in flight will occupy (design.md §11): the IP an order or an IP change
-- will bind its license to is reserved in the transaction that accepts the step and
-- given back by the one that ends it. Every other acceptance that would occupy the IP
-- inserts its own reservation here, so this primary key (not a check-then-insert)
-- decides between an order and an IP change, or two IP changes, racing for one IP;
-- `licenses_one_live_per_ip` still guards the licenses already bound to it.
CREATE TABLE ip_reservations (
    ip           TEXT    PRIMARY KEY,                -- canonical text form, as licenses.ip
    license_id   TEXT    NOT NULL REFERENCES licenses (id),
    -- The step holding it; NULL only inside an adoption's transaction, which takes and
    -- gives back a reservation to wait out a step being accepted for the same IP.
    operation_id INTEGER REFERENCES operations (id),
    kind         TEXT    NOT NULL,                   -- the step's kind: ORDER, CHANGE_IP
    create_time  INTEGER NOT NULL                    -- unix microseconds
);

CREATE INDEX ip_reservations_license ON ip_reservations (license_id);
CREATE INDEX ip_reservations_operation ON ip_reservations (operation_id);

-- Steps in flight when this runs reserve what they will occupy: open orders their
-- license's IP, open IP changes their target; so does the last step of a license
-- handed to a person (its outcome is unknown: the upstream may hold the IP), until a
-- resolution gives it back. Oldest first; a later claim on an IP already reserved is
-- left out (the store then shows the conflict, as before).
INSERT INTO ip_reservations (ip, license_id, operation_id, kind, create_time)
SELECT CASE o.kind WHEN 'ORDER' THEN l.ip ELSE json_extract(o.params, '$.ip') END,
       o.license_id, o.id, o.kind, o.create_time
  FROM operations o
  JOIN licenses l ON l.id = o.license_id
 WHERE o.kind IN ('ORDER', 'CHANGE_IP')
   AND (o.phase NOT IN ('DONE', 'FAILED')
        OR (l.state = 'NEEDS_ATTENTION'
            AND o.id = (SELECT MAX(p.id) FROM operations p WHERE p.license_id = o.license_id)))
 ORDER BY o.id
ON CONFLICT (ip) DO NOTHING;
