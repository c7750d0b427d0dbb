-- Gatehouse database, schema version 1.
CREATE TABLE users (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash   TEXT NOT NULL,
    is_admin        INTEGER NOT NULL DEFAULT 0,
    force_mfa       INTEGER NOT NULL DEFAULT 0,
    must_change_password INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    locked_until    INTEGER NOT NULL DEFAULT 0
);

-- A registered authenticator: the seed only ever sealed by the vault.
CREATE TABLE authenticators (
    id              INTEGER PRIMARY KEY,
    public_id       TEXT NOT NULL UNIQUE,
    user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('app', 'yubikey')),
    sealed_seed     TEXT NOT NULL,
    digits          INTEGER NOT NULL,
    period          INTEGER NOT NULL,
    -- Highest time step accepted so far: a code of this step or older is a replay.
    last_step       INTEGER,
    created_at      INTEGER NOT NULL,
    yubikey_serial  TEXT
);
CREATE INDEX authenticators_by_user ON authenticators(user_id);

-- Server-side sessions. Only a hash of the session id is stored.
CREATE TABLE sessions (
    id_hash         BLOB PRIMARY KEY,
    user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    stage           TEXT NOT NULL CHECK (stage IN ('enroll', 'signed_in')),
    mfa             INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
);
CREATE INDEX sessions_by_user ON sessions(user_id);

CREATE TABLE audit (
    id              INTEGER PRIMARY KEY,
    at              INTEGER NOT NULL,
    event           TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    actor           TEXT,
    subject         TEXT,
    reason          TEXT,
    client          TEXT
);
