//! External clients (OAuth 2.0 for native apps): the authorization code flow
//! with PKCE and loopback redirects (RFC 6749, 7636, 8252), the device
//! authorization grant (RFC 8628), rotating refresh tokens, revocation
//! (RFC 7009) and introspection (RFC 7662).
//!
//! Codes and tokens are random, shown once, and stored only as SHA-256.
//! Every request, decision, issue, refresh and revocation is audited.

mod authorize;
mod clients;
mod tokens;

use sha2::{Digest, Sha256};

pub use authorize::{
    AuthorizationRequest, AuthorizeProblem, Consent, DecisionOutcome, DeviceStart,
};
pub use clients::{NewClient, check_redirect_uri};
pub use tokens::{Introspection, Principal, TokenResponse};

use super::DomainError;
use crate::store::StoreError;

/// How long a pending authorization request (either flow) stays open.
pub const REQUEST_LIFETIME: u64 = 600;
/// How long an authorization code may wait for its exchange.
pub const CODE_LIFETIME: u64 = 120;
/// The device flow's polling interval, and its increase on `slow_down`.
pub const POLL_INTERVAL: u64 = 5;
pub const ACCESS_TOKEN_LIFETIME: u64 = 900;
pub const REFRESH_TOKEN_LIFETIME: u64 = 30 * 86_400;
/// No refresh extends a grant beyond this: then the person signs in again.
pub const GRANT_LIFETIME: u64 = 90 * 86_400;

/// Scopes a client may ask for.
pub const SCOPES: &[(&str, &str)] = &[
    ("user", "know who you are"),
    ("admin", "use the admin API as you (administrators only)"),
];

/// The error codes of RFC 6749 §5.2, RFC 8628 §3.5 and RFC 7009 §2.2.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope,
    AuthorizationPending,
    SlowDown,
    AccessDenied,
    ExpiredToken,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AuthorizationPending => "authorization_pending",
            ErrorCode::SlowDown => "slow_down",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::ExpiredToken => "expired_token",
        }
    }
}

/// A refusal in the protocol's terms, or a failure inside.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("{code}: {description}", code = .0.as_str(), description = .1)]
    Refused(ErrorCode, String),
    #[error(transparent)]
    Domain(#[from] DomainError),
}

impl From<StoreError> for OAuthError {
    fn from(error: StoreError) -> Self {
        OAuthError::Domain(error.into())
    }
}

pub(crate) fn refuse<T>(code: ErrorCode, description: impl Into<String>) -> Result<T, OAuthError> {
    Err(OAuthError::Refused(code, description.into()))
}

pub(crate) fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// The scopes in `requested` (space-separated), checked against `SCOPES`;
/// none asked for means `user`. Returned in `SCOPES` order, without repeats.
pub fn parse_scope(requested: Option<&str>) -> Result<Vec<&'static str>, OAuthError> {
    let requested = requested.unwrap_or("").trim();
    if requested.len() > 256 {
        return refuse(ErrorCode::InvalidScope, "the scope is too long");
    }
    let mut scopes = Vec::new();
    for word in requested.split_ascii_whitespace() {
        match SCOPES.iter().find(|(name, _)| *name == word) {
            Some((name, _)) => scopes.push(*name),
            None => {
                return refuse(
                    ErrorCode::InvalidScope,
                    format!("unknown scope {word:?}: this server knows \"user\" and \"admin\""),
                );
            }
        }
    }
    if scopes.is_empty() {
        scopes.push("user");
    }
    scopes.sort_unstable_by_key(|scope| SCOPES.iter().position(|(name, _)| name == scope));
    scopes.dedup();
    Ok(scopes)
}

/// The consonants RFC 8628 §6.1 suggests for user codes: no vowels (no
/// words), nothing that looks like a digit.
const CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

/// Eight letters from `CODE_ALPHABET`, taken from `bytes`' big-endian value.
fn letters(bytes: [u8; 8]) -> String {
    let mut value = u64::from_be_bytes(bytes);
    let base = CODE_ALPHABET.len() as u64;
    (0..8)
        .map(|_| {
            let letter = CODE_ALPHABET[(value % base) as usize];
            value /= base;
            char::from(letter)
        })
        .collect()
}

/// `ABCDEFGH` → `ABCD-EFGH`.
pub fn format_code(code: &str) -> String {
    if code.len() == 8 && code.is_ascii() {
        format!("{}-{}", &code[..4], &code[4..])
    } else {
        code.to_owned()
    }
}

/// A fresh user code for the device flow (about 34 bits; guessing is
/// limited per address and a code lives ten minutes).
fn new_user_code() -> String {
    letters(crate::random::bytes::<8>())
}

/// What a person typed as a user code, normalised: letters only, upper case.
pub fn normalise_user_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == 8 && code.bytes().all(|b| CODE_ALPHABET.contains(&b))).then_some(code)
}

/// The short code the consent page shows for a loopback-flow request, so the
/// person can check it against what their tool printed. Both sides derive it
/// from the PKCE challenge: `ABCD-EFGH` from SHA-256 of
/// `"gatehouse consent code\n" || code_challenge`.
pub fn consent_code(code_challenge: &str) -> String {
    let digest = Sha256::digest(format!("gatehouse consent code\n{code_challenge}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    format_code(&letters(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_default_to_user_and_refuse_unknown_ones() {
        assert_eq!(parse_scope(None).unwrap(), vec!["user"]);
        assert_eq!(
            parse_scope(Some("admin user admin")).unwrap(),
            vec!["user", "admin"]
        );
        assert!(matches!(
            parse_scope(Some("user root")),
            Err(OAuthError::Refused(ErrorCode::InvalidScope, _))
        ));
    }

    #[test]
    fn user_codes_normalise() {
        assert_eq!(
            normalise_user_code("bcdf-ghjk").as_deref(),
            Some("BCDFGHJK")
        );
        assert_eq!(
            normalise_user_code(" BCDF GHJK ").as_deref(),
            Some("BCDFGHJK")
        );
        assert_eq!(
            normalise_user_code("ABCD-EFGH"),
            None,
            "vowels are not in the alphabet"
        );
        assert_eq!(normalise_user_code("BCDF-GHJ"), None);
        let code = new_user_code();
        assert_eq!(normalise_user_code(&format_code(&code)), Some(code));
    }

    #[test]
    fn consent_codes_are_stable_and_readable() {
        let code = consent_code("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert_eq!(code.len(), 9);
        assert_eq!(
            code,
            consent_code("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        );
        assert_ne!(code, consent_code("another challenge"));
    }
}
