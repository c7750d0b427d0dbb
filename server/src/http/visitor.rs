//! Who is asking: the client address, the session (if any) and its user,
//! and the cookie that binds CSRF tokens. Plus the gates each page needs.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::response::Redirect;

use super::AppState;
use super::cookies::CookieName;
use super::error::WebError;
use crate::domain::{Session, SessionId, Stage};
use crate::store::UserRow;

pub struct Visitor {
    pub client: IpAddr,
    /// The session cookie's value and the session it opens.
    pub session: Option<(String, Session)>,
    pub user: Option<UserRow>,
    /// The pre-session cookie's value, before sign-in.
    pub pre_session: Option<String>,
    /// A session cookie came, but its session has ended.
    pub session_ended: bool,
}

impl FromRequestParts<Arc<AppState>> for Visitor {
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let client = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let cookies = state.cookies;
        let pre_session = cookies
            .read(&parts.headers, CookieName::PreSession)
            .filter(|value| SessionId::from_cookie(value).is_some())
            .map(str::to_owned);
        let mut visitor = Visitor {
            client,
            session: None,
            user: None,
            pre_session,
            session_ended: false,
        };
        let Some(id) = cookies
            .read(&parts.headers, CookieName::Session)
            .and_then(SessionId::from_cookie)
        else {
            return Ok(visitor);
        };
        let gatehouse = &state.gatehouse;
        if let Some(session) = gatehouse.load_session(&id).await? {
            let user_id = session.user_id;
            visitor.user = gatehouse.db(move |store| store.user_by_id(user_id)).await?;
            if visitor.user.is_some() {
                visitor.session = Some((id.as_str().to_owned(), session));
            }
        }
        visitor.session_ended = visitor.session.is_none();
        Ok(visitor)
    }
}

impl Visitor {
    /// The cookie value that this browser's CSRF tokens are bound to.
    pub fn csrf_binding(&self) -> Option<&str> {
        self.session
            .as_ref()
            .map(|(cookie, _)| cookie.as_str())
            .or(self.pre_session.as_deref())
    }

    pub fn csrf_token(&self, state: &AppState) -> String {
        self.csrf_binding()
            .map(|binding| state.csrf.token(binding))
            .unwrap_or_default()
    }

    pub fn check_csrf(&self, state: &AppState, token: &str) -> Result<(), WebError> {
        match self.csrf_binding() {
            Some(binding) if state.csrf.check(binding, token) => Ok(()),
            _ if self.session_ended => Err(WebError::session_ended()),
            _ => Err(WebError::csrf()),
        }
    }

    /// A fully signed-in session. Others are sent where they belong: to Sign
    /// In, to MFA registration, or to set their own password.
    pub fn signed_in(&self, allow_password_change: bool) -> Result<(&Session, &UserRow), Redirect> {
        match (&self.session, &self.user) {
            (Some((_, session)), Some(user)) => match session.stage {
                Stage::Enroll => Err(Redirect::to("/mfa")),
                Stage::SignedIn if user.must_change_password && !allow_password_change => {
                    Err(Redirect::to("/account/password"))
                }
                Stage::SignedIn => Ok((session, user)),
            },
            _ => Err(Redirect::to("/signin")),
        }
    }

    /// A session that may manage MFA: signed in, or enrolling.
    pub fn may_manage_mfa(&self) -> Result<(&Session, &UserRow), Redirect> {
        match (&self.session, &self.user) {
            (Some((_, session)), Some(user)) => Ok((session, user)),
            _ => Err(Redirect::to("/signin")),
        }
    }
}
