//! Command-line syntax (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the operation ran and found a problem (a failed self-test vector, an unhealthy token)
  2  usage error
  3  the PKCS#11 module is missing or cannot be loaded
  4  no token with that label
  5  PIN missing, wrong or locked
  6  the token failed or refused an operation
  7  the token has no gatehouse keys yet";

/// Provision Gatehouse's hardware: PKCS#11 tokens and their keys.
#[derive(Debug, Parser)]
#[command(name = "device-tools", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// PKCS#11 token: initialise, inspect, add key versions, self-test.
    #[command(subcommand)]
    Hsm(HsmCommand),
}

/// Which token to use, and how to log in. PINs are never taken as plain
/// arguments: give a file, an environment variable, or type them at a prompt.
#[derive(Debug, Args, Clone)]
pub struct TokenArgs {
    /// PKCS#11 module to load (default: SoftHSM2 at its usual place).
    #[arg(long, env = "GATEHOUSE_PKCS11_MODULE", value_name = "PATH")]
    pub module: Option<PathBuf>,

    /// Use a SoftHSM token kept in DIR, with its own softhsm2.conf.
    #[arg(long, env = "GATEHOUSE_SOFTHSM_DIR", value_name = "DIR")]
    pub softhsm: Option<PathBuf>,

    /// Label of the token.
    #[arg(long, env = "GATEHOUSE_TOKEN_LABEL", default_value = "gatehouse")]
    pub label: String,

    /// File holding the user PIN (else $GATEHOUSE_PIN, else a prompt).
    #[arg(long, env = "GATEHOUSE_PIN_FILE", value_name = "FILE")]
    pub pin_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum HsmCommand {
    /// Create the token if needed (with --softhsm, in DIR) and key version 1.
    Init {
        #[command(flatten)]
        token: TokenArgs,
        /// File holding the security officer PIN, needed to initialise a
        /// new token (else $GATEHOUSE_SO_PIN, else a prompt).
        #[arg(long, env = "GATEHOUSE_SO_PIN_FILE", value_name = "FILE")]
        so_pin_file: Option<PathBuf>,
    },
    /// Module and token info, mechanisms required vs present, key versions.
    Status {
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Add key version N+1; it becomes the active version.
    Keygen {
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Run the RFC 6238 test vectors (SHA-1/256/512) through the token.
    Selftest {
        #[command(flatten)]
        token: TokenArgs,
    },
}
