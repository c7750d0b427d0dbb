//! The token goes away: sign-in fails closed with a clear message, and works
//! again when the token returns, without a restart.

use std::time::{Duration, Instant};

use crate::browser::{Browser, add_user, code, register, start};

#[tokio::test]
async fn sign_in_fails_closed_while_the_token_is_gone_and_recovers() {
    let server = start();
    add_user(&server, "alice", "alice-password-1", true);
    let browser = Browser::new(&server);
    browser.sign_in("alice", "alice-password-1", "").await;
    let key = register(&server, &browser).await;
    let health = reqwest::get(format!("{}/healthz", server.url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let tokens = server.data_dir.join("softhsm/tokens");
    let token = std::fs::read_dir(&tokens)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let parked = server.data_dir.join("parked-token");
    std::fs::rename(&token, &parked).unwrap();

    server.advance(30);
    let paused = Browser::new(&server)
        .sign_in("alice", "alice-password-1", &code(&key, server.now()))
        .await;
    assert_eq!(paused.status, 503);
    paused.expect("sign-in is paused");
    let health = reqwest::get(format!("{}/healthz", server.url))
        .await
        .unwrap();
    assert_eq!(health.status(), 503);
    let body = health.text().await.unwrap();
    assert!(body.contains("\"token\":{\"error\""), "{body}");
    // The failure was not counted against alice.
    assert!(crate::cli::user_list(&server).contains("\"failed_attempts\": 0"));

    std::fs::rename(&parked, &token).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        server.advance(30);
        let page = Browser::new(&server)
            .sign_in("alice", "alice-password-1", &code(&key, server.now()))
            .await;
        if page.html.contains("Signed in as alice") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sign-in did not recover:\n{}",
            page.html
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let health = reqwest::get(format!("{}/healthz", server.url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}
