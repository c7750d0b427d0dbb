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
  7  the token has no gatehouse keys yet
  8  no reader or card, or the card was removed
  9  the card refused (full, no such credential, touch not given, wrong access code)
 10  the Gatehouse server could not be reached or refused";

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
    /// YubiKey OATH applet over PC/SC.
    #[command(subcommand)]
    Yubikey(YubikeyCommand),
}

/// Which card, and its access code. Access codes are never plain arguments.
#[derive(Debug, Args, Clone)]
pub struct CardArgs {
    /// Use the reader whose name contains this text.
    #[arg(long, env = "GATEHOUSE_READER")]
    pub reader: Option<String>,
    /// File holding the OATH access code, if one is set (else
    /// $GATEHOUSE_ACCESS_CODE, else a prompt when the card asks for one).
    #[arg(long, env = "GATEHOUSE_ACCESS_CODE_FILE", value_name = "FILE")]
    pub access_code_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum YubikeyCommand {
    /// Smart-card readers and the OATH applets in them.
    List,
    /// The credentials stored in the OATH applet.
    Accounts {
        #[command(flatten)]
        card: CardArgs,
    },
    /// Current codes (touch credentials: touch the key when it blinks).
    Code {
        #[command(flatten)]
        card: CardArgs,
        /// Only the credential with this name.
        #[arg(long)]
        name: Option<String>,
        /// Codes for this moment (Unix seconds) instead of now.
        #[arg(long, value_name = "UNIX_SECONDS")]
        at: Option<u64>,
    },
    /// Register the key as a user's authenticator on a Gatehouse server, in
    /// one step: the server makes the seed, the key stores it, a code from
    /// the key confirms it. Nothing stays half-registered.
    Enroll {
        /// The Gatehouse server.
        #[arg(long, env = "GATEHOUSE_URL")]
        server: String,
        /// The user the key is for.
        #[arg(long)]
        user: String,
        /// File holding an admin API token (`gatehouse token create --admin`);
        /// else $GATEHOUSE_TOKEN.
        #[arg(long, env = "GATEHOUSE_TOKEN_FILE", value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// A PEM file with the CA certificate(s) to trust for the server,
        /// besides the system's.
        #[arg(long, env = "GATEHOUSE_CA_FILE", value_name = "FILE")]
        ca_file: Option<PathBuf>,
        /// Credential name on the key (default: "<issuer>:<user>").
        #[arg(long)]
        name: Option<String>,
        /// Do not require a touch for each code (touch is required by default).
        #[arg(long)]
        no_touch: bool,
        #[command(flatten)]
        card: CardArgs,
    },
    /// Delete one credential.
    Delete {
        name: String,
        #[command(flatten)]
        card: CardArgs,
    },
    /// Set or clear the applet's access code.
    AccessCode {
        #[command(subcommand)]
        action: AccessCodeAction,
    },
    /// Erase every OATH credential and the access code.
    Reset {
        #[command(flatten)]
        card: CardArgs,
        /// Confirm: the credentials cannot be recovered.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccessCodeAction {
    /// Protect the applet: the new code comes from --new-code-file,
    /// $GATEHOUSE_NEW_ACCESS_CODE, or a prompt.
    Set {
        #[command(flatten)]
        card: CardArgs,
        #[arg(long, value_name = "FILE")]
        new_code_file: Option<PathBuf>,
    },
    /// Remove the access code.
    Clear {
        #[command(flatten)]
        card: CardArgs,
    },
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
