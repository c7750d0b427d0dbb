//! Server-side sessions. The browser holds a random id; the store holds only
//! its SHA-256, so a copy of the database opens no sessions.

use sha2::{Digest, Sha256};

use super::{Gatehouse, Result};
use crate::store::SessionRow;

/// The session id as the browser holds it (the cookie value).
pub struct SessionId(String);

impl SessionId {
    fn new() -> SessionId {
        SessionId(crate::random::token(32))
    }

    pub fn from_cookie(value: &str) -> Option<SessionId> {
        // 32 random bytes in unpadded base64url are 43 characters.
        (value.len() == 43
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then(|| SessionId(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> Vec<u8> {
        Sha256::digest(self.0.as_bytes()).to_vec()
    }
}

/// How far a session has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The password was right, but MFA is enforced and no authenticator is
    /// registered: only registration is reachable.
    Enroll,
    SignedIn,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Stage::Enroll => "enroll",
            Stage::SignedIn => "signed_in",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    pub id_hash: Vec<u8>,
    pub user_id: i64,
    pub stage: Stage,
    /// Whether a verified code was part of this sign-in.
    pub mfa: bool,
    pub expires_at: u64,
    /// Where to go once signed in: an external client's consent page.
    pub resume: Option<String>,
}

impl Gatehouse {
    /// A new session; the id goes to the browser, only its hash is stored.
    pub async fn create_session(
        &self,
        user_id: i64,
        stage: Stage,
        mfa: bool,
    ) -> Result<(SessionId, Session)> {
        self.create_session_resuming(user_id, stage, mfa, None)
            .await
    }

    /// A new session that, once signed in, continues at `resume`.
    pub async fn create_session_resuming(
        &self,
        user_id: i64,
        stage: Stage,
        mfa: bool,
        resume: Option<String>,
    ) -> Result<(SessionId, Session)> {
        let id = SessionId::new();
        let now = self.now();
        let lifetime = match stage {
            // Longer than a pending registration, so that it is the
            // registration that expires, with a message saying so.
            Stage::Enroll => self.policy.enrollment_lifetime * 3,
            Stage::SignedIn => self.policy.session_lifetime,
        };
        let row = SessionRow {
            id_hash: id.hash(),
            user_id,
            stage: stage.as_str().to_owned(),
            mfa,
            created_at: now,
            expires_at: now + lifetime,
            resume,
        };
        let session = Session {
            id_hash: row.id_hash.clone(),
            user_id,
            stage,
            mfa,
            expires_at: row.expires_at,
            resume: row.resume.clone(),
        };
        self.db(move |store| store.create_session(&row)).await?;
        Ok((id, session))
    }

    /// Replace a session with a new id (after each factor), carrying over
    /// any pending registration.
    pub async fn rotate_session(
        &self,
        old: &Session,
        stage: Stage,
        mfa: bool,
    ) -> Result<(SessionId, Session)> {
        let (id, session) = self
            .create_session_resuming(old.user_id, stage, mfa, old.resume.clone())
            .await?;
        self.pending.move_to(&old.id_hash, &session.id_hash);
        self.end_session(&old.id_hash).await?;
        Ok((id, session))
    }

    pub async fn load_session(&self, id: &SessionId) -> Result<Option<Session>> {
        let hash = id.hash();
        let now = self.now();
        let row = self.db(move |store| store.session(&hash, now)).await?;
        Ok(row.and_then(|row| {
            let stage = match row.stage.as_str() {
                "enroll" => Stage::Enroll,
                "signed_in" => Stage::SignedIn,
                _ => return None,
            };
            Some(Session {
                id_hash: row.id_hash,
                user_id: row.user_id,
                stage,
                mfa: row.mfa,
                expires_at: row.expires_at,
                resume: row.resume,
            })
        }))
    }

    /// Remember (or forget) where the session continues once signed in.
    pub async fn set_resume(&self, session: &Session, resume: Option<String>) -> Result<()> {
        let hash = session.id_hash.clone();
        self.db(move |store| store.set_session_resume(&hash, resume.as_deref()))
            .await
    }

    pub async fn end_session(&self, id_hash: &[u8]) -> Result<()> {
        self.pending.remove(id_hash);
        let hash = id_hash.to_vec();
        self.db(move |store| store.delete_session(&hash)).await
    }
}
