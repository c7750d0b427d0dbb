//! MFA Settings: the reminder that MFA is enforced, the settings dialog,
//! Initialize, the Authenticator dialog with its QR code, and Close.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::AppState;
use super::error::{WebError, capitalise};
use super::forms::{HtmlForm, bounded};
use super::views::{MfaAuthenticatorPage, MfaRequiredPage, MfaSettingsPage};
use super::visitor::Visitor;
use crate::domain::{DomainError, Session, Stage};
use crate::store::UserRow;

/// "MFA is enforced": what an enrolling session sees after its password.
pub async fn required(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
) -> Result<Response, WebError> {
    let (session, user) = match visitor.may_manage_mfa() {
        Ok(found) => found,
        Err(redirect) => return Ok(redirect.into_response()),
    };
    if session.stage == Stage::SignedIn {
        return Ok(Redirect::to("/mfa/settings").into_response());
    }
    let page = MfaRequiredPage {
        csrf: visitor.csrf_token(&state),
        name: user.name.clone(),
    };
    Ok(Html(page.render()?).into_response())
}

pub async fn settings(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
) -> Result<Response, WebError> {
    let (session, user) = match visitor.may_manage_mfa() {
        Ok(found) => found,
        Err(redirect) => return Ok(redirect.into_response()),
    };
    settings_page(&state, &visitor, session, user, None).await
}

async fn settings_page(
    state: &AppState,
    visitor: &Visitor,
    session: &Session,
    user: &UserRow,
    error: Option<String>,
) -> Result<Response, WebError> {
    let user_id = user.id;
    let registered = state
        .gatehouse
        .db(move |store| store.authenticators_of(user_id))
        .await?
        .len();
    let page = MfaSettingsPage {
        csrf: visitor.csrf_token(state),
        name: user.name.clone(),
        registered,
        replace_allowed: state.gatehouse.replacement_allowed(session),
        signed_in: session.stage == Stage::SignedIn,
        error,
    };
    Ok(Html(page.render()?).into_response())
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

pub async fn initialize(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    HtmlForm(form): HtmlForm<CsrfOnly>,
) -> Result<Response, WebError> {
    visitor.check_csrf(&state, &form.csrf)?;
    let (session, user) = match visitor.may_manage_mfa() {
        Ok(found) => found,
        Err(redirect) => return Ok(redirect.into_response()),
    };
    match state.gatehouse.start_enrollment(session, user).await {
        Ok(_) => Ok(Redirect::to("/mfa/authenticator").into_response()),
        Err(DomainError::Forbidden) => {
            let message = "To register a different device, first enter the code your current authenticator shows.";
            settings_page(&state, &visitor, session, user, Some(message.to_owned())).await
        }
        Err(error) => Err(error.into()),
    }
}

pub async fn authenticator(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
) -> Result<Response, WebError> {
    let (session, user) = match visitor.may_manage_mfa() {
        Ok(found) => found,
        Err(redirect) => return Ok(redirect.into_response()),
    };
    authenticator_page(&state, &visitor, session, user, None).await
}

async fn authenticator_page(
    state: &AppState,
    visitor: &Visitor,
    session: &Session,
    user: &UserRow,
    error: Option<String>,
) -> Result<Response, WebError> {
    let view = match state.gatehouse.current_enrollment(session, user) {
        Ok(view) => view,
        Err(DomainError::NoPendingEnrollment) => {
            let message = capitalise(&DomainError::NoPendingEnrollment.to_string());
            return settings_page(state, visitor, session, user, Some(message)).await;
        }
        Err(other) => return Err(other.into()),
    };
    let seconds_left = view.expires_at.saturating_sub(state.gatehouse.now());
    let page = MfaAuthenticatorPage {
        csrf: visitor.csrf_token(state),
        name: user.name.clone(),
        qr_svg: &view.qr_svg,
        security_key: &view.security_key,
        minutes_left: seconds_left.div_ceil(60),
        error,
    };
    Ok(Html(page.render()?).into_response())
}

#[derive(Deserialize)]
pub struct CodeForm {
    csrf: String,
    code: String,
}

/// Close: confirm the registration with a code.
pub async fn confirm(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    HtmlForm(form): HtmlForm<CodeForm>,
) -> Result<Response, WebError> {
    visitor.check_csrf(&state, &form.csrf)?;
    let (session, user) = match visitor.may_manage_mfa() {
        Ok(found) => found,
        Err(redirect) => return Ok(redirect.into_response()),
    };
    let code = bounded("authenticator code", &form.code, 16)?;
    match state
        .gatehouse
        .confirm_enrollment(session, user, code, visitor.client)
        .await
    {
        Ok(()) => {
            // The registration completes the sign-in: a new session id, now
            // with MFA.
            let (id, session) = state
                .gatehouse
                .rotate_session(session, Stage::SignedIn, true)
                .await?;
            let target = if user.must_change_password {
                "/account/password"
            } else {
                session.resume.as_deref().unwrap_or("/account")
            };
            Ok(state.with_session_cookie(Redirect::to(target), id.as_str()))
        }
        Err(DomainError::WrongCode) => {
            let message = capitalise(&DomainError::WrongCode.to_string());
            authenticator_page(&state, &visitor, session, user, Some(message)).await
        }
        Err(DomainError::NoPendingEnrollment) => {
            let message = capitalise(&DomainError::NoPendingEnrollment.to_string());
            settings_page(&state, &visitor, session, user, Some(message)).await
        }
        Err(error) => Err(error.into()),
    }
}

/// Re-enter a current code to be allowed to replace the authenticator.
pub async fn replace(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    HtmlForm(form): HtmlForm<CodeForm>,
) -> Result<Response, WebError> {
    visitor.check_csrf(&state, &form.csrf)?;
    let (session, user) = match visitor.signed_in(false) {
        Ok(found) => found,
        Err(redirect) => return Ok(redirect.into_response()),
    };
    let code = bounded("authenticator code", &form.code, 16)?;
    match state
        .gatehouse
        .allow_replacement(session, user, code, visitor.client)
        .await
    {
        Ok(()) => Ok(Redirect::to("/mfa/settings").into_response()),
        Err(DomainError::WrongCode) => {
            let message = capitalise(&DomainError::WrongCode.to_string());
            settings_page(&state, &visitor, session, user, Some(message)).await
        }
        Err(error) => Err(error.into()),
    }
}
