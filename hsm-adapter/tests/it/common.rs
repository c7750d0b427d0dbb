//! Helpers that do not depend on which token the tests run against.

use crate::token::vault;

pub use crate::shared::reference_code;

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
