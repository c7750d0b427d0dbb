//! Reading PINs: from a file, from the environment, or from a prompt on the
//! terminal. Never from a plain command-line argument, which other users can
//! read in the process list.

use std::path::Path;

use hsm_adapter::SecretString;
use zeroize::Zeroizing;

use crate::exit::{self, Failure};

/// Which PIN, for messages and for its environment variable.
#[derive(Debug, Clone, Copy)]
pub enum PinKind {
    User,
    SecurityOfficer,
    AccessCode,
    NewAccessCode,
}

impl PinKind {
    fn env_var(self) -> &'static str {
        match self {
            PinKind::User => "GATEHOUSE_PIN",
            PinKind::SecurityOfficer => "GATEHOUSE_SO_PIN",
            PinKind::AccessCode => "GATEHOUSE_ACCESS_CODE",
            PinKind::NewAccessCode => "GATEHOUSE_NEW_ACCESS_CODE",
        }
    }

    fn name(self) -> &'static str {
        match self {
            PinKind::User => "user PIN",
            PinKind::SecurityOfficer => "security officer PIN",
            PinKind::AccessCode => "OATH access code",
            PinKind::NewAccessCode => "new OATH access code",
        }
    }

    fn file_flag(self) -> &'static str {
        match self {
            PinKind::User => "--pin-file",
            PinKind::SecurityOfficer => "--so-pin-file",
            PinKind::AccessCode => "--access-code-file",
            PinKind::NewAccessCode => "--new-code-file",
        }
    }
}

/// Read a PIN from `file`, else the environment, else the terminal.
/// `confirm` asks twice at the prompt (for a PIN being set).
pub fn read_pin(
    kind: PinKind,
    file: Option<&Path>,
    confirm: bool,
) -> Result<SecretString, Failure> {
    if let Some(file) = file {
        let text = Zeroizing::new(std::fs::read_to_string(file).map_err(|error| {
            Failure::new(
                exit::PIN,
                format!(
                    "cannot read the {} from {}: {error}",
                    kind.name(),
                    file.display()
                ),
            )
        })?);
        return non_empty(kind, text.trim_end_matches(['\r', '\n']));
    }
    if let Ok(value) = std::env::var(kind.env_var()) {
        let value = Zeroizing::new(value);
        return non_empty(kind, &value);
    }
    prompt(kind, confirm)
}

fn non_empty(kind: PinKind, pin: &str) -> Result<SecretString, Failure> {
    if pin.is_empty() {
        return Err(Failure::new(
            exit::PIN,
            format!("the {} is empty", kind.name()),
        ));
    }
    Ok(SecretString::from(pin.to_owned()))
}

fn prompt(kind: PinKind, confirm: bool) -> Result<SecretString, Failure> {
    let no_terminal = || {
        Failure::new(
            exit::PIN,
            format!(
                "no {} given: use {} FILE or ${}, or run on a terminal to be prompted",
                kind.name(),
                kind.file_flag(),
                kind.env_var()
            ),
        )
    };
    let first = Zeroizing::new(
        rpassword::prompt_password(format!("{}: ", capitalised(kind.name())))
            .map_err(|_| no_terminal())?,
    );
    if confirm {
        let second = Zeroizing::new(
            rpassword::prompt_password(format!("{} again: ", capitalised(kind.name())))
                .map_err(|_| no_terminal())?,
        );
        if *first != *second {
            return Err(Failure::new(
                exit::PIN,
                format!("the two {}s differ", kind.name()),
            ));
        }
    }
    non_empty(kind, &first)
}

fn capitalised(text: &str) -> String {
    let mut characters = text.chars();
    match characters.next() {
        Some(first) => first.to_uppercase().chain(characters).collect(),
        None => String::new(),
    }
}
