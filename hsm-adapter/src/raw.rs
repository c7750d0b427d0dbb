//! The one place that calls the PKCS#11 C interface directly.
//!
//! `cryptoki` parses the whole `CK_TOKEN_INFO`, including the token's clock,
//! and fails on tokens that report the clock in a non-standard form. Finding
//! a token by label must still work there, so this reads the label alone.
#![allow(unsafe_code)]

use std::path::Path;

use crate::error::{Result, VaultError};

pub(crate) fn token_label(module_path: &Path, slot_id: u64) -> Result<String> {
    let load_error = |reason: String| VaultError::ModuleLoad {
        path: module_path.display().to_string(),
        reason,
    };
    // SAFETY: loading the module that this process already loaded and
    // initialised only raises its reference count; no initialiser of it runs
    // again. The handle is dropped at the end of this function.
    let library = unsafe { cryptoki_sys::Pkcs11::new(module_path) }
        .map_err(|error| load_error(error.to_string()))?;
    let get_token_info = library
        .C_GetTokenInfo
        .as_ref()
        .map_err(|error| load_error(error.to_string()))?;
    let mut info = cryptoki_sys::CK_TOKEN_INFO::default();
    // SAFETY: `info` is a valid, writable CK_TOKEN_INFO, the module is
    // initialised, and `library` outlives the call.
    let rv = unsafe { get_token_info(slot_id as cryptoki_sys::CK_SLOT_ID, &mut info) };
    if rv != cryptoki_sys::CKR_OK {
        return Err(VaultError::Pkcs11(crate::error::Pkcs11Failure::raw(
            "C_GetTokenInfo",
            rv,
        )));
    }
    Ok(String::from_utf8_lossy(&info.label).trim_end().to_owned())
}
