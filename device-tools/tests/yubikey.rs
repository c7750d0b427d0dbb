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
use gatehouse_tests::{Ran, require_tool, run};
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
    let listing = device_tools(&["yubikey", "list"]).expect_code(0);
    assert!(
        listing.stdout.contains(&format!("{READER}: OATH 5.4.3")),
        "{}",
        listing.stdout
    );
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

    // Pull the card: a clear error, not a hang.
    card.remove();
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
