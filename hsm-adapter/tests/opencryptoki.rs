//! The vault against a second PKCS#11 implementation: opencryptoki's
//! software token, started and initialised by the test. It offers no AES key
//! wrap, so negotiation picks AES-CBC-PAD (and RSA-OAEP for an RSA key
//! version); its unwrap ignores `Sensitive`/`Extractable` (the vault reads
//! the attributes back and fixes them), `cryptoki` cannot parse its token
//! info (the token is found by its raw label), and its PINs are 4 to 8
//! characters.
//!
//! Its own test binary, one test: the token is global to the machine, and
//! kept between runs, so the test adds the key versions it needs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests report failure by panicking

#[path = "shared/mod.rs"]
mod shared;

use gatehouse_tests::opencryptoki::OpenCryptoki;
use hsm_adapter::{
    ModuleConfig, Owner, SealedSeed, SecretString, TokenAdmin, TotpAlgorithm, Vault, VaultConfig,
    VaultError, WrapScheme,
};

const LABEL: &str = OpenCryptoki::LABEL;
const NOW: u64 = 1_790_000_000;

fn pin() -> SecretString {
    SecretString::from(OpenCryptoki::USER_PIN.to_owned())
}

fn reference_code(algorithm: TotpAlgorithm, seed: &[u8], time: u64) -> String {
    shared::reference_code(algorithm, seed, 6, time)
}

fn verify(
    vault: &Vault,
    owner: &Owner,
    sealed: &SealedSeed,
    code: &str,
) -> Result<Option<u64>, VaultError> {
    shared::verify_at(vault, owner, sealed, code, NOW)
}

struct Record {
    owner: Owner,
    sealed: SealedSeed,
    code: String,
}

fn enroll(vault: &Vault, name: &str, algorithm: TotpAlgorithm) -> Record {
    let owner = Owner::new(name).unwrap();
    let seed = vault.generate_seed(algorithm).wait().unwrap();
    let code = reference_code(algorithm, &seed, NOW);
    let sealed = vault.seal(owner.clone(), algorithm, seed).wait().unwrap();
    Record {
        owner,
        sealed,
        code,
    }
}

#[test]
fn the_vault_works_on_opencryptoki_with_its_faults_handled() {
    let token = OpenCryptoki::start();
    let module = ModuleConfig {
        module_path: Some(token.module().to_owned()),
        softhsm_config: None,
    };
    {
        let admin = TokenAdmin::open(&module, LABEL, &pin(), Some(WrapScheme::AesCbcPad)).unwrap();
        assert_eq!(admin.raw_token_label().unwrap(), LABEL);
        admin.add_key_version().unwrap();
        let health = admin.health().unwrap();
        assert_eq!(health.wrap_schemes_offered, ["aes-cbc-pad", "rsa-oaep"]);
        assert_eq!(health.wrap_scheme, Some("aes-cbc-pad"), "{health:#?}");
        assert!(health.is_healthy(), "{health:#?}");
    }

    let vault = Vault::open(VaultConfig::new(module.clone(), LABEL, pin())).unwrap();
    let mut records: Vec<Record> = TotpAlgorithm::ALL
        .into_iter()
        .enumerate()
        .map(|(index, algorithm)| enroll(&vault, &format!("user:{index}/cbc"), algorithm))
        .collect();
    for record in &records {
        assert_eq!(record.sealed.wrap, WrapScheme::AesCbcPad);
        assert_eq!(
            verify(&vault, &record.owner, &record.sealed, &record.code).unwrap(),
            Some(NOW / 30),
            "{}",
            record.sealed.algorithm
        );
    }
    // CBC has no integrity of its own: the binding tag refuses every
    // tampered byte, and a record moved to another owner.
    let first = &records[0];
    for position in 0..first.sealed.blob.len() {
        let mut tampered = first.sealed.clone();
        tampered.blob[position] ^= 0x40;
        assert!(matches!(
            verify(&vault, &first.owner, &tampered, &first.code),
            Err(VaultError::BindingMismatch)
        ));
    }
    assert!(matches!(
        verify(
            &vault,
            &Owner::new("user:else").unwrap(),
            &first.sealed,
            &first.code
        ),
        Err(VaultError::BindingMismatch)
    ));
    drop(vault);

    // An RSA key version: records of both schemes verify side by side, and
    // rewrap moves the CBC ones to RSA-OAEP.
    {
        let admin = TokenAdmin::open(&module, LABEL, &pin(), Some(WrapScheme::RsaOaep)).unwrap();
        let rsa_version = admin.add_key_version().unwrap();
        assert!(rsa_version >= 2);
        let health = admin.health().unwrap();
        assert!(health.is_healthy(), "{health:#?}");
        for version in &health.key_versions {
            assert!(version.wrap_key.is_protected() && version.bind_key.is_protected());
        }
    }
    let vault = Vault::open(VaultConfig::new(module, LABEL, pin())).unwrap();
    records.push(enroll(&vault, "user:rsa", TotpAlgorithm::Sha1));
    assert_eq!(records[3].sealed.wrap, WrapScheme::RsaOaep);
    for record in &mut records {
        assert_eq!(
            verify(&vault, &record.owner, &record.sealed, &record.code).unwrap(),
            Some(NOW / 30)
        );
        let moved = vault
            .rewrap(record.owner.clone(), record.sealed.clone())
            .wait()
            .unwrap();
        assert_eq!(moved.wrap, WrapScheme::RsaOaep);
        assert_eq!(
            verify(&vault, &record.owner, &moved, &record.code).unwrap(),
            Some(NOW / 30)
        );
        record.sealed = moved;
    }
    drop(vault);
    drop(token);
}
