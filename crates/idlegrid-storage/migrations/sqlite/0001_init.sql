-- Accounts: customers (tenants), device owners, and the hashed secrets that authenticate them.
CREATE TABLE tenants (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE owners (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE workers (
    id           INTEGER PRIMARY KEY,
    owner_id     INTEGER NOT NULL REFERENCES owners(id),
    name         TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);

-- SHA-256 of each API key, enrollment token and worker token; the secrets themselves are never stored.
CREATE TABLE credentials (
    secret_hash BLOB PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('api_key', 'enrollment', 'worker')),
    subject     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE jobs (
    id                INTEGER PRIMARY KEY,
    tenant_id         INTEGER NOT NULL REFERENCES tenants(id),
    app               TEXT NOT NULL,
    app_version       TEXT NOT NULL,
    bundle_sha256     TEXT NOT NULL,
    params            TEXT NOT NULL,
    partition_options TEXT NOT NULL,
    priority          INTEGER NOT NULL,
    max_attempts      INTEGER NOT NULL,
    task_timeout_secs INTEGER NOT NULL,
    state             TEXT NOT NULL,
    error             TEXT,
    input_key         TEXT,
    input_size        INTEGER,
    input_sha256      TEXT,
    output_key        TEXT,
    output_size       INTEGER,
    output_sha256     TEXT,
    chunks_total      INTEGER,
    chunks_created    INTEGER NOT NULL DEFAULT 0,
    chunks_done       INTEGER NOT NULL DEFAULT 0,
    chunks_failed     INTEGER NOT NULL DEFAULT 0,
    failed_attempts   INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    submitted_at      INTEGER,
    started_at        INTEGER,
    finished_at       INTEGER
);
CREATE INDEX jobs_by_tenant ON jobs (tenant_id, id);
CREATE INDEX jobs_by_state ON jobs (state);

-- One row per chunk. input_key NULL means a byte range of the job's own input.
CREATE TABLE tasks (
    id               INTEGER PRIMARY KEY,
    job_id           INTEGER NOT NULL REFERENCES jobs(id),
    idx              INTEGER NOT NULL,
    state            TEXT NOT NULL,
    input_key        TEXT,
    input_offset     INTEGER NOT NULL,
    input_len        INTEGER NOT NULL,
    failures         INTEGER NOT NULL DEFAULT 0,
    canonical_result INTEGER,
    UNIQUE (job_id, idx)
);

-- One row per report a worker made (or the coordinator made for it, when a lease expired).
CREATE TABLE results (
    id             INTEGER PRIMARY KEY,
    task_id        INTEGER NOT NULL REFERENCES tasks(id),
    job_id         INTEGER NOT NULL,
    worker_id      INTEGER NOT NULL,
    outcome        TEXT NOT NULL,
    reason         TEXT,
    sha256         TEXT,
    size           INTEGER,
    inline_output  BLOB,
    blob_key       TEXT,
    validate_state TEXT,
    created_at     INTEGER NOT NULL
);
CREATE INDEX results_by_task ON results (task_id);
CREATE INDEX results_awaiting_validation ON results (id) WHERE validate_state = 'pending';
