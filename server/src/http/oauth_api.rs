//! The OAuth endpoints tools and resource servers call: metadata (RFC 8414),
//! token (RFC 6749 §3.2, RFC 8628 §3.4), device authorization (RFC 8628
//! §3.1), revocation (RFC 7009) and introspection (RFC 7662).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use super::AppState;
use super::api::ServiceToken;
use crate::domain::DomainError;
use crate::domain::oauth::{ErrorCode, Introspection, OAuthError, SCOPES, TokenResponse};

/// An error in RFC 6749 §5.2's JSON form.
pub struct OAuthReply(StatusCode, Value);

impl IntoResponse for OAuthReply {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(self.1)).into_response();
        response
            .headers_mut()
            .insert("pragma", axum::http::HeaderValue::from_static("no-cache"));
        response
    }
}

fn error_reply(code: ErrorCode, description: &str) -> OAuthReply {
    let status = match code {
        ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
        _ => StatusCode::BAD_REQUEST,
    };
    OAuthReply(
        status,
        json!({ "error": code.as_str(), "error_description": description }),
    )
}

impl From<OAuthError> for OAuthReply {
    fn from(error: OAuthError) -> Self {
        match error {
            OAuthError::Refused(code, description) => error_reply(code, &description),
            OAuthError::Domain(error) => error.into(),
        }
    }
}

impl From<DomainError> for OAuthReply {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::TokenUnavailable(_) => OAuthReply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "error": "temporarily_unavailable", "error_description": error.to_string() }),
            ),
            DomainError::Internal(cause) => {
                tracing::error!(%cause, "OAuth endpoint internal error");
                OAuthReply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({ "error": "server_error", "error_description": "internal error" }),
                )
            }
            other => error_reply(ErrorCode::InvalidRequest, &other.to_string()),
        }
    }
}

/// A form-encoded OAuth request: each parameter at most once (RFC 6749
/// §3.1), UTF-8, plus the client id from HTTP Basic if the client sent it
/// that way, and the caller's address.
pub struct OAuthForm {
    parameters: HashMap<String, String>,
    client: IpAddr,
}

impl OAuthForm {
    fn get(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
    }

    fn require(&self, name: &str) -> Result<&str, OAuthReply> {
        self.get(name)
            .filter(|value| !value.is_empty())
            .ok_or_else(|| error_reply(ErrorCode::InvalidRequest, &format!("{name} is missing")))
    }
}

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = OAuthReply;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let invalid = |why: &str| error_reply(ErrorCode::InvalidRequest, why);
        let client = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        if !super::forms::is_form(request.headers()) {
            return Err(invalid(
                "send the parameters as application/x-www-form-urlencoded",
            ));
        }
        let basic_client = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Basic "))
            .and_then(|encoded| {
                base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .ok()
            })
            .and_then(|decoded| String::from_utf8(decoded).ok())
            .and_then(|pair| {
                let (id, _secret) = pair.split_once(':')?;
                urlencoding::decode(id).ok().map(|id| id.into_owned())
            });
        let body = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                OAuthReply(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    json!({ "error": "invalid_request", "error_description": "the request is too large" }),
                )
            } else {
                invalid("the request body could not be read")
            }
        })?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
            .map_err(|_| invalid("the parameters are not valid form encoding"))?;
        let mut parameters = HashMap::new();
        for (name, value) in pairs {
            if value.contains('\u{FFFD}') {
                return Err(invalid("the parameters are not valid UTF-8"));
            }
            if parameters.insert(name.clone(), value).is_some() {
                return Err(invalid(&format!("{name} is given more than once")));
            }
        }
        if let Some(id) = basic_client {
            match parameters.get("client_id") {
                Some(given) if *given != id => {
                    return Err(invalid("two different client ids were given"));
                }
                _ => {
                    parameters.insert("client_id".to_owned(), id);
                }
            }
        }
        Ok(OAuthForm { parameters, client })
    }
}

/// RFC 8414: what standard client libraries read to configure themselves.
pub async fn metadata(State(state): State<Arc<AppState>>) -> Response {
    let issuer = state.public_url();
    let scopes: Vec<&str> = SCOPES.iter().map(|(name, _)| *name).collect();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "device_authorization_endpoint": format!("{issuer}/oauth/device_authorization"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "scopes_supported": scopes,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code"
        ],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "introspection_endpoint_auth_methods_supported": ["bearer"],
    }))
    .into_response()
}

fn token_reply(tokens: TokenResponse) -> Response {
    OAuthReply(
        StatusCode::OK,
        json!({
            "access_token": tokens.access_token,
            "token_type": "Bearer",
            "expires_in": tokens.expires_in,
            "refresh_token": tokens.refresh_token,
            "scope": tokens.scope,
        }),
    )
    .into_response()
}

pub async fn token(
    State(state): State<Arc<AppState>>,
    form: OAuthForm,
) -> Result<Response, OAuthReply> {
    let gatehouse = &state.gatehouse;
    let client_id = form.require("client_id").map_err(|_| {
        error_reply(
            ErrorCode::InvalidClient,
            "client_id is missing: public clients identify themselves with it",
        )
    })?;
    let client_known = {
        let id = client_id.to_owned();
        gatehouse
            .db(move |store| store.client(&id))
            .await?
            .is_some()
    };
    if !client_known {
        return Err(error_reply(
            ErrorCode::InvalidClient,
            "no such client is registered",
        ));
    }
    let tokens = match form.require("grant_type")? {
        "authorization_code" => {
            gatehouse
                .exchange_code(
                    client_id,
                    form.require("code")?,
                    form.get("redirect_uri"),
                    form.get("code_verifier"),
                    form.client,
                )
                .await?
        }
        "refresh_token" => {
            gatehouse
                .refresh(
                    client_id,
                    form.require("refresh_token")?,
                    form.get("scope"),
                    form.client,
                )
                .await?
        }
        "urn:ietf:params:oauth:grant-type:device_code" => {
            gatehouse
                .poll_device(client_id, form.require("device_code")?, form.client)
                .await?
        }
        other => {
            return Err(error_reply(
                ErrorCode::UnsupportedGrantType,
                &format!("grant_type {other:?} is not supported"),
            ));
        }
    };
    Ok(token_reply(tokens))
}

pub async fn device_authorization(
    State(state): State<Arc<AppState>>,
    form: OAuthForm,
) -> Result<Response, OAuthReply> {
    let client_id = form
        .require("client_id")
        .map_err(|_| error_reply(ErrorCode::InvalidClient, "client_id is missing"))?;
    let start = state
        .gatehouse
        .start_device_authorization(client_id, form.get("scope"))
        .await?;
    let verification = format!("{}/device", state.public_url());
    let complete = format!("{verification}?user_code={}", start.user_code);
    Ok(OAuthReply(
        StatusCode::OK,
        json!({
            "device_code": start.device_code,
            "user_code": start.user_code,
            "verification_uri": verification,
            "verification_uri_complete": complete,
            "expires_in": start.expires_in,
            "interval": start.interval,
        }),
    )
    .into_response())
}

pub async fn revoke(
    State(state): State<Arc<AppState>>,
    form: OAuthForm,
) -> Result<Response, OAuthReply> {
    let client_id = form
        .require("client_id")
        .map_err(|_| error_reply(ErrorCode::InvalidClient, "client_id is missing"))?;
    state
        .gatehouse
        .revoke_token(client_id, form.require("token")?, form.client)
        .await?;
    Ok(StatusCode::OK.into_response())
}

pub async fn introspect(
    State(state): State<Arc<AppState>>,
    _service: ServiceToken,
    form: OAuthForm,
) -> Result<Response, OAuthReply> {
    let answer = match state.gatehouse.introspect(form.require("token")?).await? {
        Introspection::Inactive => json!({ "active": false }),
        Introspection::Active {
            kind,
            user,
            client_id,
            scope,
            mfa,
            issued_at,
            expires_at,
        } => json!({
            "active": true,
            "token_type": kind,
            "username": user,
            "sub": user,
            "client_id": client_id,
            "scope": scope,
            "iat": issued_at,
            "exp": expires_at,
            "iss": state.public_url(),
            "amr": if mfa { vec!["pwd", "otp"] } else { vec!["pwd"] },
        }),
    };
    Ok(OAuthReply(StatusCode::OK, answer).into_response())
}
