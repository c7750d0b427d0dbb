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
 10  the Gatehouse server could not be reached or refused
 11  not signed in: the sign-in was denied, expired or timed out, or no saved sign-in";

/// Provision Gatehouse's hardware: PKCS#11 tokens and their keys, YubiKey
/// OATH slots; sign in to a Gatehouse server through the browser.
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
    /// Sign in to a Gatehouse server through the browser (with MFA there);
    /// the tokens are kept for `yubikey enroll`.
    Login {
        /// The Gatehouse server, e.g. https://mfa.example.com.
        #[arg(long, env = "GATEHOUSE_URL")]
        server: String,
        /// Use the device flow: type a code into a browser on any device
        /// (when this machine has no browser).
        #[arg(long)]
        device_code: bool,
        /// Do not try to open a browser; print the address to open.
        #[arg(long)]
        no_browser: bool,
        /// The client id registered on the server.
        #[arg(long, default_value = "device-tools")]
        client_id: String,
        /// Scopes to ask for ("admin" is granted to administrators only).
        #[arg(long, default_value = "user admin")]
        scope: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300, value_name = "SECONDS")]
        timeout: u64,
        #[command(flatten)]
        saved: SavedLogin,
    },
    /// Who the saved sign-in acts for.
    Whoami {
        /// The server (default: the one signed in to).
        #[arg(long, env = "GATEHOUSE_URL")]
        server: Option<String>,
        #[command(flatten)]
        saved: SavedLogin,
    },
    /// Revoke the saved sign-in at the server and delete it.
    Logout {
        #[command(flatten)]
        saved: SavedLogin,
    },
}

/// Where the sign-in is kept, and which CAs to trust for the server.
#[derive(Debug, Args, Clone)]
pub struct SavedLogin {
    /// The credentials file (default: $XDG_CONFIG_HOME/gatehouse/credentials.json,
    /// else ~/.config/gatehouse/credentials.json), readable only by you.
    #[arg(long, env = "GATEHOUSE_CREDENTIALS", value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// A PEM file with the CA certificate(s) to trust for the server,
    /// besides the system's.
    #[arg(long, env = "GATEHOUSE_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
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
        /// else $GATEHOUSE_TOKEN; else the sign-in saved by `device-tools login`.
        #[arg(long, env = "GATEHOUSE_TOKEN_FILE", value_name = "FILE")]
        token_file: Option<PathBuf>,
        #[command(flatten)]
        saved: SavedLogin,
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

    /// Wrap scheme for new key versions and seals: aes-kwp, aes-kw,
    /// aes-cbc-pad or rsa-oaep (default: the best the token offers).
    #[arg(long, env = "GATEHOUSE_WRAP_SCHEME", value_name = "SCHEME")]
    pub wrap_scheme: Option<hsm_adapter::WrapScheme>,
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
