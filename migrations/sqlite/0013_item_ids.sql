-- Stable integer ids for the downstream BILLmanager API (`/billmgr`), whose clients
-- keep an item id as a number: every license gets the next one when it is inserted,
-- whichever API created it, and keeps it for good.

ALTER TABLE licenses ADD COLUMN item_id INTEGER;

-- Existing licenses are numbered in the order they were inserted.
UPDATE licenses SET item_id = rowid;

CREATE UNIQUE INDEX licenses_item_id ON licenses (item_id);

-- SQLite cannot add an AUTOINCREMENT column; one writer at a time makes MAX + 1 safe,
-- and licenses are never deleted, so a number is never handed out twice.
CREATE TRIGGER licenses_assign_item_id AFTER INSERT ON licenses
WHEN NEW.item_id IS NULL
BEGIN
    UPDATE licenses
       SET item_id = (SELECT COALESCE(MAX(item_id), 0) + 1 FROM licenses)
     WHERE rowid = NEW.rowid;
END;
