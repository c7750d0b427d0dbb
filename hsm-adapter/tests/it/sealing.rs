//! What a sealed record reveals, and what it takes to make it verify.

use hsm_adapter::{Owner, SealedSeed, TotpAlgorithm, VaultError};

use crate::token::{reference_code, vault};

const NOW: u64 = 1_750_000_000;

fn enrolled(owner: &str) -> (Owner, SealedSeed, String) {
    crate::token::enroll(owner, TotpAlgorithm::Sha1, NOW)
}

fn verify(owner: &Owner, sealed: &SealedSeed, code: &str) -> Result<Option<u64>, VaultError> {
    crate::shared::verify_at(vault(), owner, sealed, code, NOW)
}

#[test]
fn seeds_come_from_the_token_in_the_hash_size() {
    for algorithm in TotpAlgorithm::ALL {
        let first = vault().generate_seed(algorithm).wait().unwrap();
        let second = vault().generate_seed(algorithm).wait().unwrap();
        assert_eq!(first.len(), algorithm.seed_len());
        assert_ne!(*first, *second);
    }
}

#[test]
fn a_sealed_record_does_not_contain_the_seed() {
    for algorithm in TotpAlgorithm::ALL {
        let seed = vault().generate_seed(algorithm).wait().unwrap();
        let copy = seed.to_vec();
        let sealed = vault()
            .seal(Owner::new("leak-check").unwrap(), algorithm, seed)
            .wait()
            .unwrap();
        let stored = sealed.to_string();
        for window in copy.windows(6) {
            assert!(
                !sealed.blob.windows(6).any(|w| w == window),
                "blob carries seed bytes"
            );
            assert!(!stored.as_bytes().windows(6).any(|w| w == window));
        }
        let base32 = totp_rs::Secret::from(copy.clone()).to_base32();
        assert!(
            !stored.contains(&base32[..8]),
            "record carries the base32 seed"
        );
    }
}

#[test]
fn the_right_code_verifies_and_a_wrong_one_does_not() {
    let (owner, sealed, code) = enrolled("alice");
    assert_eq!(verify(&owner, &sealed, &code).unwrap(), Some(NOW / 30));
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    assert_eq!(verify(&owner, &sealed, &wrong).unwrap(), None);
}

#[test]
fn a_record_moved_to_another_owner_does_not_verify() {
    let (_alice, sealed, code) = enrolled("user:1/authenticator:1");
    let mallory = Owner::new("user:2/authenticator:1").unwrap();
    assert!(matches!(
        verify(&mallory, &sealed, &code),
        Err(VaultError::BindingMismatch)
    ));
}

#[test]
fn a_tampered_blob_or_tag_does_not_verify() {
    let (owner, sealed, code) = enrolled("tamper");
    for index in [0, sealed.blob.len() / 2, sealed.blob.len() - 1] {
        let mut tampered = sealed.clone();
        tampered.blob[index] ^= 0x01;
        assert!(matches!(
            verify(&owner, &tampered, &code),
            Err(VaultError::BindingMismatch)
        ));
    }
    let mut tampered = sealed.clone();
    tampered.tag[0] ^= 0x80;
    assert!(matches!(
        verify(&owner, &tampered, &code),
        Err(VaultError::BindingMismatch)
    ));
    let mut relabelled = sealed.clone();
    relabelled.algorithm = TotpAlgorithm::Sha256;
    assert!(matches!(
        verify(&owner, &relabelled, &code),
        Err(VaultError::BindingMismatch)
    ));
}

#[test]
fn a_record_claiming_another_key_version_does_not_verify() {
    let (owner, sealed, code) = enrolled("version-swap");
    let other_version = vault().generate_key_version().wait().unwrap();
    assert_ne!(other_version, sealed.key_version);
    let mut swapped = sealed.clone();
    swapped.key_version = other_version;
    assert!(matches!(
        verify(&owner, &swapped, &code),
        Err(VaultError::BindingMismatch)
    ));
    let mut missing = sealed.clone();
    missing.key_version = 9_999;
    assert!(matches!(
        verify(&owner, &missing, &code),
        Err(VaultError::UnknownKeyVersion(9_999))
    ));
    // The original still verifies.
    assert_eq!(verify(&owner, &sealed, &code).unwrap(), Some(NOW / 30));
}

#[test]
fn malformed_codes_are_refused_before_any_token_work() {
    let (owner, sealed, _) = enrolled("shapes");
    for bad in ["", "12345", "1234567", "12 456", "abcdef", "１２３４５６"] {
        assert!(
            matches!(
                verify(&owner, &sealed, bad),
                Err(VaultError::InvalidRequest(_))
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn text_form_survives_storage() {
    let (owner, sealed, code) = enrolled("stored");
    let reloaded: SealedSeed = sealed.to_string().parse().unwrap();
    assert_eq!(verify(&owner, &reloaded, &code).unwrap(), Some(NOW / 30));
}

#[test]
fn short_and_oversized_seeds_are_refused() {
    let owner = Owner::new("sizes").unwrap();
    for length in [0, 9, 65] {
        let result = vault()
            .seal(
                owner.clone(),
                TotpAlgorithm::Sha1,
                zeroize::Zeroizing::new(vec![7; length]),
            )
            .wait();
        assert!(
            matches!(result, Err(VaultError::InvalidRequest(_))),
            "{length}"
        );
    }
    // A YubiKey-style 14-byte seed is padded for the token and still gives
    // the codes an authenticator computes from the unpadded seed.
    let seed = vec![0x42; 14];
    let code = reference_code(TotpAlgorithm::Sha1, &seed, 6, NOW);
    let sealed = vault()
        .seal(
            owner.clone(),
            TotpAlgorithm::Sha1,
            zeroize::Zeroizing::new(seed),
        )
        .wait()
        .unwrap();
    assert_eq!(verify(&owner, &sealed, &code).unwrap(), Some(NOW / 30));
}

#[test]
fn health_reports_mechanisms_and_protected_keys() {
    let health = vault().health().wait().unwrap();
    assert!(health.is_healthy(), "{health:#?}");
    assert!(health.missing_mechanisms().is_empty());
    assert_eq!(health.token.label, crate::token::LABEL);
    for version in &health.key_versions {
        assert!(version.wrap_key.is_protected());
        assert!(
            version.wrap_key.unwrap && !version.wrap_key.sign,
            "{version:#?}"
        );
        // An AES key wraps and unwraps; of an RSA pair, the private key
        // (reported here) only unwraps: the public key wraps.
        match version.wrap_kind.as_str() {
            "AES-256" => assert!(version.wrap_key.wrap, "{version:#?}"),
            "RSA-2048" => assert!(!version.wrap_key.wrap, "{version:#?}"),
            other => panic!("unknown wrapping key kind {other}"),
        }
        assert!(version.bind_key.sign && version.bind_key.verify && !version.bind_key.wrap);
    }
}
