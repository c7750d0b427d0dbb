//! One live connection to the token: an initialised module context, the
//! token's slot, a logged-in session that holds the login, and the key ring.
//!
//! A connection has a generation number. When the token faults, the vault
//! finalises the connection and opens a new one with the next generation;
//! worker sessions of an older generation are then abandoned, never reused.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use cryptoki::context::Pkcs11;
use cryptoki::mechanism::MechanismType;
use cryptoki::session::Session;
use cryptoki::slot::Slot;
use secrecy::SecretString;

use crate::error::{Result, VaultError};
use crate::keys::{KeyPair, KeyRing};
use crate::module::{self, ModuleConfig};

/// Start-up attempts before giving up (covers the multi-process
/// initialisation race).
const STARTUP_ATTEMPTS: u32 = 8;

pub(crate) struct Connection {
    pub generation: u64,
    pub pkcs11: Pkcs11,
    pub module_path: PathBuf,
    pub slot: Slot,
    /// Keeps the user logged in: PKCS#11 logs out when a process's last
    /// session closes. Also used for infrequent work (scans, health).
    pub login_session: Mutex<Session>,
    pub keys: RwLock<KeyRing>,
    pub mechanisms: Vec<MechanismType>,
}

impl Connection {
    /// Initialise the module, find the token, log in and scan the keys,
    /// retrying from scratch on transient failures.
    pub fn open(
        config: &ModuleConfig,
        label: &str,
        pin: &SecretString,
        generation: u64,
        attempts: Option<u32>,
    ) -> Result<Connection> {
        let (pkcs11, module_path, (slot, login_session, ring, mechanisms)) =
            module::with_fresh_context(
                config,
                attempts.unwrap_or(STARTUP_ATTEMPTS),
                |pkcs11, path| {
                    let slot = module::find_token(pkcs11, path, label)?;
                    let session = pkcs11
                        .open_rw_session_no_drop(slot)
                        .map_err(VaultError::pkcs11)?;
                    module::login(&session, pin)?;
                    let ring = KeyRing::scan(&session)?;
                    let mechanisms = pkcs11
                        .get_mechanism_list(slot)
                        .map_err(VaultError::pkcs11)?;
                    Ok((slot, session, ring, mechanisms))
                },
            )?;
        Ok(Connection {
            generation,
            pkcs11,
            module_path,
            slot,
            login_session: Mutex::new(login_session),
            keys: RwLock::new(ring),
            mechanisms,
        })
    }

    pub fn module_path(&self) -> &Path {
        &self.module_path
    }

    /// Open a worker session. Sessions are opened "no drop": a session that
    /// outlives its connection must not close a handle that a newer context
    /// may have handed out again. Live sessions are closed explicitly.
    pub fn open_session(&self) -> Result<Session> {
        self.pkcs11
            .open_rw_session_no_drop(self.slot)
            .map_err(VaultError::pkcs11)
    }

    /// The key pair of `version`, rescanning the token once if it is not
    /// known yet (another process may have added it).
    pub fn key_pair(&self, session: &Session, version: u32) -> Result<KeyPair> {
        if let Some(pair) = self.read_keys().get(version) {
            return Ok(pair);
        }
        self.rescan(session)?;
        self.read_keys()
            .get(version)
            .ok_or(VaultError::UnknownKeyVersion(version))
    }

    /// The active key version as last scanned. A version added by another
    /// process (`device-tools hsm keygen`) is picked up by the next rescan
    /// (`Vault::refresh_keys`, `Vault::health`).
    pub fn active_pair(&self) -> Result<(u32, KeyPair)> {
        self.read_keys().active()
    }

    pub fn rescan(&self, session: &Session) -> Result<()> {
        let ring = KeyRing::scan(session)?;
        match self.keys.write() {
            Ok(mut keys) => *keys = ring,
            Err(poisoned) => *poisoned.into_inner() = ring,
        }
        Ok(())
    }

    pub fn read_keys(&self) -> std::sync::RwLockReadGuard<'_, KeyRing> {
        self.keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn add_pair(&self, version: u32, pair: KeyPair) {
        match self.keys.write() {
            Ok(mut keys) => keys.insert(version, pair),
            Err(poisoned) => poisoned.into_inner().insert(version, pair),
        }
    }

    /// A cheap check that the session and token still answer and the active
    /// wrapping key is still there.
    pub fn probe(&self, session: &Session) -> Result<()> {
        session.get_session_info().map_err(VaultError::pkcs11)?;
        let (_, pair) = self.read_keys().active()?;
        crate::keys::read_key_attributes(session, pair.wrap)?;
        Ok(())
    }

    /// Finalise the module context. Every session of this connection dies.
    pub fn finalize(self) {
        let Connection {
            pkcs11,
            login_session,
            ..
        } = self;
        // Abandoned without C_CloseSession: C_Finalize closes it.
        drop(login_session);
        module::finalize(pkcs11);
    }
}
