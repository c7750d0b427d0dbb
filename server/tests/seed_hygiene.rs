//! With an out-of-process token (SoftHSM served by `p11-kit server`, reached
//! through `p11-kit-client.so`), once an enrollment is confirmed the
//! `gatehouse` process holds no copy of the seed: the test reads the
//! server's whole memory through `/proc/PID/mem` and looks for the seed's
//! bytes and its base32 text. As a control, the same scan must find the
//! seed while the registration is still pending (the QR code needs it).
//! Then the token server goes away and comes back, as a network HSM can:
//! sign-in fails closed meanwhile and resumes by itself.
//!
//! Its own test binary: it loads SoftHSM in this process to make the token.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests report failure by panicking

use std::os::unix::fs::FileExt;

use data_encoding::BASE32_NOPAD;
use gatehouse_tests::p11kit::{P11KitServer, client_module};
use gatehouse_tests::{GatehouseServer, ServerOptions, SoftHsmDir};
use hsm_adapter::{ModuleConfig, SecretString, TokenAdmin, WrapScheme};

#[path = "it/browser.rs"]
#[allow(dead_code)] // this binary uses some of the shared helpers
mod browser;

use browser::{Browser, Page, add_user, binary, code};

const LABEL: &str = "remote-token";

/// Where each needle occurs in the readable memory of process `pid`:
/// `(needle index, mapping)` pairs.
fn find_in_memory(pid: u32, needles: &[Vec<u8>]) -> Vec<(usize, String)> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let memory = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let finders: Vec<_> = needles.iter().map(memchr::memmem::Finder::new).collect();
    let mut found = Vec::new();
    let mut scanned = 0usize;
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let name = line.split_whitespace().nth(5).unwrap_or("[anonymous]");
        if !perms.starts_with('r') || name == "[vvar]" || name == "[vsyscall]" {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap();
        let start = u64::from_str_radix(start, 16).unwrap();
        let end = u64::from_str_radix(end, 16).unwrap();
        let mut buffer = vec![0u8; (end - start) as usize];
        let Ok(read) = memory.read_at(&mut buffer, start) else {
            continue;
        };
        scanned += read;
        for (index, finder) in finders.iter().enumerate() {
            if finder.find(&buffer[..read]).is_some() {
                found.push((index, format!("{range} {perms} {name}")));
            }
        }
    }
    assert!(
        scanned > 1 << 20,
        "only {scanned} bytes of memory could be read"
    );
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_process_token_leaves_no_seed_in_the_server_and_fails_closed_when_gone() {
    // A SoftHSM token with an RSA key version, made here, then served by
    // p11-kit in another process.
    let token = SoftHsmDir::new();
    let config = ModuleConfig::softhsm_dir(&token.token_dir());
    hsm_adapter::softhsm::prepare_dir(&token.token_dir()).unwrap();
    let pin = SecretString::from(SoftHsmDir::USER_PIN.to_owned());
    hsm_adapter::init_token(
        &config,
        LABEL,
        &SecretString::from(SoftHsmDir::SO_PIN.to_owned()),
        &pin,
    )
    .unwrap();
    TokenAdmin::open(&config, LABEL, &pin, Some(WrapScheme::RsaOaep))
        .unwrap()
        .add_key_version()
        .unwrap();
    let module = config.resolve_module_path().unwrap();
    let mut p11kit = P11KitServer::start(&module, &token.config_file(), LABEL);

    let server = GatehouseServer::start(
        &binary(),
        ServerOptions {
            env: vec![
                (
                    "GATEHOUSE_PKCS11_MODULE".into(),
                    client_module().display().to_string(),
                ),
                (
                    "GATEHOUSE_PIN_FILE".into(),
                    token.pin_file().display().to_string(),
                ),
                ("GATEHOUSE_TOKEN_LABEL".into(), LABEL.into()),
                ("P11_KIT_SERVER_ADDRESS".into(), p11kit.address()),
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

    add_user(&server, "alice", "alice-password-1", true);

    // Sign in, Initialize, read the security key as a person would.
    let browser = Browser::new(&server);
    browser
        .sign_in("alice", "alice-password-1", "")
        .await
        .expect("MFA) is enforced");
    let settings = browser.get("/mfa/settings").await;
    let dialog = browser.submit(&settings, "/mfa/initialize", &[]).await;
    let key = dialog.security_key();
    let marker = "id=\"security-key\">";
    let start = dialog.html.find(marker).unwrap() + marker.len();
    let grouped = dialog.html[start..start + dialog.html[start..].find('<').unwrap()].to_owned();
    let seed = BASE32_NOPAD.decode(key.as_bytes()).unwrap();
    assert_eq!(seed.len(), 20);
    let needles = vec![
        seed.clone(),
        key.clone().into_bytes(),
        grouped.clone().into_bytes(),
    ];
    let confirm_code = code(&key, server.now());
    drop(dialog);

    // The control: while the registration is pending, the scan finds it.
    let pending = find_in_memory(server.pid(), &needles);
    assert!(
        pending.iter().any(|(index, _)| *index == 0),
        "the scan must find the pending seed (or it proves nothing): {pending:?}"
    );

    // Confirm with the app's code, then sign in once more with a code.
    browser
        .submit(&settings, "/mfa/confirm", &[("code", &confirm_code)])
        .await
        .expect("Signed in as alice");
    server.advance(30);
    Browser::new(&server)
        .sign_in("alice", "alice-password-1", &code(&key, server.now()))
        .await
        .expect("Signed in as alice");

    // Now: no copy in the server's memory, live or freed.
    let after = find_in_memory(server.pid(), &needles);
    assert!(
        after.is_empty(),
        "the seed is still in the gatehouse process after enrollment: {after:?}"
    );

    // The token server goes away, as a network HSM can: sign-in fails
    // closed with a clear message, and resumes when it is back.
    p11kit.stop();
    server.advance(30);
    let next = code(&key, server.now());
    let paused = sign_in(&server, &next).await;
    assert_eq!(paused.status, reqwest::StatusCode::SERVICE_UNAVAILABLE);
    paused.expect("sign-in is paused");
    let health = reqwest::get(format!("{}/healthz", server.url))
        .await
        .unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    p11kit.restart();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let page = sign_in(&server, &next).await;
        if page.html.contains("Signed in as alice") {
            break;
        }
        assert_eq!(
            page.status,
            reqwest::StatusCode::SERVICE_UNAVAILABLE,
            "{page:?}"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "sign-in did not resume after the token came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    drop(server);
    drop(p11kit);
}

/// A fresh visitor signs alice in with `code`.
async fn sign_in(server: &GatehouseServer, code: &str) -> Page {
    Browser::new(server)
        .sign_in("alice", "alice-password-1", code)
        .await
}
