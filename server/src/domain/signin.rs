//! Signing in: user name, password, and (when an authenticator is
//! registered) a code, verified inside the token and accepted once.

use std::net::IpAddr;

use hsm_adapter::{Owner, SealedSeed, TotpPolicy, VerifyRequest};
use secrecy::SecretString;

use super::audit::{AuditEvent, Outcome};
use super::names::validate_user_name;
use super::{DomainError, Gatehouse, Result};
use crate::store::{AuthenticatorRow, UserRow};

/// What the Sign In form carries.
pub struct Credentials {
    pub name: String,
    pub password: SecretString,
    pub code: String,
    pub client: IpAddr,
}

/// Where a correct sign-in leads.
#[derive(Debug)]
pub enum SignInOutcome {
    SignedIn {
        user: UserRow,
        mfa: bool,
    },
    /// MFA is enforced and no authenticator is registered yet.
    MustEnroll {
        user: UserRow,
    },
}

/// The vault owner of an authenticator's sealed seed.
pub fn authenticator_owner(user_id: i64, public_id: &str) -> Result<Owner> {
    Owner::new(format!("user:{user_id}/authenticator:{public_id}"))
        .map_err(|error| DomainError::Internal(error.to_string()))
}

impl Gatehouse {
    pub async fn sign_in(&self, credentials: Credentials) -> Result<SignInOutcome> {
        let now = self.now();
        let client = credentials.client;
        let name = credentials.name.trim().to_owned();
        let attempt = Attempt {
            event: "sign-in",
            name: &name,
            limited: Some(client),
            client,
            via: "",
        };
        let user = self.admit(&attempt, now).await?;
        let stored_hash = user.as_ref().map(|user| user.password_hash.clone());
        let password_ok = self
            .passwords
            .verify(stored_hash, credentials.password)
            .await?;
        let user = match user {
            Some(user) if password_ok => user,
            Some(user) => {
                return self
                    .fail(&name, Some(&user), "wrong password", client)
                    .await;
            }
            None => return self.fail(&name, None, "unknown user", client).await,
        };

        let user_id = user.id;
        let authenticators = self
            .db(move |store| store.authenticators_of(user_id))
            .await?;
        if authenticators.is_empty() {
            self.succeed(&user).await?;
            if user.force_mfa {
                self.audit(
                    AuditEvent::new("sign-in", Outcome::Success)
                        .actor(&user.name)
                        .reason("password accepted; MFA is enforced, registration required")
                        .client(client),
                )
                .await;
                return Ok(SignInOutcome::MustEnroll { user });
            }
            self.audit(
                AuditEvent::new("sign-in", Outcome::Success)
                    .actor(&user.name)
                    .reason("password (no authenticator registered)")
                    .client(client),
            )
            .await;
            return Ok(SignInOutcome::SignedIn { user, mfa: false });
        }

        let code = credentials.code.trim();
        if code.is_empty() {
            return self
                .fail(&name, Some(&user), "authenticator code missing", client)
                .await;
        }
        if self.policy.totp.check_code_shape(code).is_err() {
            return self
                .fail(&name, Some(&user), "malformed authenticator code", client)
                .await;
        }
        match self.verify_code(&authenticators, code, now).await {
            Ok(CodeCheck::Accepted) => {
                self.succeed(&user).await?;
                self.audit(
                    AuditEvent::new("sign-in", Outcome::Success)
                        .actor(&user.name)
                        .reason("password and authenticator code")
                        .client(client),
                )
                .await;
                Ok(SignInOutcome::SignedIn { user, mfa: true })
            }
            Ok(CodeCheck::Replayed) => {
                self.fail(
                    &name,
                    Some(&user),
                    "authenticator code already used",
                    client,
                )
                .await
            }
            Ok(CodeCheck::Wrong) => {
                self.fail(&name, Some(&user), "wrong authenticator code", client)
                    .await
            }
            Err(error) => {
                self.audit(
                    AuditEvent::new("sign-in", Outcome::Failure)
                        .actor(&user.name)
                        .reason(format!("token error: {error}"))
                        .client(client),
                )
                .await;
                Err(error)
            }
        }
    }

    /// The validation API: is `code` the current code of `name`'s
    /// authenticator? The browser's rules apply: a code is accepted once,
    /// failures lock the account with back-off, unknown names fail (and
    /// lock) alike, and `client` (the end user's address, when the calling
    /// service passes it on) is limited per minute.
    pub async fn validate_code(
        &self,
        name: &str,
        code: &str,
        client: Option<IpAddr>,
        caller: IpAddr,
        service: &str,
    ) -> Result<()> {
        let now = self.now();
        let name = name.trim().to_owned();
        let seen_from = client.unwrap_or(caller);
        let via = format!(" (via {service})");
        let attempt = Attempt {
            event: "validate",
            name: &name,
            limited: client,
            client: seen_from,
            via: &via,
        };
        let user = self.admit(&attempt, now).await?;
        let fail = |reason: &str| format!("{reason} (via {service})");
        let Some(user) = user else {
            return self
                .fail_in("validate", &name, None, &fail("unknown user"), seen_from)
                .await;
        };
        let user_id = user.id;
        let authenticators = self
            .db(move |store| store.authenticators_of(user_id))
            .await?;
        let code = code.trim();
        let problem = if authenticators.is_empty() {
            Some("no authenticator registered")
        } else if self.policy.totp.check_code_shape(code).is_err() {
            Some("malformed authenticator code")
        } else {
            None
        };
        if let Some(problem) = problem {
            return self
                .fail_in("validate", &name, Some(&user), &fail(problem), seen_from)
                .await;
        }
        let reason = match self.verify_code(&authenticators, code, now).await? {
            CodeCheck::Accepted => {
                self.succeed(&user).await?;
                self.audit(
                    AuditEvent::new("validate", Outcome::Success)
                        .actor(&user.name)
                        .reason(format!("authenticator code accepted (via {service})"))
                        .client(seen_from),
                )
                .await;
                return Ok(());
            }
            CodeCheck::Replayed => "authenticator code already used",
            CodeCheck::Wrong => "wrong authenticator code",
        };
        self.fail_in("validate", &name, Some(&user), &fail(reason), seen_from)
            .await
    }

    /// The checks before any credential: the address's rate, then the
    /// account (or unknown name) lock. Returns the account, if the name is
    /// one; a name that cannot exist is looked up as no one.
    async fn admit(&self, attempt: &Attempt<'_>, now: u64) -> Result<Option<UserRow>> {
        let refuse = |reason: &str, client: IpAddr| {
            AuditEvent::new(attempt.event, Outcome::Failure)
                .actor(attempt.name)
                .reason(format!("{reason}{}", attempt.via))
                .client(client)
        };
        if let Some(address) = attempt.limited
            && !self.addresses.allow(address, now)
        {
            self.audit(refuse("too many attempts from this address", address))
                .await;
            return Err(DomainError::AddressLimited);
        }
        let user = if validate_user_name(attempt.name).is_ok() {
            let lookup = attempt.name.to_owned();
            self.db(move |store| store.user_by_name(&lookup)).await?
        } else {
            None
        };
        let locked_for = match &user {
            Some(user) => (user.locked_until > now).then(|| user.locked_until - now),
            None => self.unknown_names.locked_for(attempt.name, now),
        };
        if let Some(retry_after) = locked_for {
            self.audit(refuse("account locked", attempt.client)).await;
            return Err(DomainError::LockedOut { retry_after });
        }
        Ok(user)
    }

    /// Check `code` against a user's authenticators; a matching code is
    /// accepted only if its time step is newer than any accepted before
    /// (atomically in the store, so two processes cannot both accept it).
    pub(crate) async fn verify_code(
        &self,
        authenticators: &[AuthenticatorRow],
        code: &str,
        now: u64,
    ) -> Result<CodeCheck> {
        let mut replayed = false;
        for authenticator in authenticators {
            let sealed: SealedSeed = authenticator
                .sealed_seed
                .parse()
                .map_err(|error| DomainError::Internal(format!("stored authenticator: {error}")))?;
            let request = VerifyRequest {
                owner: authenticator_owner(authenticator.user_id, &authenticator.public_id)?,
                sealed,
                code: code.to_owned(),
                policy: TotpPolicy {
                    digits: authenticator.digits,
                    period: authenticator.period,
                    window: self.policy.totp.window,
                },
                now,
            };
            let Some(step) = self.vault.verify(request).await? else {
                continue;
            };
            let id = authenticator.id;
            if self.db(move |store| store.accept_step(id, step)).await? {
                return Ok(CodeCheck::Accepted);
            }
            replayed = true;
        }
        Ok(if replayed {
            CodeCheck::Replayed
        } else {
            CodeCheck::Wrong
        })
    }

    async fn succeed(&self, user: &UserRow) -> Result<()> {
        if user.failed_attempts > 0 {
            let id = user.id;
            self.db(move |store| store.clear_failures(id)).await?;
        }
        Ok(())
    }

    /// Count a failure against the account (or the unknown name), lock with
    /// back-off when due, audit, and answer with the one failure message.
    pub(crate) async fn fail<T>(
        &self,
        name: &str,
        user: Option<&UserRow>,
        reason: &str,
        client: IpAddr,
    ) -> Result<T> {
        self.fail_in("sign-in", name, user, reason, client).await
    }

    pub(crate) async fn fail_in<T>(
        &self,
        event: &'static str,
        name: &str,
        user: Option<&UserRow>,
        reason: &str,
        client: IpAddr,
    ) -> Result<T> {
        let now = self.now();
        let policy = self.policy.lockout;
        let lock = match user {
            Some(user) => {
                let id = user.id;
                let failures = self.db(move |store| store.add_failure(id)).await?;
                match policy.lock_after(failures) {
                    Some(delay) => {
                        self.db(move |store| store.set_locked_until(id, now + delay))
                            .await?;
                        Some(delay)
                    }
                    None => None,
                }
            }
            None => self.unknown_names.fail(name, now, &policy),
        };
        self.audit(
            AuditEvent::new(event, Outcome::Failure)
                .actor(name)
                .reason(reason)
                .client(client),
        )
        .await;
        if let Some(delay) = lock {
            // Unknown names lock silently in the log too: only accounts are
            // audited as locked, but both answer alike.
            if user.is_some() {
                self.audit(
                    AuditEvent::new("lockout", Outcome::Success)
                        .subject(name)
                        .reason(format!("locked for {delay} s after repeated failures"))
                        .client(client),
                )
                .await;
            }
        }
        Err(DomainError::SignInFailed)
    }
}

/// One attempt to prove who one is, as the checks before the credentials
/// see it.
struct Attempt<'a> {
    event: &'static str,
    name: &'a str,
    /// The address whose rate is limited, if known.
    limited: Option<IpAddr>,
    /// The address audited.
    client: IpAddr,
    /// Added to audited reasons: which service asked.
    via: &'a str,
}

/// The result of checking a code against a user's authenticators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodeCheck {
    Accepted,
    Replayed,
    Wrong,
}
