//! A code is accepted once, also when two processes share one database.

use gatehouse_tests::ServerOptions;

use crate::browser::{Browser, add_user, code, register, start, start_with};

#[tokio::test]
async fn a_code_is_accepted_once() {
    let server = start();
    add_user(&server, "alice", "alice-password-1", true);
    let browser = Browser::new(&server);
    browser.sign_in("alice", "alice-password-1", "").await;
    let key = register(&server, &browser).await;

    // The code that confirmed the registration cannot sign in.
    let replayed = Browser::new(&server)
        .sign_in("alice", "alice-password-1", &code(&key, server.now()))
        .await;
    replayed.expect("Sign-in failed");

    server.advance(30);
    let current = code(&key, server.now());
    Browser::new(&server)
        .sign_in("alice", "alice-password-1", &current)
        .await
        .expect("Signed in as alice");
    Browser::new(&server)
        .sign_in("alice", "alice-password-1", &current)
        .await
        .expect("Sign-in failed");
    // An older code, still inside the window, is refused too.
    let older = code(&key, server.now() - 30);
    Browser::new(&server)
        .sign_in("alice", "alice-password-1", &older)
        .await
        .expect("Sign-in failed");
    let log = crate::cli::user_list(&server);
    assert!(log.contains("\"failed_attempts\": 2"), "{log}");
}

#[tokio::test]
async fn a_code_is_accepted_once_across_two_server_processes() {
    let first = start();
    add_user(&first, "bob", "bob-password-1", true);
    let browser = Browser::new(&first);
    browser.sign_in("bob", "bob-password-1", "").await;
    let key = register(&first, &browser).await;
    let second = start_with(ServerOptions {
        data_dir: Some(first.data_dir.clone()),
        clock_file: Some(first.clock_file.clone()),
        ..ServerOptions::default()
    });

    for round in 0..3 {
        first.advance(30);
        let current = code(&key, first.now());
        let (on_first, on_second) = tokio::join!(
            async {
                Browser::new(&first)
                    .sign_in("bob", "bob-password-1", &current)
                    .await
            },
            async {
                Browser::new(&second)
                    .sign_in("bob", "bob-password-1", &current)
                    .await
            },
        );
        let accepted = [&on_first, &on_second]
            .iter()
            .filter(|page| page.html.contains("Signed in as bob"))
            .count();
        assert_eq!(
            accepted, 1,
            "round {round}: exactly one process accepts the code"
        );
    }
    // And one after the other.
    first.advance(30);
    let current = code(&key, first.now());
    Browser::new(&second)
        .sign_in("bob", "bob-password-1", &current)
        .await
        .expect("Signed in as bob");
    Browser::new(&first)
        .sign_in("bob", "bob-password-1", &current)
        .await
        .expect("Sign-in failed");
}
