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
use crate::keys::{KeyPair, KeyRing, WrapKind};
use crate::module::{self, ModuleConfig};
use crate::sealed::{TotpAlgorithm, WrapScheme};

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
    /// Held while the key ring is rescanned or a version is made, so that a
    /// scan that began before a new version existed cannot replace the ring
    /// after that version was added.
    key_work: Mutex<()>,
    pub mechanisms: Vec<MechanismType>,
    pub tokens: TokenAbilities,
}

/// What this token can do for the vault: the wrap schemes it carries (best
/// first) and its shortest HMAC keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenAbilities {
    pub schemes: Vec<WrapScheme>,
    /// The scheme an administrator asked for, if any (else the best one).
    pub preferred: Option<WrapScheme>,
    /// Shortest HMAC key per algorithm (SHA-1, SHA-256, SHA-512), in bytes.
    pub hmac_min: [usize; 3],
}

impl TokenAbilities {
    /// Read from the token: a scheme counts when its mechanism is listed with
    /// the flags it needs (AES: wrap and unwrap; RSA-OAEP: unwrap, plus RSA
    /// key-pair generation).
    pub fn read(
        pkcs11: &Pkcs11,
        slot: Slot,
        mechanisms: &[MechanismType],
        preferred: Option<WrapScheme>,
    ) -> TokenAbilities {
        let info = |mechanism: MechanismType| {
            mechanisms
                .contains(&mechanism)
                .then(|| pkcs11.get_mechanism_info(slot, mechanism).ok())
                .flatten()
        };
        let schemes = WrapScheme::PREFERENCE
            .into_iter()
            .filter(|scheme| {
                match scheme {
                    WrapScheme::AesKeyWrapPad => info(MechanismType::AES_KEY_WRAP_PAD),
                    WrapScheme::AesKeyWrap => info(MechanismType::AES_KEY_WRAP),
                    WrapScheme::AesCbcPad => info(MechanismType::AES_CBC_PAD),
                    WrapScheme::RsaOaep => info(MechanismType::RSA_PKCS_OAEP),
                }
                .is_some_and(|info| {
                    if scheme.uses_rsa() {
                        info.unwrap() && mechanisms.contains(&MechanismType::RSA_PKCS_KEY_PAIR_GEN)
                    } else {
                        info.wrap() && info.unwrap()
                    }
                })
            })
            .collect();
        let hmac_min = TotpAlgorithm::ALL.map(|algorithm| {
            let mechanism = match algorithm {
                TotpAlgorithm::Sha1 => MechanismType::SHA1_HMAC,
                TotpAlgorithm::Sha256 => MechanismType::SHA256_HMAC,
                TotpAlgorithm::Sha512 => MechanismType::SHA512_HMAC,
            };
            let reported = info(mechanism).map(|info| info.min_key_size());
            match reported {
                // Some tokens report HMAC key sizes in bits.
                Some(size) if size > algorithm.block_len() => size / 8,
                Some(size) => size,
                // Not said: assume the strictest tokens measured (SoftHSM).
                None => algorithm.seed_len(),
            }
        });
        TokenAbilities {
            schemes,
            preferred,
            hmac_min,
        }
    }

    pub fn hmac_min(&self, algorithm: TotpAlgorithm) -> usize {
        let index = match algorithm {
            TotpAlgorithm::Sha1 => 0,
            TotpAlgorithm::Sha256 => 1,
            TotpAlgorithm::Sha512 => 2,
        };
        self.hmac_min[index]
    }

    /// The scheme new key versions are made for: the preferred one, else
    /// the best the token carries.
    pub fn keygen_scheme(&self) -> Result<WrapScheme> {
        match self.preferred {
            Some(scheme) if self.schemes.contains(&scheme) => Ok(scheme),
            Some(scheme) => Err(VaultError::NoWrapScheme(format!(
                "{scheme} was asked for, but the token does not offer {} for wrapping",
                scheme.mechanism_name()
            ))),
            None => self.schemes.first().copied().ok_or_else(|| {
                VaultError::NoWrapScheme(
                    "the token offers none of CKM_AES_KEY_WRAP_PAD, CKM_AES_KEY_WRAP, CKM_AES_CBC_PAD, CKM_RSA_PKCS_OAEP for wrapping"
                        .to_owned(),
                )
            }),
        }
    }

    /// The scheme for new seals under a key version whose wrapping key is
    /// `kind`: the preferred one, else the best the token carries for it.
    pub fn seal_scheme(&self, kind: WrapKind) -> Result<WrapScheme> {
        if let Some(scheme) = self.preferred
            && WrapKind::of(scheme) == kind
            && self.schemes.contains(&scheme)
        {
            return Ok(scheme);
        }
        if self.preferred.is_none()
            && let Some(&scheme) = self.schemes.iter().find(|s| WrapKind::of(**s) == kind)
        {
            return Ok(scheme);
        }
        let offered: Vec<&str> = self.schemes.iter().map(|s| s.as_str()).collect();
        Err(VaultError::NoWrapScheme(format!(
            "the active key version has an {kind} wrapping key, but {} (the token offers: {}); \
             make a new key version for it with `device-tools hsm keygen`",
            match self.preferred {
                Some(scheme) => format!("{scheme} was asked for"),
                None => "the token cannot wrap with it".to_owned(),
            },
            if offered.is_empty() {
                "none".to_owned()
            } else {
                offered.join(", ")
            }
        )))
    }
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
        preferred: Option<WrapScheme>,
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
        let tokens = TokenAbilities::read(&pkcs11, slot, &mechanisms, preferred);
        Ok(Connection {
            tokens,
            generation,
            pkcs11,
            module_path,
            slot,
            login_session: Mutex::new(login_session),
            keys: RwLock::new(ring),
            key_work: Mutex::new(()),
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

    /// The active key version and the scheme new seals use under it.
    pub fn active_sealing(&self) -> Result<(u32, KeyPair, WrapScheme)> {
        let (version, pair) = self.active_pair()?;
        let scheme = self.tokens.seal_scheme(pair.wrap.kind())?;
        Ok((version, pair, scheme))
    }

    pub fn rescan(&self, session: &Session) -> Result<()> {
        let _work = self.key_work();
        self.replace_ring(session)
    }

    fn key_work(&self) -> std::sync::MutexGuard<'_, ()> {
        self.key_work
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Make key version N+1 for the scheme new versions get; it becomes the
    /// active version. Another process may take a version at the same
    /// moment: then the next one is tried.
    pub fn generate_version(&self, session: &Session) -> Result<u32> {
        let kind = WrapKind::of(self.tokens.keygen_scheme()?);
        let _work = self.key_work();
        let mut attempts = 0;
        loop {
            self.replace_ring(session)?;
            let version = self.read_keys().next_version();
            match crate::keys::generate_pair(session, version, kind) {
                Ok(pair) => {
                    self.add_pair(version, pair);
                    return Ok(version);
                }
                Err(VaultError::KeyVersionTaken(_)) if attempts < 4 => attempts += 1,
                Err(error) => return Err(error),
            }
        }
    }

    fn replace_ring(&self, session: &Session) -> Result<()> {
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
        crate::keys::read_key_attributes(session, pair.wrap.unwrapping())?;
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
