//! The JSON API: the admin API (provisioning YubiKeys; an admin token from
//! `gatehouse token create --admin`, or an OAuth access token with the
//! `admin` scope of an administrator), `whoami` for OAuth access tokens, and
//! the validation API for other services (a service token).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use data_encoding::BASE32_NOPAD;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use crate::domain::api_tokens::ApiScope;
use crate::domain::{DomainError, api_tokens};

/// A JSON error with a status and a message a tool can print.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        let status = match &error {
            DomainError::NoSuchUser | DomainError::NoPendingEnrollment => StatusCode::NOT_FOUND,
            DomainError::WrongCode => StatusCode::UNPROCESSABLE_ENTITY,
            DomainError::TokenUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            DomainError::Internal(cause) => {
                tracing::error!(%cause, "admin API internal error");
                return ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error".to_owned(),
                );
            }
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError(status, error.to_string())
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(|token| token.trim().to_owned())
}

/// Who is calling the admin API: an admin token's name, or the
/// administrator an OAuth access token (with the `admin` scope) acts for.
pub struct AdminToken(pub String);

impl FromRequestParts<Arc<AppState>> for AdminToken {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = || {
            ApiError(
                StatusCode::UNAUTHORIZED,
                "a valid admin API token, or an administrator's access token with the admin scope (device-tools login), is required".to_owned(),
            )
        };
        let bearer = bearer(&parts.headers).ok_or_else(unauthorized)?;
        let gatehouse = &state.gatehouse;
        if let Some(principal) = gatehouse.principal(&bearer).await? {
            return if principal.has_scope("admin") && principal.user.is_admin {
                Ok(AdminToken(format!(
                    "{} via {}",
                    principal.user.name, principal.client_id
                )))
            } else {
                Err(ApiError(
                    StatusCode::FORBIDDEN,
                    "this access token does not carry the admin scope of an administrator"
                        .to_owned(),
                ))
            };
        }
        let now = gatehouse.now();
        let token = gatehouse
            .db(move |store| api_tokens::authenticate(store, &bearer, ApiScope::Admin, now))
            .await?;
        token
            .map(|row| AdminToken(format!("token:{}", row.name)))
            .ok_or_else(unauthorized)
    }
}

/// A service token (`gatehouse token create --service`): its name.
pub struct ServiceToken(pub String);

impl FromRequestParts<Arc<AppState>> for ServiceToken {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = || {
            ApiError(
                StatusCode::UNAUTHORIZED,
                "a valid service token is required (gatehouse token create --service)".to_owned(),
            )
        };
        let bearer = bearer(&parts.headers).ok_or_else(unauthorized)?;
        let now = state.gatehouse.now();
        state
            .gatehouse
            .db(move |store| api_tokens::authenticate(store, &bearer, ApiScope::Service, now))
            .await?
            .map(|row| ServiceToken(row.name))
            .ok_or_else(unauthorized)
    }
}

/// `GET /api/v1/whoami`: who an OAuth access token acts for.
pub async fn whoami(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let unauthorized = || {
        ApiError(
            StatusCode::UNAUTHORIZED,
            "a live access token is required".to_owned(),
        )
    };
    let bearer = bearer(&headers).ok_or_else(unauthorized)?;
    let principal = state
        .gatehouse
        .principal(&bearer)
        .await?
        .ok_or_else(unauthorized)?;
    Ok(Json(json!({
        "user": principal.user.name,
        "admin": principal.user.is_admin,
        "client_id": principal.client_id,
        "scope": principal.scope,
        "mfa": principal.mfa,
        "expires_at": principal.expires_at,
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validation {
    user: String,
    code: String,
    /// The end user's address, as the calling service saw it: limited and
    /// audited like a browser's.
    #[serde(default)]
    client: Option<IpAddr>,
}

/// `POST /api/v1/validate`: is this the user's current code? Accepted once,
/// with the browser's lockout; unknown users are rejected like wrong codes.
pub async fn validate(
    State(state): State<Arc<AppState>>,
    ServiceToken(service): ServiceToken,
    ConnectInfo(caller): ConnectInfo<SocketAddr>,
    body: Result<Json<serde_json::Map<String, serde_json::Value>>, JsonRejection>,
) -> Result<Response, ApiError> {
    let request: Validation = json_body(body)?;
    if request.user.len() > 256 || request.code.len() > 16 {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "user or code too long".to_owned(),
        ));
    }
    let outcome = state
        .gatehouse
        .validate_code(
            &request.user,
            &request.code,
            request.client,
            caller.ip(),
            &service,
        )
        .await;
    let answer = match outcome {
        Ok(()) => json!({ "result": "accept", "user": request.user.trim() }),
        Err(error @ DomainError::SignInFailed) => {
            json!({ "result": "reject", "reason": error.to_string() })
        }
        Err(error @ DomainError::LockedOut { retry_after }) => json!({
            "result": "reject",
            "reason": error.to_string(),
            "retry_after": retry_after,
        }),
        Err(error @ DomainError::AddressLimited) => json!({
            "result": "reject",
            "reason": error.to_string(),
            "retry_after": 60,
        }),
        Err(other) => return Err(other.into()),
    };
    Ok(Json(answer).into_response())
}

/// A JSON object body as `T`. Only an object will do: serde would also
/// read a struct from an array of its field values.
fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<Json<serde_json::Map<String, serde_json::Value>>, JsonRejection>,
) -> Result<T, ApiError> {
    let Json(object) =
        body.map_err(|rejection| ApiError(rejection.status(), rejection.body_text()))?;
    serde_json::from_value(serde_json::Value::Object(object)).map_err(|error| {
        ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the request body does not fit: {error}"),
        )
    })
}

pub async fn offer_yubikey(
    State(state): State<Arc<AppState>>,
    AdminToken(actor): AdminToken,
    Path(user): Path<String>,
) -> Result<Response, ApiError> {
    let offer = state.gatehouse.offer_yubikey(&user, &actor).await?;
    let secret = zeroize::Zeroizing::new(BASE32_NOPAD.encode(&offer.seed));
    let body = json!({
        "enrollment_id": offer.enrollment_id,
        "credential_name": offer.credential_name,
        "secret": secret.as_str(),
        "algorithm": offer.algorithm,
        "digits": offer.digits,
        "period": offer.period,
        "expires_at": offer.expires_at,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[derive(Deserialize)]
pub struct Confirmation {
    code: String,
    #[serde(default)]
    serial: Option<String>,
}

pub async fn confirm_yubikey(
    State(state): State<Arc<AppState>>,
    _token: AdminToken,
    Path(enrollment): Path<String>,
    body: Result<Json<serde_json::Map<String, serde_json::Value>>, JsonRejection>,
) -> Result<Response, ApiError> {
    let confirmation: Confirmation = json_body(body)?;
    if confirmation.code.len() > 16 || confirmation.serial.as_ref().is_some_and(|s| s.len() > 32) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "code or serial too long".to_owned(),
        ));
    }
    let user = state
        .gatehouse
        .confirm_yubikey(&enrollment, &confirmation.code, confirmation.serial)
        .await?;
    Ok(Json(json!({ "status": "active", "user": user })).into_response())
}

pub async fn withdraw_yubikey(
    State(state): State<Arc<AppState>>,
    _token: AdminToken,
    Path(enrollment): Path<String>,
) -> Result<Response, ApiError> {
    if state.gatehouse.withdraw_yubikey(&enrollment).await {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError(
            StatusCode::NOT_FOUND,
            "no such pending registration".to_owned(),
        ))
    }
}
