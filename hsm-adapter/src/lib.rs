//! The seed vault: TOTP seeds sealed by keys that never leave a PKCS#11 token.
//!
//! Gatehouse stores a TOTP seed only as a [`SealedSeed`]: the seed wrapped by
//! a non-extractable token key (AES, or an RSA key pair, per the
//! [`WrapScheme`] negotiated with the token), plus a binding tag (an HMAC
//! computed inside the token with a second non-extractable key) that ties the
//! blob to its owner. Codes are verified inside the token: the blob is
//! unwrapped into a sensitive session key and HMACed for each candidate time
//! step; the key is destroyed, or kept in the token for a bounded time
//! ([`HotKeys`]).
//!
//! This is the only crate that knows PKCS#11. Start at [`Vault`].

mod connection;
mod error;
mod health;
mod hot;
mod keys;
mod module;
mod ops;
mod provision;
mod raw;
mod sealed;
pub mod softhsm;
mod totp;
mod vault;

pub use error::{Pkcs11Failure, Result, VaultError};
pub use health::{Health, KeyReport, KeyVersionReport, MechanismReport, ModuleReport, TokenReport};
pub use hot::HotKeys;
pub use keys::KeyAttributes;
pub use module::{ModuleConfig, SOFTHSM_MODULE_PATHS};
pub use ops::TokenStats;
pub use provision::{TokenAdmin, TokenInit, init_token, token_exists};
pub use sealed::{Owner, SealedSeed, TotpAlgorithm, WrapScheme};
pub use totp::TotpPolicy;
pub use vault::{Pending, ReconnectPolicy, Vault, VaultConfig, VaultState, VerifyRequest};

/// Re-exported so callers hold PINs in the same secret type the vault takes.
pub use secrecy::{ExposeSecret, SecretString};
