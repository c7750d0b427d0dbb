//! Failures and the exit codes they map to (listed in `--help`).

use std::process::ExitCode;

use hsm_adapter::VaultError;

/// A command that could not do its work, with the exit code that says why.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

pub const PROBLEM_FOUND: u8 = 1;
pub const USAGE: u8 = 2;
const MODULE: u8 = 3;
const TOKEN_MISSING: u8 = 4;
pub const PIN: u8 = 5;
const TOKEN_FAULT: u8 = 6;
const NO_KEYS: u8 = 7;
const NO_CARD: u8 = 8;
pub const CARD_REFUSED: u8 = 9;
pub const SERVER: u8 = 10;
pub const NOT_SIGNED_IN: u8 = 11;

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub fn report(self, json: bool) -> ExitCode {
        if json {
            let body = serde_json::json!({ "error": self.message, "exit_code": self.code });
            println!("{body}");
        }
        eprintln!("error: {}", self.message);
        ExitCode::from(self.code)
    }
}

impl From<VaultError> for Failure {
    fn from(error: VaultError) -> Self {
        let code = match &error {
            VaultError::NoModuleFound | VaultError::ModuleLoad { .. } => MODULE,
            VaultError::TokenNotFound { .. } | VaultError::NoFreeSlot { .. } => TOKEN_MISSING,
            VaultError::WrongPin | VaultError::PinLocked => PIN,
            VaultError::NoKeys => NO_KEYS,
            VaultError::SoftHsmSetup { .. } | VaultError::InvalidRequest(_) => USAGE,
            _ => TOKEN_FAULT,
        };
        Failure::new(code, error.to_string())
    }
}

impl From<crate::ykoath::OathError> for Failure {
    fn from(error: crate::ykoath::OathError) -> Self {
        use crate::ykoath::OathError;
        let code = match &error {
            OathError::Pcsc(_)
            | OathError::NoReader
            | OathError::NoSuchReader(_)
            | OathError::NoCard => NO_CARD,
            OathError::AccessCodeRequired | OathError::WrongAccessCode => PIN,
            _ => CARD_REFUSED,
        };
        Failure::new(code, error.to_string())
    }
}
