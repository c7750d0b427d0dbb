//! `hsm keygen`: add key version N+1.

use std::process::ExitCode;

use hsm_adapter::TokenAdmin;

use super::{module_config, print_json, user_pin};
use crate::cli::TokenArgs;
use crate::exit::Failure;

#[derive(serde::Serialize)]
struct KeygenReport {
    created_version: u32,
    active_version: u32,
    key_versions: Vec<u32>,
}

pub fn run(token: &TokenArgs, json: bool) -> Result<ExitCode, Failure> {
    let pin = user_pin(token)?;
    let admin = TokenAdmin::open(&module_config(token), &token.label, &pin, token.wrap_scheme)?;
    let version = admin.add_key_version()?;
    let versions = admin.key_versions()?;
    if json {
        print_json(&KeygenReport {
            created_version: version,
            active_version: versions.iter().copied().max().unwrap_or(version),
            key_versions: versions,
        })?;
    } else {
        println!("Created key version {version}; it is now the active version.");
        println!(
            "Seeds sealed under older versions still verify; rewrap them to move them to version {version}."
        );
    }
    Ok(ExitCode::SUCCESS)
}
