//! Moving records to a new key version without the seed leaving the token.

use hsm_adapter::{Owner, TotpAlgorithm, TotpPolicy, VerifyRequest};

use crate::token::{enroll, vault};

#[test]
fn after_keygen_old_records_verify_until_rewrapped_and_after() {
    let now = 1_760_000_000;
    let (owner, old, code) = enroll("rewrap/bob", TotpAlgorithm::Sha256, now);
    let verify = |sealed: &hsm_adapter::SealedSeed| {
        vault()
            .verify(VerifyRequest {
                owner: owner.clone(),
                sealed: sealed.clone(),
                code: code.clone(),
                policy: TotpPolicy::default(),
                now,
            })
            .wait()
            .unwrap()
    };

    let new_version = vault().generate_key_version().wait().unwrap();
    assert!(new_version > old.key_version);
    assert_eq!(verify(&old), Some(now / 30), "old record must still verify");

    let rewrapped = vault().rewrap(owner.clone(), old.clone()).wait().unwrap();
    assert!(rewrapped.key_version >= new_version);
    assert_ne!(rewrapped.blob, old.blob);
    assert_eq!(verify(&rewrapped), Some(now / 30));
    assert_eq!(
        verify(&old),
        Some(now / 30),
        "old record verifies until its key is gone"
    );

    // Rewrapping needs the right owner too.
    let stranger = Owner::new("rewrap/eve").unwrap();
    assert!(vault().rewrap(stranger, old).wait().is_err());
}
