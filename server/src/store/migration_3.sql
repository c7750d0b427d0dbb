-- Schema version 3: external clients (OAuth 2.0) and service tokens.

-- Service tokens (for the validation API and token introspection) join
-- admin tokens: SQLite cannot widen a CHECK in place, so the table is rebuilt.
CREATE TABLE api_tokens_v3 (
    id              INTEGER PRIMARY KEY,
    token_hash      BLOB NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    scope           TEXT NOT NULL CHECK (scope IN ('admin', 'service')),
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    revoked_at      INTEGER
);
INSERT INTO api_tokens_v3 SELECT id, token_hash, name, scope, created_at, expires_at, revoked_at FROM api_tokens;
DROP TABLE api_tokens;
ALTER TABLE api_tokens_v3 RENAME TO api_tokens;

-- Where a session goes once sign-in (and any registration) is complete:
-- the consent page of the external client that sent the person here.
ALTER TABLE sessions ADD COLUMN resume TEXT;

-- Registered external clients. Public clients only: they prove possession
-- with PKCE, not with a secret.
CREATE TABLE oauth_clients (
    id              INTEGER PRIMARY KEY,
    client_id       TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    -- Any http://127.0.0.1:{port}/... or http://[::1]:{port}/... redirect (RFC 8252).
    loopback        INTEGER NOT NULL,
    -- Further redirect URIs, matched exactly, one per line.
    redirect_uris   TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    created_by      TEXT
);

-- One authorization request, from its start to the tokens it yields.
CREATE TABLE oauth_authorizations (
    id              INTEGER PRIMARY KEY,
    public_id       TEXT NOT NULL UNIQUE,
    flow            TEXT NOT NULL CHECK (flow IN ('code', 'device')),
    client_id       TEXT NOT NULL,
    scope           TEXT NOT NULL,
    redirect_uri    TEXT,
    state           TEXT,
    code_challenge  TEXT,
    device_code_hash BLOB UNIQUE,
    user_code       TEXT UNIQUE,
    poll_interval   INTEGER NOT NULL DEFAULT 5,
    last_poll_at    INTEGER,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'allowed', 'denied', 'done')),
    user_id         INTEGER REFERENCES users(id) ON DELETE CASCADE,
    granted_scope   TEXT,
    mfa             INTEGER NOT NULL DEFAULT 0,
    code_hash       BLOB UNIQUE,
    code_expires_at INTEGER,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
);

-- What a person allowed a client: the family of tokens issued under it.
CREATE TABLE oauth_grants (
    id              INTEGER PRIMARY KEY,
    public_id       TEXT NOT NULL UNIQUE,
    authorization_id INTEGER UNIQUE,
    client_id       TEXT NOT NULL,
    user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    scope           TEXT NOT NULL,
    mfa             INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    last_used_at    INTEGER NOT NULL,
    revoked_at      INTEGER,
    revoked_reason  TEXT
);
CREATE INDEX oauth_grants_by_user ON oauth_grants(user_id);

-- Access and refresh tokens: only their SHA-256 is stored.
CREATE TABLE oauth_tokens (
    id              INTEGER PRIMARY KEY,
    token_hash      BLOB NOT NULL UNIQUE,
    grant_id        INTEGER NOT NULL REFERENCES oauth_grants(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    -- A refresh token is used once: rotation sets this.
    used_at         INTEGER
);
CREATE INDEX oauth_tokens_by_grant ON oauth_tokens(grant_id);

-- device-tools signs in as this client out of the box (`device-tools login`);
-- an administrator may remove it like any other.
INSERT INTO oauth_clients (client_id, name, loopback, redirect_uris, created_at, created_by)
VALUES ('device-tools', 'Gatehouse device-tools', 1, '', CAST(strftime('%s', 'now') AS INTEGER), 'gatehouse');
