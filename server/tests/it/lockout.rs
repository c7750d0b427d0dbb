//! Repeated failures lock with back-off; unknown names lock alike; one
//! client address is limited too.

use gatehouse_tests::ServerOptions;

use crate::browser::{Browser, add_user, binary, code, register, start, start_with};

#[tokio::test]
async fn wrong_passwords_lock_the_account_with_growing_back_off() {
    let server = start();
    add_user(&server, "alice", "alice-password-1", false);
    let browser = Browser::new(&server);
    for _ in 0..5 {
        browser
            .sign_in("alice", "wrong-password", "")
            .await
            .expect("Sign-in failed");
    }
    let locked = browser.sign_in("alice", "alice-password-1", "").await;
    assert_eq!(locked.status, 429);
    locked.expect("Too many failed sign-in attempts: try again in 30 seconds");

    server.advance(31);
    let again = browser.sign_in("alice", "wrong-password", "").await;
    again.expect("Sign-in failed");
    browser
        .sign_in("alice", "alice-password-1", "")
        .await
        .expect("try again in 60 seconds");

    server.advance(61);
    browser
        .sign_in("alice", "alice-password-1", "")
        .await
        .expect("Signed in as alice");
    let log = server.log();
    assert!(log.contains("locked for 30 s"), "the lockout is audited");
}

#[tokio::test]
async fn unknown_names_lock_exactly_like_accounts() {
    let server = start();
    add_user(&server, "bob", "bob-password-1", false);
    let browser = Browser::new(&server);
    for name in ["bob", "nobody"] {
        for _ in 0..5 {
            browser.sign_in(name, "wrong-password", "").await;
        }
    }
    let known = browser.sign_in("bob", "wrong-password", "").await;
    let unknown = browser.sign_in("nobody", "wrong-password", "").await;
    assert_eq!(known.status, unknown.status);
    known.expect("try again in 30 seconds");
    unknown.expect("try again in 30 seconds");
}

#[tokio::test]
async fn wrong_codes_lock_too_and_an_admin_unlocks() {
    let server = start();
    add_user(&server, "carol", "carol-password-1", true);
    let browser = Browser::new(&server);
    browser.sign_in("carol", "carol-password-1", "").await;
    let key = register(&server, &browser).await;
    server.advance(30);
    let right = code(&key, server.now());
    let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
    for _ in 0..5 {
        Browser::new(&server)
            .sign_in("carol", "carol-password-1", &wrong)
            .await
            .expect("Sign-in failed");
    }
    Browser::new(&server)
        .sign_in("carol", "carol-password-1", &right)
        .await
        .expect("Too many failed sign-in attempts");
    let unlocked = server
        .command(&binary())
        .args(["user", "unlock", "carol"])
        .output()
        .unwrap();
    assert!(unlocked.status.success());
    Browser::new(&server)
        .sign_in("carol", "carol-password-1", &right)
        .await
        .expect("Signed in as carol");
}

#[tokio::test]
async fn one_address_is_limited_per_minute() {
    let server = start_with(ServerOptions {
        env: vec![(
            "GATEHOUSE_LOCKOUT_PER_ADDRESS_PER_MINUTE".into(),
            "3".into(),
        )],
        ..ServerOptions::default()
    });
    let browser = Browser::new(&server);
    // Stay off a minute boundary so all four attempts fall in one window.
    server.set_now(server.now() / 60 * 60 + 10);
    for name in ["a1", "a2", "a3"] {
        browser
            .sign_in(name, "whatever-password", "")
            .await
            .expect("Sign-in failed");
    }
    let limited = browser.sign_in("a4", "whatever-password", "").await;
    assert_eq!(limited.status, 429);
    limited.expect("Too many sign-in attempts from your address");
    server.advance(60);
    browser
        .sign_in("a5", "whatever-password", "")
        .await
        .expect("Sign-in failed");
}
