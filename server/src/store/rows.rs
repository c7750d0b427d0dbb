//! Row types: what the tables hold, converted to domain types elsewhere.

use rusqlite::Row;

pub struct NewUser {
    pub name: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub force_mfa: bool,
    pub must_change_password: bool,
    pub created_at: u64,
}

#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: i64,
    pub name: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub force_mfa: bool,
    pub must_change_password: bool,
    pub created_at: u64,
    pub failed_attempts: u32,
    pub locked_until: u64,
}

impl UserRow {
    pub(super) const COLUMNS: &'static str = "id, name, password_hash, is_admin, force_mfa, must_change_password, created_at, failed_attempts, locked_until";
    pub(super) const COLUMN_COUNT: usize = 9;

    pub(super) fn from_row(row: &Row<'_>) -> rusqlite::Result<UserRow> {
        Ok(UserRow {
            id: row.get(0)?,
            name: row.get(1)?,
            password_hash: row.get(2)?,
            is_admin: row.get(3)?,
            force_mfa: row.get(4)?,
            must_change_password: row.get(5)?,
            created_at: row.get(6)?,
            failed_attempts: row.get(7)?,
            locked_until: row.get(8)?,
        })
    }
}

pub struct UserSummary {
    pub user: UserRow,
    pub authenticators: u32,
}

pub struct NewAuthenticator {
    pub public_id: String,
    pub user_id: i64,
    pub kind: &'static str,
    pub sealed_seed: String,
    pub digits: u8,
    pub period: u64,
    pub last_step: Option<i64>,
    pub created_at: u64,
    pub yubikey_serial: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AuthenticatorRow {
    pub id: i64,
    pub public_id: String,
    pub user_id: i64,
    pub kind: String,
    pub sealed_seed: String,
    pub digits: u8,
    pub period: u64,
    pub last_step: Option<i64>,
    pub created_at: u64,
    pub yubikey_serial: Option<String>,
}

impl AuthenticatorRow {
    pub(super) const COLUMNS: &'static str = "id, public_id, user_id, kind, sealed_seed, digits, period, last_step, created_at, yubikey_serial";

    pub(super) fn from_row(row: &Row<'_>) -> rusqlite::Result<AuthenticatorRow> {
        Ok(AuthenticatorRow {
            id: row.get(0)?,
            public_id: row.get(1)?,
            user_id: row.get(2)?,
            kind: row.get(3)?,
            sealed_seed: row.get(4)?,
            digits: row.get(5)?,
            period: row.get(6)?,
            last_step: row.get(7)?,
            created_at: row.get(8)?,
            yubikey_serial: row.get(9)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id_hash: Vec<u8>,
    pub user_id: i64,
    /// `enroll` (password accepted, must register an authenticator) or
    /// `signed_in`.
    pub stage: String,
    /// Whether the sign-in included a verified code.
    pub mfa: bool,
    pub created_at: u64,
    pub expires_at: u64,
    /// Where to go once signed in, if an external client sent the person.
    pub resume: Option<String>,
}

impl SessionRow {
    pub(super) fn from_row(row: &Row<'_>) -> rusqlite::Result<SessionRow> {
        Ok(SessionRow {
            id_hash: row.get(0)?,
            user_id: row.get(1)?,
            stage: row.get(2)?,
            mfa: row.get(3)?,
            created_at: row.get(4)?,
            expires_at: row.get(5)?,
            resume: row.get(6)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct AuditRow {
    pub at: u64,
    pub event: String,
    pub outcome: String,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub reason: Option<String>,
    pub client: Option<String>,
}

impl AuditRow {
    pub(super) fn from_row(row: &Row<'_>) -> rusqlite::Result<AuditRow> {
        Ok(AuditRow {
            at: row.get(0)?,
            event: row.get(1)?,
            outcome: row.get(2)?,
            actor: row.get(3)?,
            subject: row.get(4)?,
            reason: row.get(5)?,
            client: row.get(6)?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct ApiTokenRow {
    pub id: i64,
    /// SHA-256 of the token; the token itself is shown once and not kept.
    pub token_hash: Vec<u8>,
    pub name: String,
    pub scope: String,
    pub created_at: u64,
    pub expires_at: u64,
    pub revoked_at: Option<u64>,
}

impl ApiTokenRow {
    pub(super) fn from_row(row: &Row<'_>) -> rusqlite::Result<ApiTokenRow> {
        Ok(ApiTokenRow {
            id: row.get(0)?,
            token_hash: row.get(1)?,
            name: row.get(2)?,
            scope: row.get(3)?,
            created_at: row.get(4)?,
            expires_at: row.get(5)?,
            revoked_at: row.get(6)?,
        })
    }
}
