//! RFC 6238 appendix B, computed inside the token.

use hsm_adapter::{Owner, TotpAlgorithm, TotpPolicy, VerifyRequest};
use zeroize::Zeroizing;

use crate::token::{reference_code, vault};

/// RFC 6238's seeds: the ASCII string "1234567890" repeated to the hash's size.
fn rfc_seed(algorithm: TotpAlgorithm) -> Vec<u8> {
    b"1234567890"
        .iter()
        .copied()
        .cycle()
        .take(algorithm.seed_len())
        .collect()
}

/// (time, SHA-1 code, SHA-256 code, SHA-512 code) from RFC 6238 appendix B.
const VECTORS: &[(u64, &str, &str, &str)] = &[
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
];

#[test]
fn rfc_6238_vectors_verify_inside_the_token_and_match_totp_rs() {
    let policy = TotpPolicy {
        digits: 8,
        period: 30,
        window: 0,
    };
    for (index, algorithm) in TotpAlgorithm::ALL.into_iter().enumerate() {
        let owner = Owner::new(format!("rfc6238/{algorithm}")).unwrap();
        let seed = rfc_seed(algorithm);
        let sealed = vault()
            .seal(owner.clone(), algorithm, Zeroizing::new(seed.clone()))
            .wait()
            .unwrap();
        for &(time, sha1, sha256, sha512) in VECTORS {
            let expected = [sha1, sha256, sha512][index];
            assert_eq!(
                reference_code(algorithm, &seed, 8, time),
                expected,
                "totp-rs disagrees with the RFC"
            );
            let request = VerifyRequest {
                owner: owner.clone(),
                sealed: sealed.clone(),
                code: expected.to_owned(),
                policy,
                now: time,
            };
            let step = vault().verify(request).wait().unwrap();
            assert_eq!(step, Some(time / 30), "{algorithm} at {time}");
        }
    }
}

#[test]
fn six_digit_codes_from_totp_rs_verify_within_the_window_only() {
    let policy = TotpPolicy::default();
    let owner = Owner::new("window-test").unwrap();
    let seed = vault().generate_seed(TotpAlgorithm::Sha1).wait().unwrap();
    let copy = seed.to_vec();
    let sealed = vault()
        .seal(owner.clone(), TotpAlgorithm::Sha1, seed)
        .wait()
        .unwrap();
    let now = 1_800_000_015;
    let verify = |code_time: u64| {
        vault()
            .verify(VerifyRequest {
                owner: owner.clone(),
                sealed: sealed.clone(),
                code: reference_code(TotpAlgorithm::Sha1, &copy, 6, code_time),
                policy,
                now,
            })
            .wait()
            .unwrap()
    };
    assert_eq!(verify(now), Some(now / 30));
    assert_eq!(verify(now - 30), Some(now / 30 - 1));
    assert_eq!(verify(now + 30), Some(now / 30 + 1));
    assert_eq!(verify(now - 60), None, "two steps old must be refused");
    assert_eq!(verify(now + 60), None, "two steps ahead must be refused");
}
