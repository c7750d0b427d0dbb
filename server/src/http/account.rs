//! After sign-in: "Signed in as <name>", and changing one's password.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use secrecy::SecretString;
use serde::Deserialize;

use super::AppState;
use super::error::{WebError, capitalise};
use super::forms::{HtmlForm, bounded};
use super::views::{AccountPage, ChangePasswordPage, GrantView, utc};
use super::visitor::Visitor;
use crate::domain::{DomainError, MAX_PASSWORD_BYTES, Stage};
use crate::store::UserRow;

#[derive(Deserialize)]
pub struct AccountQuery {
    password_changed: Option<String>,
    client_revoked: Option<String>,
}

pub async fn page(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    Query(query): Query<AccountQuery>,
) -> Result<Response, WebError> {
    let (session, user) = match visitor.signed_in(false) {
        Ok(found) => found,
        Err(redirect) => return Ok(redirect.into_response()),
    };
    let user_id = user.id;
    let registered = state
        .gatehouse
        .db(move |store| store.authenticators_of(user_id))
        .await?
        .len();
    let live = state.gatehouse.grants_of(user.id).await?;
    let names: std::collections::HashMap<String, String> = if live.is_empty() {
        Default::default()
    } else {
        state
            .gatehouse
            .db(|store| store.clients())
            .await?
            .into_iter()
            .map(|client| (client.client_id, client.name))
            .collect()
    };
    let grants = live
        .into_iter()
        .map(|grant| GrantView {
            client: names
                .get(&grant.client_id)
                .cloned()
                .unwrap_or(grant.client_id),
            public_id: grant.public_id,
            since: utc(grant.created_at),
            last_used: utc(grant.last_used_at),
            mfa: grant.mfa,
        })
        .collect();
    let notice = if query.password_changed.is_some() {
        Some("Your password has been changed.".to_owned())
    } else {
        query
            .client_revoked
            .map(|_| "The client is signed out: its tokens no longer work.".to_owned())
    };
    let page = AccountPage {
        grants,
        csrf: visitor.csrf_token(&state),
        name: user.name.clone(),
        is_admin: user.is_admin,
        force_mfa: user.force_mfa,
        registered,
        mfa: session.mfa,
        notice,
    };
    Ok(Html(page.render()?).into_response())
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

/// Sign an external client out: revoke its tokens.
pub async fn revoke_client(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    Path(grant): Path<String>,
    HtmlForm(form): HtmlForm<CsrfOnly>,
) -> Result<Response, WebError> {
    visitor.check_csrf(&state, &form.csrf)?;
    let (_, user) = match visitor.signed_in(false) {
        Ok(found) => found,
        Err(redirect) => return Ok(redirect.into_response()),
    };
    let grant = bounded("client sign-in", &grant, 64)?;
    state
        .gatehouse
        .revoke_own_grant(user, grant, visitor.client)
        .await?;
    Ok(Redirect::to("/account?client_revoked=1").into_response())
}

pub async fn password_page(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
) -> Result<Response, WebError> {
    let (_, user) = match visitor.signed_in(true) {
        Ok(found) => found,
        Err(redirect) => return Ok(redirect.into_response()),
    };
    render_password(&state, &visitor, user, None)
}

fn render_password(
    state: &AppState,
    visitor: &Visitor,
    user: &UserRow,
    error: Option<String>,
) -> Result<Response, WebError> {
    let page = ChangePasswordPage {
        csrf: visitor.csrf_token(state),
        name: user.name.clone(),
        required: user.must_change_password,
        min_length: state.gatehouse.passwords.min_length,
        error,
    };
    Ok(Html(page.render()?).into_response())
}

#[derive(Deserialize)]
pub struct PasswordForm {
    csrf: String,
    current: String,
    new_password: String,
    repeat: String,
}

pub async fn change_password(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    HtmlForm(form): HtmlForm<PasswordForm>,
) -> Result<Response, WebError> {
    visitor.check_csrf(&state, &form.csrf)?;
    let (session, user) = match visitor.signed_in(true) {
        Ok(found) => found,
        Err(redirect) => return Ok(redirect.into_response()),
    };
    for (field, value) in [
        ("current password", &form.current),
        ("new password", &form.new_password),
    ] {
        bounded(field, value, MAX_PASSWORD_BYTES)?;
    }
    let gatehouse = &state.gatehouse;
    let current_ok = gatehouse
        .passwords
        .verify(
            Some(user.password_hash.clone()),
            SecretString::from(form.current),
        )
        .await?;
    if !current_ok {
        let _: Result<(), DomainError> = gatehouse
            .fail_in(
                "password-change",
                &user.name,
                Some(user),
                "wrong current password",
                visitor.client,
            )
            .await;
        return render_password(
            &state,
            &visitor,
            user,
            Some("The current password is not right.".to_owned()),
        );
    }
    if form.new_password != form.repeat {
        return render_password(
            &state,
            &visitor,
            user,
            Some("The two new passwords differ.".to_owned()),
        );
    }
    let hash = match gatehouse
        .passwords
        .hash(SecretString::from(form.new_password))
        .await
    {
        Ok(hash) => hash,
        Err(DomainError::Invalid(message)) => {
            return render_password(&state, &visitor, user, Some(capitalise(&message)));
        }
        Err(other) => return Err(other.into()),
    };
    let ops = gatehouse.admin(&user.name, Some(visitor.client.to_string()));
    let target = user.clone();
    tokio::task::spawn_blocking(move || ops.set_password_blocking(&target, hash, false))
        .await
        .map_err(|error| WebError::Internal(error.to_string()))??;
    // Changing the password ends every session of the user; this browser
    // gets a new one.
    let (id, session) = gatehouse
        .create_session_resuming(
            user.id,
            Stage::SignedIn,
            session.mfa,
            session.resume.clone(),
        )
        .await?;
    let target = session
        .resume
        .as_deref()
        .unwrap_or("/account?password_changed=1");
    Ok(state.with_session_cookie(Redirect::to(target), id.as_str()))
}
