//! The server on a second PKCS#11 implementation: opencryptoki's software
//! token (AES-CBC-PAD negotiated; its faults handled in the vault), started
//! and initialised by the test. A user registers an authenticator, signs in
//! with a code, and a replayed code is refused, all over HTTP against the
//! real binary.
//!
//! Its own test binary: the token is global to the machine.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests report failure by panicking

use gatehouse_tests::opencryptoki::OpenCryptoki;
use gatehouse_tests::{GatehouseServer, ServerOptions};
use hsm_adapter::{ModuleConfig, SecretString, TokenAdmin, WrapScheme};

#[path = "it/browser.rs"]
#[allow(dead_code)] // this binary uses some of the shared helpers
mod browser;

use browser::{Browser, add_user, binary, code, register};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_registers_and_signs_in_on_opencryptoki() {
    let token = OpenCryptoki::start();
    let module = ModuleConfig {
        module_path: Some(token.module().to_owned()),
        softhsm_config: None,
    };
    // Whatever earlier runs left, the active version is a fresh AES one.
    TokenAdmin::open(
        &module,
        OpenCryptoki::LABEL,
        &SecretString::from(OpenCryptoki::USER_PIN.to_owned()),
        Some(WrapScheme::AesCbcPad),
    )
    .unwrap()
    .add_key_version()
    .unwrap();

    let server = GatehouseServer::start(
        &binary(),
        ServerOptions {
            env: vec![
                (
                    "GATEHOUSE_PKCS11_MODULE".into(),
                    token.module().display().to_string(),
                ),
                (
                    "GATEHOUSE_PIN_FILE".into(),
                    token.pin_file().display().to_string(),
                ),
                ("GATEHOUSE_TOKEN_LABEL".into(), OpenCryptoki::LABEL.into()),
            ],
            ..ServerOptions::default()
        },
    );
    let health: serde_json::Value = reqwest::get(format!("{}/healthz", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok", "{health}");

    add_user(&server, "olga", "olga-password-1", true);

    // Register an authenticator.
    let browser = Browser::new(&server);
    browser
        .sign_in("olga", "olga-password-1", "")
        .await
        .expect("MFA) is enforced");
    let key = register(&server, &browser).await;
    browser.get("/account").await.expect("Signed in as olga");
    let users = server
        .command(&binary())
        .args(["user", "list", "--json"])
        .output()
        .unwrap();
    // The database in WAL mode: the record may still be in the log.
    let mut stored = std::fs::read(server.data_dir.join("gatehouse.db")).unwrap();
    stored.extend(std::fs::read(server.data_dir.join("gatehouse.db-wal")).unwrap_or_default());
    assert!(String::from_utf8_lossy(&users.stdout).contains("\"authenticators\": 1"));
    assert!(
        String::from_utf8_lossy(&stored).contains(":aes-cbc-pad:SHA1:"),
        "the record names its scheme"
    );

    // Sign in with the next code; the same code again is refused.
    server.advance(30);
    let current = code(&key, server.now());
    for (attempt, expected) in [
        (current.as_str(), "Signed in as olga"),
        (current.as_str(), "Sign-in failed"),
        ("000000", "Sign-in failed"),
    ] {
        Browser::new(&server)
            .sign_in("olga", "olga-password-1", attempt)
            .await
            .expect(expected);
    }
    drop(server);
    drop(token);
}
