//! API tokens: bearer tokens for tools and services. Admin tokens (`gha_`)
//! work the admin API; service tokens (`ghs_`) call the validation API and
//! introspect OAuth tokens. Shown once at creation, stored as SHA-256 only,
//! expiring, revocable.

use sha2::{Digest, Sha256};

use super::{AdminOps, DomainError, Result};
use crate::store::{ApiTokenRow, Store, StoreError};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiScope {
    Admin,
    Service,
}

impl ApiScope {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiScope::Admin => "admin",
            ApiScope::Service => "service",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            ApiScope::Admin => "gha_",
            ApiScope::Service => "ghs_",
        }
    }
}

/// A token as listed: never its value.
#[derive(Debug, Clone)]
pub struct ApiTokenInfo {
    pub id: i64,
    pub name: String,
    pub scope: String,
    pub created_at: u64,
    pub expires_at: u64,
    pub revoked: bool,
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

impl AdminOps {
    /// Create a token valid for `days`; returns its id and value.
    pub fn create_api_token(
        &self,
        name: &str,
        days: u64,
        scope: ApiScope,
    ) -> Result<(i64, String)> {
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(DomainError::Invalid(
                "a token name is 1 to 64 printable characters".to_owned(),
            ));
        }
        if !(1..=366).contains(&days) {
            return Err(DomainError::Invalid(
                "a token lives 1 to 366 days".to_owned(),
            ));
        }
        let value = format!("{}{}", scope.prefix(), crate::random::token(32));
        let now = self.clock.now();
        let id = self.store.create_api_token(&ApiTokenRow {
            id: 0,
            token_hash: hash(&value),
            name: name.to_owned(),
            scope: scope.as_str().to_owned(),
            created_at: now,
            expires_at: now + days * 86_400,
            revoked_at: None,
        })?;
        self.record(
            "api-token-created",
            name,
            format!("{} token {id}, {days} days", scope.as_str()),
        );
        Ok((id, value))
    }

    pub fn api_tokens(&self) -> Result<Vec<ApiTokenInfo>> {
        Ok(self
            .store
            .api_tokens()?
            .into_iter()
            .map(|row| ApiTokenInfo {
                id: row.id,
                name: row.name,
                scope: row.scope,
                created_at: row.created_at,
                expires_at: row.expires_at,
                revoked: row.revoked_at.is_some(),
            })
            .collect())
    }

    pub fn revoke_api_token(&self, id: i64) -> Result<()> {
        if !self.store.revoke_api_token(id, self.clock.now())? {
            return Err(DomainError::Invalid(format!("no live token with id {id}")));
        }
        self.record("api-token-revoked", &format!("token {id}"), "revoked");
        Ok(())
    }
}

/// The live token of `scope` that `bearer` names, if any.
pub fn authenticate(
    store: &Store,
    bearer: &str,
    scope: ApiScope,
    now: u64,
) -> Result<Option<ApiTokenRow>, StoreError> {
    if !bearer.starts_with(scope.prefix()) || bearer.len() > 128 {
        return Ok(None);
    }
    Ok(store
        .live_api_token(&hash(bearer), now)?
        .filter(|row| row.scope == scope.as_str()))
}
