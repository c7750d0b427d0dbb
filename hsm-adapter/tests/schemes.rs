//! The wrap schemes on a real SoftHSM token: seal and verify under each one
//! it offers (AES key wrap with and without padding, RSA-OAEP; SoftHSM does
//! not flag `CKM_AES_CBC_PAD` for wrapping, so CBC runs on opencryptoki),
//! records of all schemes verifying side by side with identical codes,
//! rewrap moving them to the current scheme, and the binding tag refusing a
//! tampered blob before any unwrap.
//!
//! Its own test binary, one test: it opens vaults one after another with
//! different scheme preferences on one token (one PKCS#11 context at a time
//! per process).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests report failure by panicking

#[path = "shared/mod.rs"]
mod shared;

use hsm_adapter::{
    HotKeys, ModuleConfig, Owner, SealedSeed, SecretString, TokenAdmin, TotpAlgorithm, Vault,
    VaultConfig, VaultError, WrapScheme,
};

const LABEL: &str = "gatehouse-schemes";
const PIN: &str = "schemes-user-pin";
const NOW: u64 = 1_790_000_000;

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

fn reference_code(algorithm: TotpAlgorithm, seed: &[u8], time: u64) -> String {
    shared::reference_code(algorithm, seed, 6, time)
}

fn open(config: &ModuleConfig, scheme: Option<WrapScheme>) -> Vault {
    let mut vault_config = VaultConfig::new(config.clone(), LABEL, secret(PIN));
    vault_config.wrap_scheme = scheme;
    Vault::open(vault_config).unwrap()
}

fn verify(
    vault: &Vault,
    owner: &Owner,
    sealed: &SealedSeed,
    code: &str,
) -> Result<Option<u64>, VaultError> {
    shared::verify_at(vault, owner, sealed, code, NOW)
}

/// The seeds of every algorithm, and 10-byte and 16-byte seeds as older
/// authenticators have them.
fn seeds() -> Vec<(TotpAlgorithm, Vec<u8>)> {
    vec![
        (TotpAlgorithm::Sha1, b"12345678901234567890".to_vec()),
        (
            TotpAlgorithm::Sha256,
            b"12345678901234567890123456789012".to_vec(),
        ),
        (
            TotpAlgorithm::Sha512,
            b"1234567890123456789012345678901234567890123456789012345678901234".to_vec(),
        ),
        (TotpAlgorithm::Sha1, b"0123456789".to_vec()),
        (TotpAlgorithm::Sha256, b"0123456789abcdef".to_vec()),
    ]
}

struct Record {
    owner: Owner,
    sealed: SealedSeed,
    code: String,
}

#[test]
fn every_scheme_seals_and_verifies_side_by_side_and_rewraps_to_the_current_one() {
    let dir = tempfile::tempdir().unwrap();
    hsm_adapter::softhsm::prepare_dir(dir.path()).unwrap();
    let config = ModuleConfig::softhsm_dir(dir.path());
    hsm_adapter::init_token(&config, LABEL, &secret("schemes-so-pin"), &secret(PIN)).unwrap();
    {
        let admin = TokenAdmin::open(&config, LABEL, &secret(PIN), None).unwrap();
        let health = admin.health().unwrap();
        assert_eq!(
            health.wrap_schemes_offered,
            ["aes-kwp", "aes-kw", "rsa-oaep"],
            "what SoftHSM flags for wrap and unwrap"
        );
        assert_eq!(admin.add_key_version().unwrap(), 1);
    }

    // Key version 1 is AES: seal under each AES scheme in turn.
    let mut records = Vec::new();
    for scheme in [WrapScheme::AesKeyWrapPad, WrapScheme::AesKeyWrap] {
        let vault = open(&config, Some(scheme));
        for (index, (algorithm, seed)) in seeds().into_iter().enumerate() {
            let owner = Owner::new(format!("user:{index}/{scheme}")).unwrap();
            let code = reference_code(algorithm, &seed, NOW);
            let sealed = vault
                .seal(owner.clone(), algorithm, zeroize::Zeroizing::new(seed))
                .wait()
                .unwrap();
            assert_eq!(sealed.wrap, scheme);
            assert_eq!(sealed.key_version, 1);
            assert_eq!(
                verify(&vault, &owner, &sealed, &code).unwrap(),
                Some(NOW / 30)
            );
            records.push(Record {
                owner,
                sealed,
                code,
            });
        }
        {
            // The binding tag refuses a flipped bit before the blob is ever
            // unwrapped (what CBC, with no integrity of its own, relies on).
            let record = records.last().unwrap();
            for position in [0, 16, record.sealed.blob.len() - 1] {
                let mut tampered = record.sealed.clone();
                tampered.blob[position] ^= 0x01;
                assert!(matches!(
                    verify(&vault, &record.owner, &tampered, &record.code),
                    Err(VaultError::BindingMismatch)
                ));
            }
            let mut relabelled = record.sealed.clone();
            relabelled.wrap = if scheme == WrapScheme::AesKeyWrap {
                WrapScheme::AesKeyWrapPad
            } else {
                WrapScheme::AesKeyWrap
            };
            assert!(matches!(
                verify(&vault, &record.owner, &relabelled, &record.code),
                Err(VaultError::BindingMismatch)
            ));
        }
    }

    // Key version 2 is an RSA key pair: the negotiated scheme follows it.
    {
        let admin =
            TokenAdmin::open(&config, LABEL, &secret(PIN), Some(WrapScheme::RsaOaep)).unwrap();
        assert_eq!(admin.add_key_version().unwrap(), 2);
        let health = admin.health().unwrap();
        assert_eq!(health.wrap_scheme, Some("rsa-oaep"), "{health:#?}");
        let v2 = &health.key_versions[1];
        assert_eq!(v2.wrap_kind, "RSA-2048");
        assert!(v2.wrap_key.is_protected(), "{v2:#?}");
        assert!(v2.wrap_key.unwrap && !v2.wrap_key.sign);
    }
    let vault = open(&config, None);
    let health = vault.health().wait().unwrap();
    assert_eq!(health.wrap_scheme, Some("rsa-oaep"));
    assert!(
        health.wrap_scheme_reason.contains("CKM_RSA_PKCS_OAEP"),
        "{}",
        health.wrap_scheme_reason
    );
    for (index, (algorithm, seed)) in seeds().into_iter().enumerate() {
        let owner = Owner::new(format!("user:{index}/rsa")).unwrap();
        let code = reference_code(algorithm, &seed, NOW);
        let sealed = vault
            .seal(owner.clone(), algorithm, zeroize::Zeroizing::new(seed))
            .wait()
            .unwrap();
        assert_eq!((sealed.wrap, sealed.key_version), (WrapScheme::RsaOaep, 2));
        assert_eq!(sealed.blob.len(), 256, "one RSA-2048 block");
        records.push(Record {
            owner,
            sealed,
            code,
        });
    }

    // All four schemes, side by side in one vault, same seeds, same codes.
    for record in &records {
        assert_eq!(
            verify(&vault, &record.owner, &record.sealed, &record.code).unwrap(),
            Some(NOW / 30),
            "{} {}",
            record.sealed.wrap,
            record.sealed.algorithm
        );
        let wrong = if record.code == "000000" {
            "111111"
        } else {
            "000000"
        };
        assert_eq!(
            verify(&vault, &record.owner, &record.sealed, wrong).unwrap(),
            None
        );
    }
    // A record moved to another owner does not verify, whatever its scheme.
    let stranger = Owner::new("user:stranger").unwrap();
    for record in records.iter().step_by(5) {
        assert!(matches!(
            verify(&vault, &stranger, &record.sealed, &record.code),
            Err(VaultError::BindingMismatch)
        ));
    }

    // Rewrap moves every record to version 2 and RSA-OAEP, inside the token.
    for record in &mut records {
        let moved = vault
            .rewrap(record.owner.clone(), record.sealed.clone())
            .wait()
            .unwrap();
        assert_eq!((moved.wrap, moved.key_version), (WrapScheme::RsaOaep, 2));
        assert_eq!(
            verify(&vault, &record.owner, &moved, &record.code).unwrap(),
            Some(NOW / 30)
        );
        record.sealed = moved;
    }
    drop(vault);

    // Back to an AES scheme by preference: it needs an AES key version.
    let vault = open(&config, Some(WrapScheme::AesKeyWrap));
    let refused = vault
        .seal(
            Owner::new("user:late").unwrap(),
            TotpAlgorithm::Sha1,
            zeroize::Zeroizing::new(vec![7; 20]),
        )
        .wait();
    let error = refused.unwrap_err();
    assert!(matches!(error, VaultError::NoWrapScheme(_)), "{error}");
    assert!(
        error.to_string().contains("device-tools hsm keygen"),
        "{error}"
    );
    // ... and the records made so far still verify.
    for record in &records {
        assert_eq!(
            verify(&vault, &record.owner, &record.sealed, &record.code).unwrap(),
            Some(NOW / 30)
        );
    }
    drop(vault);

    // Hot keys: a second verification of one record reuses the key the
    // first unwrapped (no C_UnwrapKey, no RSA operation), but still checks
    // the binding first.
    let mut config = VaultConfig::new(config.clone(), LABEL, secret(PIN));
    config.workers = 1;
    let vault = Vault::open(config).unwrap();
    let record = &records[0];
    let calls = |vault: &Vault| vault.stats().token_calls;
    let start = calls(&vault);
    verify(&vault, &record.owner, &record.sealed, &record.code).unwrap();
    let first = calls(&vault) - start;
    let start = calls(&vault);
    assert_eq!(
        verify(&vault, &record.owner, &record.sealed, "000001").unwrap(),
        None
    );
    let second = calls(&vault) - start;
    assert_eq!(
        first, 6,
        "C_Verify, C_UnwrapKey, C_GetAttributeValue, 3 C_Sign"
    );
    assert_eq!(second, 4, "C_Verify and 3 C_Sign: the key was kept");
    assert!(matches!(
        verify(&vault, &stranger, &record.sealed, &record.code),
        Err(VaultError::BindingMismatch)
    ));
    drop(vault);
    let mut config = VaultConfig::new(ModuleConfig::softhsm_dir(dir.path()), LABEL, secret(PIN));
    config.hot_keys = HotKeys::off();
    let vault = Vault::open(config).unwrap();
    for _ in 0..2 {
        let start = calls(&vault);
        verify(&vault, &record.owner, &record.sealed, &record.code).unwrap();
        assert_eq!(
            calls(&vault) - start,
            7,
            "unwrapped and destroyed every time"
        );
    }
    drop(vault);

    // The cache is bounded: with room for one key, a second authenticator
    // pushes the first out (its key destroyed), so the first unwraps again.
    let mut config = VaultConfig::new(ModuleConfig::softhsm_dir(dir.path()), LABEL, secret(PIN));
    config.workers = 1;
    config.hot_keys = HotKeys {
        capacity: 1,
        lifetime: std::time::Duration::from_secs(600),
    };
    let vault = Vault::open(config).unwrap();
    let (first, second) = (&records[0], &records[1]);
    let cost = |record: &Record| {
        let start = calls(&vault);
        verify(&vault, &record.owner, &record.sealed, &record.code).unwrap();
        calls(&vault) - start
    };
    assert_eq!(cost(first), 6, "unwrapped, then kept");
    assert_eq!(cost(first), 4, "kept");
    assert_eq!(cost(second), 6, "unwrapped; the first key makes room");
    assert_eq!(cost(first), 6, "pushed out, so unwrapped again");
}
