//! The OATH client against a virtual YubiKey OATH card, through a real pcscd
//! and Debian's vpcd reader driver. One test, its steps in order: there is
//! one virtual reader, and one pcscd per machine.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests report failure by panicking

use std::process::Command;

use device_tools::ykoath::apdu::{Command as Apdu, StatusWord};
use device_tools::ykoath::applet::{HashAlgorithm, NewCredential, time_challenge};
use device_tools::ykoath::{OathError, OathSession};
use gatehouse_tests::oath_card::{OathCard, Touch};
use gatehouse_tests::pcscd::Pcscd;
use gatehouse_tests::vpcd::InsertedCard;
use gatehouse_tests::{GatehouseServer, Ran, ServerOptions, require_tool, run};
use secrecy::SecretString;

const READER: &str = "Virtual PCD 00 00";
/// The public test secret JBSWY3DPEHPK3PXP.
const REFERENCE_KEY: [u8; 10] = [0x48, 0x65, 0x6C, 0x6C, 0x6F, 0x21, 0xDE, 0xAD, 0xBE, 0xEF];
const REFERENCE_NAME: &str = "Example:alice@example.com";

fn device_tools(args: &[&str]) -> Ran {
    let mut command = Command::new(env!("CARGO_BIN_EXE_device-tools"));
    command
        .args(args)
        .env_remove("GATEHOUSE_ACCESS_CODE")
        .env_remove("GATEHOUSE_READER");
    run(&mut command)
}

/// Wait until pcscd sees the card in the virtual reader.
fn session() -> OathSession {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match OathSession::open(Some(READER)) {
            Ok(session) => return session,
            Err(error) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the virtual card did not appear: {error}"
                );
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
}

fn reference(session: &OathSession, touch: bool, name: &str) {
    session
        .put(&NewCredential {
            name,
            algorithm: HashAlgorithm::Sha1,
            digits: 6,
            key: &REFERENCE_KEY,
            require_touch: touch,
        })
        .unwrap();
}

#[test]
fn the_oath_client_works_a_virtual_yubikey_through_pcscd() {
    let _pcscd = Pcscd::start();
    let card = InsertedCard::insert(OathCard::new(Touch::Always));

    // The reference vector, byte for byte, through pcscd.
    {
        let session = session();
        assert_eq!(session.version, [5, 4, 3]);
        reference(&session, false, REFERENCE_NAME);
        let challenge = time_challenge(1_111_111_109, 30);
        assert_eq!(challenge, [0, 0, 0, 0, 0x02, 0x35, 0x23, 0xEC]);
        let mut data = vec![0x71, REFERENCE_NAME.len() as u8];
        data.extend_from_slice(REFERENCE_NAME.as_bytes());
        data.extend_from_slice(&[0x74, 0x08]);
        data.extend_from_slice(&challenge);
        let answer = session
            .transmit(&Apdu::new(0xA2, 0x00, 0x01, data))
            .unwrap();
        assert_eq!(answer, vec![0x76, 0x05, 0x06, 0x67, 0x4C, 0x91, 0xA7]);
        assert_eq!(
            session.calculate(REFERENCE_NAME, &challenge).unwrap(),
            "071271"
        );
    }

    // Yubico's own ykman works the virtual card: it is true to the device.
    ykman_agrees();

    // The CLI, as an admin runs it.
    let serial = card.card.lock().unwrap().serial;
    let listing = device_tools(&["yubikey", "list"]).expect_code(0);
    let expected = format!("{READER}: YubiKey serial {serial}, firmware 5.4.3, OATH 5.4.3");
    assert!(listing.stdout.contains(&expected), "{}", listing.stdout);
    let accounts = device_tools(&["yubikey", "accounts", "--reader", READER]).expect_code(0);
    assert_eq!(
        accounts.stdout.trim(),
        format!("{REFERENCE_NAME}\nTest:bob")
    );
    session().delete("Test:bob").unwrap();
    let codes =
        device_tools(&["yubikey", "code", "--reader", READER, "--at", "1111111109"]).expect_code(0);
    assert_eq!(codes.stdout.trim(), format!("{REFERENCE_NAME}  071271"));
    let json = device_tools(&[
        "--json",
        "yubikey",
        "code",
        "--reader",
        READER,
        "--at",
        "1111111109",
    ])
    .expect_code(0);
    assert!(
        json.stdout.contains("\"code\": \"071271\""),
        "{}",
        json.stdout
    );
    let wrong_reader =
        device_tools(&["yubikey", "accounts", "--reader", "No Such Reader"]).expect_code(8);
    assert!(
        wrong_reader
            .stderr
            .contains("no reader named \"No Such Reader\""),
        "{}",
        wrong_reader.stderr
    );
    let missing =
        device_tools(&["yubikey", "code", "--reader", READER, "--name", "nobody"]).expect_code(9);
    assert!(
        missing.stderr.contains("no credential named"),
        "{}",
        missing.stderr
    );

    // Long answers come in pieces (61xx + SEND REMAINING); the card holds 32.
    {
        let session = session();
        for index in 1..32 {
            reference(
                &session,
                false,
                &format!("Issuer:account-with-a-long-name-{index:02}"),
            );
        }
        assert_eq!(session.list().unwrap().len(), 32);
        let full = session.put(&NewCredential {
            name: "one-too-many",
            algorithm: HashAlgorithm::Sha1,
            digits: 6,
            key: &REFERENCE_KEY,
            require_touch: false,
        });
        assert!(
            matches!(full, Err(OathError::Status(StatusWord::NO_SPACE))),
            "{full:?}"
        );
        session
            .delete("Issuer:account-with-a-long-name-07")
            .unwrap();
        assert_eq!(session.list().unwrap().len(), 31);
        session.rename(REFERENCE_NAME, "Example:renamed").unwrap();
        assert!(
            session
                .list()
                .unwrap()
                .iter()
                .any(|c| c.name == "Example:renamed")
        );
        session.reset().unwrap();
        assert!(session.list().unwrap().is_empty());
    }

    // An access code: without it the applet answers nothing; with it, all.
    {
        let session = session();
        reference(&session, false, REFERENCE_NAME);
        session
            .set_access_code(&SecretString::from("correct horse".to_owned()))
            .unwrap();
    }
    {
        let mut session = session();
        assert!(session.locked());
        assert!(matches!(session.list(), Err(OathError::AccessCodeRequired)));
        assert!(matches!(
            session.validate(&SecretString::from("wrong".to_owned())),
            Err(OathError::WrongAccessCode)
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let code_file = dir.path().join("access-code");
    std::fs::write(&code_file, "correct horse\n").unwrap();
    let refused = device_tools(&["yubikey", "accounts", "--reader", READER]).expect_code(5);
    assert!(refused.stderr.contains("access code"), "{}", refused.stderr);
    let code_file_arg = code_file.to_str().unwrap();
    let unlocked = device_tools(&[
        "yubikey",
        "accounts",
        "--reader",
        READER,
        "--access-code-file",
        code_file_arg,
    ])
    .expect_code(0);
    assert_eq!(unlocked.stdout.trim(), REFERENCE_NAME);
    device_tools(&[
        "yubikey",
        "access-code",
        "clear",
        "--reader",
        READER,
        "--access-code-file",
        code_file_arg,
    ])
    .expect_code(0);
    device_tools(&["yubikey", "accounts", "--reader", READER]).expect_code(0);

    // Touch credentials: calculated only when the key is touched.
    card.card.lock().unwrap().touch = Touch::Never;
    {
        let session = session();
        reference(&session, true, "Gatehouse:touchy");
        let refused = session.calculate("Gatehouse:touchy", &time_challenge(1_111_111_109, 30));
        assert!(
            matches!(refused, Err(OathError::Status(StatusWord::TOUCH_REQUIRED))),
            "{refused:?}"
        );
    }
    card.card.lock().unwrap().touch = Touch::Always;
    let touched = device_tools(&[
        "yubikey",
        "code",
        "--reader",
        READER,
        "--name",
        "Gatehouse:touchy",
        "--at",
        "1111111109",
    ])
    .expect_code(0);
    assert_eq!(touched.stdout.trim(), "Gatehouse:touchy  071271");
    assert!(touched.stderr.contains("Touch the key"));

    // Provisioning against a running gatehouse, then signing in with the key.
    enroll_against_gatehouse(card);

    // The card is out: a clear error, not a hang.
    let gone = device_tools(&["yubikey", "accounts", "--reader", READER]);
    assert_eq!(gone.code, Some(8), "{}", gone.stderr);
    let reset = device_tools(&["yubikey", "reset", "--reader", READER]).expect_code(2);
    assert!(reset.stderr.contains("--yes"));
}

fn ykman(args: &[&str]) -> Ran {
    let mut command = Command::new(require_tool("ykman", "yubikey-manager"));
    command.args(["--reader", READER]).args(args);
    run(&mut command)
}

/// `now` in Unix seconds, for comparing with ykman, which uses the clock.
#[allow(clippy::disallowed_methods)]
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn ykman_agrees() {
    // ykman adds a credential; our client sees it and calculates it.
    ykman(&[
        "oath",
        "accounts",
        "add",
        "--oath-type",
        "TOTP",
        "Test:bob",
        "JBSWY3DPEHPK3PXP",
    ])
    .expect_code(0);
    {
        let session = session();
        assert!(session.list().unwrap().iter().any(|c| c.name == "Test:bob"));
        assert_eq!(
            session
                .calculate("Test:bob", &time_challenge(1_111_111_109, 30))
                .unwrap(),
            "071271"
        );
    }
    // ykman lists and calculates what our client stored.
    let listed = ykman(&["oath", "accounts", "list"]).expect_code(0);
    assert!(listed.stdout.contains(REFERENCE_NAME), "{}", listed.stdout);
    for _attempt in 0..3 {
        let step = now() / 30;
        let codes = ykman(&["oath", "accounts", "code", REFERENCE_NAME]).expect_code(0);
        if now() / 30 != step {
            continue; // the code changed while ykman ran: ask again
        }
        let expected = totp_rs::Builder::new()
            .with_secret(REFERENCE_KEY.to_vec())
            .build_noncompliant()
            .generate(step * 30)
            .to_string();
        assert!(
            codes.stdout.contains(&expected),
            "ykman: {} expected {expected}",
            codes.stdout
        );
        return;
    }
    panic!("the time step kept changing while ykman ran");
}

fn gatehouse_binary() -> std::path::PathBuf {
    let binary =
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_device-tools")).with_file_name("gatehouse");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p server` (the test command does)",
        binary.display()
    );
    binary
}

fn gatehouse(server: &GatehouseServer, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = server
        .command(&gatehouse_binary())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        writeln!(input, "{text}").unwrap();
    }
    drop(input);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "gatehouse {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// How many authenticators `gatehouse user list --json` shows for `name`.
fn authenticators(server: &GatehouseServer, name: &str) -> u64 {
    let users: serde_json::Value =
        serde_json::from_str(&gatehouse(server, &["user", "list", "--json"], None)).unwrap();
    users
        .as_array()
        .unwrap()
        .iter()
        .find(|user| user["name"] == name)
        .and_then(|user| user["authenticators"].as_u64())
        .unwrap()
}

fn sign_in(server: &GatehouseServer, name: &str, password: &str, code: &str) -> String {
    let pem = std::fs::read(server.data_dir.with_file_name("ca.pem")).unwrap();
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .cookie_store(true)
        .build()
        .unwrap();
    let form = client
        .get(format!("{}/signin", server.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let marker = "name=\"csrf\" value=\"";
    let start = form.find(marker).unwrap() + marker.len();
    let csrf = &form[start..start + form[start..].find('"').unwrap()];
    client
        .post(format!("{}/signin", server.url))
        .form(&[
            ("csrf", csrf),
            ("name", name),
            ("password", password),
            ("code", code),
        ])
        .send()
        .unwrap()
        .text()
        .unwrap()
}

/// Ends with the key pulled out of the reader.
fn enroll_against_gatehouse(card: InsertedCard) {
    // Over HTTPS, as in a deployment: the server's certificate is trusted
    // through --ca-file.
    let tls_dir = tempfile::tempdir().unwrap();
    let (certificate, private_key) = gatehouse_tests::self_signed_certificate(tls_dir.path());
    let server = GatehouseServer::start(
        &gatehouse_binary(),
        ServerOptions {
            extra_args: vec![
                "--tls-certificate".into(),
                certificate.display().to_string(),
                "--tls-private-key".into(),
                private_key.display().to_string(),
            ],
            ..ServerOptions::default()
        },
    );
    assert!(server.url.starts_with("https://"));
    std::fs::copy(&certificate, server.data_dir.with_file_name("ca.pem")).unwrap();
    let ca_arg = certificate.to_str().unwrap();
    gatehouse(
        &server,
        &["user", "add", "dave", "--force-mfa", "--password-stdin"],
        Some("dave-password-1"),
    );
    gatehouse(
        &server,
        &["user", "add", "erin", "--force-mfa", "--password-stdin"],
        Some("erin-password-1"),
    );
    gatehouse(
        &server,
        &["user", "add", "frank", "--force-mfa", "--password-stdin"],
        Some("frank-password-1"),
    );
    let created = gatehouse(&server, &["token", "create", "--admin"], None);
    let token = created.lines().last().unwrap().trim().to_owned();
    assert!(token.starts_with("gha_"), "{created}");
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let token_arg = token_file.to_str().unwrap();
    let enroll = |user: &str| {
        device_tools(&[
            "yubikey",
            "enroll",
            "--server",
            &server.url,
            "--user",
            user,
            "--token-file",
            token_arg,
            "--reader",
            READER,
            "--ca-file",
            ca_arg,
        ])
    };

    // One command registers the key; a touch is required by default.
    let done = enroll("dave").expect_code(0);
    assert!(
        done.stdout
            .contains("is now dave's authenticator (credential Gatehouse:dave, touch required)"),
        "{}",
        done.stdout
    );
    assert!(done.stderr.contains("Touch the key"));
    assert_eq!(authenticators(&server, "dave"), 1);
    let serial = card.card.lock().unwrap().serial.to_string();
    let listing = gatehouse(&server, &["user", "list"], None);
    assert!(
        listing.contains(&format!("1 (YubiKey {serial})")),
        "{listing}"
    );

    // The key's code signs dave in, exactly as an app's code does.
    server.advance(30);
    let at = server.now().to_string();
    let codes = device_tools(&[
        "yubikey",
        "code",
        "--reader",
        READER,
        "--name",
        "Gatehouse:dave",
        "--at",
        &at,
    ])
    .expect_code(0);
    let code = codes.stdout.split_whitespace().last().unwrap().to_owned();
    assert!(sign_in(&server, "dave", "dave-password-1", &code).contains("Signed in as dave"));
    assert!(
        sign_in(&server, "dave", "dave-password-1", &code).contains("Sign-in failed"),
        "a code is accepted once"
    );

    // The key is never touched: nothing stays registered, on either side.
    card.card.lock().unwrap().touch = Touch::Never;
    let untouched = enroll("erin").expect_code(9);
    assert!(
        untouched.stderr.contains("touch the key when it blinks"),
        "{}",
        untouched.stderr
    );
    assert!(
        untouched.stderr.contains("nothing was registered"),
        "{}",
        untouched.stderr
    );
    card.card.lock().unwrap().touch = Touch::Always;
    assert_eq!(authenticators(&server, "erin"), 0);
    assert!(
        !session()
            .list()
            .unwrap()
            .iter()
            .any(|c| c.name == "Gatehouse:erin")
    );
    assert!(server.log().contains("withdrawn by the provisioning tool"));

    // A full applet: the credential cannot be stored, nothing is registered.
    {
        let session = session();
        let stored = session.list().unwrap().len();
        for index in stored..32 {
            reference(&session, false, &format!("filler-{index:02}"));
        }
        assert_eq!(session.list().unwrap().len(), 32);
    }
    let full = enroll("erin").expect_code(9);
    assert!(
        full.stderr.contains("full") && full.stderr.contains("device-tools yubikey delete"),
        "{}",
        full.stderr
    );
    assert_eq!(authenticators(&server, "erin"), 0);
    {
        let session = session();
        for credential in session.list().unwrap() {
            if credential.name.starts_with("filler-") {
                session.delete(&credential.name).unwrap();
            }
        }
    }

    // A wrong reader name fails before the server is asked for anything.
    let base = [
        "yubikey",
        "enroll",
        "--ca-file",
        ca_arg,
        "--server",
        &server.url,
        "--user",
        "erin",
        "--token-file",
        token_arg,
    ];
    let wrong_reader = device_tools(&[&base[..], &["--reader", "Nope"]].concat()).expect_code(8);
    assert!(
        wrong_reader.stderr.contains("no reader named \"Nope\""),
        "{}",
        wrong_reader.stderr
    );

    // A key protected by an access code enrolls once the code is given.
    session()
        .set_access_code(&SecretString::from("key access".to_owned()))
        .unwrap();
    let code_file = dir.path().join("access-code");
    std::fs::write(&code_file, "key access").unwrap();
    device_tools(&[&base[..], &["--reader", READER]].concat()).expect_code(5);
    let code_arg = code_file.to_str().unwrap();
    let options = [
        "--reader",
        READER,
        "--access-code-file",
        code_arg,
        "--no-touch",
    ];
    device_tools(&[&base[..], &options[..]].concat()).expect_code(0);
    assert_eq!(authenticators(&server, "erin"), 1);
    {
        let mut session = session();
        session
            .validate(&SecretString::from("key access".to_owned()))
            .unwrap();
        session.clear_access_code().unwrap();
        session.delete("Gatehouse:erin").unwrap();
    }

    // A wrong token and an unknown user are refused clearly.
    std::fs::write(&token_file, "gha_not-a-token").unwrap();
    let refused = enroll("dave").expect_code(5);
    assert!(
        refused.stderr.contains("refused the API token"),
        "{}",
        refused.stderr
    );
    std::fs::write(&token_file, &token).unwrap();
    let unknown = enroll("nobody").expect_code(10);
    assert!(
        unknown.stderr.contains("no such user"),
        "{}",
        unknown.stderr
    );

    // A revoked token no longer works.
    let second = gatehouse(
        &server,
        &["token", "create", "--admin", "--name", "second"],
        None,
    );
    let second_token = second.lines().last().unwrap().trim().to_owned();
    gatehouse(&server, &["token", "revoke", "1"], None);
    enroll("dave").expect_code(5);
    std::fs::write(&token_file, &second_token).unwrap();

    // The key is pulled out while it waits for the touch: nothing active.
    card.card.lock().unwrap().touch = Touch::PullOut;
    let pulled = enroll("frank");
    assert_ne!(pulled.code, Some(0), "{}", pulled.stdout);
    assert!(
        pulled.stderr.contains("nothing was registered"),
        "{}",
        pulled.stderr
    );
    assert_eq!(authenticators(&server, "frank"), 0);
    assert!(
        server
            .log()
            .matches("withdrawn by the provisioning tool")
            .count()
            >= 2
    );
    card.remove();
}
