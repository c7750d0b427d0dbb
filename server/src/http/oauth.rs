//! "Sign In for External Client": the browser side of the external clients'
//! sign-in. The authorization request (or the device flow's typed code)
//! leads through the usual sign-in and MFA registration to a consent page,
//! and from there back to the tool, or to "You can close this window".

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_SECURITY_POLICY;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::AppState;
use super::error::{WebError, capitalise};
use super::forms::{HtmlForm, bounded};
use super::signin::{consent_path, external_client, form_binding, render, with_cookie};
use super::views::{ConsentPage, DevicePage, DonePage, SignInPage};
use super::visitor::Visitor;
use crate::domain::oauth::{AuthorizationRequest, AuthorizeProblem, DecisionOutcome};
use crate::domain::{DomainError, Stage};

#[derive(Deserialize)]
pub struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// The authorization endpoint (RFC 6749 §3.1).
pub async fn authorize(
    State(state): State<Arc<AppState>>,
    query: Result<Query<AuthorizeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    let Query(query) = query.map_err(|rejection| {
        refused(format!(
            "The sign-in request is malformed: {}",
            rejection.body_text()
        ))
    })?;
    let request = AuthorizationRequest {
        response_type: query.response_type,
        client_id: query.client_id,
        redirect_uri: query.redirect_uri,
        scope: query.scope,
        state: query.state,
        code_challenge: query.code_challenge,
        code_challenge_method: query.code_challenge_method,
    };
    match state.gatehouse.start_authorization(request).await {
        Ok(id) => Ok(Redirect::to(&format!("/oauth/continue/{id}")).into_response()),
        Err(AuthorizeProblem::Redirect(url)) => Ok(Redirect::to(&url).into_response()),
        Err(AuthorizeProblem::NoRedirect(why)) => Err(refused(why)),
        Err(AuthorizeProblem::Failed(error)) => Err(error.into()),
    }
}

fn refused(message: String) -> WebError {
    WebError::Page {
        status: StatusCode::BAD_REQUEST,
        title: "Sign-in request refused",
        message,
    }
}

/// Where a request goes next: sign in, finish registering or changing the
/// password, or straight to consent.
pub async fn resume(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let external = external_client(&state, bounded("request", &id, 64)?).await?;
    let consent = consent_path(&external.authorization);
    match (&visitor.session, &visitor.user) {
        (Some((_, session)), Some(user)) => {
            if session.stage == Stage::SignedIn && !user.must_change_password {
                return Ok(Redirect::to(&consent).into_response());
            }
            state.gatehouse.set_resume(session, Some(consent)).await?;
            let next = match session.stage {
                Stage::Enroll => "/mfa",
                Stage::SignedIn => "/account/password",
            };
            Ok(Redirect::to(next).into_response())
        }
        _ => {
            let page = SignInPage {
                csrf: String::new(),
                name: String::new(),
                error: None,
                notice: None,
                external: Some(external),
            };
            Ok(render(&state, &visitor, page, StatusCode::OK))
        }
    }
}

pub async fn consent(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let id = bounded("request", &id, 64)?;
    let Ok((_, user)) = visitor.signed_in(false) else {
        return Ok(Redirect::to(&format!("/oauth/continue/{id}")).into_response());
    };
    let consent = state.gatehouse.consent(id, user).await?;
    let page = ConsentPage {
        csrf: visitor.csrf_token(&state),
        user: user.name.clone(),
        public_id: consent.public_id,
        client_id: consent.client_id,
        client_name: consent.client_name,
        scopes: consent.scopes,
        withheld: consent.withheld,
        confirmation: consent.confirmation,
    };
    let mut response = Html(page.render()?).into_response();
    // The decision's answer redirects to the tool: the form must be allowed
    // to go there (browsers check form-action on redirects too).
    let form_action = match &consent.redirect_origin {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_owned(),
    };
    let policy = format!(
        "default-src 'none'; style-src 'self'; img-src 'self' data:; \
         form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    );
    if let Ok(value) = HeaderValue::from_str(&policy) {
        response
            .headers_mut()
            .insert(CONTENT_SECURITY_POLICY, value);
    }
    Ok(response)
}

#[derive(Deserialize)]
pub struct DecisionForm {
    csrf: String,
    decision: String,
}

pub async fn decide(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    Path(id): Path<String>,
    HtmlForm(form): HtmlForm<DecisionForm>,
) -> Result<Response, WebError> {
    visitor.check_csrf(&state, &form.csrf)?;
    let id = bounded("request", &id, 64)?;
    let (session, user) = match visitor.signed_in(false) {
        Ok(found) => found,
        Err(redirect) => return Ok(redirect.into_response()),
    };
    let allowed = match form.decision.as_str() {
        "allow" => true,
        "deny" => false,
        _ => return Err(WebError::bad_request("Choose Allow or Deny.")),
    };
    let outcome = state
        .gatehouse
        .decide(id, user, session.mfa, allowed, visitor.client)
        .await?;
    state.gatehouse.set_resume(session, None).await?;
    match outcome {
        // 303: the browser follows with a GET.
        DecisionOutcome::Redirect(url) => Ok(Redirect::to(&url).into_response()),
        DecisionOutcome::Done {
            allowed,
            client_name,
        } => done_page(allowed, Some(client_name)),
    }
}

fn done_page(allowed: bool, client: Option<String>) -> Result<Response, WebError> {
    Ok(Html(DonePage { allowed, client }.render()?).into_response())
}

#[derive(Deserialize)]
pub struct DoneQuery {
    denied: Option<String>,
}

/// Where a tool sends the browser once it has its answer.
pub async fn done(Query(query): Query<DoneQuery>) -> Result<Response, WebError> {
    done_page(query.denied.is_none(), None)
}

#[derive(Deserialize)]
pub struct DeviceQuery {
    user_code: Option<String>,
}

/// The device flow's verification page (RFC 8628 §3.3).
pub async fn device_page(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    Query(query): Query<DeviceQuery>,
) -> Result<Response, WebError> {
    let typed = query.user_code.unwrap_or_default();
    let user_code = bounded("code", &typed, 16)?.to_owned();
    render_device(&state, &visitor, user_code, None, StatusCode::OK)
}

fn render_device(
    state: &AppState,
    visitor: &Visitor,
    user_code: String,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let (csrf, cookie) = form_binding(state, visitor);
    let page = DevicePage {
        csrf,
        user_code,
        error,
    };
    Ok(with_cookie(
        (status, Html(page.render()?)).into_response(),
        cookie,
    ))
}

#[derive(Deserialize)]
pub struct DeviceForm {
    csrf: String,
    user_code: String,
}

pub async fn device_submit(
    State(state): State<Arc<AppState>>,
    visitor: Visitor,
    HtmlForm(form): HtmlForm<DeviceForm>,
) -> Result<Response, WebError> {
    visitor.check_csrf(&state, &form.csrf)?;
    let typed = bounded("code", &form.user_code, 16)?.to_owned();
    match state
        .gatehouse
        .authorization_for_user_code(&typed, visitor.client)
        .await
    {
        Ok(id) => Ok(Redirect::to(&format!("/oauth/continue/{id}")).into_response()),
        Err(error @ (DomainError::Invalid(_) | DomainError::AddressLimited)) => {
            let status = match error {
                DomainError::AddressLimited => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::OK,
            };
            render_device(
                &state,
                &visitor,
                typed,
                Some(capitalise(&error.to_string())),
                status,
            )
        }
        Err(other) => Err(other.into()),
    }
}
