//! The vault's typed errors.
//!
//! Every PKCS#11 failure names the function that failed and its return value
//! (`C_UnwrapKey returned CKR_GENERAL_ERROR`), so an operator can look it up in
//! the token vendor's documentation. Nothing here ever carries key material.

use std::fmt;

use cryptoki::context::Function;
use cryptoki::error::{Error as CryptokiError, RvError};

/// A PKCS#11 call that failed: which function, and what it returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkcs11Failure {
    /// `C_` name of the function, e.g. `C_UnwrapKey`.
    pub function: String,
    /// `CKR_` name of the return value, e.g. `CKR_GENERAL_ERROR`.
    pub return_value: String,
    rv: Option<RvError>,
}

impl Pkcs11Failure {
    pub(crate) fn from_cryptoki(error: &CryptokiError) -> Self {
        match error {
            CryptokiError::Pkcs11(rv, function) => Pkcs11Failure {
                function: function_name(*function),
                return_value: return_value_name(*rv),
                rv: Some(*rv),
            },
            other => Pkcs11Failure {
                function: "cryptoki".to_owned(),
                return_value: other.to_string(),
                rv: None,
            },
        }
    }

    /// A failure seen by a direct call to the C interface.
    pub(crate) fn raw(function: &str, ck_rv: cryptoki_sys::CK_RV) -> Self {
        match cryptoki::error::Rv::from(ck_rv) {
            cryptoki::error::Rv::Error(rv) => Pkcs11Failure {
                function: function.to_owned(),
                return_value: return_value_name(rv),
                rv: Some(rv),
            },
            cryptoki::error::Rv::Ok => Pkcs11Failure {
                function: function.to_owned(),
                return_value: "CKR_OK".to_owned(),
                rv: None,
            },
        }
    }

    /// The raw return value, where the failure was a PKCS#11 return value.
    pub fn rv(&self) -> Option<RvError> {
        self.rv
    }
}

impl fmt::Display for Pkcs11Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} returned {}", self.function, self.return_value)
    }
}

/// Everything that can go wrong in the vault.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(
        "no PKCS#11 module configured and none of SoftHSM2's usual module paths exists: install softhsm2 or configure a module path"
    )]
    NoModuleFound,
    #[error("cannot load the PKCS#11 module {path}: {reason}")]
    ModuleLoad { path: String, reason: String },
    #[error(
        "no token labelled {label:?} in module {module}: check the label, or initialise the token with `device-tools hsm init`"
    )]
    TokenNotFound { label: String, module: String },
    #[error("token {label:?} has no free slot to initialise a new token in")]
    NoFreeSlot { label: String },
    #[error("the token refused the PIN: check the PIN source")]
    WrongPin,
    #[error("the token's PIN is locked: unlock it with the token's administration tools")]
    PinLocked,
    #[error(
        "the token holds no gatehouse key versions: create them with `device-tools hsm init` or `device-tools hsm keygen`"
    )]
    NoKeys,
    #[error(
        "key version {0} is not on the token (it may have been deleted): restore the token from a backup"
    )]
    UnknownKeyVersion(u32),
    #[error(
        "key version {0} was being created by another process at the same time: run the command again"
    )]
    KeyVersionTaken(u32),
    #[error("the token made a key that is not as asked ({0}); refusing to use it")]
    KeyPolicyViolated(String),
    #[error("no wrap scheme for new seals: {0}")]
    NoWrapScheme(String),
    #[error("sealing on the host failed: {0}")]
    HostSeal(String),
    #[error("the token lacks required mechanisms: {0}")]
    MechanismsMissing(String),
    #[error("sealed seed record is malformed: {0}")]
    MalformedRecord(&'static str),
    #[error("sealed seed does not belong to this owner, or it was altered")]
    BindingMismatch,
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    #[error("{0}")]
    Pkcs11(Pkcs11Failure),
    #[error("the token is unavailable ({reason}); failing closed until it returns")]
    Unavailable { reason: String },
    #[error("the vault is overloaded: too many token operations are queued, try again")]
    Busy,
    #[error("the vault has shut down")]
    ShutDown,
    #[error("cannot write SoftHSM configuration in {path}: {reason}")]
    SoftHsmSetup { path: String, reason: String },
}

impl VaultError {
    pub(crate) fn pkcs11(error: CryptokiError) -> Self {
        VaultError::Pkcs11(Pkcs11Failure::from_cryptoki(&error))
    }

    /// The return value of the PKCS#11 call that failed, if this is such an error.
    pub fn rv(&self) -> Option<RvError> {
        match self {
            VaultError::Pkcs11(failure) => failure.rv(),
            _ => None,
        }
    }

    /// Errors that mean the device, module or session is gone, as opposed to
    /// a bad request or a record that does not verify.
    pub(crate) fn is_device_fault(&self) -> bool {
        match self {
            VaultError::Pkcs11(failure) => match failure.rv() {
                Some(rv) => matches!(
                    rv,
                    RvError::DeviceError
                        | RvError::DeviceMemory
                        | RvError::DeviceRemoved
                        | RvError::TokenNotPresent
                        | RvError::TokenNotRecognized
                        | RvError::SessionClosed
                        | RvError::SessionHandleInvalid
                        | RvError::SessionCount
                        | RvError::CryptokiNotInitialized
                        | RvError::UserNotLoggedIn
                        | RvError::SlotIdInvalid
                        | RvError::KeyHandleInvalid
                        | RvError::ObjectHandleInvalid
                        | RvError::FunctionFailed
                ),
                // Library-level failures (a null function pointer, a
                // conversion error) say the module itself misbehaved.
                None => true,
            },
            VaultError::TokenNotFound { .. } | VaultError::NoKeys => true,
            _ => false,
        }
    }
}

pub type Result<T, E = VaultError> = std::result::Result<T, E>;

/// `UnwrapKey` → `C_UnwrapKey`.
fn function_name(function: Function) -> String {
    format!("C_{function:?}")
}

/// `GeneralError` → `CKR_GENERAL_ERROR`.
fn return_value_name(rv: RvError) -> String {
    let camel = format!("{rv:?}");
    let mut name = String::from("CKR_");
    for (index, character) in camel.chars().enumerate() {
        if character.is_ascii_uppercase() && index > 0 {
            name.push('_');
        }
        name.push(character.to_ascii_uppercase());
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_function_and_return_value_as_the_standard_spells_them() {
        let error = VaultError::pkcs11(CryptokiError::Pkcs11(
            RvError::GeneralError,
            Function::UnwrapKey,
        ));
        assert_eq!(error.to_string(), "C_UnwrapKey returned CKR_GENERAL_ERROR");
        assert_eq!(error.rv(), Some(RvError::GeneralError));
    }

    #[test]
    fn device_removal_is_a_fault_but_a_bad_signature_is_not() {
        let removed = VaultError::pkcs11(CryptokiError::Pkcs11(
            RvError::DeviceRemoved,
            Function::Sign,
        ));
        let bad_tag = VaultError::pkcs11(CryptokiError::Pkcs11(
            RvError::SignatureInvalid,
            Function::Verify,
        ));
        assert!(removed.is_device_fault());
        assert!(!bad_tag.is_device_fault());
    }
}
