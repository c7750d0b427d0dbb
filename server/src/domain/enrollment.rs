//! Registering an authenticator app: Initialize, scan, confirm with a code.
//!
//! Nothing is stored until a code confirms the registration. Until then the
//! pending registration (the sealed seed, and the seed itself so the QR code
//! can be shown again after a mistyped code) lives in memory only, bound to
//! the session, and expires after the enrollment lifetime (10 minutes).

use std::collections::HashMap;
use std::sync::Mutex;

use data_encoding::BASE32_NOPAD;
use hsm_adapter::{SealedSeed, TotpPolicy, VerifyRequest};
use qrcode::QrCode;
use zeroize::Zeroizing;

use super::audit::{AuditEvent, Outcome};
use super::sessions::Session;
use super::signin::authenticator_owner;
use super::{DomainError, Gatehouse, Result};
use crate::store::{NewAuthenticator, UserRow};

/// Registrations started and not yet confirmed, by session.
#[derive(Default)]
pub struct PendingEnrollments {
    entries: Mutex<HashMap<Vec<u8>, Pending>>,
    /// Sessions whose user re-entered a current code and may replace their
    /// authenticator, until the given time.
    replace_allowed: Mutex<HashMap<Vec<u8>, u64>>,
}

struct Pending {
    user_id: i64,
    public_id: String,
    sealed: SealedSeed,
    seed: Zeroizing<Vec<u8>>,
    expires_at: u64,
    replace: bool,
}

impl PendingEnrollments {
    pub(super) fn move_to(&self, from: &[u8], to: &[u8]) {
        let mut entries = lock(&self.entries);
        if let Some(pending) = entries.remove(from) {
            entries.insert(to.to_vec(), pending);
        }
        let mut allowed = lock(&self.replace_allowed);
        if let Some(until) = allowed.remove(from) {
            allowed.insert(to.to_vec(), until);
        }
    }

    pub(super) fn remove(&self, session: &[u8]) {
        lock(&self.entries).remove(session);
        lock(&self.replace_allowed).remove(session);
    }

    fn sweep(&self, now: u64) {
        lock(&self.entries).retain(|_, pending| pending.expires_at > now);
        lock(&self.replace_allowed).retain(|_, until| *until > now);
    }
}

/// What the Authenticator dialog shows.
pub struct EnrollmentView {
    /// The QR code of the `otpauth://totp/...` URI, as an inline SVG element.
    pub qr_svg: Zeroizing<String>,
    /// The seed in base32, in groups of four for reading.
    pub security_key: Zeroizing<String>,
    pub expires_at: u64,
}

impl Gatehouse {
    /// Start (or restart) a registration for the signed-in or enrolling user.
    pub async fn start_enrollment(
        &self,
        session: &Session,
        user: &UserRow,
    ) -> Result<EnrollmentView> {
        let now = self.now();
        self.pending.sweep(now);
        let user_id = user.id;
        let existing = self
            .db(move |store| store.authenticators_of(user_id))
            .await?;
        let replace = !existing.is_empty();
        if replace && !lock(&self.pending.replace_allowed).contains_key(&session.id_hash) {
            return Err(DomainError::Forbidden);
        }
        let public_id = crate::random::token(12);
        let owner = authenticator_owner(user.id, &public_id)?;
        let algorithm = self.policy.algorithm;
        let seed = self.vault.generate_seed(algorithm).await?;
        let sealed = self.vault.seal(owner, algorithm, seed.clone()).await?;
        let pending = Pending {
            user_id: user.id,
            public_id,
            sealed,
            seed,
            expires_at: now + self.policy.enrollment_lifetime,
            replace,
        };
        let view = self.render_enrollment(user, &pending)?;
        lock(&self.pending.entries).insert(session.id_hash.clone(), pending);
        Ok(view)
    }

    /// Whether this session re-entered a current code and may now replace
    /// its user's authenticator.
    pub fn replacement_allowed(&self, session: &Session) -> bool {
        let now = self.now();
        lock(&self.pending.replace_allowed)
            .get(&session.id_hash)
            .is_some_and(|&until| until > now)
    }

    /// The registration in progress for this session, shown again.
    pub fn current_enrollment(&self, session: &Session, user: &UserRow) -> Result<EnrollmentView> {
        let now = self.now();
        self.pending.sweep(now);
        let entries = lock(&self.pending.entries);
        let pending = entries
            .get(&session.id_hash)
            .filter(|pending| pending.user_id == user.id)
            .ok_or(DomainError::NoPendingEnrollment)?;
        self.render_enrollment(user, pending)
    }

    /// Confirm the pending registration with a code from the app. Only now
    /// is the authenticator stored, with the code's time step as its last
    /// accepted one, so the same code cannot also sign in.
    pub async fn confirm_enrollment(
        &self,
        session: &Session,
        user: &UserRow,
        code: &str,
        client: std::net::IpAddr,
    ) -> Result<()> {
        let now = self.now();
        self.pending.sweep(now);
        let (request, public_id, replace) = {
            let entries = lock(&self.pending.entries);
            let pending = entries
                .get(&session.id_hash)
                .filter(|pending| pending.user_id == user.id)
                .ok_or(DomainError::NoPendingEnrollment)?;
            let request = VerifyRequest {
                owner: authenticator_owner(user.id, &pending.public_id)?,
                sealed: pending.sealed.clone(),
                code: code.trim().to_owned(),
                policy: self.policy.totp,
                now,
            };
            (request, pending.public_id.clone(), pending.replace)
        };
        if self.policy.totp.check_code_shape(&request.code).is_err() {
            return Err(DomainError::WrongCode);
        }
        let sealed_text = request.sealed.to_string();
        let Some(step) = self.vault.verify(request).await? else {
            let _: Result<()> = self
                .fail_in(
                    "mfa-registration",
                    &user.name,
                    Some(user),
                    "wrong code",
                    client,
                )
                .await;
            return Err(DomainError::WrongCode);
        };
        let new = NewAuthenticator {
            public_id,
            user_id: user.id,
            kind: "app",
            sealed_seed: sealed_text,
            digits: self.policy.totp.digits,
            period: self.policy.totp.period,
            last_step: Some(i64::try_from(step).unwrap_or(i64::MAX)),
            created_at: now,
            yubikey_serial: None,
        };
        self.db(move |store| store.add_authenticator(&new, replace))
            .await?;
        self.pending.remove(&session.id_hash);
        self.audit(
            AuditEvent::new("mfa-registration", Outcome::Success)
                .actor(&user.name)
                .reason(if replace {
                    "authenticator app replaced"
                } else {
                    "authenticator app registered"
                })
                .client(client),
        )
        .await;
        Ok(())
    }

    /// Allow this session to replace the user's authenticator after it
    /// re-entered a current code (accepted once, like any code).
    pub async fn allow_replacement(
        &self,
        session: &Session,
        user: &UserRow,
        code: &str,
        client: std::net::IpAddr,
    ) -> Result<()> {
        let now = self.now();
        let user_id = user.id;
        let authenticators = self
            .db(move |store| store.authenticators_of(user_id))
            .await?;
        let code = code.trim();
        if self.policy.totp.check_code_shape(code).is_err() {
            return Err(DomainError::WrongCode);
        }
        match self.verify_code(&authenticators, code, now).await? {
            super::signin::CodeCheck::Accepted => {
                lock(&self.pending.replace_allowed).insert(
                    session.id_hash.clone(),
                    now + self.policy.enrollment_lifetime,
                );
                Ok(())
            }
            _ => {
                let _: Result<()> = self
                    .fail_in(
                        "mfa-replacement",
                        &user.name,
                        Some(user),
                        "wrong current code",
                        client,
                    )
                    .await;
                Err(DomainError::WrongCode)
            }
        }
    }

    fn render_enrollment(&self, user: &UserRow, pending: &Pending) -> Result<EnrollmentView> {
        let secret = Zeroizing::new(BASE32_NOPAD.encode(&pending.seed));
        let policy: TotpPolicy = self.policy.totp;
        let issuer = urlencoding::encode(&self.policy.issuer);
        let account = urlencoding::encode(&user.name);
        let uri = Zeroizing::new(format!(
            "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm={}&digits={}&period={}",
            secret.as_str(),
            self.policy.algorithm.as_str(),
            policy.digits,
            policy.period
        ));
        let code = QrCode::new(uri.as_bytes())
            .map_err(|error| DomainError::Internal(format!("QR code: {error}")))?;
        let svg = code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(240, 240)
            .quiet_zone(true)
            .build();
        let svg = match svg.find("<svg") {
            Some(start) => svg[start..].to_owned(),
            None => svg,
        };
        let mut grouped = Zeroizing::new(String::with_capacity(secret.len() * 5 / 4));
        for (index, character) in secret.chars().enumerate() {
            if index > 0 && index % 4 == 0 {
                grouped.push(' ');
            }
            grouped.push(character);
        }
        Ok(EnrollmentView {
            qr_svg: Zeroizing::new(svg),
            security_key: grouped,
            expires_at: pending.expires_at,
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
