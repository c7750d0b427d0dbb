//! Starting an authorization (either flow) and the person's decision on it.

use std::net::IpAddr;

use subtle::ConstantTimeEq;
use url::Url;

use super::super::audit::{AuditEvent, Outcome};
use super::super::{DomainError, Gatehouse, Result};
use super::{
    CODE_LIFETIME, ErrorCode, OAuthError, POLL_INTERVAL, REQUEST_LIFETIME, SCOPES,
    check_redirect_uri, consent_code, format_code, hash, new_user_code, normalise_user_code,
    parse_scope, refuse,
};
use crate::store::{AuthorizationRow, ClientRow, Decision, NewAuthorization, UserRow};

/// The query of an authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3).
#[derive(Debug, Default, Clone)]
pub struct AuthorizationRequest {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
}

/// Why an authorization request was not started.
#[derive(Debug)]
pub enum AuthorizeProblem {
    /// The client or its redirect address cannot be trusted: tell the
    /// person why, and do not redirect (RFC 6749 §4.1.2.1).
    NoRedirect(String),
    /// Tell the client, at its (checked) redirect address.
    Redirect(String),
    Failed(DomainError),
}

impl From<DomainError> for AuthorizeProblem {
    fn from(error: DomainError) -> Self {
        AuthorizeProblem::Failed(error)
    }
}

/// What `device_authorization` hands to the tool.
#[derive(Debug)]
pub struct DeviceStart {
    pub device_code: String,
    /// As the person types it: `BCDF-GHJK`.
    pub user_code: String,
    pub expires_in: u64,
    pub interval: u64,
}

/// What the consent page shows.
#[derive(Debug)]
pub struct Consent {
    pub public_id: String,
    pub device: bool,
    pub client_id: String,
    pub client_name: String,
    /// The scopes this person would grant, with what they allow.
    pub scopes: Vec<(&'static str, &'static str)>,
    /// Requested scopes this person cannot grant (`admin` for non-admins).
    pub withheld: Vec<&'static str>,
    /// The code the tool printed: the user code, or the PKCE-derived code.
    pub confirmation: String,
    /// Where the browser goes after the decision (code flow), for the
    /// page's form-action policy.
    pub redirect_origin: Option<String>,
    pub expires_at: u64,
}

/// Where the browser goes after the decision.
#[derive(Debug)]
pub enum DecisionOutcome {
    /// Back to the tool's loopback (or registered) address.
    Redirect(String),
    /// The device flow: the tool will pick up its answer; show "You can close
    /// this window".
    Done { allowed: bool, client_name: String },
}

/// `redirect_uri` with `parameters` added to its query.
fn redirect_with(redirect_uri: &str, parameters: &[(&str, &str)]) -> Result<String> {
    let mut url = Url::parse(redirect_uri)
        .map_err(|error| DomainError::Internal(format!("checked redirect URI: {error}")))?;
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in parameters {
            query.append_pair(name, value);
        }
    }
    Ok(url.into())
}

/// A PKCE code challenge (RFC 7636 §4.2): S256 output is 43 base64url
/// characters.
fn valid_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The requested scopes split into what `user` may grant and what not.
fn grantable(
    scope: &str,
    user: &UserRow,
) -> (Vec<(&'static str, &'static str)>, Vec<&'static str>) {
    let mut granted = Vec::new();
    let mut withheld = Vec::new();
    for word in scope.split_ascii_whitespace() {
        if let Some(&(name, meaning)) = SCOPES.iter().find(|(name, _)| *name == word) {
            if name == "admin" && !user.is_admin {
                withheld.push(name);
            } else {
                granted.push((name, meaning));
            }
        }
    }
    (granted, withheld)
}

impl Gatehouse {
    async fn client_row(&self, client_id: &str) -> Result<Option<ClientRow>> {
        let id = client_id.to_owned();
        self.db(move |store| store.client(&id)).await
    }

    /// Check an authorization request and open it; returns its public id,
    /// which the sign-in and consent pages carry.
    pub async fn start_authorization(
        &self,
        request: AuthorizationRequest,
    ) -> Result<String, AuthorizeProblem> {
        let no_redirect = |why: String| Err(AuthorizeProblem::NoRedirect(why));
        let Some(client_id) = request.client_id.as_deref().filter(|id| id.len() <= 64) else {
            return no_redirect("The request names no client (client_id is missing).".to_owned());
        };
        let Some(client) = self.client_row(client_id).await? else {
            return no_redirect(format!(
                "No client with the id {client_id:?} is registered here. An administrator registers clients with \"gatehouse client add\"."
            ));
        };
        let Some(redirect_uri) = request.redirect_uri.clone() else {
            return no_redirect(
                "The request has no redirect address (redirect_uri is missing).".to_owned(),
            );
        };
        if let Err(why) = check_redirect_uri(&client, &redirect_uri) {
            return no_redirect(why);
        }
        let state = request.state.clone();
        let back = |code: ErrorCode, description: &str| -> Result<String, AuthorizeProblem> {
            let mut parameters = vec![("error", code.as_str()), ("error_description", description)];
            if let Some(state) = &state {
                parameters.push(("state", state));
            }
            Err(AuthorizeProblem::Redirect(redirect_with(
                &redirect_uri,
                &parameters,
            )?))
        };
        if state.as_ref().is_some_and(|state| state.len() > 512) {
            return back(
                ErrorCode::InvalidRequest,
                "state is longer than 512 characters",
            );
        }
        match request.response_type.as_deref() {
            Some("code") => {}
            Some(_) => {
                return back(
                    ErrorCode::UnsupportedResponseType,
                    "only response_type=code is supported",
                );
            }
            None => return back(ErrorCode::InvalidRequest, "response_type is missing"),
        }
        let Some(challenge) = request.code_challenge.clone() else {
            return back(
                ErrorCode::InvalidRequest,
                "PKCE is required: code_challenge is missing",
            );
        };
        if request.code_challenge_method.as_deref() != Some("S256") {
            return back(
                ErrorCode::InvalidRequest,
                "code_challenge_method must be S256",
            );
        }
        if !valid_challenge(&challenge) {
            return back(
                ErrorCode::InvalidRequest,
                "code_challenge is not an S256 challenge (43 base64url characters)",
            );
        }
        let scope = match parse_scope(request.scope.as_deref()) {
            Ok(scope) => scope.join(" "),
            Err(OAuthError::Refused(code, description)) => return back(code, &description),
            Err(OAuthError::Domain(error)) => return Err(error.into()),
        };
        let now = self.now();
        let public_id = crate::random::token(24);
        let new = NewAuthorization {
            public_id: public_id.clone(),
            flow: "code",
            client_id: client.client_id.clone(),
            scope,
            redirect_uri: Some(redirect_uri.clone()),
            state,
            code_challenge: Some(challenge),
            device_code_hash: None,
            user_code: None,
            poll_interval: POLL_INTERVAL,
            created_at: now,
            expires_at: now + REQUEST_LIFETIME,
        };
        if !self
            .db(move |store| store.create_authorization(&new))
            .await?
        {
            return Err(
                DomainError::Internal("an authorization id was drawn twice".to_owned()).into(),
            );
        }
        Ok(public_id)
    }

    /// RFC 8628 §3.1–3.2: open a device authorization.
    pub async fn start_device_authorization(
        &self,
        client_id: &str,
        scope: Option<&str>,
    ) -> Result<DeviceStart, OAuthError> {
        let Some(client) = self.client_row(client_id).await? else {
            return refuse(ErrorCode::InvalidClient, "no such client is registered");
        };
        let scope = parse_scope(scope)?.join(" ");
        let now = self.now();
        let device_code = format!("gdc_{}", crate::random::token(32));
        // A user code clash (about one in 10^10 per live pair) is retried.
        for _ in 0..4 {
            let user_code = new_user_code();
            let new = NewAuthorization {
                public_id: crate::random::token(24),
                flow: "device",
                client_id: client.client_id.clone(),
                scope: scope.clone(),
                redirect_uri: None,
                state: None,
                code_challenge: None,
                device_code_hash: Some(hash(&device_code)),
                user_code: Some(user_code.clone()),
                poll_interval: POLL_INTERVAL,
                created_at: now,
                expires_at: now + REQUEST_LIFETIME,
            };
            if self
                .db(move |store| store.create_authorization(&new))
                .await?
            {
                return Ok(DeviceStart {
                    device_code,
                    user_code: format_code(&user_code),
                    expires_in: REQUEST_LIFETIME,
                    interval: POLL_INTERVAL,
                });
            }
        }
        Err(DomainError::Internal("could not pick a free user code".to_owned()).into())
    }

    /// The device flow's verification page: the pending request a typed user
    /// code names. Attempts count against the address's limit.
    pub async fn authorization_for_user_code(&self, typed: &str, client: IpAddr) -> Result<String> {
        let now = self.now();
        if !self.addresses.allow(client, now) {
            return Err(DomainError::AddressLimited);
        }
        let wrong = || {
            DomainError::Invalid(
                "That code is not right, or it has expired. Check the code your tool shows."
                    .to_owned(),
            )
        };
        let code = normalise_user_code(typed).ok_or_else(wrong)?;
        let found = self
            .db(move |store| store.authorization_by_user_code(&code))
            .await?
            .filter(|row| row.status == "pending" && row.expires_at > now);
        match found {
            Some(row) => Ok(row.public_id),
            None => {
                self.audit(
                    AuditEvent::new("oauth-device-code", Outcome::Failure)
                        .reason("unknown or expired user code")
                        .client(client),
                )
                .await;
                Err(wrong())
            }
        }
    }

    /// A pending, unexpired authorization request.
    pub async fn pending_authorization(&self, public_id: &str) -> Result<AuthorizationRow> {
        let id = public_id.to_owned();
        let now = self.now();
        self.db(move |store| store.authorization(&id))
            .await?
            .filter(|row| row.status == "pending" && row.expires_at > now)
            .ok_or(DomainError::NoPendingAuthorization)
    }

    /// The consent page for `user`.
    pub async fn consent(&self, public_id: &str, user: &UserRow) -> Result<Consent> {
        let row = self.pending_authorization(public_id).await?;
        let client = self
            .client_row(&row.client_id)
            .await?
            .ok_or(DomainError::NoPendingAuthorization)?;
        let (scopes, withheld) = grantable(&row.scope, user);
        let device = row.flow == "device";
        let confirmation = if device {
            format_code(row.user_code.as_deref().unwrap_or_default())
        } else {
            consent_code(row.code_challenge.as_deref().unwrap_or_default())
        };
        let redirect_origin = row
            .redirect_uri
            .as_deref()
            .and_then(|uri| Url::parse(uri).ok())
            .map(|url| url.origin().ascii_serialization())
            .filter(|origin| origin != "null");
        Ok(Consent {
            public_id: row.public_id,
            device,
            client_id: client.client_id,
            client_name: client.name,
            scopes,
            withheld,
            confirmation,
            redirect_origin,
            expires_at: row.expires_at,
        })
    }

    /// Allow or Deny, once. `mfa` says whether this sign-in included a code.
    pub async fn decide(
        &self,
        public_id: &str,
        user: &UserRow,
        mfa: bool,
        allowed: bool,
        client: IpAddr,
    ) -> Result<DecisionOutcome> {
        let row = self.pending_authorization(public_id).await?;
        let client_name = self
            .client_row(&row.client_id)
            .await?
            .map(|client| client.name)
            .unwrap_or_else(|| row.client_id.clone());
        let (scopes, _) = grantable(&row.scope, user);
        let granted_scope = scopes
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(" ");
        let allowed = allowed && !granted_scope.is_empty();
        let now = self.now();
        let code =
            (allowed && row.flow == "code").then(|| format!("gac_{}", crate::random::token(32)));
        let decision = Decision {
            user_id: user.id,
            allowed,
            granted_scope: granted_scope.clone(),
            mfa,
            code: code.as_ref().map(|code| (hash(code), now + CODE_LIFETIME)),
        };
        let id = row.id;
        if !self
            .db(move |store| store.decide_authorization(id, &decision, now))
            .await?
        {
            return Err(DomainError::NoPendingAuthorization);
        }
        self.audit(
            AuditEvent::new(
                "oauth-consent",
                if allowed {
                    Outcome::Success
                } else {
                    Outcome::Failure
                },
            )
            .actor(&user.name)
            .subject(&row.client_id)
            .reason(if allowed {
                format!("allowed ({} flow, scope {granted_scope})", row.flow)
            } else {
                format!("denied ({} flow)", row.flow)
            })
            .client(client),
        )
        .await;
        let Some(redirect_uri) = row.redirect_uri.as_deref() else {
            return Ok(DecisionOutcome::Done {
                allowed,
                client_name,
            });
        };
        let mut parameters = Vec::new();
        match &code {
            Some(code) => parameters.push(("code", code.as_str())),
            None => {
                parameters.push(("error", "access_denied"));
                parameters.push(("error_description", "the person denied the request"));
            }
        }
        if let Some(state) = &row.state {
            parameters.push(("state", state));
        }
        Ok(DecisionOutcome::Redirect(redirect_with(
            redirect_uri,
            &parameters,
        )?))
    }
}

/// PKCE (RFC 7636 §4.6): BASE64URL(SHA-256(verifier)) equals the challenge,
/// compared in constant time.
pub(super) fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    use base64::Engine;
    let valid_verifier = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !valid_verifier {
        return false;
    }
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash(verifier));
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_follows_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(valid_challenge(challenge));
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK",
            challenge
        ));
        assert!(!pkce_matches("short", challenge));
    }

    #[test]
    fn redirects_keep_their_query_and_escape_values() {
        let url = redirect_with(
            "http://127.0.0.1:5/cb?x=1",
            &[("code", "a b"), ("state", "&evil=1")],
        )
        .unwrap();
        assert_eq!(url, "http://127.0.0.1:5/cb?x=1&code=a+b&state=%26evil%3D1");
    }
}
