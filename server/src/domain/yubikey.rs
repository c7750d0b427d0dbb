//! Provisioning a YubiKey as a user's authenticator, driven by an admin
//! tool over the admin API: the server makes and seals a seed, hands it to
//! the tool once, and activates the authenticator only when a code the key
//! calculated confirms it. Until then nothing is stored: the pending
//! registration lives in memory and expires.

use std::collections::HashMap;
use std::sync::Mutex;

use hsm_adapter::{SealedSeed, VerifyRequest};
use zeroize::Zeroizing;

use super::audit::{AuditEvent, Outcome};
use super::signin::authenticator_owner;
use super::{DomainError, Gatehouse, Result};
use crate::store::NewAuthenticator;

/// How long a pending YubiKey registration waits for its confirming code.
pub const PENDING_SECONDS: u64 = 300;
/// Wrong confirming codes before the pending registration is withdrawn.
const MAX_WRONG_CODES: u32 = 3;

#[derive(Default)]
pub struct PendingYubikeys {
    entries: Mutex<HashMap<String, PendingYubikey>>,
}

struct PendingYubikey {
    user_id: i64,
    user_name: String,
    public_id: String,
    sealed: SealedSeed,
    expires_at: u64,
    wrong_codes: u32,
    actor: String,
}

/// What the tool needs to program the key, handed over once.
pub struct YubikeyOffer {
    pub enrollment_id: String,
    pub credential_name: String,
    pub seed: Zeroizing<Vec<u8>>,
    pub digits: u8,
    pub period: u64,
    pub algorithm: &'static str,
    pub expires_at: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Gatehouse {
    pub async fn offer_yubikey(&self, user_name: &str, actor: &str) -> Result<YubikeyOffer> {
        let now = self.now();
        let name = user_name.to_owned();
        let user = self
            .db(move |store| store.user_by_name(&name))
            .await?
            .ok_or(DomainError::NoSuchUser)?;
        let public_id = crate::random::token(12);
        let algorithm = self.policy.algorithm;
        let seed = self.vault.generate_seed(algorithm).await?;
        let sealed = self
            .vault
            .seal(
                authenticator_owner(user.id, &public_id)?,
                algorithm,
                seed.clone(),
            )
            .await?;
        let enrollment_id = crate::random::token(16);
        let expires_at = now + PENDING_SECONDS;
        {
            let mut entries = lock(&self.yubikeys.entries);
            entries.retain(|_, pending| pending.expires_at > now);
            entries.insert(
                enrollment_id.clone(),
                PendingYubikey {
                    user_id: user.id,
                    user_name: user.name.clone(),
                    public_id,
                    sealed,
                    expires_at,
                    wrong_codes: 0,
                    actor: actor.to_owned(),
                },
            );
        }
        self.audit(
            AuditEvent::new("yubikey-registration-started", Outcome::Success)
                .actor(actor)
                .subject(&user.name),
        )
        .await;
        Ok(YubikeyOffer {
            enrollment_id,
            credential_name: format!("{}:{}", self.policy.issuer, user.name),
            seed,
            digits: self.policy.totp.digits,
            period: self.policy.totp.period,
            algorithm: algorithm.as_str(),
            expires_at,
        })
    }

    /// Activate a pending YubiKey with a code it calculated.
    pub async fn confirm_yubikey(
        &self,
        enrollment_id: &str,
        code: &str,
        serial: Option<String>,
    ) -> Result<String> {
        let now = self.now();
        let (request, user_id, user_name, public_id, actor) = {
            let mut entries = lock(&self.yubikeys.entries);
            entries.retain(|_, pending| pending.expires_at > now);
            let pending = entries
                .get(enrollment_id)
                .ok_or(DomainError::NoPendingEnrollment)?;
            (
                VerifyRequest {
                    owner: authenticator_owner(pending.user_id, &pending.public_id)?,
                    sealed: pending.sealed.clone(),
                    code: code.trim().to_owned(),
                    policy: self.policy.totp,
                    now,
                },
                pending.user_id,
                pending.user_name.clone(),
                pending.public_id.clone(),
                pending.actor.clone(),
            )
        };
        if self.policy.totp.check_code_shape(&request.code).is_err() {
            return Err(DomainError::WrongCode);
        }
        let sealed_text = request.sealed.to_string();
        let Some(step) = self.vault.verify(request).await? else {
            {
                let mut entries = lock(&self.yubikeys.entries);
                if let Some(pending) = entries.get_mut(enrollment_id) {
                    pending.wrong_codes += 1;
                    if pending.wrong_codes >= MAX_WRONG_CODES {
                        entries.remove(enrollment_id);
                    }
                }
            }
            self.audit(
                AuditEvent::new("yubikey-registration", Outcome::Failure)
                    .actor(&actor)
                    .subject(&user_name)
                    .reason("wrong code from the key"),
            )
            .await;
            return Err(DomainError::WrongCode);
        };
        let removed = lock(&self.yubikeys.entries).remove(enrollment_id).is_some();
        if !removed {
            return Err(DomainError::NoPendingEnrollment);
        }
        let new = NewAuthenticator {
            public_id,
            user_id,
            kind: "yubikey",
            sealed_seed: sealed_text,
            digits: self.policy.totp.digits,
            period: self.policy.totp.period,
            last_step: Some(i64::try_from(step).unwrap_or(i64::MAX)),
            created_at: now,
            yubikey_serial: serial.clone(),
        };
        self.db(move |store| store.add_authenticator(&new, false))
            .await?;
        self.audit(
            AuditEvent::new("yubikey-registration", Outcome::Success)
                .actor(&actor)
                .subject(&user_name)
                .reason(format!(
                    "YubiKey registered (serial {})",
                    serial.as_deref().unwrap_or("unknown")
                )),
        )
        .await;
        Ok(user_name)
    }

    /// Withdraw a pending YubiKey registration (the tool failed part-way).
    pub async fn withdraw_yubikey(&self, enrollment_id: &str) -> bool {
        let removed = lock(&self.yubikeys.entries).remove(enrollment_id);
        if let Some(pending) = &removed {
            self.audit(
                AuditEvent::new("yubikey-registration", Outcome::Failure)
                    .actor(&pending.actor)
                    .subject(&pending.user_name)
                    .reason("withdrawn by the provisioning tool"),
            )
            .await;
        }
        removed.is_some()
    }
}
