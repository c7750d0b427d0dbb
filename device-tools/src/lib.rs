//! The admin CLI that provisions hardware: PKCS#11 tokens and their keys
//! (with SoftHSM as the fallback token).
//!
//! Each subcommand lives in its own module and returns a typed outcome; this
//! file maps failures to exit codes and messages.

pub mod cli;
mod enroll;
mod exit;
mod hsm;
mod secrets;
pub mod ykoath;
mod yubikey;

use std::process::ExitCode;

pub use exit::Failure;

/// Run a parsed command line; print its output and return the exit code.
pub fn run(cli: cli::Cli) -> ExitCode {
    let json = cli.json;
    let outcome = match cli.command {
        cli::Command::Hsm(command) => hsm::run(command, json),
        cli::Command::Yubikey(command) => yubikey::run(command, json),
    };
    match outcome {
        Ok(code) => code,
        Err(failure) => failure.report(json),
    }
}
