-- Short-lived, one-time codes that link a device to its owner without the owner's token on
-- the device (a phone opening /contribute types the code or follows the link). Only the
-- code's hash is kept.
CREATE TABLE link_codes (
    code_hash  BLOB PRIMARY KEY,
    owner_id   INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX link_codes_by_expiry ON link_codes (expires_at);
