//! The Sign In view and signing out.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::SET_COOKIE;
use axum::response::{Html, IntoResponse, Redirect, Response};
use secrecy::SecretString;
use serde::Deserialize;

use super::AppState;
use super::cookies::CookieName;
use super::error::{WebError, capitalise};
use super::forms::{HtmlForm, bounded};
use super::views::{ExternalClient, SignInPage};
use super::visitor::Visitor;
use crate::domain::{Credentials, DomainError, SignInOutcome, Stage};

#[derive(Deserialize)]
pub struct SignInQuery {
    signed_out: Option<String>,
}

pub async fn page(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    Query(query): Query<SignInQuery>,
) -> Result<Response, WebError> {
    if let Some((_, session)) = &visitor.session {
        return Ok(match session.stage {
            Stage::Enroll => Redirect::to("/mfa"),
            Stage::SignedIn => Redirect::to("/account"),
        }
        .into_response());
    }
    let notice = query.signed_out.map(|_| "You have signed out.".to_owned());
    let page = SignInPage {
        csrf: String::new(),
        name: String::new(),
        error: None,
        notice,
        external: None,
    };
    Ok(render(&state, &visitor, page, StatusCode::OK))
}

/// The Sign In page (for this site, or for an external client).
pub fn render(
    state: &AppState,
    visitor: &Visitor,
    mut page: SignInPage,
    status: StatusCode,
) -> Response {
    let (csrf, new_cookie) = form_binding(state, visitor);
    page.csrf = csrf;
    let html = match page.render() {
        Ok(html) => html,
        Err(error) => return WebError::from(error).into_response(),
    };
    with_cookie((status, Html(html)).into_response(), new_cookie)
}

/// A CSRF token for a form shown before sign-in. Makes a pre-session cookie
/// (returned for the response to set) when the browser has none, so the
/// token has something to be bound to.
pub fn form_binding(state: &AppState, visitor: &Visitor) -> (String, Option<String>) {
    match visitor.csrf_binding() {
        Some(binding) => (state.csrf.token(binding), None),
        None => {
            let value = crate::random::token(32);
            let cookie = state.cookies.set(CookieName::PreSession, &value, 3600);
            (state.csrf.token(&value), Some(cookie))
        }
    }
}

pub fn with_cookie(mut response: Response, cookie: Option<String>) -> Response {
    if let Some(Ok(value)) = cookie.map(|cookie| cookie.parse()) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

#[derive(Deserialize)]
pub struct SignInForm {
    csrf: String,
    name: String,
    password: String,
    #[serde(default)]
    code: String,
    /// The external client's authorization request this sign-in is for.
    #[serde(default)]
    authorization: Option<String>,
}

pub async fn submit(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    HtmlForm(form): HtmlForm<SignInForm>,
) -> Result<Response, WebError> {
    visitor.check_csrf(&state, &form.csrf)?;
    let name = bounded("user name", &form.name, 256)?.to_owned();
    bounded(
        "password",
        &form.password,
        crate::domain::MAX_PASSWORD_BYTES,
    )?;
    bounded("authenticator code", &form.code, 16)?;
    let external = match form.authorization.as_deref() {
        Some(id) => Some(external_client(&state, bounded("request", id, 64)?).await?),
        None => None,
    };
    let credentials = Credentials {
        name: name.clone(),
        password: SecretString::from(form.password),
        code: form.code,
        client: visitor.client,
    };
    let outcome = state.gatehouse.sign_in(credentials).await;
    let shown_name = if name.len() <= 64 {
        name
    } else {
        String::new()
    };
    let (user, stage, mfa) = match outcome {
        Ok(SignInOutcome::SignedIn { user, mfa }) => (user, Stage::SignedIn, mfa),
        Ok(SignInOutcome::MustEnroll { user }) => (user, Stage::Enroll, false),
        Err(
            error @ (DomainError::SignInFailed
            | DomainError::LockedOut { .. }
            | DomainError::AddressLimited),
        ) => {
            let status = match error {
                DomainError::SignInFailed => StatusCode::OK,
                _ => StatusCode::TOO_MANY_REQUESTS,
            };
            let page = SignInPage {
                csrf: String::new(),
                name: shown_name,
                error: Some(capitalise(&error.to_string())),
                notice: None,
                external,
            };
            return Ok(render(&state, &visitor, page, status));
        }
        Err(DomainError::TokenUnavailable(cause)) => {
            tracing::error!(%cause, "sign-in failed closed: token unavailable");
            let message = "The security token that checks authenticator codes is not available, so sign-in is paused. Try again shortly.".to_owned();
            let page = SignInPage {
                csrf: String::new(),
                name: shown_name,
                error: Some(message),
                notice: None,
                external,
            };
            return Ok(render(
                &state,
                &visitor,
                page,
                StatusCode::SERVICE_UNAVAILABLE,
            ));
        }
        Err(other) => return Err(other.into()),
    };
    // A fresh session id for every factor passed; any older session ends.
    if let Some((_, old)) = &visitor.session {
        state.gatehouse.end_session(&old.id_hash).await?;
    }
    let resume = external.map(|external| consent_path(&external.authorization));
    let (id, session) = state
        .gatehouse
        .create_session_resuming(user.id, stage, mfa, resume)
        .await?;
    let target = match stage {
        Stage::Enroll => "/mfa",
        Stage::SignedIn if user.must_change_password => "/account/password",
        Stage::SignedIn => session.resume.as_deref().unwrap_or("/account"),
    };
    Ok(state.with_session_cookie(Redirect::to(target), id.as_str()))
}

/// Where a signed-in person answers an external client's request.
pub fn consent_path(authorization: &str) -> String {
    format!("/oauth/consent/{authorization}")
}

/// The external client whose pending request `authorization` names.
pub async fn external_client(
    state: &AppState,
    authorization: &str,
) -> Result<ExternalClient, WebError> {
    let row = state.gatehouse.pending_authorization(authorization).await?;
    let client_id = row.client_id.clone();
    let client_name = state
        .gatehouse
        .db(move |store| store.client(&client_id))
        .await?
        .map(|client| client.name)
        .unwrap_or(row.client_id);
    Ok(ExternalClient {
        client_name,
        authorization: row.public_id,
    })
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

pub async fn sign_out(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    HtmlForm(form): HtmlForm<CsrfOnly>,
) -> Result<Response, WebError> {
    visitor.check_csrf(&state, &form.csrf)?;
    if let Some((_, session)) = &visitor.session {
        state.gatehouse.end_session(&session.id_hash).await?;
    }
    let mut response = Redirect::to("/signin?signed_out=1").into_response();
    if let Ok(value) = state.cookies.clear(CookieName::Session).parse() {
        response.headers_mut().append(SET_COOKIE, value);
    }
    Ok(response)
}
