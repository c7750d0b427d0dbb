//! The HTTP layer: the only code that knows axum. Handlers parse and check
//! input, call the domain, and render a view.

mod account;
mod admin;
mod api;
pub mod cookies;
pub mod csrf;
mod error;
mod forms;
mod health;
mod mfa;
mod oauth;
mod oauth_api;
mod signin;
pub mod views;
mod visitor;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header::{self, HeaderName, HeaderValue, SET_COOKIE};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tower_http::set_header::SetResponseHeaderLayer;
use tracing::Instrument;

use crate::domain::Gatehouse;
pub use cookies::{CookieName, CookiePolicy};
pub use csrf::CsrfKey;
use error::{REQUEST_ID, WebError};

/// Largest request body accepted: far above any form here.
pub const BODY_LIMIT: usize = 16 * 1024;

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub struct AppState {
    pub gatehouse: Gatehouse,
    pub csrf: CsrfKey,
    pub cookies: CookiePolicy,
    /// The address people and tools reach this server at (no trailing
    /// slash): configured, or learnt once listening.
    pub public_url: std::sync::OnceLock<String>,
}

impl AppState {
    pub fn public_url(&self) -> &str {
        self.public_url
            .get()
            .map(String::as_str)
            .unwrap_or("http://127.0.0.1:8080")
    }

    /// `response` with the session cookie set to `id`.
    pub fn with_session_cookie(&self, response: impl IntoResponse, id: &str) -> Response {
        let mut response = response.into_response();
        let cookie = self.cookies.set(
            CookieName::Session,
            id,
            self.gatehouse.policy.session_lifetime,
        );
        if let Ok(value) = cookie.parse() {
            response.headers_mut().append(SET_COOKIE, value);
        }
        response
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    let header = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
    };
    Router::new()
        .route("/", get(|| async { Redirect::to("/signin") }))
        .route("/signin", get(signin::page).post(signin::submit))
        .route("/signout", post(signin::sign_out))
        .route("/mfa", get(mfa::required))
        .route("/mfa/settings", get(mfa::settings))
        .route("/mfa/initialize", post(mfa::initialize))
        .route("/mfa/authenticator", get(mfa::authenticator))
        .route("/mfa/confirm", post(mfa::confirm))
        .route("/mfa/replace", post(mfa::replace))
        .route("/account", get(account::page))
        .route(
            "/account/password",
            get(account::password_page).post(account::change_password),
        )
        .route("/admin", get(admin::users))
        .route("/admin/users", post(admin::create))
        .route("/admin/users/{id}/force-mfa", post(admin::force_mfa))
        .route("/admin/users/{id}/reset-mfa", post(admin::reset_mfa))
        .route("/admin/users/{id}/unlock", post(admin::unlock))
        .route("/admin/audit", get(admin::audit))
        .route(
            "/admin/users/{id}/revoke-clients",
            post(admin::revoke_clients),
        )
        .route("/admin/clients", post(admin::add_client))
        .route("/admin/clients/{id}/remove", post(admin::remove_client))
        .route("/account/clients/{id}/revoke", post(account::revoke_client))
        .route("/oauth/authorize", get(oauth::authorize))
        .route("/oauth/continue/{id}", get(oauth::resume))
        .route(
            "/oauth/consent/{id}",
            get(oauth::consent).post(oauth::decide),
        )
        .route("/oauth/done", get(oauth::done))
        .route(
            "/device",
            get(oauth::device_page).post(oauth::device_submit),
        )
        .route("/oauth/token", post(oauth_api::token))
        .route(
            "/oauth/device_authorization",
            post(oauth_api::device_authorization),
        )
        .route("/oauth/revoke", post(oauth_api::revoke))
        .route("/oauth/introspect", post(oauth_api::introspect))
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth_api::metadata),
        )
        .route("/api/v1/whoami", get(api::whoami))
        .route("/api/v1/validate", post(api::validate))
        .route(
            "/api/v1/admin/users/{name}/yubikey",
            post(api::offer_yubikey),
        )
        .route(
            "/api/v1/admin/yubikey-registrations/{id}",
            axum::routing::delete(api::withdraw_yubikey),
        )
        .route(
            "/api/v1/admin/yubikey-registrations/{id}/confirm",
            post(api::confirm_yubikey),
        )
        .route("/healthz", get(health::healthz))
        .route("/static/gatehouse.css", get(stylesheet))
        .fallback(|| async { WebError::not_found() })
        .with_state(state)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(header(
            header::CONTENT_SECURITY_POLICY,
            CONTENT_SECURITY_POLICY,
        ))
        .layer(header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(header(header::REFERRER_POLICY, "no-referrer"))
        .layer(header(header::CACHE_CONTROL, "no-store"))
        .layer(middleware::from_fn(request_id))
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../../templates/static/gatehouse.css"),
    )
        .into_response()
}

/// Give every request an id: in its log span, its response header and any
/// error page it produces.
async fn request_id(request: Request, next: Next) -> Response {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = format!(
        "{:x}-{:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let span = tracing::info_span!("request", request_id = %id, %method, %path);
    let mut response = REQUEST_ID
        .scope(id.clone(), next.run(request).instrument(span))
        .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}
