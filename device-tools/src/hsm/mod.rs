//! `device-tools hsm …`: PKCS#11 token provisioning.

mod init;
mod keygen;
mod selftest;
mod status;

use std::process::ExitCode;

use hsm_adapter::{ModuleConfig, SecretString};

use crate::cli::{HsmCommand, TokenArgs};
use crate::exit::Failure;
use crate::secrets::{self, PinKind};

pub fn run(command: HsmCommand, json: bool) -> Result<ExitCode, Failure> {
    match command {
        HsmCommand::Init { token, so_pin_file } => init::run(&token, so_pin_file.as_deref(), json),
        HsmCommand::Status { token } => status::run(&token, json),
        HsmCommand::Keygen { token } => keygen::run(&token, json),
        HsmCommand::Selftest { token } => selftest::run(&token, json),
    }
}

/// The module to load, from `--module` and `--softhsm`.
fn module_config(token: &TokenArgs) -> ModuleConfig {
    let mut config = match &token.softhsm {
        Some(dir) => ModuleConfig::softhsm_dir(dir),
        None => ModuleConfig::default(),
    };
    config.module_path.clone_from(&token.module);
    config
}

fn user_pin(token: &TokenArgs) -> Result<SecretString, Failure> {
    secrets::read_pin(PinKind::User, token.pin_file.as_deref(), false)
}

/// Print `value` as one line of JSON.
fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).map_err(|error| {
        Failure::new(
            crate::exit::PROBLEM_FOUND,
            format!("cannot encode JSON: {error}"),
        )
    })?;
    println!("{text}");
    Ok(())
}
