//! The admin pages: users with their "Force MFA" setting, create user,
//! reset MFA, unlock, and the audit log. Administrators only, and only
//! after signing in with an authenticator code.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use secrecy::SecretString;
use serde::Deserialize;

use super::AppState;
use super::error::{WebError, capitalise};
use super::forms::{HtmlForm, bounded};
use super::views::{AdminPage, AdminUserView, AuditPage, AuditView, ClientView, utc};
use super::visitor::Visitor;
use crate::domain::oauth::NewClient;
use crate::domain::{AdminOps, DomainError, MAX_PASSWORD_BYTES, NewAccount};
use crate::store::UserRow;

/// Admins who signed in with a code pass; everyone else is turned away.
fn admin<'v>(
    state: &AppState,
    visitor: &'v Visitor,
) -> Result<Result<(&'v UserRow, AdminOps), Redirect>, WebError> {
    let (session, user) = match visitor.signed_in(false) {
        Ok(found) => found,
        Err(redirect) => return Ok(Err(redirect)),
    };
    if !user.is_admin {
        return Err(WebError::forbidden(
            "Only administrators can open the admin pages.",
        ));
    }
    if !session.mfa {
        return Err(WebError::forbidden(
            "Administrators must sign in with an authenticator code. Register one in MFA Settings, then sign in again.",
        ));
    }
    Ok(Ok((
        user,
        state
            .gatehouse
            .admin(&user.name, Some(visitor.client.to_string())),
    )))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, DomainError> + Send + 'static,
) -> Result<T, WebError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| WebError::Internal(error.to_string()))?
        .map_err(WebError::from)
}

#[derive(Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
    user: Option<String>,
}

pub async fn users(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    Query(query): Query<DoneQuery>,
) -> Result<Response, WebError> {
    let (_, ops) = match admin(&state, &visitor)? {
        Ok(found) => found,
        Err(redirect) => return Ok(redirect.into_response()),
    };
    let who = query.user.unwrap_or_default();
    let notice = query.done.as_deref().and_then(|done| {
        Some(match done {
            "created" => format!("User {who} created."),
            "force-mfa-on" => format!("MFA is now enforced for {who}."),
            "force-mfa-off" => format!("MFA is no longer enforced for {who}."),
            "reset-mfa" => format!("MFA of {who} reset: their authenticators are removed."),
            "unlocked" => format!("{who} unlocked."),
            "revoked-clients" => format!("{who} is signed out of every external client."),
            "client-added" => format!("Client {who} registered."),
            "client-removed" => format!("Client {who} removed; its tokens are revoked."),
            _ => return None,
        })
    });
    render_users(&state, &visitor, ops, notice, None).await
}

async fn render_users(
    state: &AppState,
    visitor: &Visitor,
    ops: AdminOps,
    notice: Option<String>,
    error: Option<String>,
) -> Result<Response, WebError> {
    let now = state.gatehouse.now();
    let (users, clients) = blocking(move || Ok((ops.users()?, ops.clients()?))).await?;
    let page = AdminPage {
        csrf: visitor.csrf_token(state),
        clients: clients
            .into_iter()
            .map(|client| {
                let mut redirects = Vec::new();
                if client.loopback {
                    redirects.push("loopback (127.0.0.1, [::1], any port)".to_owned());
                }
                redirects.extend(client.redirect_uris);
                ClientView {
                    client_id: client.client_id,
                    name: client.name,
                    redirects: redirects.join(", "),
                }
            })
            .collect(),
        users: users
            .into_iter()
            .map(|user| AdminUserView {
                devices: user.describe_devices(),
                id: user.id,
                name: user.name,
                is_admin: user.is_admin,
                force_mfa: user.force_mfa,
                authenticators: user.authenticators,
                failed_attempts: user.failed_attempts,
                locked_for: user.locked_until.saturating_sub(now),
                client_sign_ins: user.client_sign_ins,
            })
            .collect(),
        min_length: state.gatehouse.passwords.min_length,
        notice,
        error,
    };
    Ok(Html(page.render()?).into_response())
}

#[derive(Deserialize)]
pub struct CreateForm {
    csrf: String,
    name: String,
    password: String,
    #[serde(default)]
    is_admin: Option<String>,
    #[serde(default)]
    force_mfa: Option<String>,
    #[serde(default)]
    one_time: Option<String>,
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    HtmlForm(form): HtmlForm<CreateForm>,
) -> Result<Response, WebError> {
    visitor.check_csrf(&state, &form.csrf)?;
    let (_, ops) = match admin(&state, &visitor)? {
        Ok(found) => found,
        Err(redirect) => return Ok(redirect.into_response()),
    };
    bounded("password", &form.password, MAX_PASSWORD_BYTES)?;
    let name = bounded("user name", form.name.trim(), 64)?.to_owned();
    let account = NewAccount {
        name: name.clone(),
        password: SecretString::from(form.password),
        is_admin: form.is_admin.is_some(),
        force_mfa: form.force_mfa.is_some(),
        must_change_password: form.one_time.is_some(),
    };
    match ops.create_user(account).await {
        Ok(_) => Ok(Redirect::to(&format!(
            "/admin?done=created&user={}",
            urlencoding::encode(&name)
        ))
        .into_response()),
        Err(error @ (DomainError::Invalid(_) | DomainError::DuplicateUser)) => {
            render_users(
                &state,
                &visitor,
                ops.clone(),
                None,
                Some(capitalise(&error.to_string())),
            )
            .await
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Deserialize)]
pub struct ForceMfaForm {
    csrf: String,
    #[serde(default)]
    force_mfa: Option<String>,
}

pub async fn force_mfa(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    Path(user_id): Path<i64>,
    HtmlForm(form): HtmlForm<ForceMfaForm>,
) -> Result<Response, WebError> {
    let on = form.force_mfa.is_some();
    let done = if on { "force-mfa-on" } else { "force-mfa-off" };
    act_on_user(
        &state,
        &visitor,
        &form.csrf,
        user_id,
        done,
        move |ops, user| ops.set_force_mfa(user, on),
    )
    .await
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

pub async fn reset_mfa(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    Path(user_id): Path<i64>,
    HtmlForm(form): HtmlForm<CsrfOnly>,
) -> Result<Response, WebError> {
    act_on_user(
        &state,
        &visitor,
        &form.csrf,
        user_id,
        "reset-mfa",
        |ops, user| ops.reset_mfa(user).map(|_| ()),
    )
    .await
}

pub async fn unlock(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    Path(user_id): Path<i64>,
    HtmlForm(form): HtmlForm<CsrfOnly>,
) -> Result<Response, WebError> {
    act_on_user(
        &state,
        &visitor,
        &form.csrf,
        user_id,
        "unlocked",
        |ops, user| ops.unlock(user),
    )
    .await
}

pub async fn revoke_clients(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    Path(user_id): Path<i64>,
    HtmlForm(form): HtmlForm<CsrfOnly>,
) -> Result<Response, WebError> {
    act_on_user(
        &state,
        &visitor,
        &form.csrf,
        user_id,
        "revoked-clients",
        |ops, user| ops.revoke_client_sign_ins(user).map(|_| ()),
    )
    .await
}

#[derive(Deserialize)]
pub struct ClientForm {
    csrf: String,
    client_id: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    loopback: Option<String>,
    #[serde(default)]
    redirect_uri: String,
}

pub async fn add_client(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    HtmlForm(form): HtmlForm<ClientForm>,
) -> Result<Response, WebError> {
    visitor.check_csrf(&state, &form.csrf)?;
    let (_, ops) = match admin(&state, &visitor)? {
        Ok(found) => found,
        Err(redirect) => return Ok(redirect.into_response()),
    };
    let client_id = bounded("client id", form.client_id.trim(), 64)?.to_owned();
    let name = bounded("display name", &form.display_name, 64)?.to_owned();
    let uri = bounded("redirect URI", form.redirect_uri.trim(), 512)?;
    let new = NewClient {
        client_id: client_id.clone(),
        name,
        loopback: form.loopback.is_some(),
        redirect_uris: if uri.is_empty() {
            Vec::new()
        } else {
            vec![uri.to_owned()]
        },
    };
    let worker = ops.clone();
    match blocking(move || worker.add_client(new)).await {
        Ok(_) => Ok(Redirect::to(&format!(
            "/admin?done=client-added&user={}",
            urlencoding::encode(&client_id)
        ))
        .into_response()),
        Err(WebError::Page { message, .. }) => {
            render_users(&state, &visitor, ops, None, Some(message)).await
        }
        Err(other) => Err(other),
    }
}

pub async fn remove_client(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    Path(client_id): Path<String>,
    HtmlForm(form): HtmlForm<CsrfOnly>,
) -> Result<Response, WebError> {
    visitor.check_csrf(&state, &form.csrf)?;
    let (_, ops) = match admin(&state, &visitor)? {
        Ok(found) => found,
        Err(redirect) => return Ok(redirect.into_response()),
    };
    let id = bounded("client id", &client_id, 64)?.to_owned();
    blocking(move || ops.remove_client(&id)).await?;
    Ok(Redirect::to(&format!(
        "/admin?done=client-removed&user={}",
        urlencoding::encode(&client_id)
    ))
    .into_response())
}

/// Check the form's CSRF token and the admin's rights, apply `action` to the
/// user, and go back to the user list with a notice naming `done`.
async fn act_on_user(
    state: &AppState,
    visitor: &Visitor,
    csrf: &str,
    user_id: i64,
    done: &'static str,
    action: impl FnOnce(&AdminOps, &UserRow) -> Result<(), DomainError> + Send + 'static,
) -> Result<Response, WebError> {
    visitor.check_csrf(state, csrf)?;
    let (_, ops) = match admin(state, visitor)? {
        Ok(found) => found,
        Err(redirect) => return Ok(redirect.into_response()),
    };
    let name = blocking(move || {
        let user = ops.user_by_id(user_id)?;
        action(&ops, &user)?;
        Ok(user.name)
    })
    .await?;
    let target = format!("/admin?done={done}&user={}", urlencoding::encode(&name));
    Ok(Redirect::to(&target).into_response())
}

pub async fn audit(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
) -> Result<Response, WebError> {
    let (_, ops) = match admin(&state, &visitor)? {
        Ok(found) => found,
        Err(redirect) => return Ok(redirect.into_response()),
    };
    let rows = blocking(move || ops.audit_log(200)).await?;
    let page = AuditPage {
        entries: rows
            .into_iter()
            .map(|row| AuditView {
                when: utc(row.at),
                event: row.event,
                outcome: row.outcome,
                actor: row.actor.unwrap_or_default(),
                subject: row.subject.unwrap_or_default(),
                reason: row.reason.unwrap_or_default(),
                client: row.client.unwrap_or_default(),
            })
            .collect(),
    };
    Ok(Html(page.render()?).into_response())
}
