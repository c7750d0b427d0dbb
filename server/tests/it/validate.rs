//! The validation API (`POST /api/v1/validate`) under the browser's rules:
//! a code is accepted once (also across two processes), failures lock with
//! back-off, unknown users answer and lock exactly like wrong codes, and
//! only a service token may ask.

use gatehouse_tests::{GatehouseServer, ServerOptions, run};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser::{Browser, add_user, binary, code, register, start, start_with};
use crate::oauth::service_token;

struct Service {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Service {
    fn new(server: &GatehouseServer, token: &str) -> Service {
        Service {
            http: reqwest::Client::new(),
            url: format!("{}/api/v1/validate", server.url),
            token: token.to_owned(),
        }
    }

    async fn send(&self, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn validate(&self, user: &str, code: &str) -> Value {
        let (status, answer) = self.send(json!({ "user": user, "code": code })).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer
    }
}

/// `name` with a registered authenticator; returns its security key.
async fn enrolled(server: &GatehouseServer, name: &str) -> String {
    let password = format!("{name}-password-1");
    add_user(server, name, &password, true);
    let browser = Browser::new(server);
    browser.sign_in(name, &password, "").await;
    let key = register(server, &browser).await;
    server.advance(30);
    key
}

#[tokio::test]
async fn a_code_is_accepted_once_and_only_service_tokens_may_ask() {
    let server = start();
    let key = enrolled(&server, "alice").await;
    let service = Service::new(&server, &service_token(&server));

    let current = code(&key, server.now());
    let accepted = service.validate("alice", &current).await;
    assert_eq!(accepted["result"], "accept", "{accepted}");
    assert_eq!(accepted["user"], "alice");
    let replayed = service.validate("alice", &current).await;
    assert_eq!(replayed["result"], "reject", "a code is accepted once");
    // A code the browser used is spent for the API too, and the reverse.
    server.advance(30);
    let next = code(&key, server.now());
    Browser::new(&server)
        .sign_in("alice", "alice-password-1", &next)
        .await
        .expect("Signed in as alice");
    assert_eq!(service.validate("alice", &next).await["result"], "reject");

    // No token, an admin token, a revoked service token: 401.
    let admin = run(server
        .command(&binary())
        .args(["token", "create", "--admin"]))
    .expect_code(0);
    let admin_token = admin
        .stdout
        .lines()
        .find(|line| line.starts_with("gha_"))
        .unwrap()
        .to_owned();
    for token in [String::new(), admin_token, "ghs_forged".to_owned()] {
        let (status, _) = Service::new(&server, &token)
            .send(json!({ "user": "alice", "code": "123456" }))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let list = run(server.command(&binary()).args(["token", "list"])).expect_code(0);
    assert!(list.stdout.contains("service"), "{}", list.stdout);
    let id = list
        .stdout
        .lines()
        .find(|line| line.contains("vpn"))
        .and_then(|line| line.split_whitespace().next())
        .unwrap()
        .to_owned();
    run(server.command(&binary()).args(["token", "revoke", &id])).expect_code(0);
    let (status, _) = service
        .send(json!({ "user": "alice", "code": "123456" }))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The audit log names the service.
    let log = server.log();
    assert!(log.contains("via vpn"), "{log}");
}

#[tokio::test]
async fn a_code_is_accepted_once_across_two_server_processes() {
    let first = start();
    let key = enrolled(&first, "bob").await;
    let token = service_token(&first);
    let second = start_with(ServerOptions {
        data_dir: Some(first.data_dir.clone()),
        clock_file: Some(first.clock_file.clone()),
        ..ServerOptions::default()
    });
    let (on_first, on_second) = (Service::new(&first, &token), Service::new(&second, &token));
    for round in 0..3 {
        first.advance(30);
        let current = code(&key, first.now());
        let (a, b) = tokio::join!(
            on_first.validate("bob", &current),
            on_second.validate("bob", &current)
        );
        let accepted = [&a, &b]
            .iter()
            .filter(|answer| answer["result"] == "accept")
            .count();
        assert_eq!(accepted, 1, "round {round}: {a} {b}");
    }
}

#[tokio::test]
async fn wrong_codes_lock_with_back_off_and_unknown_users_answer_alike() {
    let server = start();
    let key = enrolled(&server, "carol").await;
    let service = Service::new(&server, &service_token(&server));

    let mut answers = Vec::new();
    for name in ["carol", "nobody"] {
        for _ in 0..5 {
            answers.push(service.validate(name, "000000").await);
        }
    }
    // Wrong code and unknown user: the same rejection, word for word.
    assert_eq!(answers[0], answers[5]);
    assert_eq!(answers[0]["result"], "reject");
    assert!(answers[0].get("retry_after").is_none());

    // Both are locked now, alike, even with the right code.
    let locked = service.validate("carol", &code(&key, server.now())).await;
    let unknown = service.validate("nobody", "000000").await;
    assert_eq!(locked["result"], "reject");
    assert_eq!(locked["retry_after"], 30, "{locked}");
    assert_eq!(unknown, locked);

    // Back-off doubles; after it, the right code is accepted again.
    server.advance(31);
    service.validate("carol", "000000").await;
    assert_eq!(service.validate("carol", "000000").await["retry_after"], 60);
    server.advance(61);
    let current = code(&key, server.now());
    assert_eq!(
        service.validate("carol", &current).await["result"],
        "accept"
    );
    // The browser sees the same account state.
    let log = server.log();
    assert!(log.contains("locked for 30 s"), "{log}");
}

#[tokio::test]
async fn end_user_addresses_are_limited_and_bad_input_is_refused() {
    let server = start_with(ServerOptions {
        env: vec![(
            "GATEHOUSE_LOCKOUT_PER_ADDRESS_PER_MINUTE".to_owned(),
            "3".to_owned(),
        )],
        ..ServerOptions::default()
    });
    let key = enrolled(&server, "dave").await;
    let service = Service::new(&server, &service_token(&server));
    for _ in 0..3 {
        let (_, answer) = service
            .send(json!({ "user": "dave", "code": "000000", "client": "203.0.113.7" }))
            .await;
        assert_eq!(answer["result"], "reject");
    }
    let (_, limited) = service
        .send(json!({
            "user": "dave",
            "code": code(&key, server.now()),
            "client": "203.0.113.7"
        }))
        .await;
    assert_eq!(limited["result"], "reject");
    assert!(
        limited["reason"]
            .as_str()
            .unwrap()
            .contains("from your address"),
        "{limited}"
    );
    // Another end user's address is not held back.
    let (_, other) = service
        .send(json!({
            "user": "dave",
            "code": code(&key, server.now()),
            "client": "203.0.113.8"
        }))
        .await;
    assert_eq!(other["result"], "accept", "{other}");

    for body in [
        json!({ "user": "dave" }),
        json!({ "user": "dave", "code": "1".repeat(100) }),
        json!({ "user": "dave", "code": "123456", "client": "not an address" }),
        json!(["dave", "123456"]),
    ] {
        let (status, answer) = service.send(body.clone()).await;
        assert!(status.is_client_error(), "{body}: {status}");
        assert!(answer["error"].is_string(), "{body}: {answer}");
    }
    let huge = reqwest::Client::new()
        .post(format!("{}/api/v1/validate", server.url))
        .bearer_auth(&service.token)
        .header("connection", "close")
        .header("content-type", "application/json")
        .body(vec![b' '; 64 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
}
