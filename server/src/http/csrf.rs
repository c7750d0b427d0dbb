//! CSRF protection: every form carries a token that is an HMAC, under a
//! server key, of the cookie that identifies the browser (the session cookie,
//! or before sign-in the pre-session cookie). A page on another site cannot
//! read the cookie, so it cannot make the token. Checked in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub struct CsrfKey {
    key: Zeroizing<[u8; 32]>,
}

impl CsrfKey {
    pub fn new(key: [u8; 32]) -> Self {
        CsrfKey {
            key: Zeroizing::new(key),
        }
    }

    /// The token for forms of a browser identified by `binding`.
    pub fn token(&self, binding: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(binding))
    }

    pub fn check(&self, binding: &str, token: &str) -> bool {
        let Ok(given) = URL_SAFE_NO_PAD.decode(token) else {
            return false;
        };
        self.mac(binding).as_slice().ct_eq(&given).into()
    }

    fn mac(&self, binding: &str) -> Vec<u8> {
        // HMAC accepts keys of any length: this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.key.as_ref()) else {
            return Vec::new();
        };
        mac.update(b"gatehouse.csrf.v1\0");
        mac.update(binding.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_bind_to_their_cookie() {
        let key = CsrfKey::new([7; 32]);
        let token = key.token("cookie-a");
        assert!(key.check("cookie-a", &token));
        assert!(!key.check("cookie-b", &token));
        assert!(!key.check("cookie-a", ""));
        assert!(!key.check("cookie-a", "not base64!"));
        assert!(!CsrfKey::new([8; 32]).check("cookie-a", &token));
    }
}
