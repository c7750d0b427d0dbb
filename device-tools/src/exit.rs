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
