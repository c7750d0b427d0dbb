//! `device-tools hsm …` run as an admin would run it, against a real SoftHSM
//! token in a temporary directory; output and exit codes checked.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests report failure by panicking

use std::path::PathBuf;
use std::process::Command;

use gatehouse_tests::p11kit::{P11KitServer, client_module};
use gatehouse_tests::{Ran, SoftHsmDir, require_tool, run};

const LABEL: &str = "cli-test";

fn device_tools() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_device-tools"));
    command
        .env_remove("GATEHOUSE_PIN")
        .env_remove("GATEHOUSE_SO_PIN")
        .env_remove("GATEHOUSE_PKCS11_MODULE")
        .env_remove("SOFTHSM2_CONF");
    command
}

fn hsm(token: &SoftHsmDir, verb: &str, extra: &[&str]) -> Ran {
    let mut command = device_tools();
    command
        .args(["hsm", verb, "--label", LABEL, "--softhsm"])
        .arg(token.token_dir())
        .arg("--pin-file")
        .arg(token.pin_file())
        .args(extra);
    run(&mut command)
}

fn initialised() -> SoftHsmDir {
    let token = SoftHsmDir::new();
    let so_pin = token.so_pin_file();
    let ran = hsm(&token, "init", &["--so-pin-file", so_pin.to_str().unwrap()]).expect_code(0);
    assert!(
        ran.stdout.contains("Created SoftHSM token \"cli-test\""),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("Created key version 1"),
        "{}",
        ran.stdout
    );
    token
}

#[test]
fn init_creates_a_token_with_its_own_config_and_key_version_1() {
    let token = initialised();
    assert!(
        token.config_file().is_file(),
        "softhsm2.conf in the token directory"
    );
    let config = std::fs::read_to_string(token.config_file()).unwrap();
    assert!(
        config.contains(
            &token
                .token_dir()
                .join("tokens")
                .canonicalize()
                .unwrap()
                .display()
                .to_string()
        )
    );

    // Running init again changes nothing and says so.
    let so_pin = token.so_pin_file();
    let again = hsm(&token, "init", &["--so-pin-file", so_pin.to_str().unwrap()]).expect_code(0);
    assert!(again.stdout.contains("already exists"), "{}", again.stdout);
    assert!(
        again.stdout.contains("Key versions already present: 1"),
        "{}",
        again.stdout
    );
}

#[test]
fn status_lists_mechanisms_and_protected_keys() {
    let token = initialised();
    let ran = hsm(&token, "status", &[]).expect_code(0);
    for expected in [
        "Token      \"cli-test\"",
        "Wrap with  aes-kwp",
        "CKM_AES_KEY_WRAP_PAD under key version 1 (AES-256): the best scheme the token offers",
        "Offered    aes-kwp, aes-kw, rsa-oaep",
        "HMAC keys  at least 20/32/64 bytes",
        "present  CKM_SHA_1_HMAC",
        "Key versions (active: 1)",
        "gatehouse-wrap-v1    sensitive never-extractable wrap unwrap",
        "gatehouse-bind-v1    sensitive never-extractable sign verify",
        "Status     healthy",
    ] {
        assert!(
            ran.stdout.contains(expected),
            "missing {expected:?} in\n{}",
            ran.stdout
        );
    }
    assert!(!ran.stdout.contains("EXTRACTABLE"));

    let json = hsm(&token, "status", &["--json"]).expect_code(0);
    assert!(json.stdout.contains("\"healthy\": true"), "{}", json.stdout);
    assert!(
        json.stdout.contains("\"active_key_version\": 1"),
        "{}",
        json.stdout
    );
    assert!(json.stdout.contains("\"extractable\": false"));
}

#[test]
fn keygen_makes_an_rsa_key_pair_for_rsa_oaep_and_status_says_why() {
    let token = initialised();
    let ran = hsm(&token, "keygen", &["--wrap-scheme", "rsa-oaep"]).expect_code(0);
    assert!(
        ran.stdout.contains("Created key version 2"),
        "{}",
        ran.stdout
    );
    let status = hsm(&token, "status", &[]).expect_code(0);
    for expected in [
        "Wrap with  rsa-oaep",
        "CKM_RSA_PKCS_OAEP under key version 2 (RSA-2048)",
        "gatehouse-wrap-v2    sensitive never-extractable unwrap",
        "(RSA-2048)",
        "Status     healthy",
    ] {
        assert!(
            status.stdout.contains(expected),
            "missing {expected:?} in\n{}",
            status.stdout
        );
    }
    // The self-test seals on the host with the public key and verifies
    // inside the token.
    hsm(&token, "selftest", &[]).expect_code(0);
    let unknown = hsm(&token, "status", &["--wrap-scheme", "rot13"]);
    assert_eq!(unknown.code, Some(2), "{}", unknown.stderr);
}

#[test]
fn keygen_adds_the_next_version_and_makes_it_active() {
    let token = initialised();
    let ran = hsm(&token, "keygen", &[]).expect_code(0);
    assert!(
        ran.stdout
            .contains("Created key version 2; it is now the active version."),
        "{}",
        ran.stdout
    );
    let json = hsm(&token, "keygen", &["--json"]).expect_code(0);
    assert!(
        json.stdout.contains("\"created_version\": 3"),
        "{}",
        json.stdout
    );
    let status = hsm(&token, "status", &[]).expect_code(0);
    assert!(
        status.stdout.contains("Key versions (active: 3)"),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains("gatehouse-wrap-v2"));
}

#[test]
fn selftest_passes_every_rfc_6238_vector() {
    let token = initialised();
    let ran = hsm(&token, "selftest", &[]).expect_code(0);
    assert_eq!(ran.stdout.matches("  pass  ").count(), 18, "{}", ran.stdout);
    assert!(!ran.stdout.contains("FAIL"));
    for expected in [
        "SHA1    T=59           94287082",
        "SHA512  T=20000000000  47863826",
    ] {
        assert!(ran.stdout.contains(expected), "{}", ran.stdout);
    }
    assert!(ran.stdout.contains("self-test: 18 of 18 vectors passed"));
    let json = hsm(&token, "selftest", &["--json"]).expect_code(0);
    assert!(json.stdout.contains("\"failed\": 0"), "{}", json.stdout);
}

#[test]
fn a_wrong_pin_is_refused_with_its_own_exit_code() {
    let token = initialised();
    let wrong = token.path().join("wrong.pin");
    std::fs::write(&wrong, "not-the-pin").unwrap();
    let mut command = device_tools();
    command
        .args(["hsm", "status", "--label", LABEL, "--softhsm"])
        .arg(token.token_dir())
        .arg("--pin-file")
        .arg(&wrong);
    let ran = run(&mut command).expect_code(5);
    assert!(
        ran.stderr.contains("the token refused the PIN"),
        "{}",
        ran.stderr
    );
    assert!(
        !ran.stderr.contains("not-the-pin"),
        "the PIN must never be printed"
    );
}

#[test]
fn a_missing_pin_without_a_terminal_says_how_to_give_one() {
    let token = initialised();
    let mut command = device_tools();
    command
        .args(["hsm", "status", "--label", LABEL, "--softhsm"])
        .arg(token.token_dir());
    let ran = run(&mut command).expect_code(5);
    assert!(
        ran.stderr
            .contains("no user PIN given: use --pin-file FILE or $GATEHOUSE_PIN"),
        "{}",
        ran.stderr
    );
    // The environment works too.
    let mut command = device_tools();
    command
        .env("GATEHOUSE_PIN", SoftHsmDir::USER_PIN)
        .args(["hsm", "status", "--label", LABEL, "--softhsm"])
        .arg(token.token_dir());
    run(&mut command).expect_code(0);
}

#[test]
fn a_pin_is_not_accepted_as_a_plain_argument() {
    let mut command = device_tools();
    command.args(["hsm", "status", "--pin", "1234"]);
    let ran = run(&mut command).expect_code(2);
    assert!(
        ran.stderr.contains("unexpected argument '--pin'"),
        "{}",
        ran.stderr
    );
}

#[test]
fn a_missing_token_and_a_missing_module_are_named() {
    let token = initialised();
    let mut command = device_tools();
    command
        .args(["hsm", "status", "--label", "no-such-token", "--softhsm"])
        .arg(token.token_dir())
        .arg("--pin-file")
        .arg(token.pin_file());
    let ran = run(&mut command).expect_code(4);
    assert!(
        ran.stderr.contains("no token labelled \"no-such-token\""),
        "{}",
        ran.stderr
    );

    let mut command = device_tools();
    command
        .args([
            "hsm",
            "status",
            "--label",
            LABEL,
            "--module",
            "/nonexistent/libpkcs11.so",
        ])
        .arg("--pin-file")
        .arg(token.pin_file());
    let ran = run(&mut command).expect_code(3);
    assert!(
        ran.stderr
            .contains("cannot load the PKCS#11 module /nonexistent/libpkcs11.so"),
        "{}",
        ran.stderr
    );
    let json = {
        let mut command = device_tools();
        command
            .args([
                "--json",
                "hsm",
                "status",
                "--module",
                "/nonexistent/libpkcs11.so",
            ])
            .arg("--pin-file")
            .arg(token.pin_file());
        run(&mut command).expect_code(3)
    };
    assert!(json.stdout.contains("\"exit_code\":3"), "{}", json.stdout);
}

#[test]
fn pkcs11_tool_agrees_the_keys_cannot_be_read() {
    let pkcs11_tool = require_tool("pkcs11-tool", "opensc");
    let token = initialised();
    let module = hsm_adapter::ModuleConfig::default()
        .resolve_module_path()
        .unwrap();
    let mut command = Command::new(pkcs11_tool);
    command
        .env("SOFTHSM2_CONF", token.config_file())
        .arg("--module")
        .arg(module)
        .args([
            "--token-label",
            LABEL,
            "--login",
            "--pin",
            SoftHsmDir::USER_PIN,
        ])
        .args([
            "--read-object",
            "--type",
            "secrkey",
            "--label",
            "gatehouse-wrap-v1",
        ]);
    let ran = run(&mut command);
    assert_ne!(
        ran.code,
        Some(0),
        "pkcs11-tool read the wrapping key:\n{}",
        ran.stdout
    );
}

#[test]
fn four_processes_starting_at_once_all_succeed() {
    let token = initialised();
    for _round in 0..5 {
        let children: Vec<_> = (0..4)
            .map(|_| {
                let mut command = device_tools();
                command
                    .args(["hsm", "selftest", "--label", LABEL, "--softhsm"])
                    .arg(token.token_dir())
                    .arg("--pin-file")
                    .arg(token.pin_file())
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
                command.spawn().unwrap()
            })
            .collect();
        for child in children {
            Ran::from_output(child.wait_with_output().unwrap()).expect_code(0);
        }
    }
}

#[test]
fn an_out_of_process_token_served_by_p11_kit_negotiates_rsa_oaep() {
    // The token is made with an RSA key version directly, then reached only
    // through p11-kit's RPC, which carries no AES wrap mechanism.
    let token = SoftHsmDir::new();
    let so_pin = token.so_pin_file();
    hsm(
        &token,
        "init",
        &[
            "--so-pin-file",
            so_pin.to_str().unwrap(),
            "--wrap-scheme",
            "rsa-oaep",
        ],
    )
    .expect_code(0);
    let softhsm = PathBuf::from("/usr/lib/softhsm/libsofthsm2.so");
    let server = P11KitServer::start(&softhsm, &token.config_file(), LABEL);
    let remote = |verb: &str, extra: &[&str]| {
        let mut command = device_tools();
        command
            .args(["hsm", verb, "--label", LABEL, "--module"])
            .arg(client_module())
            .arg("--pin-file")
            .arg(token.pin_file())
            .args(extra)
            .env("P11_KIT_SERVER_ADDRESS", server.address());
        run(&mut command)
    };
    let status = remote("status", &[]).expect_code(0);
    for expected in [
        "PKCS#11 Kit Proxy Module",
        "Wrap with  rsa-oaep",
        "Offered    rsa-oaep",
        "Status     healthy",
    ] {
        assert!(
            status.stdout.contains(expected),
            "missing {expected:?} in\n{}",
            status.stdout
        );
    }
    let selftest = remote("selftest", &[]).expect_code(0);
    assert!(
        selftest.stdout.contains("18 of 18 vectors passed"),
        "{}",
        selftest.stdout
    );
    // A new version made through p11-kit is an RSA pair again.
    remote("keygen", &[]).expect_code(0);
    let status = remote("status", &[]).expect_code(0);
    assert!(
        status
            .stdout
            .contains("CKM_RSA_PKCS_OAEP under key version 2 (RSA-2048)"),
        "{}",
        status.stdout
    );
    // Asking for an AES scheme there is refused, saying why.
    let refused = remote("keygen", &["--wrap-scheme", "aes-kwp"]);
    assert_ne!(refused.code, Some(0));
    assert!(
        refused
            .stderr
            .contains("does not offer CKM_AES_KEY_WRAP_PAD"),
        "{}",
        refused.stderr
    );
}
