-- Stable integer ids for the downstream BILLmanager API (`/billmgr`), whose clients
-- keep an item id as a number: every license gets the next one when it is inserted,
-- whichever API created it, and keeps it for good. Existing rows are numbered by the
-- sequence when the column is added.

ALTER TABLE licenses ADD COLUMN item_id BIGSERIAL;

CREATE UNIQUE INDEX licenses_item_id ON licenses (item_id);
