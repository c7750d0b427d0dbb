//! A PKCS#11 module given explicitly (as for a hardware HSM), with its label
//! and a PIN file, instead of the embedded SoftHSM token; and configuration
//! mistakes answered clearly.

use std::process::Command;

use gatehouse_tests::ServerOptions;
use hsm_adapter::{ModuleConfig, SecretString, TokenAdmin};

use crate::browser::{Browser, add_user, binary, code, register, start_with};

#[tokio::test]
async fn a_configured_module_label_and_pin_file_are_used() {
    let root = tempfile::tempdir().unwrap();
    let token_dir = root.path().join("hsm");
    hsm_adapter::softhsm::prepare_dir(&token_dir).unwrap();
    let config = hsm_adapter::softhsm::config_path(&token_dir);
    let module = ModuleConfig::default().resolve_module_path().unwrap();
    let pin_file = root.path().join("token.pin");
    std::fs::write(&pin_file, "hsm-user-pin\n").unwrap();
    let pin = SecretString::from("hsm-user-pin".to_owned());
    hsm_adapter::init_token(
        &ModuleConfig::softhsm_dir(&token_dir),
        "corp-hsm",
        &SecretString::from("hsm-so-pin".to_owned()),
        &pin,
    )
    .unwrap();

    let args = vec![
        "--pkcs11-module".to_owned(),
        module.display().to_string(),
        "--token-label".to_owned(),
        "corp-hsm".to_owned(),
        "--pin-file".to_owned(),
        pin_file.display().to_string(),
    ];
    let env = vec![("SOFTHSM2_CONF".to_owned(), config.display().to_string())];

    // Without key versions on the token, start-up says what to do.
    let data_dir = root.path().join("data");
    let refused = Command::new(binary())
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(&args)
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("device-tools hsm init"), "{stderr}");

    TokenAdmin::open(
        &ModuleConfig::softhsm_dir(&token_dir),
        "corp-hsm",
        &pin,
        None,
    )
    .unwrap()
    .add_key_version()
    .unwrap();
    let server = start_with(ServerOptions {
        data_dir: Some(data_dir.clone()),
        extra_args: args,
        env,
        ..ServerOptions::default()
    });
    assert!(
        !data_dir.join("softhsm").exists(),
        "no embedded token with a configured module"
    );
    let health = reqwest::get(format!("{}/healthz", server.url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    add_user(&server, "alice", "alice-password-1", true);
    let browser = Browser::new(&server);
    browser.sign_in("alice", "alice-password-1", "").await;
    let key = register(&server, &browser).await;
    server.advance(30);
    Browser::new(&server)
        .sign_in("alice", "alice-password-1", &code(&key, server.now()))
        .await
        .expect("Signed in as alice");
}

#[test]
fn configuration_mistakes_are_named() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("gatehouse.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\n[totp]\ndigit = 6\n").unwrap();
    let output = Command::new(binary())
        .arg("--config")
        .arg(&file)
        .arg("serve")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown field `digit`"), "{stderr}");

    let output = Command::new(binary())
        .args(["serve"])
        .env("GATEHOUSE_TOTP_DIGITS", "twelve")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("GATEHOUSE_TOTP_DIGITS"), "{stderr}");

    let output = Command::new(binary())
        .args(["serve", "--pkcs11-module", "/usr/lib/some-hsm.so"])
        .arg("--data-dir")
        .arg(root.path().join("data"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("needs pkcs11.pin_file"), "{stderr}");
}
