-- Accounts for a public grid: operators suspend and delete customers and owners (a deleted
-- account keeps its rows for the books; its secrets are gone), set customers' quotas (NULL:
-- the grid's default), and owners pause or remove their devices.
ALTER TABLE tenants ADD COLUMN suspended_at INTEGER;
ALTER TABLE tenants ADD COLUMN deleted_at INTEGER;
ALTER TABLE tenants ADD COLUMN max_running_jobs INTEGER;
ALTER TABLE tenants ADD COLUMN max_stored_bytes INTEGER;
ALTER TABLE tenants ADD COLUMN requests_per_sec INTEGER;
ALTER TABLE owners ADD COLUMN suspended_at INTEGER;
ALTER TABLE owners ADD COLUMN deleted_at INTEGER;
ALTER TABLE workers ADD COLUMN paused_at INTEGER;
ALTER TABLE workers ADD COLUMN removed_at INTEGER;

-- Named secrets: each credential gets an id to be listed, revoked and rotated by, a name, the
-- start of the secret to recognise it by (never enough to use it), when it was last used, and
-- when a dashboard session expires (NULL: never). SQLite cannot add a primary key, so the
-- table is rebuilt.
CREATE TABLE credentials_new (
    id           INTEGER PRIMARY KEY,
    secret_hash  BLOB NOT NULL UNIQUE,
    kind         TEXT NOT NULL CHECK (kind IN ('api_key', 'enrollment', 'worker', 'operator')),
    subject      INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    name         TEXT NOT NULL DEFAULT '',
    prefix       TEXT NOT NULL DEFAULT '',
    session      INTEGER NOT NULL DEFAULT 0,
    expires_at   INTEGER,
    last_used_at INTEGER
);
INSERT INTO credentials_new (secret_hash, kind, subject, created_at, name)
    SELECT secret_hash, kind, subject, created_at,
           CASE kind WHEN 'worker' THEN '' ELSE 'first key' END
    FROM credentials ORDER BY created_at;
DROP TABLE credentials;
ALTER TABLE credentials_new RENAME TO credentials;
CREATE INDEX credentials_by_subject ON credentials (kind, subject);

-- What owners asked to be paid out, and how an operator settled it: `paid` posts a ledger
-- transaction `payout:<id>` from the owner's account to the platform's payouts account.
CREATE TABLE payouts (
    id           INTEGER PRIMARY KEY,
    owner_id     INTEGER NOT NULL REFERENCES owners(id),
    amount       INTEGER NOT NULL CHECK (amount > 0),
    state        TEXT NOT NULL CHECK (state IN ('requested', 'paid', 'refused')),
    requested_at INTEGER NOT NULL,
    settled_at   INTEGER,
    reference    TEXT,
    note         TEXT
);
CREATE INDEX payouts_by_owner ON payouts (owner_id, id);
CREATE INDEX payouts_requested ON payouts (id) WHERE state = 'requested';
