//! A token that disappears mid-run: calls fail closed with a clear error,
//! then work again once the token is back, without reopening the vault.
//!
//! Its own test binary: it needs a SoftHSM token of its own (SoftHSM reads
//! its configuration once per process) and moves that token's files away.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests report failure by panicking

use std::path::Path;
use std::time::{Duration, Instant};

use hsm_adapter::{
    ModuleConfig, Owner, ReconnectPolicy, SecretString, TokenAdmin, TotpAlgorithm, TotpPolicy,
    Vault, VaultConfig, VaultError, VaultState, VerifyRequest,
};

const LABEL: &str = "gatehouse-fault";
const NOW: u64 = 1_790_000_000;

fn secret(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

fn reference_code(seed: &[u8]) -> String {
    totp_rs::Builder::new()
        .with_secret(seed.to_vec())
        .build_noncompliant()
        .generate(NOW)
        .to_string()
}

/// Poll `check` until it holds, or fail after a generous deadline.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn only_token_dir(tokens: &Path) -> std::path::PathBuf {
    let mut entries: Vec<_> = std::fs::read_dir(tokens)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "expected one token directory");
    entries.remove(0)
}

#[test]
fn a_token_that_disappears_fails_closed_then_recovers_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    hsm_adapter::softhsm::prepare_dir(dir.path()).unwrap();
    let module = ModuleConfig::softhsm_dir(dir.path());
    let pin = "fault-user-pin";
    hsm_adapter::init_token(&module, LABEL, &secret("fault-so-pin"), &secret(pin)).unwrap();
    {
        let admin = TokenAdmin::open(&module, LABEL, &secret(pin), None).unwrap();
        // The raw C_GetTokenInfo path (used for tokens whose info cryptoki
        // cannot parse) reads the same label.
        assert_eq!(admin.raw_token_label().unwrap(), LABEL);
        assert_eq!(admin.add_key_version().unwrap(), 1);
    }
    let mut config = VaultConfig::new(module, LABEL, secret(pin));
    config.reconnect = ReconnectPolicy {
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
    };
    let vault = Vault::open(config).unwrap();

    let owner = Owner::new("fault/alice").unwrap();
    let seed = vault.generate_seed(TotpAlgorithm::Sha1).wait().unwrap();
    let code = reference_code(&seed);
    let sealed = vault
        .seal(owner.clone(), TotpAlgorithm::Sha1, seed)
        .wait()
        .unwrap();
    let request = VerifyRequest {
        owner,
        sealed,
        code,
        policy: TotpPolicy::default(),
        now: NOW,
    };
    assert_eq!(
        vault.verify(request.clone()).wait().unwrap(),
        Some(NOW / 30)
    );

    // Pull the token: its files go away.
    let token_dir = only_token_dir(&dir.path().join("tokens"));
    let parked = dir.path().join("parked-token");
    std::fs::rename(&token_dir, &parked).unwrap();

    let mut first_error = None;
    eventually("the vault notices the token is gone", || {
        first_error = vault.verify(request.clone()).wait().err();
        first_error.is_some()
    });
    // The first failure names what failed: the PKCS#11 call and its return
    // value, or the vault's own fail-closed state.
    let first_error = first_error.unwrap().to_string();
    eprintln!("first error after the token left: {first_error}");
    assert!(
        first_error.contains("returned CKR_") || first_error.contains("unavailable"),
        "{first_error}"
    );
    eventually("the vault reports itself down", || {
        matches!(vault.state(), VaultState::Down { .. })
    });
    match vault.verify(request.clone()).wait() {
        Err(VaultError::Unavailable { reason }) => {
            assert!(!reason.is_empty());
        }
        other => panic!("expected a fail-closed error while the token is gone, got {other:?}"),
    }

    // Put it back: the vault reconnects by itself.
    std::fs::rename(&parked, &token_dir).unwrap();
    eventually("the vault reconnects", || {
        vault.verify(request.clone()).wait().ok() == Some(Some(NOW / 30))
    });
    assert_eq!(vault.state(), VaultState::Up);
}
