//! Helpers every vault test binary uses, whatever its token.

use hsm_adapter::{Owner, SealedSeed, TotpAlgorithm, TotpPolicy, Vault, VaultError, VerifyRequest};

/// The code an authenticator app computes, by an independent implementation.
pub fn reference_code(algorithm: TotpAlgorithm, seed: &[u8], digits: u8, time: u64) -> String {
    let algorithm = match algorithm {
        TotpAlgorithm::Sha1 => totp_rs::Algorithm::SHA1,
        TotpAlgorithm::Sha256 => totp_rs::Algorithm::SHA256,
        TotpAlgorithm::Sha512 => totp_rs::Algorithm::SHA512,
    };
    totp_rs::Builder::new()
        .with_algorithm(algorithm)
        .with_digits(digits)
        .with_step_duration(30)
        .with_secret(seed.to_vec())
        .build_noncompliant()
        .generate(time)
        .to_string()
}

/// Verify `code` for `owner` at `now` with the default policy.
pub fn verify_at(
    vault: &Vault,
    owner: &Owner,
    sealed: &SealedSeed,
    code: &str,
    now: u64,
) -> Result<Option<u64>, VaultError> {
    vault
        .verify(VerifyRequest {
            owner: owner.clone(),
            sealed: sealed.clone(),
            code: code.to_owned(),
            policy: TotpPolicy::default(),
            now,
        })
        .wait()
}
