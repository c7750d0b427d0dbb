-- Schema version 2: admin API tokens (device-tools authenticates with them).
CREATE TABLE api_tokens (
    id              INTEGER PRIMARY KEY,
    token_hash      BLOB NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    scope           TEXT NOT NULL CHECK (scope IN ('admin')),
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    revoked_at      INTEGER
);
