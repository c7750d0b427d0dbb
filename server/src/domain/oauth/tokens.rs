//! The token endpoint's grants, refresh rotation, revocation, introspection,
//! and the bearer tokens' owners.

use std::net::IpAddr;

use super::super::audit::{AuditEvent, Outcome};
use super::super::{DomainError, Gatehouse, Result};
use super::authorize::pkce_matches;
use super::{
    ACCESS_TOKEN_LIFETIME, ErrorCode, GRANT_LIFETIME, OAuthError, POLL_INTERVAL,
    REFRESH_TOKEN_LIFETIME, hash, parse_scope, refuse,
};
use crate::store::{AuthorizationRow, GrantRow, NewGrant, NewToken, TokenRow, UserRow};

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    pub scope: String,
}

/// Who a live access token acts for.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: UserRow,
    pub client_id: String,
    pub scope: String,
    pub mfa: bool,
    pub issued_at: u64,
    pub expires_at: u64,
}

impl Principal {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split_ascii_whitespace().any(|s| s == scope)
    }
}

/// RFC 7662 §2.2: what a resource server learns about a token.
#[derive(Debug)]
pub enum Introspection {
    Inactive,
    Active {
        kind: &'static str,
        user: String,
        client_id: String,
        scope: String,
        mfa: bool,
        issued_at: u64,
        expires_at: u64,
    },
}

fn new_token(prefix: &str, kind: &'static str, now: u64, expires_at: u64) -> (String, NewToken) {
    let value = format!("{prefix}{}", crate::random::token(32));
    let row = NewToken {
        token_hash: hash(&value),
        kind,
        created_at: now,
        expires_at,
    };
    (value, row)
}

/// A fresh access and refresh token pair; neither outlives the grant.
fn token_pair(now: u64, grant_expires: u64) -> (String, String, Vec<NewToken>) {
    let (access, access_row) = new_token(
        "gat_",
        "access",
        now,
        (now + ACCESS_TOKEN_LIFETIME).min(grant_expires),
    );
    let (refresh, refresh_row) = new_token(
        "grt_",
        "refresh",
        now,
        (now + REFRESH_TOKEN_LIFETIME).min(grant_expires),
    );
    (access, refresh, vec![access_row, refresh_row])
}

/// A token value's shape, before any lookup.
fn plausible(token: &str) -> bool {
    token.len() <= 128 && token.is_ascii()
}

impl Gatehouse {
    /// RFC 6749 §4.1.3 with RFC 7636 §4.5: exchange an authorization code.
    /// The code is burnt by the first attempt, right or wrong; a second use
    /// revokes whatever the first yielded (RFC 6749 §4.1.2).
    pub async fn exchange_code(
        &self,
        client_id: &str,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        client: IpAddr,
    ) -> Result<TokenResponse, OAuthError> {
        let invalid = |why: &str| refuse(ErrorCode::InvalidGrant, why.to_owned());
        if !plausible(code) {
            return invalid("the authorization code is not valid");
        }
        let code_hash = hash(code);
        let Some(row) = self
            .db(move |store| store.authorization_by_code(&code_hash))
            .await?
        else {
            return invalid("the authorization code is not valid");
        };
        let id = row.id;
        if !self.db(move |store| store.claim_authorization(id)).await? {
            let now = self.now();
            let revoked = self
                .db(move |store| {
                    store.revoke_grants_of_authorization(id, now, "authorization code reused")
                })
                .await?;
            self.audit_oauth(
                "oauth-code-reuse",
                Outcome::Failure,
                &row,
                format!("authorization code used twice; {revoked} grant(s) revoked"),
                client,
            )
            .await;
            return invalid(
                "the authorization code was already used; the tokens issued for it are revoked",
            );
        }
        let now = self.now();
        let problem = if row.client_id != client_id {
            Some("the authorization code was issued to another client")
        } else if row.code_expires_at.is_none_or(|expires| expires <= now) {
            Some("the authorization code has expired")
        } else if redirect_uri != row.redirect_uri.as_deref() {
            Some("redirect_uri does not match the authorization request")
        } else if !verifier.is_some_and(|verifier| {
            pkce_matches(verifier, row.code_challenge.as_deref().unwrap_or_default())
        }) {
            Some("the PKCE code verifier does not match the code challenge")
        } else {
            None
        };
        if let Some(why) = problem {
            self.audit_oauth(
                "oauth-token",
                Outcome::Failure,
                &row,
                why.to_owned(),
                client,
            )
            .await;
            return invalid(why);
        }
        self.issue(&row, "authorization code", client).await
    }

    /// RFC 8628 §3.4–3.5: a device's poll.
    pub async fn poll_device(
        &self,
        client_id: &str,
        device_code: &str,
        client: IpAddr,
    ) -> Result<TokenResponse, OAuthError> {
        if !plausible(device_code) {
            return refuse(ErrorCode::InvalidGrant, "the device code is not valid");
        }
        let code_hash = hash(device_code);
        let row = self
            .db(move |store| store.authorization_by_device_code(&code_hash))
            .await?
            .filter(|row| row.client_id == client_id);
        let Some(row) = row else {
            return refuse(ErrorCode::InvalidGrant, "the device code is not valid");
        };
        let now = self.now();
        if row.status == "done" {
            return refuse(ErrorCode::InvalidGrant, "the device code was already used");
        }
        if row.expires_at <= now {
            return refuse(
                ErrorCode::ExpiredToken,
                "the device code has expired: start signing in again",
            );
        }
        match row.status.as_str() {
            "denied" => refuse(ErrorCode::AccessDenied, "the person denied the request"),
            "allowed" => {
                let id = row.id;
                if !self.db(move |store| store.claim_authorization(id)).await? {
                    return refuse(ErrorCode::InvalidGrant, "the device code was already used");
                }
                self.issue(&row, "device code", client).await
            }
            _ => {
                let too_soon = row
                    .last_poll_at
                    .is_some_and(|last| now < last + row.poll_interval);
                let interval = if too_soon {
                    row.poll_interval + POLL_INTERVAL
                } else {
                    row.poll_interval
                };
                let id = row.id;
                self.db(move |store| store.record_poll(id, now, interval))
                    .await?;
                if too_soon {
                    refuse(
                        ErrorCode::SlowDown,
                        format!("polling too fast: wait {interval} seconds between requests"),
                    )
                } else {
                    refuse(
                        ErrorCode::AuthorizationPending,
                        "waiting for the person to sign in and allow the request",
                    )
                }
            }
        }
    }

    /// Tokens for a claimed authorization: a new grant.
    async fn issue(
        &self,
        row: &AuthorizationRow,
        how: &str,
        client: IpAddr,
    ) -> Result<TokenResponse, OAuthError> {
        let Some(user_id) = row.user_id else {
            return Err(DomainError::Internal(
                "an allowed authorization without a user".to_owned(),
            )
            .into());
        };
        let now = self.now();
        let scope = row.granted_scope.clone().unwrap_or_default();
        let grant = NewGrant {
            public_id: crate::random::token(16),
            authorization_id: Some(row.id),
            client_id: row.client_id.clone(),
            user_id,
            scope: scope.clone(),
            mfa: row.mfa,
            created_at: now,
            expires_at: now + GRANT_LIFETIME,
        };
        let (access, refresh, tokens) = token_pair(now, grant.expires_at);
        self.db(move |store| store.issue_grant(&grant, &tokens))
            .await?;
        self.audit_oauth(
            "oauth-token",
            Outcome::Success,
            row,
            format!("tokens issued for an {how}, scope {scope}"),
            client,
        )
        .await;
        Ok(TokenResponse {
            access_token: access,
            refresh_token: refresh,
            expires_in: ACCESS_TOKEN_LIFETIME,
            scope,
        })
    }

    async fn audit_oauth(
        &self,
        event: &'static str,
        outcome: Outcome,
        row: &AuthorizationRow,
        reason: String,
        client: IpAddr,
    ) {
        let user = match row.user_id {
            Some(id) => self
                .db(move |store| store.user_by_id(id))
                .await
                .ok()
                .flatten()
                .map(|user| user.name),
            None => None,
        };
        let mut entry = AuditEvent::new(event, outcome)
            .subject(&row.client_id)
            .reason(reason)
            .client(client);
        entry.actor = user;
        self.audit(entry).await;
    }

    async fn token_row(&self, token: &str) -> Result<Option<TokenRow>> {
        if !plausible(token) {
            return Ok(None);
        }
        let token_hash = hash(token);
        self.db(move |store| store.token(&token_hash)).await
    }

    async fn audit_grant(
        &self,
        event: &'static str,
        outcome: Outcome,
        grant: &GrantRow,
        reason: impl Into<String>,
        client: Option<IpAddr>,
    ) {
        let id = grant.user_id;
        let user = self
            .db(move |store| store.user_by_id(id))
            .await
            .ok()
            .flatten();
        let mut entry = AuditEvent::new(event, outcome)
            .subject(&grant.client_id)
            .reason(reason);
        entry.actor = user.map(|user| user.name);
        entry.client = client.map(|client| client.to_string());
        self.audit(entry).await;
    }

    /// RFC 6749 §6: a refresh token is used once and replaced. Presenting a
    /// used one again means it was copied: the whole grant is revoked.
    pub async fn refresh(
        &self,
        client_id: &str,
        refresh_token: &str,
        scope: Option<&str>,
        client: IpAddr,
    ) -> Result<TokenResponse, OAuthError> {
        let invalid = |why: &str| refuse(ErrorCode::InvalidGrant, why.to_owned());
        let Some(row) = self
            .token_row(refresh_token)
            .await?
            .filter(|row| row.kind == "refresh")
        else {
            return invalid("the refresh token is not valid");
        };
        let grant = &row.grant;
        if grant.client_id != client_id {
            return invalid("the refresh token was issued to another client");
        }
        let now = self.now();
        if grant.revoked_at.is_some() {
            return invalid("the refresh token has been revoked: sign in again");
        }
        if row.used_at.is_some() {
            return self.refresh_replayed(grant, client).await;
        }
        if row.expires_at <= now || grant.expires_at <= now {
            return invalid("the refresh token has expired: sign in again");
        }
        let scope = match scope {
            None => grant.scope.clone(),
            Some(requested) => {
                let requested = parse_scope(Some(requested))?;
                if requested
                    .iter()
                    .any(|s| !grant.scope.split_ascii_whitespace().any(|g| g == *s))
                {
                    return refuse(
                        ErrorCode::InvalidScope,
                        "a refresh cannot widen the scope that was granted",
                    );
                }
                requested.join(" ")
            }
        };
        let (access, refresh, tokens) = token_pair(now, grant.expires_at);
        let (token_id, grant_id) = (row.id, grant.id);
        if !self
            .db(move |store| store.rotate_refresh(token_id, grant_id, now, &tokens))
            .await?
        {
            return self.refresh_replayed(grant, client).await;
        }
        self.audit_grant(
            "oauth-refresh",
            Outcome::Success,
            grant,
            "refresh token rotated",
            Some(client),
        )
        .await;
        Ok(TokenResponse {
            access_token: access,
            refresh_token: refresh,
            expires_in: ACCESS_TOKEN_LIFETIME.min(grant.expires_at.saturating_sub(now)),
            scope,
        })
    }

    async fn refresh_replayed(
        &self,
        grant: &GrantRow,
        client: IpAddr,
    ) -> Result<TokenResponse, OAuthError> {
        let (id, now) = (grant.id, self.now());
        self.db(move |store| store.revoke_grant(id, now, "refresh token replayed"))
            .await?;
        self.audit_grant(
            "oauth-refresh-replay",
            Outcome::Failure,
            grant,
            "a used refresh token came back: every token of this sign-in is revoked",
            Some(client),
        )
        .await;
        refuse(
            ErrorCode::InvalidGrant,
            "the refresh token was already used; every token of this sign-in is revoked",
        )
    }

    /// RFC 7009: revoke the grant a token belongs to (its access and refresh
    /// tokens alike). Unknown tokens are not an error.
    pub async fn revoke_token(
        &self,
        client_id: &str,
        token: &str,
        client: IpAddr,
    ) -> Result<(), OAuthError> {
        let Some(row) = self.token_row(token).await? else {
            return Ok(());
        };
        if row.grant.client_id != client_id {
            return refuse(
                ErrorCode::UnauthorizedClient,
                "the token was issued to another client",
            );
        }
        let (id, now) = (row.grant.id, self.now());
        if self
            .db(move |store| store.revoke_grant(id, now, "revoked by the client"))
            .await?
        {
            self.audit_grant(
                "oauth-revoke",
                Outcome::Success,
                &row.grant,
                format!(
                    "revoked by the client (it presented its {} token)",
                    row.kind
                ),
                Some(client),
            )
            .await;
        }
        Ok(())
    }

    /// The live owner of a token, whichever kind.
    async fn live_token(&self, token: &str) -> Result<Option<(TokenRow, UserRow)>> {
        let now = self.now();
        let Some(row) = self.token_row(token).await? else {
            return Ok(None);
        };
        let live = row.grant.revoked_at.is_none()
            && row.expires_at > now
            && row.grant.expires_at > now
            && row.used_at.is_none();
        if !live {
            return Ok(None);
        }
        let user_id = row.grant.user_id;
        Ok(self
            .db(move |store| store.user_by_id(user_id))
            .await?
            .map(|user| (row, user)))
    }

    /// The principal of a bearer access token, if it is live.
    pub async fn principal(&self, bearer: &str) -> Result<Option<Principal>> {
        if !bearer.starts_with("gat_") {
            return Ok(None);
        }
        Ok(self.live_token(bearer).await?.map(|(row, user)| Principal {
            user,
            client_id: row.grant.client_id,
            scope: row.grant.scope,
            mfa: row.grant.mfa,
            issued_at: row.created_at,
            expires_at: row.expires_at,
        }))
    }

    /// RFC 7662 for resource servers.
    pub async fn introspect(&self, token: &str) -> Result<Introspection> {
        Ok(match self.live_token(token).await? {
            None => Introspection::Inactive,
            Some((row, user)) => Introspection::Active {
                kind: if row.kind == "access" {
                    "access_token"
                } else {
                    "refresh_token"
                },
                user: user.name,
                client_id: row.grant.client_id,
                scope: row.grant.scope,
                mfa: row.grant.mfa,
                issued_at: row.created_at,
                expires_at: row.expires_at,
            },
        })
    }

    /// The clients a person is signed in to.
    pub async fn grants_of(&self, user_id: i64) -> Result<Vec<GrantRow>> {
        let now = self.now();
        self.db(move |store| store.live_grants_of(user_id, now))
            .await
    }

    /// A person signs a client out (from the account page).
    pub async fn revoke_own_grant(
        &self,
        user: &UserRow,
        public_id: &str,
        client: IpAddr,
    ) -> Result<()> {
        let id = public_id.to_owned();
        let grant = self
            .db(move |store| store.grant(&id))
            .await?
            .filter(|grant| grant.user_id == user.id && grant.revoked_at.is_none())
            .ok_or_else(|| {
                DomainError::Invalid("that client sign-in has already ended".to_owned())
            })?;
        let (grant_id, now) = (grant.id, self.now());
        self.db(move |store| store.revoke_grant(grant_id, now, "revoked by the user"))
            .await?;
        self.audit_grant(
            "oauth-revoke",
            Outcome::Success,
            &grant,
            "revoked by the user",
            Some(client),
        )
        .await;
        Ok(())
    }
}
