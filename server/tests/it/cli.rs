//! `gatehouse user …` on the data directory of a running server.

use std::io::Write;
use std::process::Stdio;

use gatehouse_tests::GatehouseServer;

use crate::browser::{Browser, add_user, binary, start};

fn gatehouse(server: &GatehouseServer, args: &[&str]) -> (bool, String, String) {
    let output = server
        .command(&binary())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `gatehouse user list --json`.
pub fn user_list(server: &GatehouseServer) -> String {
    let (ok, stdout, stderr) = gatehouse(server, &["user", "list", "--json"]);
    assert!(ok, "{stderr}");
    stdout
}

#[tokio::test]
async fn user_commands_work_while_the_server_runs() {
    let server = start();
    // Without a terminal or --password-stdin, a one-time password is made.
    let (ok, stdout, stderr) = gatehouse(&server, &["user", "add", "grace", "--force-mfa"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("Created user grace."), "{stdout}");
    let one_time = stdout
        .lines()
        .find_map(|line| line.strip_prefix("One-time password: "))
        .unwrap()
        .to_owned();
    let listing = gatehouse(&server, &["user", "list"]).1;
    assert!(listing.contains("USER"), "{listing}");
    let grace = listing
        .lines()
        .find(|line| line.starts_with("grace"))
        .unwrap();
    assert!(grace.contains("user") && grace.contains("yes"), "{grace}");

    // The server sees her at once, one-time password and all.
    let browser = Browser::new(&server);
    browser
        .sign_in("grace", &one_time, "")
        .await
        .expect("MFA) is enforced");

    let (ok, stdout, _) = gatehouse(&server, &["user", "force-mfa", "grace", "--off"]);
    assert!(ok && stdout.contains("no longer enforced"), "{stdout}");
    assert!(user_list(&server).contains("\"force_mfa\": false"));

    // Lock her out, then unlock her from the command line.
    for _ in 0..5 {
        Browser::new(&server)
            .sign_in("grace", "wrong-password", "")
            .await;
    }
    assert!(user_list(&server).contains("\"failed_attempts\": 5"));
    let (ok, stdout, _) = gatehouse(&server, &["user", "unlock", "grace"]);
    assert!(ok && stdout.contains("grace is unlocked."), "{stdout}");
    assert!(user_list(&server).contains("\"failed_attempts\": 0"));

    // A new password from standard input.
    let mut child = server
        .command(&binary())
        .args(["user", "passwd", "grace", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "grace-new-password").unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    Browser::new(&server)
        .sign_in("grace", "grace-new-password", "")
        .await
        .expect("Signed in as grace");

    let (ok, stdout, _) = gatehouse(&server, &["user", "reset-mfa", "grace"]);
    assert!(
        ok && stdout.contains("Removed 0 authenticator(s) of grace"),
        "{stdout}"
    );
}

#[tokio::test]
async fn user_commands_refuse_bad_input_clearly() {
    let server = start();
    let (ok, _, stderr) = gatehouse(&server, &["user", "add", "<script>", "--password-stdin"]);
    assert!(!ok);
    assert!(
        stderr.contains("a user name is 1 to 64 letters"),
        "{stderr}"
    );
    add_user(&server, "henry", "henry-password-1", false);
    let mut child = server
        .command(&binary())
        .args(["user", "add", "henry", "--password-stdin"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "another-password").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("already exists"));
    let (ok, _, stderr) = gatehouse(&server, &["user", "unlock", "nobody"]);
    assert!(!ok && stderr.contains("no such user"), "{stderr}");
    let mut child = server
        .command(&binary())
        .args(["user", "add", "ivy", "--password-stdin"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "short").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("at least 10 characters"));
    assert!(!user_list(&server).contains("ivy"));
}
