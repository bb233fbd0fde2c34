-- A dashboard session remembers the key it was made from, so revoking or rotating the key ends
-- its sessions too.
ALTER TABLE credentials ADD COLUMN parent_id INTEGER;
CREATE INDEX credentials_by_parent ON credentials (parent_id) WHERE parent_id IS NOT NULL;
