//! The admin CLI that provisions hardware: PKCS#11 tokens and their keys
//! (with SoftHSM as the fallback token).
//!
//! Each subcommand lives in its own module and returns a typed outcome; this
//! file maps failures to exit codes and messages.

pub mod cli;
mod enroll;
mod exit;
mod hsm;
mod login;
mod secrets;
pub mod ykoath;
mod yubikey;

use std::process::ExitCode;

pub use exit::Failure;

/// The one place device-tools reads the clock (Unix seconds).
#[allow(clippy::disallowed_methods)]
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// Run a parsed command line; print its output and return the exit code.
pub fn run(cli: cli::Cli) -> ExitCode {
    let json = cli.json;
    let outcome = match cli.command {
        cli::Command::Hsm(command) => hsm::run(command, json),
        cli::Command::Yubikey(command) => yubikey::run(command, json),
        cli::Command::Login {
            server,
            device_code,
            no_browser,
            client_id,
            scope,
            timeout,
            saved,
        } => login::login(&login::Login {
            server: &server,
            client_id: &client_id,
            scope: &scope,
            device_code,
            open_browser: !no_browser,
            credentials: saved.credentials.as_deref(),
            ca_file: saved.ca_file.as_deref(),
            timeout: std::time::Duration::from_secs(timeout),
            json,
            now: now(),
        }),
        cli::Command::Whoami { server, saved } => login::whoami(
            server.as_deref(),
            saved.credentials.as_deref(),
            saved.ca_file.as_deref(),
            json,
            now(),
        ),
        cli::Command::Logout { saved } => {
            login::logout(saved.credentials.as_deref(), saved.ca_file.as_deref())
        }
    };
    match outcome {
        Ok(code) => code,
        Err(failure) => failure.report(json),
    }
}
