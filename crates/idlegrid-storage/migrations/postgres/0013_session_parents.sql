-- See the SQLite migration 0017_session_parents.sql.
ALTER TABLE credentials ADD COLUMN parent_id BIGINT;
CREATE INDEX credentials_by_parent ON credentials (parent_id) WHERE parent_id IS NOT NULL;
