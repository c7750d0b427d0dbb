//! Preparing a token: initialising it, and adding key versions.
//!
//! These run in admin tools, not in the server: they open their own
//! connection (no worker pool) and finalise it when dropped.

use cryptoki::error::{Error as CryptokiError, RvError};
use cryptoki::session::UserType;
use secrecy::SecretString;

use crate::connection::Connection;
use crate::error::{Result, VaultError};
use crate::health::{self, Health};
use crate::module::{self, ModuleConfig};
use crate::sealed::WrapScheme;

/// What `init_token` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenInit {
    /// A new token was initialised with the label and PINs.
    Created,
    /// A token with the label already existed; it was left as it was.
    AlreadyPresent,
}

/// Whether the module has a token labelled `label`.
pub fn token_exists(config: &ModuleConfig, label: &str) -> Result<bool> {
    let (pkcs11, _, found) = module::with_fresh_context(config, 4, |pkcs11, path| {
        match module::find_token(pkcs11, path, label) {
            Ok(_) => Ok(true),
            Err(VaultError::TokenNotFound { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    })?;
    module::finalize(pkcs11);
    Ok(found)
}

/// Make sure a token labelled `label` exists: when none does, initialise the
/// first uninitialised token of the module with the SO PIN and set its user
/// PIN. An existing token is left alone.
pub fn init_token(
    config: &ModuleConfig,
    label: &str,
    so_pin: &SecretString,
    user_pin: &SecretString,
) -> Result<TokenInit> {
    let (pkcs11, _, outcome) = module::with_fresh_context(config, 4, |pkcs11, path| {
        match module::find_token(pkcs11, path, label) {
            Ok(_) => return Ok(TokenInit::AlreadyPresent),
            Err(VaultError::TokenNotFound { .. }) => {}
            Err(error) => return Err(error),
        }
        let slots = pkcs11.get_slots_with_token().map_err(VaultError::pkcs11)?;
        let mut free = None;
        for slot in slots {
            if module::token_label(pkcs11, path, slot)?.is_none() {
                free = Some(slot);
                break;
            }
        }
        let slot = free.ok_or_else(|| VaultError::NoFreeSlot {
            label: label.to_owned(),
        })?;
        pkcs11
            .init_token(slot, so_pin, label)
            .map_err(module::login_error)?;
        // SoftHSM moves an initialised token to a new slot: find it again.
        let slot = module::find_token(pkcs11, path, label)?;
        let session = pkcs11.open_rw_session(slot).map_err(VaultError::pkcs11)?;
        session
            .login(UserType::So, Some(so_pin))
            .map_err(module::login_error)?;
        session.init_pin(user_pin).map_err(VaultError::pkcs11)?;
        match session.logout() {
            Ok(()) | Err(CryptokiError::Pkcs11(RvError::UserNotLoggedIn, _)) => {}
            Err(error) => return Err(VaultError::pkcs11(error)),
        }
        Ok(TokenInit::Created)
    })?;
    module::finalize(pkcs11);
    Ok(outcome)
}

/// An admin's connection to the token, for provisioning and inspection.
/// Unlike the vault it needs no key versions to open.
pub struct TokenAdmin {
    connection: Option<Connection>,
}

impl TokenAdmin {
    /// `preferred`: the wrap scheme new key versions are made for (else the
    /// best the token offers).
    pub fn open(
        config: &ModuleConfig,
        label: &str,
        pin: &SecretString,
        preferred: Option<WrapScheme>,
    ) -> Result<TokenAdmin> {
        let connection = Connection::open(config, label, pin, 1, None, preferred)?;
        Ok(TokenAdmin {
            connection: Some(connection),
        })
    }

    fn connection(&self) -> Result<&Connection> {
        self.connection.as_ref().ok_or(VaultError::ShutDown)
    }

    /// The key versions present, highest last.
    pub fn key_versions(&self) -> Result<Vec<u32>> {
        let connection = self.connection()?;
        Ok(connection.read_keys().versions().map(|(v, _)| v).collect())
    }

    /// Create key version N+1 (1 on a fresh token) and make it active.
    pub fn add_key_version(&self) -> Result<u32> {
        let connection = self.connection()?;
        let session = lock_session(connection);
        connection.generate_version(&session)
    }

    /// The token's label as read straight from `C_GetTokenInfo`, the path
    /// used for tokens whose info `cryptoki` cannot parse.
    pub fn raw_token_label(&self) -> Result<String> {
        let connection = self.connection()?;
        crate::raw::token_label(connection.module_path(), connection.slot.id())
    }

    pub fn health(&self) -> Result<Health> {
        let connection = self.connection()?;
        let session = lock_session(connection);
        connection.rescan(&session)?;
        health::report(&session, connection)
    }
}

fn lock_session(connection: &Connection) -> std::sync::MutexGuard<'_, cryptoki::session::Session> {
    connection
        .login_session
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Drop for TokenAdmin {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            connection.finalize();
        }
    }
}
