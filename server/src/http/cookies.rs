//! Cookie policy, in one place: HttpOnly, SameSite=Strict, and under TLS
//! `Secure` with the `__Host-` prefix (bound to this host, path `/`).

use axum::http::HeaderMap;
use axum::http::header::COOKIE;

/// The session cookie, and the pre-session cookie that binds the Sign In
/// form's CSRF token before anyone is signed in.
#[derive(Debug, Clone, Copy)]
pub enum CookieName {
    Session,
    PreSession,
}

#[derive(Debug, Clone, Copy)]
pub struct CookiePolicy {
    pub secure: bool,
}

impl CookiePolicy {
    pub fn name(&self, cookie: CookieName) -> &'static str {
        match (cookie, self.secure) {
            (CookieName::Session, true) => "__Host-gatehouse_session",
            (CookieName::Session, false) => "gatehouse_session",
            (CookieName::PreSession, true) => "__Host-gatehouse_pre",
            (CookieName::PreSession, false) => "gatehouse_pre",
        }
    }

    /// A `Set-Cookie` value; `max_age` in seconds.
    pub fn set(&self, cookie: CookieName, value: &str, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}",
            self.name(cookie)
        )
    }

    pub fn clear(&self, cookie: CookieName) -> String {
        self.set(cookie, "", 0)
    }

    /// The value of `cookie` in the request, if present.
    pub fn read<'h>(&self, headers: &'h HeaderMap, cookie: CookieName) -> Option<&'h str> {
        let wanted = self.name(cookie);
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == wanted)
            .map(|(_, value)| value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_cookies_use_the_host_prefix() {
        let plain = CookiePolicy { secure: false }.set(CookieName::Session, "abc", 60);
        assert_eq!(
            plain,
            "gatehouse_session=abc; Path=/; HttpOnly; SameSite=Strict; Max-Age=60"
        );
        let tls = CookiePolicy { secure: true }.set(CookieName::Session, "abc", 60);
        assert!(tls.starts_with("__Host-gatehouse_session=abc;"));
        assert!(tls.ends_with("; Secure"));
    }

    #[test]
    fn reads_the_named_cookie_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, "a=1; gatehouse_session=xyz; b=2".parse().unwrap());
        let policy = CookiePolicy { secure: false };
        assert_eq!(policy.read(&headers, CookieName::Session), Some("xyz"));
        assert_eq!(policy.read(&headers, CookieName::PreSession), None);
    }
}
