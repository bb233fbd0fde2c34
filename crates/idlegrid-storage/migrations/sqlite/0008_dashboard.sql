-- Operators watch the whole grid (the dashboard's grid page, GET /v1/grid/stats): their own
-- kind of credential. SQLite cannot alter a CHECK constraint, so the credentials table is
-- rebuilt with the new kind allowed.
CREATE TABLE operators (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE credentials_new (
    secret_hash BLOB PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('api_key', 'enrollment', 'worker', 'operator')),
    subject     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO credentials_new (secret_hash, kind, subject, created_at)
    SELECT secret_hash, kind, subject, created_at FROM credentials;
DROP TABLE credentials;
ALTER TABLE credentials_new RENAME TO credentials;

-- When a device last asked for work, heartbeated or reported (Unix ms), written in batches by
-- the coordinators that saw it, for owners' device lists.
ALTER TABLE workers ADD COLUMN last_seen_at INTEGER;
CREATE INDEX workers_by_owner ON workers (owner_id, id);
