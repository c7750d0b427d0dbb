//! Loading a PKCS#11 module, finding the token by label and logging in.
//!
//! A module is initialised once per process. Opening survives the start-up
//! race seen when several processes initialise SoftHSM at once: a failed
//! attempt is finalised and retried from scratch, with back-off.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CryptokiError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use secrecy::SecretString;

use crate::error::{Result, VaultError};
use crate::raw;

/// Where SoftHSM2's module is installed on common distributions.
pub const SOFTHSM_MODULE_PATHS: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/lib/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
];

/// Which module to load, and for SoftHSM, which configuration file it reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleConfig {
    /// The PKCS#11 module. `None` means SoftHSM2 at its usual place.
    pub module_path: Option<PathBuf>,
    /// A `softhsm2.conf` to use instead of the system one (SoftHSM reads
    /// `SOFTHSM2_CONF` when the module is initialised).
    pub softhsm_config: Option<PathBuf>,
}

impl ModuleConfig {
    /// A SoftHSM token kept in `dir`, with its own configuration file.
    pub fn softhsm_dir(dir: &Path) -> Self {
        ModuleConfig {
            module_path: None,
            softhsm_config: Some(crate::softhsm::config_path(dir)),
        }
    }

    /// The module that will be loaded.
    pub fn resolve_module_path(&self) -> Result<PathBuf> {
        match &self.module_path {
            Some(path) => Ok(path.clone()),
            None => SOFTHSM_MODULE_PATHS
                .iter()
                .map(PathBuf::from)
                .find(|path| path.exists())
                .ok_or(VaultError::NoModuleFound),
        }
    }
}

/// Load and initialise the module. Never call twice in a process without
/// finalising the first context.
pub(crate) fn initialize(config: &ModuleConfig) -> Result<(Pkcs11, PathBuf)> {
    let path = config.resolve_module_path()?;
    if !path.exists() {
        return Err(VaultError::ModuleLoad {
            path: path.display().to_string(),
            reason: "no such file".to_owned(),
        });
    }
    if let Some(softhsm_config) = &config.softhsm_config {
        crate::softhsm::point_to_config(softhsm_config);
    }
    let pkcs11 = Pkcs11::new(&path).map_err(|error| VaultError::ModuleLoad {
        path: path.display().to_string(),
        reason: error.to_string(),
    })?;
    match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) => {}
        // Another part of this process initialised the module: share it.
        Err(CryptokiError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(error) => return Err(VaultError::pkcs11(error)),
    }
    Ok((pkcs11, path))
}

/// Finalise a context, ignoring errors: used on the way out or before a retry.
pub(crate) fn finalize(pkcs11: Pkcs11) {
    if let Err(error) = pkcs11.finalize() {
        tracing::debug!(%error, "C_Finalize failed while dropping a PKCS#11 context");
    }
}

/// Retry `attempt` with a fresh module context each time until it succeeds,
/// a non-transient error occurs, or `attempts` are used up.
pub(crate) fn with_fresh_context<T>(
    config: &ModuleConfig,
    attempts: u32,
    mut attempt: impl FnMut(&Pkcs11, &Path) -> Result<T>,
) -> Result<(Pkcs11, PathBuf, T)> {
    let mut delay = Duration::from_millis(20);
    let mut tries = 0;
    loop {
        tries += 1;
        let outcome = initialize(config).and_then(|(pkcs11, path)| match attempt(&pkcs11, &path) {
            Ok(value) => Ok((pkcs11, path, value)),
            Err(error) => {
                finalize(pkcs11);
                Err(error)
            }
        });
        match outcome {
            Ok(done) => return Ok(done),
            Err(error) if tries < attempts && is_transient_at_startup(&error) => {
                tracing::debug!(%error, tries, "PKCS#11 start-up attempt failed; retrying");
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(500));
            }
            Err(error) => return Err(error),
        }
    }
}

fn is_transient_at_startup(error: &VaultError) -> bool {
    matches!(
        error,
        VaultError::Pkcs11(_) | VaultError::TokenNotFound { .. }
    )
}

/// Find the slot whose token carries `label`. Token info that `cryptoki`
/// cannot parse (some tokens report their clock in a non-standard form) is
/// read raw, for the label alone.
pub(crate) fn find_token(pkcs11: &Pkcs11, module_path: &Path, label: &str) -> Result<Slot> {
    let slots = pkcs11.get_slots_with_token().map_err(VaultError::pkcs11)?;
    for slot in slots {
        if token_label(pkcs11, module_path, slot)?.as_deref() == Some(label) {
            return Ok(slot);
        }
    }
    Err(VaultError::TokenNotFound {
        label: label.to_owned(),
        module: module_path.display().to_string(),
    })
}

/// The label of the token in `slot`, or `None` for an uninitialised token.
pub(crate) fn token_label(
    pkcs11: &Pkcs11,
    module_path: &Path,
    slot: Slot,
) -> Result<Option<String>> {
    match pkcs11.get_token_info(slot) {
        Ok(info) if !info.token_initialized() => Ok(None),
        Ok(info) => Ok(Some(info.label().trim_end().to_owned())),
        Err(CryptokiError::Pkcs11(rv, function)) => {
            Err(VaultError::pkcs11(CryptokiError::Pkcs11(rv, function)))
        }
        Err(parse_error) => {
            tracing::debug!(%parse_error, slot = slot.id(), "token info unparseable; reading the label raw");
            raw::token_label(module_path, slot.id()).map(Some)
        }
    }
}

/// Log the normal user in. Login state is shared by all sessions of the
/// process, so "already logged in" is success.
pub(crate) fn login(session: &Session, pin: &SecretString) -> Result<()> {
    match session.login(UserType::User, Some(pin)) {
        Ok(()) => Ok(()),
        Err(CryptokiError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(error) => Err(login_error(error)),
    }
}

pub(crate) fn login_error(error: CryptokiError) -> VaultError {
    match error {
        CryptokiError::Pkcs11(
            RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange,
            _,
        ) => VaultError::WrongPin,
        CryptokiError::Pkcs11(RvError::PinLocked, _) => VaultError::PinLocked,
        other => VaultError::pkcs11(other),
    }
}
