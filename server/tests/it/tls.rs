//! HTTPS served directly: cookies become `Secure` with the `__Host-` prefix.
//! Checked with curl, an independent client.

use std::process::Command;

use gatehouse_tests::{ServerOptions, require_tool};

use crate::browser::{add_user, start_with};

#[test]
fn under_tls_cookies_are_secure_and_host_prefixed() {
    let curl = require_tool("curl", "curl");
    let dir = tempfile::tempdir().unwrap();
    let (certificate, key) = gatehouse_tests::self_signed_certificate(dir.path());
    let server = start_with(ServerOptions {
        extra_args: vec![
            "--tls-certificate".into(),
            certificate.display().to_string(),
            "--tls-private-key".into(),
            key.display().to_string(),
        ],
        ..ServerOptions::default()
    });
    assert!(server.url.starts_with("https://"), "{}", server.url);
    add_user(&server, "alice", "alice-password-1", false);

    let jar = dir.path().join("cookies.txt");
    let curl_run = |args: &[&str]| {
        let output = Command::new(&curl)
            .args(["--silent", "--show-error", "--include", "--cacert"])
            .arg(&certificate)
            .arg("--cookie-jar")
            .arg(&jar)
            .arg("--cookie")
            .arg(&jar)
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let form = curl_run(&[&format!("{}/signin", server.url)]);
    let pre = form
        .lines()
        .find(|line| line.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap();
    assert!(pre.contains("__Host-gatehouse_pre="), "{pre}");
    assert!(
        pre.contains("; Secure") && pre.contains("HttpOnly") && pre.contains("SameSite=Strict"),
        "{pre}"
    );
    let marker = "name=\"csrf\" value=\"";
    let start = form.find(marker).unwrap() + marker.len();
    let csrf = &form[start..start + form[start..].find('"').unwrap()];

    let signed_in = curl_run(&[
        "--data-urlencode",
        &format!("csrf={csrf}"),
        "--data-urlencode",
        "name=alice",
        "--data-urlencode",
        "password=alice-password-1",
        "--data-urlencode",
        "code=",
        &format!("{}/signin", server.url),
    ]);
    assert!(
        signed_in.starts_with("HTTP/1.1 303") || signed_in.starts_with("HTTP/2 303"),
        "{signed_in}"
    );
    let session = signed_in
        .lines()
        .find(|line| {
            line.to_ascii_lowercase().starts_with("set-cookie:") && line.contains("session")
        })
        .unwrap();
    assert!(session.contains("__Host-gatehouse_session="), "{session}");
    assert!(
        session.contains("; Secure") && session.contains("Path=/"),
        "{session}"
    );
    let account = curl_run(&[&format!("{}/account", server.url)]);
    assert!(account.contains("Signed in as alice"), "{account}");
}

#[test]
fn plain_http_is_refused_off_loopback_unless_allowed() {
    let output = Command::new(crate::browser::binary())
        .args([
            "--data-dir",
            "/nonexistent/never-created",
            "serve",
            "--listen",
            "0.0.0.0:0",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing plain HTTP on 0.0.0.0:0"),
        "{stderr}"
    );
}
