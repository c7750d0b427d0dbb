//! A real headless Chromium walks the specification's procedure by the
//! labels on the page: first sign-in with MFA enforced, registration by the
//! security key (and by the QR code, decoded from a screenshot), and a later
//! sign-in with user name, password and authenticator code. A screenshot of
//! each step is kept in `target/tmp/screenshots/` (or
//! `$GATEHOUSE_SCREENSHOTS_DIR`).

use std::path::PathBuf;
use std::process::Command;

use gatehouse_tests::require_tool;
use gatehouse_tests::webdriver::Chromedriver;

use crate::browser::{code, start};

fn screenshot_dir() -> PathBuf {
    std::env::var_os("GATEHOUSE_SCREENSHOTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots"))
}

/// What a phone camera reads from the QR code in `png`.
fn decode_qr(png: &[u8]) -> String {
    let zbarimg = require_tool("zbarimg", "zbar-tools");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qr.png");
    std::fs::write(&path, png).unwrap();
    let output = Command::new(zbarimg)
        .args(["--raw", "-q"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "no QR code found in the screenshot"
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn chromium_signs_in_with_enforced_mfa_as_the_procedure_describes() {
    let server = start();
    let one_time = server.admin_password.clone().unwrap();
    let driver = Chromedriver::start();
    let mut browser = driver.session(1000, 860).await;
    browser.save_screenshots_in(&screenshot_dir().join("sign-in-procedure"));

    // The Sign In view.
    browser.goto(&format!("{}/signin", server.url)).await;
    browser.fill("User name", "admin").await;
    browser.fill("Password", &one_time).await;
    browser.snap("sign-in").await;
    browser.click("Sign In").await;

    // The reminder that MFA is enforced.
    let text = browser
        .wait_for_text("Multi-factor authentication (MFA) is enforced for your account")
        .await;
    assert!(
        text.contains("register a mobile device as an authenticator"),
        "{text}"
    );
    browser.snap("mfa-enforced").await;
    browser.click("Show MFA Settings").await;

    // MFA Settings for user admin.
    let text = browser.wait_for_text("MFA Settings for user admin").await;
    assert!(
        text.contains("You have not yet registered a mobile device as an authenticator."),
        "{text}"
    );
    browser.snap("mfa-settings").await;
    browser.click("Initialize").await;

    // MFA Settings for user admin – Authenticator: QR code and security key.
    browser
        .wait_for_text("MFA Settings for user admin – Authenticator")
        .await;
    let key_element = browser.xpath("//*[@id='security-key']").await;
    let shown_key = browser.text(&key_element).await;
    let key: String = shown_key.split_whitespace().collect();
    assert_eq!(key.len(), 32, "shown key {shown_key:?}");
    assert!(shown_key.contains(' '), "the key is grouped for reading");
    let qr = browser.xpath("//figure[contains(@class,'qr')]").await;
    let uri = decode_qr(&browser.element_screenshot(&qr).await);
    let parsed = reqwest::Url::parse(&uri).unwrap();
    assert_eq!(parsed.scheme(), "otpauth");
    assert_eq!(parsed.host_str(), Some("totp"));
    assert_eq!(parsed.path(), "/Gatehouse:admin");
    let query: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
    assert_eq!(
        query.get("secret"),
        Some(&key),
        "the QR code carries the shown key"
    );
    assert_eq!(query.get("issuer").map(String::as_str), Some("Gatehouse"));
    assert_eq!(query.get("digits").map(String::as_str), Some("6"));
    assert_eq!(query.get("period").map(String::as_str), Some("30"));

    browser
        .fill("Authenticator code", &code(&key, server.now()))
        .await;
    browser.snap("authenticator").await;
    browser.click("Close").await;

    // The one-time password is replaced.
    browser
        .wait_for_text("Change Password for user admin")
        .await;
    browser.fill("Current password", &one_time).await;
    browser.fill("New password", "a new admin password").await;
    browser
        .fill("New password again", "a new admin password")
        .await;
    browser.snap("change-password").await;
    browser.click("Change Password").await;

    let text = browser.wait_for_text("Signed in as admin").await;
    assert!(text.contains("password and authenticator code"), "{text}");
    browser.snap("signed-in").await;
    browser.click("Sign Out").await;

    // Later: user name, password and the current authenticator code.
    server.advance(30);
    browser.wait_for_text("You have signed out.").await;
    assert_eq!(browser.current_path().await, "/signin");
    browser.fill("User name", "admin").await;
    browser.fill("Password", "a new admin password").await;
    browser
        .fill("Authenticator code", &code(&key, server.now()))
        .await;
    browser.snap("sign-in-with-code").await;
    browser.click("Sign In").await;
    browser.wait_for_text("Signed in as admin").await;

    // The admin pages.
    browser.goto(&format!("{}/admin", server.url)).await;
    let text = browser.wait_for_text("Create User").await;
    assert!(text.contains("Force MFA"), "{text}");
    browser.snap("admin").await;
    browser.quit().await;
}
