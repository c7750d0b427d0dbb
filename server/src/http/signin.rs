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
use super::views::SignInPage;
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
    Ok(render(
        &state,
        &visitor,
        String::new(),
        None,
        notice,
        StatusCode::OK,
    ))
}

/// The Sign In page. Sets a pre-session cookie when the browser has none,
/// so the form's CSRF token has something to be bound to.
fn render(
    state: &AppState,
    visitor: &Visitor,
    name: String,
    error: Option<String>,
    notice: Option<String>,
    status: StatusCode,
) -> Response {
    let (binding, new_cookie) = match visitor.csrf_binding() {
        Some(binding) => (binding.to_owned(), None),
        None => {
            let value = crate::random::token(32);
            let cookie = state.cookies.set(CookieName::PreSession, &value, 3600);
            (value, Some(cookie))
        }
    };
    let page = SignInPage {
        csrf: state.csrf.token(&binding),
        name,
        error,
        notice,
    };
    let html = match page.render() {
        Ok(html) => html,
        Err(error) => return WebError::from(error).into_response(),
    };
    let mut response = (status, Html(html)).into_response();
    if let Some(Ok(value)) = new_cookie.map(|cookie| cookie.parse()) {
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
            let message = capitalise(&error.to_string());
            return Ok(render(
                &state,
                &visitor,
                shown_name,
                Some(message),
                None,
                status,
            ));
        }
        Err(DomainError::TokenUnavailable(cause)) => {
            tracing::error!(%cause, "sign-in failed closed: token unavailable");
            let message = "The security token that checks authenticator codes is not available, so sign-in is paused. Try again shortly.".to_owned();
            return Ok(render(
                &state,
                &visitor,
                shown_name,
                Some(message),
                None,
                StatusCode::SERVICE_UNAVAILABLE,
            ));
        }
        Err(other) => return Err(other.into()),
    };
    // A fresh session id for every factor passed; any older session ends.
    if let Some((_, old)) = &visitor.session {
        state.gatehouse.end_session(&old.id_hash).await?;
    }
    let (id, _) = state.gatehouse.create_session(user.id, stage, mfa).await?;
    let target = match stage {
        Stage::Enroll => "/mfa",
        Stage::SignedIn if user.must_change_password => "/account/password",
        Stage::SignedIn => "/account",
    };
    Ok(state.with_session_cookie(Redirect::to(target), id.as_str()))
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
