//! The server on a second PKCS#11 implementation: opencryptoki's software
//! token (AES-CBC-PAD negotiated; its faults handled in the vault), started
//! and initialised by the test. A user registers an authenticator, signs in
//! with a code, and a replayed code is refused, all over HTTP against the
//! real binary.
//!
//! Its own test binary: the token is global to the machine.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests report failure by panicking

use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;

use data_encoding::BASE32_NOPAD;
use gatehouse_tests::opencryptoki::OpenCryptoki;
use gatehouse_tests::{GatehouseServer, ServerOptions};
use hsm_adapter::{ModuleConfig, SecretString, TokenAdmin, WrapScheme};

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gatehouse"))
}

fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap() + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

async fn sign_in(server: &GatehouseServer, password: &str, code: &str) -> String {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let form = client
        .get(format!("{}/signin", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    client
        .post(format!("{}/signin", server.url))
        .form(&[
            ("csrf", field(&form, "csrf")),
            ("name", "olga".to_owned()),
            ("password", password.to_owned()),
            ("code", code.to_owned()),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

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

    let mut add = server
        .command(&binary())
        .args(["user", "add", "olga", "--force-mfa", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(add.stdin.take().unwrap(), "olga-password-1").unwrap();
    assert!(add.wait().unwrap().success());

    // Register an authenticator.
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let get = |path: &str| {
        let client = client.clone();
        let url = format!("{}{path}", server.url);
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let post = |path: &str, fields: Vec<(&'static str, String)>| {
        let client = client.clone();
        let url = format!("{}{path}", server.url);
        async move {
            let response = client.post(url).form(&fields).send().await.unwrap();
            response.text().await.unwrap()
        }
    };
    let form = get("/signin").await;
    let reminder = post(
        "/signin",
        vec![
            ("csrf", field(&form, "csrf")),
            ("name", "olga".into()),
            ("password", "olga-password-1".into()),
            ("code", String::new()),
        ],
    )
    .await;
    assert!(reminder.contains("MFA) is enforced"), "{reminder}");
    let settings = get("/mfa/settings").await;
    let dialog = post("/mfa/initialize", vec![("csrf", field(&settings, "csrf"))]).await;
    let marker = "id=\"security-key\">";
    let start = dialog.find(marker).unwrap() + marker.len();
    let key: String = dialog[start..start + dialog[start..].find('<').unwrap()]
        .split_whitespace()
        .collect();
    let seed = BASE32_NOPAD.decode(key.as_bytes()).unwrap();
    let code_at = |time: u64| {
        totp_rs::Builder::new()
            .with_secret(seed.clone())
            .build_noncompliant()
            .generate(time)
            .to_string()
    };
    let confirmed = post(
        "/mfa/confirm",
        vec![
            ("csrf", field(&settings, "csrf")),
            ("code", code_at(server.now())),
        ],
    )
    .await;
    assert!(confirmed.contains("Signed in as olga"), "{confirmed}");
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
    let current = code_at(server.now());
    assert!(
        sign_in(&server, "olga-password-1", &current)
            .await
            .contains("Signed in as olga")
    );
    assert!(
        sign_in(&server, "olga-password-1", &current)
            .await
            .contains("Sign-in failed")
    );
    assert!(
        sign_in(&server, "olga-password-1", "000000")
            .await
            .contains("Sign-in failed")
    );
    drop(server);
    drop(token);
}
