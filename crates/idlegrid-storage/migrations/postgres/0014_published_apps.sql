-- Apps that customers and partners publish (see the SQLite migration 0018_published_apps.sql).
CREATE TABLE app_names (
    name       TEXT PRIMARY KEY,
    tenant_id  BIGINT NOT NULL REFERENCES tenants(id),
    public     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);
CREATE TABLE app_versions (
    name          TEXT NOT NULL REFERENCES app_names(name),
    version       TEXT NOT NULL,
    manifest      TEXT NOT NULL,
    bundle_sha256 TEXT NOT NULL,
    bundle_bytes  BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX app_names_by_tenant ON app_names (tenant_id);
