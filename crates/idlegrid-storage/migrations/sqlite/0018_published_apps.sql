-- Apps that customers and partners publish. A name belongs to the account that published it
-- first; each of its versions is kept for ever as it was published (its manifest and the
-- SHA-256 of its bundle, which the blob store holds). An app is seen and run only by its
-- publisher's account unless an operator makes it public.
CREATE TABLE app_names (
    name       TEXT PRIMARY KEY,
    tenant_id  INTEGER NOT NULL REFERENCES tenants(id),
    public     INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE TABLE app_versions (
    name          TEXT NOT NULL REFERENCES app_names(name),
    version       TEXT NOT NULL,
    manifest      TEXT NOT NULL,
    bundle_sha256 TEXT NOT NULL,
    bundle_bytes  INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX app_names_by_tenant ON app_names (tenant_id);
