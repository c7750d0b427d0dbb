//! External clients over real HTTP: the loopback flow with PKCE, the device
//! flow, refresh rotation, revocation, introspection, and every refusal the
//! protocol calls for. (A real Chromium and `device-tools login` walk the
//! same flows in `device-tools/tests/login.rs`.)

use base64::Engine;
use gatehouse_tests::{GatehouseServer, run};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::browser::{Browser, Page, add_user, binary, code, register, start};

const REDIRECT: &str = "http://127.0.0.1:49211/callback";

/// A registered public loopback client, as `gatehouse client add` makes it.
pub fn add_client(server: &GatehouseServer, id: &str) {
    run(server.command(&binary()).args([
        "client",
        "add",
        id,
        "--public",
        "--loopback",
        "--display-name",
        "Test Tool",
    ]))
    .expect_code(0);
}

/// A service token, as `gatehouse token create --service` prints it.
pub fn service_token(server: &GatehouseServer) -> String {
    let ran =
        run(server
            .command(&binary())
            .args(["token", "create", "--service", "--name", "vpn"]))
        .expect_code(0);
    ran.stdout
        .lines()
        .find(|line| line.starts_with("ghs_"))
        .expect("the token is printed")
        .to_owned()
}

/// A PKCE verifier and its S256 challenge.
fn pkce() -> (String, String) {
    let verifier = format!(
        "{}-verifier",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    );
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn authorize_url(client: &str, redirect: &str, challenge: &str, scope: &str) -> String {
    format!(
        "/oauth/authorize?response_type=code&client_id={client}&redirect_uri={}&scope={}&state=xyz-state&code_challenge={challenge}&code_challenge_method=S256",
        urlencoding::encode(redirect),
        urlencoding::encode(scope)
    )
}

/// The value of query parameter `name` in `url`.
fn query_value(url: &str, name: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).unwrap();
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// The tool's side: plain HTTP calls to the token endpoints.
struct Tool {
    http: reqwest::Client,
    base: String,
    client_id: String,
}

impl Tool {
    fn new(server: &GatehouseServer, client_id: &str) -> Tool {
        Tool {
            http: reqwest::Client::new(),
            base: server.url.clone(),
            client_id: client_id.to_owned(),
        }
    }

    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut all = vec![("client_id", self.client_id.as_str())];
        all.extend_from_slice(fields);
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .form(&all)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn exchange(&self, code: &str, verifier: &str) -> (StatusCode, Value) {
        self.post(
            "/oauth/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier),
            ],
        )
        .await
    }

    async fn refresh(&self, refresh_token: &str) -> (StatusCode, Value) {
        self.post(
            "/oauth/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    async fn poll(&self, device_code: &str) -> (StatusCode, Value) {
        self.post(
            "/oauth/token",
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", device_code),
            ],
        )
        .await
    }

    async fn whoami(&self, access_token: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}/api/v1/whoami", self.base))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

#[track_caller]
fn expect_error(answer: &(StatusCode, Value), error: &str) {
    assert_eq!(answer.0, StatusCode::BAD_REQUEST, "{answer:?}");
    assert_eq!(answer.1["error"], error, "{answer:?}");
}

/// Sign in on the "Sign In for External Client" page that `start` leads to,
/// as `name` (who has an authenticator with `key`), and land on consent.
async fn sign_in_for_client(
    server: &GatehouseServer,
    browser: &Browser,
    start: &Page,
    name: &str,
    password: &str,
    key: &str,
) -> Page {
    start.expect("Sign In for External Client");
    let authorization = start.input_value("authorization").unwrap();
    let consent = browser
        .submit(
            start,
            "/signin",
            &[
                ("name", name),
                ("password", password),
                ("code", &code(key, server.now())),
                ("authorization", &authorization),
            ],
        )
        .await;
    consent.expect("Check that your tool shows this confirmation code");
    consent
}

fn confirmation(page: &Page) -> String {
    let marker = "id=\"confirmation\">";
    let start = page.html.find(marker).unwrap() + marker.len();
    let end = page.html[start..].find('<').unwrap() + start;
    page.html[start..end].trim().to_owned()
}

/// A user with an authenticator; returns its security key.
async fn user_with_authenticator(server: &GatehouseServer, name: &str) -> String {
    add_user(server, name, &format!("{name}-password-1"), true);
    let browser = Browser::new(server);
    browser
        .sign_in(name, &format!("{name}-password-1"), "")
        .await;
    let key = register(server, &browser).await;
    server.advance(30);
    key
}

/// The whole loopback flow up to the redirect back to the tool; returns the
/// redirect's URL.
async fn approve_loopback(
    server: &GatehouseServer,
    name: &str,
    key: &str,
    challenge: &str,
    decision: &str,
) -> String {
    let browser = Browser::new(server);
    let start = browser
        .get(&authorize_url("tool", REDIRECT, challenge, "user"))
        .await;
    let consent = sign_in_for_client(
        server,
        &browser,
        &start,
        name,
        &format!("{name}-password-1"),
        key,
    )
    .await;
    server.advance(30);
    let path = consent.path.clone();
    let (status, location) = browser
        .submit_for_redirect(&consent, &path, &[("decision", decision)])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    location.unwrap()
}

#[tokio::test]
async fn the_loopback_flow_registers_an_authenticator_first_then_issues_working_tokens() {
    let server = start();
    add_client(&server, "tool");
    add_user(&server, "alice", "alice-password-1", true);
    let tool = Tool::new(&server, "tool");
    let (verifier, challenge) = pkce();

    let browser = Browser::new(&server);
    let start = browser
        .get(&authorize_url("tool", REDIRECT, &challenge, "user admin"))
        .await;
    start
        .expect("Sign In for External Client")
        .expect("Test Tool</strong> asks to sign in as you");
    let authorization = start.input_value("authorization").unwrap();
    // MFA is enforced and alice has no authenticator: registration first.
    let reminder = browser
        .submit(
            &start,
            "/signin",
            &[
                ("name", "alice"),
                ("password", "alice-password-1"),
                ("code", ""),
                ("authorization", &authorization),
            ],
        )
        .await;
    reminder.expect("MFA) is enforced");
    let settings = browser.get("/mfa/settings").await;
    let dialog = browser.submit(&settings, "/mfa/initialize", &[]).await;
    let key = dialog.security_key();
    let consent = browser
        .submit(
            &dialog,
            "/mfa/confirm",
            &[("code", &code(&key, server.now()))],
        )
        .await;
    // ... and then straight on to the client's consent page.
    consent
        .expect("Sign In for External Client")
        .expect("Test Tool</strong>")
        .expect("asks to sign in as <strong>alice</strong>")
        .expect("know who you are")
        .expect("only administrators can allow");
    assert_eq!(
        confirmation(&consent),
        gatehouse::domain::oauth::consent_code(&challenge)
    );
    let csp = consent.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:49211"),
        "{csp}"
    );

    let path = consent.path.clone();
    let (status, location) = browser
        .submit_for_redirect(&consent, &path, &[("decision", "allow")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = location.unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(
        query_value(&location, "state").as_deref(),
        Some("xyz-state")
    );
    let code_value = query_value(&location, "code").unwrap();

    let tokens = tool.exchange(&code_value, &verifier).await;
    assert_eq!(tokens.0, StatusCode::OK, "{tokens:?}");
    assert_eq!(tokens.1["token_type"], "Bearer");
    assert_eq!(tokens.1["scope"], "user", "a user is not granted admin");
    let access = tokens.1["access_token"].as_str().unwrap().to_owned();
    let (status, me) = tool.whoami(&access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["user"], "alice");
    assert_eq!(me["client_id"], "tool");
    assert_eq!(me["mfa"], true);

    // The account page lists the client; the audit log has the issue.
    browser
        .get("/account")
        .await
        .expect("External Clients")
        .expect("Test Tool");
    let database = std::fs::read(server.data_dir.join("gatehouse.db")).unwrap();
    assert!(
        !database
            .windows(access.len())
            .any(|window| window == access.as_bytes()),
        "the access token is stored only as a hash"
    );

    // The code again: refused, and what it yielded is revoked.
    let again = tool.exchange(&code_value, &verifier).await;
    expect_error(&again, "invalid_grant");
    assert_eq!(tool.whoami(&access).await.0, StatusCode::UNAUTHORIZED);
    let refresh = tokens.1["refresh_token"].as_str().unwrap();
    expect_error(&tool.refresh(refresh).await, "invalid_grant");
    let log = server.log();
    assert!(log.contains("oauth-code-reuse"), "{log}");
}

#[tokio::test]
async fn pkce_mismatch_expired_codes_and_denied_consent_leave_no_usable_token() {
    let server = start();
    add_client(&server, "tool");
    let key = user_with_authenticator(&server, "bob").await;
    let tool = Tool::new(&server, "tool");

    // A wrong verifier: refused, and the code is burnt for the right one too.
    let (verifier, challenge) = pkce();
    let location = approve_loopback(&server, "bob", &key, &challenge, "allow").await;
    let code_value = query_value(&location, "code").unwrap();
    let (other_verifier, _) = pkce();
    let wrong = tool
        .exchange(&code_value, &format!("{other_verifier}x"))
        .await;
    expect_error(&wrong, "invalid_grant");
    assert!(
        wrong.1["error_description"]
            .as_str()
            .unwrap()
            .contains("PKCE")
    );
    expect_error(
        &tool.exchange(&code_value, &verifier).await,
        "invalid_grant",
    );

    // An expired code.
    server.advance(30);
    let (verifier, challenge) = pkce();
    let location = approve_loopback(&server, "bob", &key, &challenge, "allow").await;
    let code_value = query_value(&location, "code").unwrap();
    server.advance(121);
    let expired = tool.exchange(&code_value, &verifier).await;
    expect_error(&expired, "invalid_grant");
    assert!(
        expired.1["error_description"]
            .as_str()
            .unwrap()
            .contains("expired")
    );

    // A code presented by another registered client.
    add_client(&server, "other");
    server.advance(30);
    let (verifier, challenge) = pkce();
    let location = approve_loopback(&server, "bob", &key, &challenge, "allow").await;
    let code_value = query_value(&location, "code").unwrap();
    let stolen = Tool::new(&server, "other")
        .exchange(&code_value, &verifier)
        .await;
    expect_error(&stolen, "invalid_grant");

    // Deny: the tool is told access_denied, and gets no code.
    server.advance(30);
    let (_, challenge) = pkce();
    let location = approve_loopback(&server, "bob", &key, &challenge, "deny").await;
    assert!(location.starts_with(REDIRECT));
    assert_eq!(
        query_value(&location, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_value(&location, "code"), None);
    assert_eq!(
        query_value(&location, "state").as_deref(),
        Some("xyz-state")
    );

    // None of that left bob signed in to any client.
    let ran = run(server
        .command(&binary())
        .args(["client", "revoke-user", "bob"]))
    .expect_code(0);
    assert!(ran.stdout.contains("0 external client"), "{}", ran.stdout);
}

#[tokio::test]
async fn untrusted_redirects_are_refused_on_a_page_without_redirecting() {
    let server = start();
    add_client(&server, "tool");
    let (_, challenge) = pkce();
    let browser = Browser::new(&server);
    for (redirect, client, why) in [
        (
            "http://evil.example/callback",
            "tool",
            "may only be sent back to this computer",
        ),
        (
            "https://127.0.0.1:5000/callback",
            "tool",
            "may only be sent back to this computer",
        ),
        (
            "http://localhost:5000/callback",
            "tool",
            "instead of &#34;localhost&#34;",
        ),
        (REDIRECT, "unknown-tool", "No client with the id"),
    ] {
        let (status, location, body) = browser
            .get_for_redirect(&authorize_url(client, redirect, &challenge, "user"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{redirect}: {body}");
        assert_eq!(location, None, "{redirect}");
        assert!(body.contains("Sign-in request refused"), "{body}");
        assert!(body.contains(why), "{redirect}: {body}");
    }

    // With a trusted redirect, protocol errors go back to the tool.
    for (query, error) in [
        (
            format!(
                "/oauth/authorize?response_type=code&client_id=tool&redirect_uri={}&state=s1",
                urlencoding::encode(REDIRECT)
            ),
            "invalid_request",
        ),
        (
            format!(
                "/oauth/authorize?response_type=code&client_id=tool&redirect_uri={}&state=s1&code_challenge={challenge}&code_challenge_method=plain",
                urlencoding::encode(REDIRECT)
            ),
            "invalid_request",
        ),
        (
            format!(
                "/oauth/authorize?response_type=token&client_id=tool&redirect_uri={}&state=s1&code_challenge={challenge}&code_challenge_method=S256",
                urlencoding::encode(REDIRECT)
            ),
            "unsupported_response_type",
        ),
        (
            format!(
                "/oauth/authorize?response_type=code&client_id=tool&redirect_uri={}&state=s1&code_challenge={challenge}&code_challenge_method=S256&scope=root",
                urlencoding::encode(REDIRECT)
            ),
            "invalid_scope",
        ),
    ] {
        let (status, location, _) = browser.get_for_redirect(&query).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{query}");
        let location = location.unwrap();
        assert!(location.starts_with(REDIRECT), "{location}");
        assert_eq!(
            query_value(&location, "error").as_deref(),
            Some(error),
            "{query}"
        );
        assert_eq!(query_value(&location, "state").as_deref(), Some("s1"));
    }
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_replayed_one_revokes_the_sign_in() {
    let server = start();
    add_client(&server, "tool");
    let key = user_with_authenticator(&server, "carol").await;
    let tool = Tool::new(&server, "tool");
    let (verifier, challenge) = pkce();
    let location = approve_loopback(&server, "carol", &key, &challenge, "allow").await;
    let first = tool
        .exchange(&query_value(&location, "code").unwrap(), &verifier)
        .await;
    assert_eq!(first.0, StatusCode::OK, "{first:?}");
    let first_refresh = first.1["refresh_token"].as_str().unwrap().to_owned();

    // Access tokens are short-lived; the refresh token gets a new pair.
    server.advance(901);
    let stale = first.1["access_token"].as_str().unwrap();
    assert_eq!(tool.whoami(stale).await.0, StatusCode::UNAUTHORIZED);
    let second = tool.refresh(&first_refresh).await;
    assert_eq!(second.0, StatusCode::OK, "{second:?}");
    let second_access = second.1["access_token"].as_str().unwrap().to_owned();
    let second_refresh = second.1["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, first_refresh);
    assert_eq!(tool.whoami(&second_access).await.1["user"], "carol");

    // The old refresh token again: someone copied it. Everything goes.
    let replay = tool.refresh(&first_refresh).await;
    expect_error(&replay, "invalid_grant");
    assert_eq!(
        tool.whoami(&second_access).await.0,
        StatusCode::UNAUTHORIZED
    );
    expect_error(&tool.refresh(&second_refresh).await, "invalid_grant");
    assert!(server.log().contains("oauth-refresh-replay"));

    // A refresh token from another client is refused.
    server.advance(30);
    let (verifier, challenge) = pkce();
    let location = approve_loopback(&server, "carol", &key, &challenge, "allow").await;
    let third = tool
        .exchange(&query_value(&location, "code").unwrap(), &verifier)
        .await;
    add_client(&server, "other");
    let refresh = third.1["refresh_token"].as_str().unwrap();
    expect_error(
        &Tool::new(&server, "other").refresh(refresh).await,
        "invalid_grant",
    );
    // ... and a wider scope cannot be had by refreshing.
    let wider = tool
        .post(
            "/oauth/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh),
                ("scope", "user admin"),
            ],
        )
        .await;
    expect_error(&wider, "invalid_scope");
}

#[tokio::test]
async fn revocation_by_the_client_the_user_and_an_admin_and_introspection() {
    let server = start();
    add_client(&server, "tool");
    let key = user_with_authenticator(&server, "dave").await;
    let tool = Tool::new(&server, "tool");
    let service = service_token(&server);
    let introspect = |token: String| {
        let http = reqwest::Client::new();
        let url = format!("{}/oauth/introspect", server.url);
        let service = service.clone();
        async move {
            let response = http
                .post(url)
                .bearer_auth(service)
                .form(&[("token", token)])
                .send()
                .await
                .unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let mut grants = Vec::new();
    for _ in 0..3 {
        server.advance(30);
        let (verifier, challenge) = pkce();
        let location = approve_loopback(&server, "dave", &key, &challenge, "allow").await;
        let tokens = tool
            .exchange(&query_value(&location, "code").unwrap(), &verifier)
            .await;
        assert_eq!(tokens.0, StatusCode::OK);
        grants.push(tokens.1);
    }
    let access = |i: usize| grants[i]["access_token"].as_str().unwrap().to_owned();
    let refresh = |i: usize| grants[i]["refresh_token"].as_str().unwrap().to_owned();

    // Introspection: for resource servers holding a service token only.
    let (status, answer) = introspect(access(0)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["active"], true);
    assert_eq!(answer["username"], "dave");
    assert_eq!(answer["client_id"], "tool");
    assert_eq!(answer["token_type"], "access_token");
    let anonymous = reqwest::Client::new()
        .post(format!("{}/oauth/introspect", server.url))
        .form(&[("token", access(0))])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        introspect("gat_not-a-token".to_owned()).await.1["active"],
        false
    );

    // 1. The client revokes its refresh token (RFC 7009): the access token
    //    of the same sign-in stops working too.
    let (status, _) = tool.post("/oauth/revoke", &[("token", &refresh(0))]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tool.whoami(&access(0)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(introspect(access(0)).await.1["active"], false);
    expect_error(&tool.refresh(&refresh(0)).await, "invalid_grant");
    // Revoking an unknown token is not an error.
    let (status, _) = tool
        .post("/oauth/revoke", &[("token", "grt_unknown")])
        .await;
    assert_eq!(status, StatusCode::OK);

    // 2. Dave signs a client out on his account page.
    let browser = Browser::new(&server);
    server.advance(30);
    browser
        .sign_in("dave", "dave-password-1", &code(&key, server.now()))
        .await;
    let account = browser.get("/account").await;
    account.expect("External Clients");
    let marker = "action=\"/account/clients/";
    let start = account.html.find(marker).unwrap() + marker.len();
    let end = account.html[start..].find('/').unwrap() + start;
    let grant_id = account.html[start..end].to_owned();
    let after = browser
        .submit(
            &account,
            &format!("/account/clients/{grant_id}/revoke"),
            &[],
        )
        .await;
    after.expect("The client is signed out");
    let mut live = 0;
    for i in 0..3 {
        if tool.whoami(&access(i)).await.0 == StatusCode::OK {
            live += 1;
        }
    }
    assert_eq!(live, 1, "one of the two remaining sign-ins ended");

    // 3. An administrator signs dave out of every client.
    let ran = run(server
        .command(&binary())
        .args(["client", "revoke-user", "dave"]))
    .expect_code(0);
    assert!(ran.stdout.contains("1 external client"), "{}", ran.stdout);
    for i in 0..3 {
        assert_eq!(tool.whoami(&access(i)).await.0, StatusCode::UNAUTHORIZED);
    }
    let log = server.log();
    assert!(log.contains("oauth-revoke"), "{log}");
}

#[tokio::test]
async fn the_device_flow_answers_pending_slow_down_denied_expired_and_then_tokens() {
    let server = start();
    add_client(&server, "tool");
    let key = user_with_authenticator(&server, "erin").await;
    let tool = Tool::new(&server, "tool");

    let (status, start) = tool
        .post("/oauth/device_authorization", &[("scope", "user")])
        .await;
    assert_eq!(status, StatusCode::OK, "{start:?}");
    let device_code = start["device_code"].as_str().unwrap().to_owned();
    let user_code = start["user_code"].as_str().unwrap().to_owned();
    assert_eq!(start["interval"], 5);
    assert_eq!(start["expires_in"], 600);
    assert_eq!(start["verification_uri"], format!("{}/device", server.url));
    assert_eq!(user_code.len(), 9, "{user_code}");

    expect_error(&tool.poll(&device_code).await, "authorization_pending");
    expect_error(&tool.poll(&device_code).await, "slow_down");
    server.advance(10);
    expect_error(&tool.poll(&device_code).await, "authorization_pending");

    // The person types the code (in lower case, as people do), signs in,
    // and sees the same code on the consent page.
    let browser = Browser::new(&server);
    let page = browser.get("/device").await;
    page.expect("Sign In for External Client");
    let wrong = browser
        .submit(&page, "/device", &[("user_code", "BCDF-BCDF")])
        .await;
    wrong.expect("That code is not right");
    let signin = browser
        .submit(
            &wrong,
            "/device",
            &[("user_code", &user_code.to_lowercase())],
        )
        .await;
    let consent =
        sign_in_for_client(&server, &browser, &signin, "erin", "erin-password-1", &key).await;
    assert_eq!(confirmation(&consent), user_code);
    let path = consent.path.clone();
    let done = browser
        .submit(&consent, &path, &[("decision", "allow")])
        .await;
    done.expect("You can close this window")
        .expect("Test Tool</strong> is signed in");

    let tokens = tool.poll(&device_code).await;
    assert_eq!(tokens.0, StatusCode::OK, "{tokens:?}");
    let access = tokens.1["access_token"].as_str().unwrap();
    assert_eq!(tool.whoami(access).await.1["user"], "erin");
    expect_error(&tool.poll(&device_code).await, "invalid_grant");

    // Denied.
    let (_, start) = tool.post("/oauth/device_authorization", &[]).await;
    let device_code = start["device_code"].as_str().unwrap().to_owned();
    let user_code = start["user_code"].as_str().unwrap().to_owned();
    let page = browser.get(&format!("/device?user_code={user_code}")).await;
    assert_eq!(
        page.input_value("user_code").as_deref(),
        Some(user_code.as_str())
    );
    let consent = browser
        .submit(&page, "/device", &[("user_code", &user_code)])
        .await;
    consent.expect("Check that your tool shows this confirmation code");
    let path = consent.path.clone();
    browser
        .submit(&consent, &path, &[("decision", "deny")])
        .await
        .expect("You denied the request");
    expect_error(&tool.poll(&device_code).await, "access_denied");

    // Expired.
    let (_, start) = tool.post("/oauth/device_authorization", &[]).await;
    let device_code = start["device_code"].as_str().unwrap().to_owned();
    server.advance(601);
    expect_error(&tool.poll(&device_code).await, "expired_token");

    // Unknown client, unknown grant type, repeated parameters.
    let stranger = Tool::new(&server, "nobody");
    let (status, answer) = stranger.post("/oauth/device_authorization", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer["error"], "invalid_client");
    expect_error(
        &tool
            .post("/oauth/token", &[("grant_type", "password")])
            .await,
        "unsupported_grant_type",
    );
    expect_error(
        &tool
            .post(
                "/oauth/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("grant_type", "refresh_token"),
                ],
            )
            .await,
        "invalid_request",
    );
}

#[tokio::test]
async fn metadata_describes_the_endpoints_and_admin_scope_opens_the_admin_api() {
    let server = start();
    let metadata: Value = reqwest::get(format!(
        "{}/.well-known/oauth-authorization-server",
        server.url
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(metadata["issuer"], server.url);
    assert_eq!(
        metadata["token_endpoint"],
        format!("{}/oauth/token", server.url)
    );
    assert_eq!(metadata["code_challenge_methods_supported"][0], "S256");
    assert!(
        metadata["grant_types_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|grant| grant == "urn:ietf:params:oauth:grant-type:device_code")
    );

    // The administrator's token with the admin scope works the admin API;
    // a user-scope token does not.
    add_client(&server, "tool");
    let admin_browser = Browser::new(&server);
    let key = crate::browser::enroll_admin(&server, &admin_browser, "admin-password-1").await;
    let tool = Tool::new(&server, "tool");
    let mut tokens = Vec::new();
    for scope in ["user admin", "user"] {
        server.advance(30);
        let (verifier, challenge) = pkce();
        let browser = Browser::new(&server);
        let start = browser
            .get(&authorize_url("tool", REDIRECT, &challenge, scope))
            .await;
        let consent =
            sign_in_for_client(&server, &browser, &start, "admin", "admin-password-1", &key).await;
        if scope.contains("admin") {
            consent.expect("use the admin API as you");
        }
        let path = consent.path.clone();
        let (_, location) = browser
            .submit_for_redirect(&consent, &path, &[("decision", "allow")])
            .await;
        let answer = tool
            .exchange(&query_value(&location.unwrap(), "code").unwrap(), &verifier)
            .await;
        assert_eq!(answer.1["scope"], scope, "{answer:?}");
        tokens.push(answer.1["access_token"].as_str().unwrap().to_owned());
    }
    let http = reqwest::Client::new();
    let offer = |token: String| {
        http.post(format!("{}/api/v1/admin/users/nobody/yubikey", server.url))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(
        offer(tokens[0].clone()).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        offer(tokens[1].clone()).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        offer("gat_forged".to_owned()).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn consent_needs_the_forms_csrf_token_and_hostile_token_requests_are_refused() {
    let server = start();
    add_client(&server, "tool");
    let key = user_with_authenticator(&server, "fay").await;
    let (verifier, challenge) = pkce();
    let browser = Browser::new(&server);
    let start = browser
        .get(&authorize_url("tool", REDIRECT, &challenge, "user"))
        .await;
    let consent =
        sign_in_for_client(&server, &browser, &start, "fay", "fay-password-1", &key).await;
    let path = consent.path.clone();

    // A forged Allow (no or a wrong CSRF token) decides nothing.
    for csrf in ["", "forged"] {
        let forged = browser
            .post(&path, &[("csrf", csrf), ("decision", "allow")])
            .await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
    }
    let odd = browser
        .submit(&consent, &path, &[("decision", "maybe")])
        .await;
    assert_eq!(odd.status, StatusCode::BAD_REQUEST);
    let (status, location) = browser
        .submit_for_redirect(&consent, &path, &[("decision", "allow")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let code_value = query_value(&location.unwrap(), "code").unwrap();
    // Answered once: a second decision finds nothing pending.
    let again = browser
        .submit(&consent, &path, &[("decision", "deny")])
        .await;
    again.expect("expired or was already answered");

    // The token endpoint takes forms only, each parameter once, bounded.
    let http = reqwest::Client::new();
    let json = http
        .post(format!("{}/oauth/token", server.url))
        .json(&serde_json::json!({ "grant_type": "authorization_code", "code": code_value }))
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), StatusCode::BAD_REQUEST);
    let body: Value = json.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    let huge = http
        .post(format!("{}/oauth/token", server.url))
        .header("connection", "close")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("client_id=tool&code={}", "a".repeat(64 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let invalid_utf8 = http
        .post(format!("{}/oauth/token", server.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("client_id=tool&grant_type=authorization_code&code=%FF%FE")
        .send()
        .await
        .unwrap();
    assert_eq!(invalid_utf8.status(), StatusCode::BAD_REQUEST);
    // None of it spent the code.
    let tokens = Tool::new(&server, "tool")
        .exchange(&code_value, &verifier)
        .await;
    assert_eq!(tokens.0, StatusCode::OK, "{tokens:?}");
}

#[tokio::test]
async fn an_admin_registers_and_removes_clients_on_the_admin_page() {
    let server = start();
    let browser = Browser::new(&server);
    let key = crate::browser::enroll_admin(&server, &browser, "admin-password-1").await;
    let admin = browser.get("/admin").await;
    admin
        .expect("External Clients")
        .expect("id=\"client-device-tools\"");
    let bad = browser
        .submit(
            &admin,
            "/admin/clients",
            &[
                ("client_id", "My IDE"),
                ("display_name", ""),
                ("redirect_uri", ""),
            ],
        )
        .await;
    bad.expect("A client id is 1 to 64 lower-case letters");
    let added = browser
        .submit(
            &admin,
            "/admin/clients",
            &[
                ("client_id", "my-ide"),
                ("display_name", "My <IDE>"),
                ("loopback", "on"),
                ("redirect_uri", ""),
            ],
        )
        .await;
    added
        .expect("Client my-ide registered.")
        .expect("id=\"client-my-ide\"")
        .expect("My &#60;IDE&#62;")
        .expect("loopback (127.0.0.1, [::1], any port)");
    let listed = run(server.command(&binary()).args(["client", "list"])).expect_code(0);
    assert!(listed.stdout.contains("my-ide"), "{}", listed.stdout);

    // The new client works: a sign-in through it, then its removal revokes it.
    let tool = Tool::new(&server, "my-ide");
    let (verifier, challenge) = pkce();
    server.advance(30);
    let other = Browser::new(&server);
    let start_page = other
        .get(&authorize_url("my-ide", REDIRECT, &challenge, "user"))
        .await;
    let consent = sign_in_for_client(
        &server,
        &other,
        &start_page,
        "admin",
        "admin-password-1",
        &key,
    )
    .await;
    consent.expect("My &#60;IDE&#62;");
    let path = consent.path.clone();
    let (_, location) = other
        .submit_for_redirect(&consent, &path, &[("decision", "allow")])
        .await;
    let tokens = tool
        .exchange(&query_value(&location.unwrap(), "code").unwrap(), &verifier)
        .await;
    let access = tokens.1["access_token"].as_str().unwrap().to_owned();
    assert_eq!(tool.whoami(&access).await.0, StatusCode::OK);
    let page = browser.get("/admin").await;
    page.expect("<td>1</td>");
    let removed = browser
        .submit(&page, "/admin/clients/my-ide/remove", &[])
        .await;
    removed
        .expect("Client my-ide removed; its tokens are revoked.")
        .expect_not("id=\"client-my-ide\"");
    assert_eq!(tool.whoami(&access).await.0, StatusCode::UNAUTHORIZED);
}
