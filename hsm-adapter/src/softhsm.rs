//! SoftHSM2 as a development and test token, kept in a directory of its own.
//!
//! Each token directory gets its own `softhsm2.conf`, so nothing system-wide
//! changes. SoftHSM reads the file named by `SOFTHSM2_CONF` when the module
//! is initialised, which is why one process serves one SoftHSM directory.
#![allow(unsafe_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Result, VaultError};

const CONFIG_FILE: &str = "softhsm2.conf";
const TOKEN_DIR: &str = "tokens";

/// The configuration file of a SoftHSM directory.
pub fn config_path(dir: &Path) -> PathBuf {
    dir.join(CONFIG_FILE)
}

/// Create `dir` with a token store and a configuration that points at it.
/// Existing tokens in `dir` are left alone.
pub fn prepare_dir(dir: &Path) -> Result<PathBuf> {
    let setup_error = |error: std::io::Error| VaultError::SoftHsmSetup {
        path: dir.display().to_string(),
        reason: error.to_string(),
    };
    let tokens = dir.join(TOKEN_DIR);
    fs::create_dir_all(&tokens).map_err(setup_error)?;
    restrict_to_owner(dir).map_err(setup_error)?;
    restrict_to_owner(&tokens).map_err(setup_error)?;
    let tokens = fs::canonicalize(&tokens).map_err(setup_error)?;
    let config = config_path(dir);
    let text = format!(
        "# SoftHSM2 configuration for a gatehouse token directory.\n\
         directories.tokendir = {}\n\
         objectstore.backend = file\n\
         log.level = ERROR\n\
         slots.removable = false\n",
        tokens.display()
    );
    fs::write(&config, text).map_err(setup_error)?;
    Ok(config)
}

fn restrict_to_owner(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
}

static ENVIRONMENT: Mutex<()> = Mutex::new(());

/// Make the next SoftHSM initialisation in this process read `config`.
pub(crate) fn point_to_config(config: &Path) {
    let _guard = ENVIRONMENT.lock();
    // SAFETY: the variable is only read by SoftHSM inside C_Initialize, which
    // runs after this returns; writes are serialised by ENVIRONMENT. Nothing
    // else in this process reads SOFTHSM2_CONF concurrently.
    unsafe { std::env::set_var("SOFTHSM2_CONF", config) };
}
