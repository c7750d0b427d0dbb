//! Cookies, CSRF, headers, bad input, and what is stored and logged.

use reqwest::header::{CONTENT_TYPE, SET_COOKIE};

use crate::browser::{Browser, add_user, code, register, start};

#[tokio::test]
async fn cookies_are_http_only_and_same_site() {
    let server = start();
    add_user(&server, "alice", "alice-password-1", false);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let form = client
        .get(format!("{}/signin", server.url))
        .send()
        .await
        .unwrap();
    let pre = form
        .headers()
        .get(SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(pre.starts_with("gatehouse_pre="), "{pre}");
    let html = form.text().await.unwrap();
    let csrf = crate::browser::Page {
        status: reqwest::StatusCode::OK,
        path: String::new(),
        html,
        headers: Default::default(),
    }
    .csrf();
    let signed_in = client
        .post(format!("{}/signin", server.url))
        .form(&[
            ("csrf", csrf.as_str()),
            ("name", "alice"),
            ("password", "alice-password-1"),
            ("code", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in
        .headers()
        .get(SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap();
    for attribute in [
        "gatehouse_session=",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    // Plain HTTP on loopback: no Secure flag (a browser would drop the cookie).
    assert!(!cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn pages_carry_strict_security_headers() {
    let server = start();
    let page = Browser::new(&server).get("/signin").await;
    let header = |name: &str| page.headers.get(name).unwrap().to_str().unwrap().to_owned();
    assert!(header("content-security-policy").contains("default-src 'none'"));
    assert!(header("content-security-policy").contains("frame-ancestors 'none'"));
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("cache-control"), "no-store");
    assert!(!header("x-request-id").is_empty());
}

#[tokio::test]
async fn forms_without_a_valid_csrf_token_are_refused() {
    let server = start();
    add_user(&server, "bob", "bob-password-1", false);
    let browser = Browser::new(&server);
    browser.get("/signin").await;
    let forged = browser
        .post(
            "/signin",
            &[
                ("csrf", "forged"),
                ("name", "bob"),
                ("password", "bob-password-1"),
                ("code", ""),
            ],
        )
        .await;
    assert_eq!(forged.status, 403);
    forged.expect("The form expired or was not sent from this site");

    // A token from another browser does not work either.
    let other = Browser::new(&server).get("/signin").await;
    let borrowed = browser
        .post(
            "/signin",
            &[
                ("csrf", &other.csrf()),
                ("name", "bob"),
                ("password", "bob-password-1"),
                ("code", ""),
            ],
        )
        .await;
    assert_eq!(borrowed.status, 403);

    // Signed in, a sign-out without the token does nothing.
    let account = browser.sign_in("bob", "bob-password-1", "").await;
    account.expect("Signed in as bob");
    let refused = browser.post("/signout", &[("csrf", "nope")]).await;
    assert_eq!(refused.status, 403);
    browser.get("/account").await.expect("Signed in as bob");
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_changes_nothing() {
    let server = start();
    add_user(&server, "carol", "carol-password-1", false);
    let browser = Browser::new(&server);
    let form = browser.get("/signin").await;
    let csrf = form.csrf();
    let url = format!("{}/signin", server.url);

    let huge = "x".repeat(64 * 1024);
    // The server answers 413 without reading the whole body and closes the
    // connection, so this request goes on a connection of its own (a pooled
    // one would be closed under the next request).
    let oversized = browser
        .client
        .post(&url)
        .header(reqwest::header::CONNECTION, "close")
        .form(&[
            ("csrf", csrf.as_str()),
            ("name", "carol"),
            ("password", huge.as_str()),
            ("code", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(oversized.status(), 413);
    assert!(
        oversized
            .text()
            .await
            .unwrap()
            .contains("larger than any sign-in form")
    );

    let json = browser
        .client
        .post(&url)
        .header(CONTENT_TYPE, "application/json")
        .body(r#"{"name":"carol","password":"carol-password-1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 415);
    assert!(
        json.text()
            .await
            .unwrap()
            .contains("application/x-www-form-urlencoded")
    );

    let missing = browser
        .post("/signin", &[("csrf", &csrf), ("name", "carol")])
        .await;
    assert_eq!(missing.status, 400);
    missing.expect("The form is incomplete or malformed");

    let invalid_utf8 = browser
        .client
        .post(&url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&name=carol%FF%FE&password=x&code="))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid_utf8.status(), 400);

    // A hostile name is echoed escaped, never as markup.
    let hostile = browser
        .post(
            "/signin",
            &[
                ("csrf", &csrf),
                ("name", "<script>alert(1)</script>"),
                ("password", "x"),
                ("code", ""),
            ],
        )
        .await;
    hostile
        .expect_not("<script>alert(1)</script>")
        .expect("Sign-in failed");
    let long_code = browser
        .post(
            "/signin",
            &[
                ("csrf", &csrf),
                ("name", "carol"),
                ("password", "x"),
                ("code", &"9".repeat(100)),
            ],
        )
        .await;
    assert_eq!(long_code.status, 400);

    // Nothing changed: carol still has no failures counted for the refused
    // requests beyond the one hostile attempt that was a real sign-in.
    let users = crate::cli::user_list(&server);
    assert!(users.contains("\"failed_attempts\": 0"), "{users}");
    browser
        .sign_in("carol", "carol-password-1", "")
        .await
        .expect("Signed in as carol");
}

#[tokio::test]
async fn no_seed_password_or_pin_is_stored_or_logged_in_plaintext() {
    let server = start();
    let password = "dave-secret-password";
    add_user(&server, "dave", password, true);
    let browser = Browser::new(&server);
    browser.sign_in("dave", password, "").await;
    let key = register(&server, &browser).await;
    server.advance(30);
    browser.get("/account").await;
    Browser::new(&server)
        .sign_in("dave", password, &code(&key, server.now()))
        .await
        .expect("Signed in as dave");

    let seed = data_encoding::BASE32_NOPAD.decode(key.as_bytes()).unwrap();
    let pin = std::fs::read_to_string(server.data_dir.join("softhsm/user.pin")).unwrap();
    let mut stored = Vec::new();
    for file in ["gatehouse.db", "gatehouse.db-wal"] {
        if let Ok(bytes) = std::fs::read(server.data_dir.join(file)) {
            stored.extend(bytes);
        }
    }
    assert!(!stored.is_empty());
    let log = server.log().into_bytes();
    for (what, haystack) in [("database", &stored), ("log", &log)] {
        for (secret, needle) in [
            ("seed", seed.as_slice()),
            ("base32 seed", key.as_bytes()),
            ("password", password.as_bytes()),
            ("PIN", pin.trim().as_bytes()),
        ] {
            assert!(
                !haystack
                    .windows(needle.len())
                    .any(|window| window == needle),
                "the {what} holds the {secret} in plaintext"
            );
        }
    }
    // What is stored is a sealed record.
    assert!(stored.windows(4).any(|window| window == b"gh1:"));
}

#[tokio::test]
async fn the_session_id_changes_after_each_factor() {
    let server = start();
    add_user(&server, "erin", "erin-password-1", true);
    let browser = Browser::new(&server);
    browser.get("/signin").await;
    assert_eq!(browser.session_cookie(), None);
    browser
        .sign_in("erin", "erin-password-1", "")
        .await
        .expect("MFA) is enforced");
    let after_password = browser
        .session_cookie()
        .expect("a session after the password");
    register(&server, &browser).await;
    let after_code = browser.session_cookie().expect("a session after the code");
    assert_ne!(after_password, after_code);
    // The old id opens nothing any more.
    let stale = reqwest::Client::new()
        .get(format!("{}/account", server.url))
        .header("cookie", format!("gatehouse_session={after_password}"))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.url().path(), "/signin");
}
