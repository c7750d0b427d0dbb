//! External clients (OAuth 2.0): registered clients, authorization requests,
//! grants and their tokens. Only hashes of codes and tokens are stored.

use rusqlite::{OptionalExtension, Row, params};

use super::{Result, Store, StoreError};

#[derive(Debug, Clone)]
pub struct ClientRow {
    pub client_id: String,
    pub name: String,
    pub loopback: bool,
    pub redirect_uris: Vec<String>,
    pub created_at: u64,
    pub created_by: Option<String>,
}

impl ClientRow {
    const COLUMNS: &'static str =
        "client_id, name, loopback, redirect_uris, created_at, created_by";

    fn from_row(row: &Row<'_>) -> rusqlite::Result<ClientRow> {
        let uris: String = row.get(3)?;
        Ok(ClientRow {
            client_id: row.get(0)?,
            name: row.get(1)?,
            loopback: row.get(2)?,
            redirect_uris: uris.lines().map(str::to_owned).collect(),
            created_at: row.get(4)?,
            created_by: row.get(5)?,
        })
    }
}

/// A new authorization request (either flow).
pub struct NewAuthorization {
    pub public_id: String,
    pub flow: &'static str,
    pub client_id: String,
    pub scope: String,
    pub redirect_uri: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub device_code_hash: Option<Vec<u8>>,
    pub user_code: Option<String>,
    pub poll_interval: u64,
    pub created_at: u64,
    pub expires_at: u64,
}

#[derive(Debug, Clone)]
pub struct AuthorizationRow {
    pub id: i64,
    pub public_id: String,
    pub flow: String,
    pub client_id: String,
    pub scope: String,
    pub redirect_uri: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub user_code: Option<String>,
    pub poll_interval: u64,
    pub last_poll_at: Option<u64>,
    /// `pending`, `allowed`, `denied` or `done` (tokens issued, or the code burnt).
    pub status: String,
    pub user_id: Option<i64>,
    pub granted_scope: Option<String>,
    pub mfa: bool,
    pub code_expires_at: Option<u64>,
    pub created_at: u64,
    pub expires_at: u64,
}

impl AuthorizationRow {
    const COLUMNS: &'static str = "id, public_id, flow, client_id, scope, redirect_uri, state, \
        code_challenge, user_code, poll_interval, last_poll_at, status, user_id, granted_scope, \
        mfa, code_expires_at, created_at, expires_at";

    fn from_row(row: &Row<'_>) -> rusqlite::Result<AuthorizationRow> {
        Ok(AuthorizationRow {
            id: row.get(0)?,
            public_id: row.get(1)?,
            flow: row.get(2)?,
            client_id: row.get(3)?,
            scope: row.get(4)?,
            redirect_uri: row.get(5)?,
            state: row.get(6)?,
            code_challenge: row.get(7)?,
            user_code: row.get(8)?,
            poll_interval: row.get(9)?,
            last_poll_at: row.get(10)?,
            status: row.get(11)?,
            user_id: row.get(12)?,
            granted_scope: row.get(13)?,
            mfa: row.get(14)?,
            code_expires_at: row.get(15)?,
            created_at: row.get(16)?,
            expires_at: row.get(17)?,
        })
    }
}

/// A person's decision on a pending authorization.
pub struct Decision {
    pub user_id: i64,
    pub allowed: bool,
    pub granted_scope: String,
    pub mfa: bool,
    /// The authorization code's hash and expiry (code flow, when allowed).
    pub code: Option<(Vec<u8>, u64)>,
}

pub struct NewGrant {
    pub public_id: String,
    pub authorization_id: Option<i64>,
    pub client_id: String,
    pub user_id: i64,
    pub scope: String,
    pub mfa: bool,
    pub created_at: u64,
    pub expires_at: u64,
}

#[derive(Debug, Clone)]
pub struct GrantRow {
    pub id: i64,
    pub public_id: String,
    pub client_id: String,
    pub user_id: i64,
    pub scope: String,
    pub mfa: bool,
    pub created_at: u64,
    pub expires_at: u64,
    pub last_used_at: u64,
    pub revoked_at: Option<u64>,
}

impl GrantRow {
    const COLUMNS: &'static str = "g.id, g.public_id, g.client_id, g.user_id, g.scope, g.mfa, \
        g.created_at, g.expires_at, g.last_used_at, g.revoked_at";
    const COLUMN_COUNT: usize = 10;

    fn from_row(row: &Row<'_>) -> rusqlite::Result<GrantRow> {
        Ok(GrantRow {
            id: row.get(0)?,
            public_id: row.get(1)?,
            client_id: row.get(2)?,
            user_id: row.get(3)?,
            scope: row.get(4)?,
            mfa: row.get(5)?,
            created_at: row.get(6)?,
            expires_at: row.get(7)?,
            last_used_at: row.get(8)?,
            revoked_at: row.get(9)?,
        })
    }
}

/// A token to store: its hash, kind (`access` or `refresh`) and expiry.
pub struct NewToken {
    pub token_hash: Vec<u8>,
    pub kind: &'static str,
    pub created_at: u64,
    pub expires_at: u64,
}

#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: i64,
    pub kind: String,
    pub created_at: u64,
    pub expires_at: u64,
    pub used_at: Option<u64>,
    pub grant: GrantRow,
}

/// Authorization requests are kept a day past their expiry, so that a late
/// reuse of their code is still recognised (and revokes what it yielded).
const AUTHORIZATION_RETENTION: u64 = 86_400;

impl Store {
    // ----- clients -----

    pub fn create_client(&self, client: &ClientRow) -> Result<()> {
        let inserted = self.connection().execute(
            "INSERT INTO oauth_clients (client_id, name, loopback, redirect_uris, created_at, created_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                client.client_id,
                client.name,
                client.loopback,
                client.redirect_uris.join("\n"),
                client.created_at,
                client.created_by
            ],
        );
        match inserted {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(error, _))
                if error.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::DuplicateClient(client.client_id.clone()))
            }
            Err(error) => Err(error.into()),
        }
    }

    pub fn client(&self, client_id: &str) -> Result<Option<ClientRow>> {
        Ok(self
            .connection()
            .query_row(
                &format!(
                    "SELECT {} FROM oauth_clients WHERE client_id = ?1",
                    ClientRow::COLUMNS
                ),
                [client_id],
                ClientRow::from_row,
            )
            .optional()?)
    }

    pub fn clients(&self) -> Result<Vec<ClientRow>> {
        let connection = self.connection();
        let mut statement = connection.prepare(&format!(
            "SELECT {} FROM oauth_clients ORDER BY client_id",
            ClientRow::COLUMNS
        ))?;
        let rows = statement.query_map([], ClientRow::from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Remove a client; its grants are revoked and its open requests dropped,
    /// in one transaction. False if there was no such client.
    pub fn delete_client(&self, client_id: &str, now: u64) -> Result<bool> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        let deleted = transaction.execute(
            "DELETE FROM oauth_clients WHERE client_id = ?1",
            [client_id],
        )?;
        transaction.execute(
            "UPDATE oauth_grants SET revoked_at = ?2, revoked_reason = 'client removed'
             WHERE client_id = ?1 AND revoked_at IS NULL",
            params![client_id, now],
        )?;
        transaction.execute(
            "DELETE FROM oauth_authorizations WHERE client_id = ?1",
            [client_id],
        )?;
        transaction.commit()?;
        Ok(deleted == 1)
    }

    // ----- authorization requests -----

    /// Store a new request; false (and nothing stored) when one of its
    /// unique values, in practice a device flow's user code, is taken.
    pub fn create_authorization(&self, new: &NewAuthorization) -> Result<bool> {
        let connection = self.connection();
        connection.execute(
            "DELETE FROM oauth_authorizations WHERE expires_at < ?1",
            [new.created_at.saturating_sub(AUTHORIZATION_RETENTION)],
        )?;
        let inserted = connection.execute(
            "INSERT INTO oauth_authorizations (public_id, flow, client_id, scope, redirect_uri, state,
                code_challenge, device_code_hash, user_code, poll_interval, status, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'pending', ?11, ?12)",
            params![
                new.public_id,
                new.flow,
                new.client_id,
                new.scope,
                new.redirect_uri,
                new.state,
                new.code_challenge,
                new.device_code_hash,
                new.user_code,
                new.poll_interval,
                new.created_at,
                new.expires_at
            ],
        );
        match inserted {
            Ok(_) => Ok(true),
            Err(rusqlite::Error::SqliteFailure(error, _))
                if error.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Ok(false)
            }
            Err(error) => Err(error.into()),
        }
    }

    fn authorization_where(
        &self,
        condition: &str,
        value: &dyn rusqlite::ToSql,
    ) -> Result<Option<AuthorizationRow>> {
        Ok(self
            .connection()
            .query_row(
                &format!(
                    "SELECT {} FROM oauth_authorizations WHERE {condition}",
                    AuthorizationRow::COLUMNS
                ),
                [value],
                AuthorizationRow::from_row,
            )
            .optional()?)
    }

    pub fn authorization(&self, public_id: &str) -> Result<Option<AuthorizationRow>> {
        self.authorization_where("public_id = ?1", &public_id)
    }

    pub fn authorization_by_user_code(&self, user_code: &str) -> Result<Option<AuthorizationRow>> {
        self.authorization_where("user_code = ?1", &user_code)
    }

    pub fn authorization_by_device_code(&self, hash: &[u8]) -> Result<Option<AuthorizationRow>> {
        self.authorization_where("device_code_hash = ?1", &hash)
    }

    pub fn authorization_by_code(&self, hash: &[u8]) -> Result<Option<AuthorizationRow>> {
        self.authorization_where("code_hash = ?1", &hash)
    }

    /// Record a person's decision, once: false if the request was no longer
    /// pending or had expired.
    pub fn decide_authorization(&self, id: i64, decision: &Decision, now: u64) -> Result<bool> {
        let (code_hash, code_expires_at) = match &decision.code {
            Some((hash, expires)) => (Some(hash.as_slice()), Some(*expires)),
            None => (None, None),
        };
        Ok(self.connection().execute(
            "UPDATE oauth_authorizations
             SET status = ?2, user_id = ?3, granted_scope = ?4, mfa = ?5, code_hash = ?6, code_expires_at = ?7
             WHERE id = ?1 AND status = 'pending' AND expires_at > ?8",
            params![
                id,
                if decision.allowed { "allowed" } else { "denied" },
                decision.user_id,
                decision.granted_scope,
                decision.mfa,
                code_hash,
                code_expires_at,
                now
            ],
        )? == 1)
    }

    /// A device poll at `now`; `interval` is the (possibly raised) interval.
    pub fn record_poll(&self, id: i64, now: u64, interval: u64) -> Result<()> {
        self.connection().execute(
            "UPDATE oauth_authorizations SET last_poll_at = ?2, poll_interval = ?3 WHERE id = ?1",
            params![id, now, interval],
        )?;
        Ok(())
    }

    /// Take an allowed authorization for token issue, exactly once: true for
    /// the one caller that moved it from `allowed` to `done`.
    pub fn claim_authorization(&self, id: i64) -> Result<bool> {
        Ok(self.connection().execute(
            "UPDATE oauth_authorizations SET status = 'done' WHERE id = ?1 AND status = 'allowed'",
            [id],
        )? == 1)
    }

    // ----- grants and tokens -----

    /// A grant with its first access and refresh tokens, in one transaction.
    pub fn issue_grant(&self, grant: &NewGrant, tokens: &[NewToken]) -> Result<i64> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        transaction.execute(
            "INSERT INTO oauth_grants (public_id, authorization_id, client_id, user_id, scope, mfa,
                created_at, expires_at, last_used_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?7)",
            params![
                grant.public_id,
                grant.authorization_id,
                grant.client_id,
                grant.user_id,
                grant.scope,
                grant.mfa,
                grant.created_at,
                grant.expires_at
            ],
        )?;
        let grant_id = transaction.last_insert_rowid();
        insert_tokens(&transaction, grant_id, tokens)?;
        transaction.commit()?;
        Ok(grant_id)
    }

    pub fn token(&self, token_hash: &[u8]) -> Result<Option<TokenRow>> {
        Ok(self
            .connection()
            .query_row(
                &format!(
                    "SELECT {}, t.id, t.kind, t.created_at, t.expires_at, t.used_at
                     FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id
                     WHERE t.token_hash = ?1",
                    GrantRow::COLUMNS
                ),
                [token_hash],
                |row| {
                    let n = GrantRow::COLUMN_COUNT;
                    Ok(TokenRow {
                        grant: GrantRow::from_row(row)?,
                        id: row.get(n)?,
                        kind: row.get(n + 1)?,
                        created_at: row.get(n + 2)?,
                        expires_at: row.get(n + 3)?,
                        used_at: row.get(n + 4)?,
                    })
                },
            )
            .optional()?)
    }

    /// Use refresh token `token_id` once and store its successors, in one
    /// transaction: false (and nothing stored) if it was already used.
    pub fn rotate_refresh(
        &self,
        token_id: i64,
        grant_id: i64,
        now: u64,
        tokens: &[NewToken],
    ) -> Result<bool> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        let used = transaction.execute(
            "UPDATE oauth_tokens SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL",
            params![token_id, now],
        )?;
        if used != 1 {
            return Ok(false);
        }
        // Expired access tokens of this grant are of no further use.
        transaction.execute(
            "DELETE FROM oauth_tokens WHERE grant_id = ?1 AND kind = 'access' AND expires_at <= ?2",
            params![grant_id, now],
        )?;
        transaction.execute(
            "UPDATE oauth_grants SET last_used_at = ?2 WHERE id = ?1",
            params![grant_id, now],
        )?;
        insert_tokens(&transaction, grant_id, tokens)?;
        transaction.commit()?;
        Ok(true)
    }

    pub fn revoke_grant(&self, grant_id: i64, now: u64, reason: &str) -> Result<bool> {
        Ok(self.connection().execute(
            "UPDATE oauth_grants SET revoked_at = ?2, revoked_reason = ?3
             WHERE id = ?1 AND revoked_at IS NULL",
            params![grant_id, now, reason],
        )? == 1)
    }

    /// Revoke every live grant of a user; returns how many.
    pub fn revoke_grants_of_user(&self, user_id: i64, now: u64, reason: &str) -> Result<usize> {
        Ok(self.connection().execute(
            "UPDATE oauth_grants SET revoked_at = ?2, revoked_reason = ?3
             WHERE user_id = ?1 AND revoked_at IS NULL",
            params![user_id, now, reason],
        )?)
    }

    /// Revoke what an authorization yielded (its code was reused).
    pub fn revoke_grants_of_authorization(
        &self,
        authorization_id: i64,
        now: u64,
        reason: &str,
    ) -> Result<usize> {
        Ok(self.connection().execute(
            "UPDATE oauth_grants SET revoked_at = ?2, revoked_reason = ?3
             WHERE authorization_id = ?1 AND revoked_at IS NULL",
            params![authorization_id, now, reason],
        )?)
    }

    pub fn grant(&self, public_id: &str) -> Result<Option<GrantRow>> {
        Ok(self
            .connection()
            .query_row(
                &format!(
                    "SELECT {} FROM oauth_grants g WHERE g.public_id = ?1",
                    GrantRow::COLUMNS
                ),
                [public_id],
                GrantRow::from_row,
            )
            .optional()?)
    }

    /// How many live grants each user has.
    pub fn live_grant_counts(&self, now: u64) -> Result<Vec<(i64, u32)>> {
        let connection = self.connection();
        let mut statement = connection.prepare(
            "SELECT user_id, COUNT(*) FROM oauth_grants
             WHERE revoked_at IS NULL AND expires_at > ?1 GROUP BY user_id",
        )?;
        let rows = statement.query_map([now], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A user's grants that are neither revoked nor expired.
    pub fn live_grants_of(&self, user_id: i64, now: u64) -> Result<Vec<GrantRow>> {
        let connection = self.connection();
        let mut statement = connection.prepare(&format!(
            "SELECT {} FROM oauth_grants g
             WHERE g.user_id = ?1 AND g.revoked_at IS NULL AND g.expires_at > ?2
             ORDER BY g.created_at DESC, g.id DESC",
            GrantRow::COLUMNS
        ))?;
        let rows = statement.query_map(params![user_id, now], GrantRow::from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

fn insert_tokens(
    transaction: &rusqlite::Transaction<'_>,
    grant_id: i64,
    tokens: &[NewToken],
) -> Result<()> {
    for token in tokens {
        transaction.execute(
            "INSERT INTO oauth_tokens (token_hash, grant_id, kind, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                token.token_hash,
                grant_id,
                token.kind,
                token.created_at,
                token.expires_at
            ],
        )?;
    }
    Ok(())
}
