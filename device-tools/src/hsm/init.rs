//! `hsm init`: create the token if needed, then key version 1.

use std::path::Path;
use std::process::ExitCode;

use hsm_adapter::{TokenAdmin, TokenInit};

use super::{module_config, print_json, user_pin};
use crate::cli::TokenArgs;
use crate::exit::{self, Failure};
use crate::secrets::{self, PinKind};

#[derive(serde::Serialize)]
struct InitReport<'a> {
    label: &'a str,
    module: String,
    softhsm_dir: Option<String>,
    token_created: bool,
    key_version_created: Option<u32>,
    key_versions: Vec<u32>,
}

pub fn run(token: &TokenArgs, so_pin_file: Option<&Path>, json: bool) -> Result<ExitCode, Failure> {
    if let Some(dir) = &token.softhsm {
        hsm_adapter::softhsm::prepare_dir(dir)?;
    }
    let config = module_config(token);
    let module = config.resolve_module_path()?;
    let exists = hsm_adapter::token_exists(&config, &token.label)?;
    let pin = if exists {
        user_pin(token)?
    } else {
        let so_pin = secrets::read_pin(PinKind::SecurityOfficer, so_pin_file, true)?;
        let pin = secrets::read_pin(PinKind::User, token.pin_file.as_deref(), true)?;
        if hsm_adapter::init_token(&config, &token.label, &so_pin, &pin)?
            == TokenInit::AlreadyPresent
        {
            return Err(Failure::new(
                exit::PROBLEM_FOUND,
                format!(
                    "token {:?} appeared while initialising; run the command again",
                    token.label
                ),
            ));
        }
        pin
    };
    let admin = TokenAdmin::open(&config, &token.label, &pin, token.wrap_scheme)?;
    let before = admin.key_versions()?;
    let created = if before.is_empty() {
        Some(admin.add_key_version()?)
    } else {
        None
    };
    let report = InitReport {
        label: &token.label,
        module: module.display().to_string(),
        softhsm_dir: token.softhsm.as_ref().map(|dir| dir.display().to_string()),
        token_created: !exists,
        key_version_created: created,
        key_versions: admin.key_versions()?,
    };
    if json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    match (&token.softhsm, exists) {
        (Some(dir), false) => println!(
            "Created SoftHSM token {:?} in {}",
            token.label,
            dir.display()
        ),
        (None, false) => println!(
            "Initialised token {:?} in {}",
            token.label,
            module.display()
        ),
        (_, true) => println!("Token {:?} already exists; left as it was", token.label),
    }
    match created {
        Some(version) => println!(
            "Created key version {version} (gatehouse-wrap-v{version}, gatehouse-bind-v{version}): sensitive, never extractable"
        ),
        None => println!(
            "Key versions already present: {}; nothing to create (use `device-tools hsm keygen` to add one)",
            join(&report.key_versions)
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn join(versions: &[u32]) -> String {
    versions
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
