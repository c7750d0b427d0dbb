//! Helpers that do not depend on which token the tests run against.

use crate::token::vault;

/// The code an authenticator app computes, by an independent implementation.
pub fn reference_code(
    algorithm: hsm_adapter::TotpAlgorithm,
    seed: &[u8],
    digits: u8,
    time: u64,
) -> String {
    let algorithm = match algorithm {
        hsm_adapter::TotpAlgorithm::Sha1 => totp_rs::Algorithm::SHA1,
        hsm_adapter::TotpAlgorithm::Sha256 => totp_rs::Algorithm::SHA256,
        hsm_adapter::TotpAlgorithm::Sha512 => totp_rs::Algorithm::SHA512,
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

/// A new credential as an enrollment makes it: a seed from the token, sealed
/// for `owner`, and the code an authenticator app shows for it at `now`.
pub fn enroll(
    owner: &str,
    algorithm: hsm_adapter::TotpAlgorithm,
    now: u64,
) -> (hsm_adapter::Owner, hsm_adapter::SealedSeed, String) {
    let owner = hsm_adapter::Owner::new(owner).expect("owner");
    let seed = vault().generate_seed(algorithm).wait().expect("seed");
    let code = reference_code(algorithm, &seed, 6, now);
    let sealed = vault()
        .seal(owner.clone(), algorithm, seed)
        .wait()
        .expect("seal");
    (owner, sealed, code)
}
