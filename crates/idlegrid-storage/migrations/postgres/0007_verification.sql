-- Verification against cheating devices (see the SQLite migration 0012_verification.sql).
ALTER TABLE owners ADD COLUMN tenant_id BIGINT REFERENCES tenants(id);
ALTER TABLE jobs ADD COLUMN placement TEXT NOT NULL DEFAULT 'any';
ALTER TABLE results ADD COLUMN suspect BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX results_disputed ON results (task_id) WHERE validate_state = 'disputed';
