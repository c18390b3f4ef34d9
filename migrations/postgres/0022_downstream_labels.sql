-- The downstream account's own labels of an item (`/billmgr`): the `licname` and
-- `remoteid` a shop gave the license (a WHMCS module renames its licenses, and parks
-- them as `free.lic`). They are the account's, shown back to it only; the license
-- keeps its own host name and server id, and upstream it is named by our id, which
-- recovery finds it by. NULL: the account never set that label.
CREATE TABLE downstream_labels (
    client      TEXT    NOT NULL,                    -- the downstream account's client
    license_id  TEXT COLLATE "C" NOT NULL REFERENCES licenses (id),
    licname     TEXT,
    remoteid    TEXT,
    update_time BIGINT  NOT NULL,                    -- unix microseconds
    PRIMARY KEY (client, license_id)
);
