//! The sign-in procedure as the specification tells it, step by step.

use crate::browser::{Browser, add_user, code, enroll_admin, register, start};

#[tokio::test]
async fn forced_registration_then_sign_in_with_user_name_password_and_code() {
    let server = start();
    let browser = Browser::new(&server);
    let one_time = server.admin_password.clone().unwrap();

    // First sign-in: the reminder that MFA is enforced.
    let reminder = browser.sign_in("admin", &one_time, "").await;
    assert_eq!(reminder.path, "/mfa");
    reminder
        .expect("Multi-factor authentication (MFA) is enforced for your account")
        .expect("register a mobile device as an authenticator")
        .expect("Show MFA Settings");

    // MFA Settings for user admin: nothing registered yet; Initialize.
    let settings = browser.get("/mfa/settings").await;
    settings
        .expect("MFA Settings for user admin")
        .expect("You have not yet registered a mobile device as an authenticator.")
        .expect(">Initialize</button>");
    let dialog = browser.submit(&settings, "/mfa/initialize", &[]).await;
    assert_eq!(dialog.path, "/mfa/authenticator");
    dialog
        .expect("MFA Settings for user admin – Authenticator")
        .expect("<svg")
        .expect("Authenticator code")
        .expect(">Close</button>");
    let key = dialog.security_key();
    assert_eq!(key.len(), 32, "a 20-byte seed is 32 base32 characters");

    // A wrong code keeps the dialog, with an error, and stores nothing.
    let right = code(&key, server.now());
    let wrong = format!(
        "{:06}",
        (right.parse::<u32>().unwrap() + 500_000) % 1_000_000
    );
    let again = browser
        .submit(&dialog, "/mfa/confirm", &[("code", &wrong)])
        .await;
    again
        .expect("MFA Settings for user admin – Authenticator")
        .expect("The authenticator code is not right");
    assert_eq!(
        again.security_key(),
        key,
        "the same registration is shown again"
    );
    assert!(crate::cli::user_list(&server).contains("\"authenticators\": 0"));

    // The right code completes the registration; the one-time password must go.
    let change = browser
        .submit(&again, "/mfa/confirm", &[("code", &right)])
        .await;
    assert_eq!(change.path, "/account/password");
    assert!(crate::cli::user_list(&server).contains("\"authenticators\": 1"));
    let account = browser
        .submit(
            &change,
            "/account/password",
            &[
                ("current", &one_time),
                ("new_password", "correct horse battery"),
                ("repeat", "correct horse battery"),
            ],
        )
        .await;
    account
        .expect("Signed in as admin")
        .expect("active: an authenticator is registered")
        .expect("password and authenticator code");

    // Later sign-ins: user name, password and the current code.
    let signed_out = browser.submit(&account, "/signout", &[]).await;
    signed_out.expect("You have signed out.");
    let without_code = browser.sign_in("admin", "correct horse battery", "").await;
    without_code.expect("Sign-in failed: check your user name, password and authenticator code");
    server.advance(30);
    let later = browser
        .sign_in("admin", "correct horse battery", &code(&key, server.now()))
        .await;
    assert_eq!(later.path, "/account");
    later.expect("Signed in as admin");
}

#[tokio::test]
async fn an_unknown_user_and_a_wrong_password_get_the_same_answer() {
    let server = start();
    add_user(&server, "alice", "alice-password-1", false);
    let browser = Browser::new(&server);
    let wrong_password = browser.sign_in("alice", "not-her-password", "").await;
    let unknown_user = browser.sign_in("mallory", "not-her-password", "").await;
    assert_eq!(wrong_password.status, unknown_user.status);
    let message = "Sign-in failed: check your user name, password and authenticator code.";
    wrong_password.expect(message);
    unknown_user.expect(message);
    // The pages differ only in the name echoed back and the CSRF token.
    let strip = |html: &str, name: &str| {
        html.replace(name, "NAME")
            .lines()
            .filter(|line| !line.contains("name=\"csrf\""))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        strip(&wrong_password.html, "alice"),
        strip(&unknown_user.html, "mallory")
    );
}

#[tokio::test]
async fn a_user_without_forced_mfa_may_register_and_then_needs_the_code() {
    let server = start();
    add_user(&server, "bob", "bob-password-1", false);
    let browser = Browser::new(&server);
    let account = browser.sign_in("bob", "bob-password-1", "").await;
    account
        .expect("Signed in as bob")
        .expect("off: no authenticator registered")
        .expect("password only");
    let key = register(&server, &browser).await;
    let account = browser.get("/account").await;
    account.expect("active: an authenticator is registered");
    browser.submit(&account, "/signout", &[]).await;

    browser
        .sign_in("bob", "bob-password-1", "")
        .await
        .expect("Sign-in failed");
    server.advance(30);
    browser
        .sign_in("bob", "bob-password-1", &code(&key, server.now()))
        .await
        .expect("Signed in as bob");
}

#[tokio::test]
async fn a_pending_registration_expires_and_stores_nothing() {
    let server = start();
    add_user(&server, "carol", "carol-password-1", true);
    let browser = Browser::new(&server);
    browser
        .sign_in("carol", "carol-password-1", "")
        .await
        .expect("MFA) is enforced");
    let settings = browser.get("/mfa/settings").await;
    let dialog = browser.submit(&settings, "/mfa/initialize", &[]).await;
    dialog.expect("expires in 10 minutes");
    let key = dialog.security_key();
    server.advance(601);
    let late = browser
        .submit(
            &dialog,
            "/mfa/confirm",
            &[("code", &code(&key, server.now()))],
        )
        .await;
    late.expect("The registration expired or was not started");
    assert!(crate::cli::user_list(&server).contains("\"authenticators\": 0"));
}

#[tokio::test]
async fn registration_needs_the_password_first_and_reaches_nothing_else() {
    let server = start();
    let stranger = Browser::new(&server);
    // No session: MFA settings send you to Sign In.
    assert_eq!(stranger.get("/mfa/settings").await.path, "/signin");
    assert_eq!(stranger.get("/account").await.path, "/signin");
    let form = stranger.get("/signin").await;
    let refused = stranger.submit(&form, "/mfa/initialize", &[]).await;
    assert_eq!(refused.path, "/signin", "no session, no registration");

    // After the password, only registration is reachable.
    add_user(&server, "dave", "dave-password-1", true);
    let browser = Browser::new(&server);
    browser.sign_in("dave", "dave-password-1", "").await;
    for path in ["/account", "/admin", "/admin/audit", "/account/password"] {
        assert_eq!(
            browser.get(path).await.path,
            "/mfa",
            "{path} must lead back to registration"
        );
    }
    browser
        .get("/mfa/settings")
        .await
        .expect("MFA Settings for user dave");
}

#[tokio::test]
async fn replacing_an_authenticator_needs_a_current_code() {
    let server = start();
    add_user(&server, "erin", "erin-password-1", true);
    let browser = Browser::new(&server);
    browser.sign_in("erin", "erin-password-1", "").await;
    let old_key = register(&server, &browser).await;

    let settings = browser.get("/mfa/settings").await;
    settings
        .expect("An authenticator is registered")
        .expect("Replace Authenticator");
    let refused = browser.submit(&settings, "/mfa/initialize", &[]).await;
    refused.expect("first enter the code your current authenticator shows");

    server.advance(30);
    let allowed = browser
        .submit(
            &settings,
            "/mfa/replace",
            &[("code", &code(&old_key, server.now()))],
        )
        .await;
    allowed.expect("You may now register a new mobile device");
    let dialog = browser.submit(&allowed, "/mfa/initialize", &[]).await;
    let new_key = dialog.security_key();
    assert_ne!(new_key, old_key);
    browser
        .submit(
            &dialog,
            "/mfa/confirm",
            &[("code", &code(&new_key, server.now()))],
        )
        .await
        .expect("Signed in as erin");
    assert!(crate::cli::user_list(&server).contains("\"authenticators\": 1"));

    // The old device no longer signs in; the new one does.
    let fresh = Browser::new(&server);
    server.advance(30);
    fresh
        .sign_in("erin", "erin-password-1", &code(&old_key, server.now()))
        .await
        .expect("Sign-in failed");
    fresh
        .sign_in("erin", "erin-password-1", &code(&new_key, server.now()))
        .await
        .expect("Signed in as erin");
}

#[tokio::test]
async fn the_admin_forces_mfa_resets_and_reads_the_audit_log() {
    let server = start();
    let admin = Browser::new(&server);
    enroll_admin(&server, &admin, "admin-password-1").await;

    let users = admin.get("/admin").await;
    users.expect("Force MFA").expect("Create User");
    let created = admin
        .submit(
            &users,
            "/admin/users",
            &[
                ("name", "frank"),
                ("password", "frank-password-1"),
                ("force_mfa", "on"),
            ],
        )
        .await;
    created.expect("User frank created.");
    let frank_row = created.html.split("id=\"user-frank\"").nth(1).unwrap();
    assert!(
        frank_row.split("</tr>").next().unwrap().contains("checked"),
        "frank has Force MFA"
    );

    // Frank signs in and must register.
    let frank = Browser::new(&server);
    frank
        .sign_in("frank", "frank-password-1", "")
        .await
        .expect("MFA) is enforced");
    register(&server, &frank).await;

    // The admin resets Frank's MFA: his sessions end and he registers anew.
    let users = admin.get("/admin").await;
    let frank_id = user_id(&users, "frank");
    let reset = admin
        .submit(&users, &format!("/admin/users/{frank_id}/reset-mfa"), &[])
        .await;
    reset.expect("MFA of frank reset");
    assert_eq!(
        frank.get("/account").await.path,
        "/signin",
        "reset ends his sessions"
    );
    frank
        .sign_in("frank", "frank-password-1", "")
        .await
        .expect("MFA) is enforced");

    // Turning Force MFA off lets a user without an authenticator in on the password.
    let off = admin
        .submit(&reset, &format!("/admin/users/{frank_id}/force-mfa"), &[])
        .await;
    off.expect("MFA is no longer enforced for frank.");
    Browser::new(&server)
        .sign_in("frank", "frank-password-1", "")
        .await
        .expect("Signed in as frank");

    // A failed sign-in, with its reason, and the admin actions are in the log.
    Browser::new(&server)
        .sign_in("frank", "wrong-password", "")
        .await;
    let audit = admin.get("/admin/audit").await;
    for expected in [
        "wrong password",
        "authenticator app registered",
        "mfa-reset",
        "force-mfa-off",
        "user-created",
        "127.0.0.1",
    ] {
        audit.expect(expected);
    }

    // Frank is no administrator.
    let frank_again = Browser::new(&server);
    frank_again.sign_in("frank", "frank-password-1", "").await;
    let forbidden = frank_again.get("/admin").await;
    assert_eq!(forbidden.status, 403);
    forbidden.expect("Only administrators");
}

/// The id in the admin table's row of `name`.
fn user_id(page: &crate::browser::Page, name: &str) -> String {
    let row = page
        .html
        .split(&format!("id=\"user-{name}\""))
        .nth(1)
        .expect("user row");
    let after = row.split("/admin/users/").nth(1).expect("user action");
    after.split('/').next().unwrap().to_owned()
}
