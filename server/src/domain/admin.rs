//! Administration: users, MFA enforcement, resets, unlocks, the audit log.
//! Used by the admin pages and by the `gatehouse user …` commands alike.

use std::sync::Arc;

use secrecy::SecretString;

use super::audit::{self, AuditEvent, Outcome};
use super::names::validate_user_name;
use super::{DomainError, Passwords, Result};
use crate::clock::Clock;
use crate::store::{AuditRow, NewUser, Store, UserRow};

/// A user as the admin list shows it.
#[derive(Debug, Clone)]
pub struct UserOverview {
    pub id: i64,
    pub name: String,
    pub is_admin: bool,
    pub force_mfa: bool,
    pub authenticators: u32,
    /// Each authenticator's kind (`app` or `yubikey`) and YubiKey serial.
    pub devices: Vec<(String, Option<String>)>,
    pub locked_until: u64,
    pub failed_attempts: u32,
    pub created_at: u64,
    /// External clients the user is signed in to.
    pub client_sign_ins: u32,
}

impl UserOverview {
    /// "app, YubiKey 12345678": the authenticators as a person reads them.
    pub fn describe_devices(&self) -> String {
        self.devices
            .iter()
            .map(|(kind, serial)| match (kind.as_str(), serial) {
                ("yubikey", Some(serial)) => format!("YubiKey {serial}"),
                ("yubikey", None) => "YubiKey".to_owned(),
                _ => "app".to_owned(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Admin operations on behalf of `actor` (a user name, or `cli`). The store
/// calls block: from async code, run them with `spawn_blocking`.
#[derive(Clone)]
pub struct AdminOps {
    pub store: Arc<Store>,
    pub passwords: Arc<Passwords>,
    pub clock: Clock,
    pub actor: String,
    pub client: Option<String>,
}

/// A new user's details.
pub struct NewAccount {
    pub name: String,
    pub password: SecretString,
    pub is_admin: bool,
    pub force_mfa: bool,
    /// The password is a one-time password: the user must change it.
    pub must_change_password: bool,
}

impl AdminOps {
    pub(super) fn record(&self, event: &'static str, subject: &str, reason: impl Into<String>) {
        let mut entry = AuditEvent::new(event, Outcome::Success)
            .actor(&self.actor)
            .subject(subject)
            .reason(reason);
        entry.client = self.client.clone();
        audit::record(&self.store, entry, self.clock.now());
    }

    /// Blocking: call from a blocking thread or a CLI.
    pub fn create_user_blocking(&self, account: NewAccount, password_hash: String) -> Result<i64> {
        validate_user_name(&account.name)?;
        let id = self.store.create_user(&NewUser {
            name: account.name.clone(),
            password_hash,
            is_admin: account.is_admin,
            force_mfa: account.force_mfa,
            must_change_password: account.must_change_password,
            created_at: self.clock.now(),
        })?;
        let mut flags = Vec::new();
        if account.is_admin {
            flags.push("administrator");
        }
        if account.force_mfa {
            flags.push("MFA enforced");
        }
        self.record("user-created", &account.name, flags.join(", "));
        Ok(id)
    }

    /// Hash the password (off the executor) and create the user.
    pub async fn create_user(&self, account: NewAccount) -> Result<i64> {
        validate_user_name(&account.name)?;
        let hash = self.passwords.hash(account.password.clone()).await?;
        self.create_user_blocking(account, hash)
    }

    pub fn user(&self, name: &str) -> Result<UserRow> {
        self.store
            .user_by_name(name)?
            .ok_or(DomainError::NoSuchUser)
    }

    pub fn user_by_id(&self, id: i64) -> Result<UserRow> {
        self.store.user_by_id(id)?.ok_or(DomainError::NoSuchUser)
    }

    pub fn set_force_mfa(&self, user: &UserRow, on: bool) -> Result<()> {
        self.store.set_force_mfa(user.id, on)?;
        self.record(
            if on { "force-mfa-on" } else { "force-mfa-off" },
            &user.name,
            if on {
                "MFA enforced"
            } else {
                "MFA no longer enforced"
            },
        );
        Ok(())
    }

    /// Remove every authenticator of the user and end their sessions. With
    /// MFA enforced, their next sign-in registers a new one.
    pub fn reset_mfa(&self, user: &UserRow) -> Result<usize> {
        let removed = self.store.delete_authenticators(user.id)?;
        self.store.delete_sessions_of(user.id)?;
        let grants = self
            .store
            .revoke_grants_of_user(user.id, self.clock.now(), "MFA reset")?;
        self.record(
            "mfa-reset",
            &user.name,
            format!("{removed} authenticator(s) removed, {grants} client sign-in(s) revoked"),
        );
        Ok(removed)
    }

    /// Sign the user out of every external client: revoke all their tokens.
    pub fn revoke_client_sign_ins(&self, user: &UserRow) -> Result<usize> {
        let revoked = self.store.revoke_grants_of_user(
            user.id,
            self.clock.now(),
            "revoked by an administrator",
        )?;
        self.record(
            "oauth-revoke",
            &user.name,
            format!("{revoked} client sign-in(s) revoked by an administrator"),
        );
        Ok(revoked)
    }

    pub fn unlock(&self, user: &UserRow) -> Result<()> {
        self.store.clear_failures(user.id)?;
        self.record("unlock", &user.name, "failed attempts cleared");
        Ok(())
    }

    pub fn set_password_blocking(
        &self,
        user: &UserRow,
        password_hash: String,
        must_change: bool,
    ) -> Result<()> {
        self.store
            .set_password(user.id, &password_hash, must_change)?;
        self.store.delete_sessions_of(user.id)?;
        self.store
            .revoke_grants_of_user(user.id, self.clock.now(), "password changed")?;
        self.record(
            "password-set",
            &user.name,
            if must_change {
                "one-time password set"
            } else {
                "password changed"
            },
        );
        Ok(())
    }

    pub fn users(&self) -> Result<Vec<UserOverview>> {
        let mut devices: std::collections::HashMap<i64, Vec<(String, Option<String>)>> =
            Default::default();
        for authenticator in self.store.all_authenticators()? {
            devices
                .entry(authenticator.user_id)
                .or_default()
                .push((authenticator.kind, authenticator.yubikey_serial));
        }
        let grants: std::collections::HashMap<i64, u32> = self
            .store
            .live_grant_counts(self.clock.now())?
            .into_iter()
            .collect();
        Ok(self
            .store
            .list_users()?
            .into_iter()
            .map(|summary| UserOverview {
                client_sign_ins: grants.get(&summary.user.id).copied().unwrap_or(0),
                devices: devices.remove(&summary.user.id).unwrap_or_default(),
                id: summary.user.id,
                name: summary.user.name,
                is_admin: summary.user.is_admin,
                force_mfa: summary.user.force_mfa,
                authenticators: summary.authenticators,
                locked_until: summary.user.locked_until,
                failed_attempts: summary.user.failed_attempts,
                created_at: summary.user.created_at,
            })
            .collect())
    }

    pub fn audit_log(&self, limit: u32) -> Result<Vec<AuditRow>> {
        Ok(self.store.recent_audit(limit)?)
    }
}
