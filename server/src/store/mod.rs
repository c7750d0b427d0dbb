//! The store: the only code that runs SQL.
//!
//! One SQLite database in WAL mode, shared safely by several `gatehouse`
//! processes (the CLI's user commands work while the server runs). Calls are
//! synchronous; async callers run them on blocking threads (see
//! `crate::domain::Accounts`).

mod oauth;
mod rows;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

pub use oauth::{
    AuthorizationRow, ClientRow, Decision, GrantRow, NewAuthorization, NewGrant, NewToken, TokenRow,
};
pub use rows::{
    ApiTokenRow, AuditRow, AuthenticatorRow, NewAuthenticator, NewUser, SessionRow, UserRow,
    UserSummary,
};

const SCHEMA_VERSION: i64 = 3;
/// Each entry brings the schema from the previous version to its own.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("schema.sql")),
    (2, include_str!("migration_2.sql")),
    (3, include_str!("migration_3.sql")),
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("a user named {0:?} already exists")]
    DuplicateUser(String),
    #[error("a client with id {0:?} already exists")]
    DuplicateClient(String),
    #[error(
        "the database has schema version {found}, newer than this gatehouse ({supported}): upgrade gatehouse"
    )]
    TooNew { found: i64, supported: i64 },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub struct Store {
    connection: Mutex<Connection>,
}

impl Store {
    /// Open (creating if needed) the database at `path` and bring its schema
    /// up to date.
    pub fn open(path: &Path) -> Result<Store> {
        let connection = Connection::open(path)?;
        connection.busy_timeout(Duration::from_secs(10))?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "foreign_keys", true)?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        migrate(&connection)?;
        Ok(Store {
            connection: Mutex::new(connection),
        })
    }

    fn connection(&self) -> MutexGuard<'_, Connection> {
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A trivial query: is the database answering?
    pub fn check(&self) -> Result<()> {
        self.connection().query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }

    // ----- users -----

    pub fn create_user(&self, user: &NewUser) -> Result<i64> {
        let connection = self.connection();
        let inserted = connection.execute(
            "INSERT INTO users (name, password_hash, is_admin, force_mfa, must_change_password, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                user.name,
                user.password_hash,
                user.is_admin,
                user.force_mfa,
                user.must_change_password,
                user.created_at
            ],
        );
        match inserted {
            Ok(_) => Ok(connection.last_insert_rowid()),
            Err(rusqlite::Error::SqliteFailure(error, _))
                if error.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::DuplicateUser(user.name.clone()))
            }
            Err(error) => Err(error.into()),
        }
    }

    pub fn count_users(&self) -> Result<u64> {
        Ok(self
            .connection()
            .query_row("SELECT COUNT(*) FROM users", [], |row| row.get::<_, i64>(0))?
            .try_into()
            .unwrap_or(0))
    }

    pub fn user_by_name(&self, name: &str) -> Result<Option<UserRow>> {
        Ok(self
            .connection()
            .query_row(
                &format!("SELECT {} FROM users WHERE name = ?1", UserRow::COLUMNS),
                [name],
                UserRow::from_row,
            )
            .optional()?)
    }

    pub fn user_by_id(&self, id: i64) -> Result<Option<UserRow>> {
        Ok(self
            .connection()
            .query_row(
                &format!("SELECT {} FROM users WHERE id = ?1", UserRow::COLUMNS),
                [id],
                UserRow::from_row,
            )
            .optional()?)
    }

    pub fn list_users(&self) -> Result<Vec<UserSummary>> {
        let connection = self.connection();
        let mut statement = connection.prepare(&format!(
            "SELECT {}, (SELECT COUNT(*) FROM authenticators a WHERE a.user_id = users.id)
             FROM users ORDER BY name COLLATE NOCASE",
            UserRow::COLUMNS
        ))?;
        let rows = statement.query_map([], |row| {
            Ok(UserSummary {
                user: UserRow::from_row(row)?,
                authenticators: row.get(UserRow::COLUMN_COUNT)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn set_force_mfa(&self, user_id: i64, on: bool) -> Result<bool> {
        Ok(self.connection().execute(
            "UPDATE users SET force_mfa = ?2 WHERE id = ?1",
            params![user_id, on],
        )? == 1)
    }

    pub fn set_password(
        &self,
        user_id: i64,
        password_hash: &str,
        must_change: bool,
    ) -> Result<bool> {
        Ok(self.connection().execute(
            "UPDATE users SET password_hash = ?2, must_change_password = ?3 WHERE id = ?1",
            params![user_id, password_hash, must_change],
        )? == 1)
    }

    /// Count one more failed attempt; returns the new count.
    pub fn add_failure(&self, user_id: i64) -> Result<u32> {
        Ok(self.connection().query_row(
            "UPDATE users SET failed_attempts = failed_attempts + 1 WHERE id = ?1
             RETURNING failed_attempts",
            [user_id],
            |row| row.get(0),
        )?)
    }

    pub fn set_locked_until(&self, user_id: i64, until: u64) -> Result<()> {
        self.connection().execute(
            "UPDATE users SET locked_until = MAX(locked_until, ?2) WHERE id = ?1",
            params![user_id, until],
        )?;
        Ok(())
    }

    /// Forget failures and any lock: after a success, or an admin's unlock.
    pub fn clear_failures(&self, user_id: i64) -> Result<bool> {
        Ok(self.connection().execute(
            "UPDATE users SET failed_attempts = 0, locked_until = 0 WHERE id = ?1",
            [user_id],
        )? == 1)
    }

    // ----- authenticators -----

    pub fn authenticators_of(&self, user_id: i64) -> Result<Vec<AuthenticatorRow>> {
        let connection = self.connection();
        let mut statement = connection.prepare(&format!(
            "SELECT {} FROM authenticators WHERE user_id = ?1 ORDER BY id",
            AuthenticatorRow::COLUMNS
        ))?;
        let rows = statement.query_map([user_id], AuthenticatorRow::from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn all_authenticators(&self) -> Result<Vec<AuthenticatorRow>> {
        let connection = self.connection();
        let mut statement = connection.prepare(&format!(
            "SELECT {} FROM authenticators ORDER BY id",
            AuthenticatorRow::COLUMNS
        ))?;
        let rows = statement.query_map([], AuthenticatorRow::from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Register an authenticator; with `replace`, the user's others go in the
    /// same transaction.
    pub fn add_authenticator(&self, new: &NewAuthenticator, replace: bool) -> Result<()> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        if replace {
            transaction.execute(
                "DELETE FROM authenticators WHERE user_id = ?1",
                [new.user_id],
            )?;
        }
        transaction.execute(
            "INSERT INTO authenticators
                (public_id, user_id, kind, sealed_seed, digits, period, last_step, created_at, yubikey_serial)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                new.public_id,
                new.user_id,
                new.kind,
                new.sealed_seed,
                new.digits,
                new.period,
                new.last_step,
                new.created_at,
                new.yubikey_serial
            ],
        )?;
        transaction.commit()?;
        Ok(())
    }

    /// Accept time step `step` for an authenticator, atomically: true only if
    /// it is newer than every step accepted before. Two processes racing with
    /// the same code cannot both win.
    pub fn accept_step(&self, authenticator_id: i64, step: u64) -> Result<bool> {
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        Ok(self.connection().execute(
            "UPDATE authenticators SET last_step = ?2
             WHERE id = ?1 AND (last_step IS NULL OR last_step < ?2)",
            params![authenticator_id, step],
        )? == 1)
    }

    pub fn delete_authenticators(&self, user_id: i64) -> Result<usize> {
        Ok(self
            .connection()
            .execute("DELETE FROM authenticators WHERE user_id = ?1", [user_id])?)
    }

    pub fn replace_sealed_seed(&self, authenticator_id: i64, old: &str, new: &str) -> Result<bool> {
        Ok(self.connection().execute(
            "UPDATE authenticators SET sealed_seed = ?3 WHERE id = ?1 AND sealed_seed = ?2",
            params![authenticator_id, old, new],
        )? == 1)
    }

    // ----- sessions -----

    pub fn create_session(&self, session: &SessionRow) -> Result<()> {
        self.connection().execute(
            "INSERT INTO sessions (id_hash, user_id, stage, mfa, created_at, expires_at, resume)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                session.id_hash,
                session.user_id,
                session.stage,
                session.mfa,
                session.created_at,
                session.expires_at,
                session.resume
            ],
        )?;
        Ok(())
    }

    /// A live session, or `None` (expired sessions are deleted on the way).
    pub fn session(&self, id_hash: &[u8], now: u64) -> Result<Option<SessionRow>> {
        let connection = self.connection();
        connection.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])?;
        Ok(connection
            .query_row(
                "SELECT id_hash, user_id, stage, mfa, created_at, expires_at, resume FROM sessions WHERE id_hash = ?1",
                [id_hash],
                SessionRow::from_row,
            )
            .optional()?)
    }

    /// Where the session goes once signed in (an external client's consent).
    pub fn set_session_resume(&self, id_hash: &[u8], resume: Option<&str>) -> Result<()> {
        self.connection().execute(
            "UPDATE sessions SET resume = ?2 WHERE id_hash = ?1",
            params![id_hash, resume],
        )?;
        Ok(())
    }

    pub fn delete_session(&self, id_hash: &[u8]) -> Result<()> {
        self.connection()
            .execute("DELETE FROM sessions WHERE id_hash = ?1", [id_hash])?;
        Ok(())
    }

    pub fn delete_sessions_of(&self, user_id: i64) -> Result<usize> {
        Ok(self
            .connection()
            .execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])?)
    }

    // ----- API tokens -----

    pub fn create_api_token(&self, token: &ApiTokenRow) -> Result<i64> {
        let connection = self.connection();
        connection.execute(
            "INSERT INTO api_tokens (token_hash, name, scope, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![token.token_hash, token.name, token.scope, token.created_at, token.expires_at],
        )?;
        Ok(connection.last_insert_rowid())
    }

    /// A token that is neither revoked nor expired at `now`.
    pub fn live_api_token(&self, token_hash: &[u8], now: u64) -> Result<Option<ApiTokenRow>> {
        Ok(self
            .connection()
            .query_row(
                "SELECT id, token_hash, name, scope, created_at, expires_at, revoked_at FROM api_tokens
                 WHERE token_hash = ?1 AND revoked_at IS NULL AND expires_at > ?2",
                params![token_hash, now],
                ApiTokenRow::from_row,
            )
            .optional()?)
    }

    pub fn api_tokens(&self) -> Result<Vec<ApiTokenRow>> {
        let connection = self.connection();
        let mut statement = connection.prepare(
            "SELECT id, token_hash, name, scope, created_at, expires_at, revoked_at FROM api_tokens ORDER BY id",
        )?;
        let rows = statement.query_map([], ApiTokenRow::from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn revoke_api_token(&self, id: i64, now: u64) -> Result<bool> {
        Ok(self.connection().execute(
            "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, now],
        )? == 1)
    }

    // ----- audit -----

    pub fn audit(&self, entry: &AuditRow) -> Result<()> {
        self.connection().execute(
            "INSERT INTO audit (at, event, outcome, actor, subject, reason, client)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                entry.at,
                entry.event,
                entry.outcome,
                entry.actor,
                entry.subject,
                entry.reason,
                entry.client
            ],
        )?;
        Ok(())
    }

    pub fn recent_audit(&self, limit: u32) -> Result<Vec<AuditRow>> {
        let connection = self.connection();
        let mut statement = connection.prepare(
            "SELECT at, event, outcome, actor, subject, reason, client FROM audit
             ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = statement.query_map([limit], AuditRow::from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

fn migrate(connection: &Connection) -> Result<()> {
    let version: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version < SCHEMA_VERSION {
        // BEGIN IMMEDIATE: two processes upgrading the database at once must
        // not both run a migration.
        connection.execute_batch("BEGIN IMMEDIATE")?;
        let current: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
        for (target, sql) in MIGRATIONS {
            if current < *target {
                connection.execute_batch(sql)?;
                connection.pragma_update(None, "user_version", target)?;
            }
        }
        connection.execute_batch("COMMIT")?;
    }
    Ok(())
}
