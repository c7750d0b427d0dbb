//! The admin API (JSON, bearer tokens from `gatehouse token create --admin`):
//! provisioning YubiKeys for users.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use data_encoding::BASE32_NOPAD;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
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

/// The name of the admin token the request carries.
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
                "a valid admin API token is required".to_owned(),
            )
        };
        let bearer = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(|token| token.trim().to_owned())
            .ok_or_else(unauthorized)?;
        let now = state.gatehouse.now();
        let token = state
            .gatehouse
            .db(move |store| api_tokens::authenticate(store, &bearer, now))
            .await?;
        token
            .map(|row| AdminToken(format!("token:{}", row.name)))
            .ok_or_else(unauthorized)
    }
}

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(value)| value)
        .map_err(|rejection| ApiError(rejection.status(), rejection.body_text()))
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
    body: Result<Json<Confirmation>, JsonRejection>,
) -> Result<Response, ApiError> {
    let confirmation = json_body(body)?;
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
