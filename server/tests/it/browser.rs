//! A cookie-keeping HTTP client with just enough HTML reading for tests,
//! and the helpers every test needs: start a server, register an
//! authenticator, compute codes from the security key the page shows.

use std::path::PathBuf;

use data_encoding::BASE32_NOPAD;
use gatehouse_tests::{GatehouseServer, ServerOptions};
use reqwest::StatusCode;

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gatehouse"))
}

pub fn start() -> GatehouseServer {
    GatehouseServer::start(&binary(), ServerOptions::default())
}

pub fn start_with(options: ServerOptions) -> GatehouseServer {
    GatehouseServer::start(&binary(), options)
}

pub struct Browser {
    pub client: reqwest::Client,
    /// The same cookies, but redirects are not followed: to see where the
    /// server sends the browser (an external client's loopback address).
    pub manual: reqwest::Client,
    pub base: String,
    jar: std::sync::Arc<reqwest::cookie::Jar>,
}

#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    /// Path of the final URL, after redirects.
    pub path: String,
    pub html: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Page {
    pub fn csrf(&self) -> String {
        self.input_value("csrf")
            .unwrap_or_else(|| panic!("no CSRF field on {}:\n{}", self.path, self.html))
    }

    pub fn input_value(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.html.find(&marker)? + marker.len();
        let end = self.html[start..].find('"')? + start;
        Some(self.html[start..end].to_owned())
    }

    /// The security key shown under the QR code, without its spaces.
    pub fn security_key(&self) -> String {
        let marker = "id=\"security-key\">";
        let start = self.html.find(marker).expect("security key on the page") + marker.len();
        let end = self.html[start..].find('<').unwrap() + start;
        self.html[start..end].split_whitespace().collect()
    }

    #[track_caller]
    pub fn expect(&self, text: &str) -> &Self {
        assert!(
            self.html.contains(text),
            "expected {text:?} on {} (status {}):\n{}",
            self.path,
            self.status,
            self.html
        );
        self
    }

    #[track_caller]
    pub fn expect_not(&self, text: &str) -> &Self {
        assert!(
            !self.html.contains(text),
            "did not expect {text:?} on {}:\n{}",
            self.path,
            self.html
        );
        self
    }
}

impl Browser {
    pub fn new(server: &GatehouseServer) -> Browser {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        Browser {
            client: reqwest::Client::builder()
                .cookie_provider(std::sync::Arc::clone(&jar))
                .build()
                .unwrap(),
            manual: reqwest::Client::builder()
                .cookie_provider(std::sync::Arc::clone(&jar))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: server.url.clone(),
            jar,
        }
    }

    /// The session cookie's value, as the browser holds it now.
    pub fn session_cookie(&self) -> Option<String> {
        use reqwest::cookie::CookieStore;
        let url = reqwest::Url::parse(&self.base).unwrap();
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .ok()?
            .split("; ")
            .find_map(|pair| pair.strip_prefix("gatehouse_session="))
            .map(str::to_owned)
    }

    pub async fn page(&self, response: reqwest::Response) -> Page {
        let status = response.status();
        let path = response.url().path().to_owned();
        let headers = response.headers().clone();
        let html = response.text().await.unwrap();
        Page {
            status,
            path,
            html,
            headers,
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        self.page(response).await
    }

    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .form(fields)
            .send()
            .await
            .unwrap();
        self.page(response).await
    }

    /// Submit the Sign In form as a person would: open it, fill it in.
    pub async fn sign_in(&self, name: &str, password: &str, code: &str) -> Page {
        let form = self.get("/signin").await;
        let csrf = form.csrf();
        self.post(
            "/signin",
            &[
                ("csrf", &csrf),
                ("name", name),
                ("password", password),
                ("code", code),
            ],
        )
        .await
    }

    /// Post `fields` plus `from`'s CSRF token without following the
    /// redirect; returns the status and the Location header.
    pub async fn submit_for_redirect(
        &self,
        from: &Page,
        path: &str,
        fields: &[(&str, &str)],
    ) -> (StatusCode, Option<String>) {
        let csrf = from.csrf();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        let response = self
            .manual
            .post(format!("{}{path}", self.base))
            .form(&all)
            .send()
            .await
            .unwrap();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|value| value.to_str().unwrap().to_owned());
        (response.status(), location)
    }

    /// GET `url` (absolute, or a path on the server) without following a
    /// redirect; returns the status, Location and body.
    pub async fn get_for_redirect(&self, url: &str) -> (StatusCode, Option<String>, String) {
        let url = if url.starts_with("http") {
            url.to_owned()
        } else {
            format!("{}{url}", self.base)
        };
        let response = self.manual.get(url).send().await.unwrap();
        let status = response.status();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|value| value.to_str().unwrap().to_owned());
        (status, location, response.text().await.unwrap())
    }

    /// From a page with a form, post `fields` plus its CSRF token.
    pub async fn submit(&self, from: &Page, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = from.csrf();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(path, &all).await
    }
}

/// The six-digit SHA-1 code an authenticator app shows for `key` at `time`.
pub fn code(security_key: &str, time: u64) -> String {
    let seed = BASE32_NOPAD
        .decode(security_key.as_bytes())
        .expect("security key is base32");
    totp_rs::Builder::new()
        .with_secret(seed)
        .build_noncompliant()
        .generate(time)
        .to_string()
}

/// Sign in as the bootstrap admin (one-time password), register an
/// authenticator, and choose `new_password`. Returns the security key.
pub async fn enroll_admin(
    server: &GatehouseServer,
    browser: &Browser,
    new_password: &str,
) -> String {
    let one_time = server
        .admin_password
        .clone()
        .expect("bootstrap admin password printed");
    let reminder = browser.sign_in("admin", &one_time, "").await;
    reminder.expect("MFA) is enforced");
    let settings = browser.get("/mfa/settings").await;
    let dialog = browser.submit(&settings, "/mfa/initialize", &[]).await;
    let key = dialog.security_key();
    let change = browser
        .submit(
            &dialog,
            "/mfa/confirm",
            &[("code", &code(&key, server.now()))],
        )
        .await;
    change.expect("Change Password for user admin");
    let account = browser
        .submit(
            &change,
            "/account/password",
            &[
                ("current", &one_time),
                ("new_password", new_password),
                ("repeat", new_password),
            ],
        )
        .await;
    account.expect("Signed in as admin");
    key
}

/// Create a user through the CLI, as an admin would.
pub fn add_user(server: &GatehouseServer, name: &str, password: &str, force_mfa: bool) {
    use std::io::Write;
    let mut command = server.command(&binary());
    command.args(["user", "add", name, "--password-stdin"]);
    if force_mfa {
        command.arg("--force-mfa");
    }
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "user add failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Register an authenticator for a signed-in (or enrolling) browser; returns
/// the security key.
pub async fn register(server: &GatehouseServer, browser: &Browser) -> String {
    let settings = browser.get("/mfa/settings").await;
    settings.expect("You have not yet registered a mobile device as an authenticator.");
    let dialog = browser.submit(&settings, "/mfa/initialize", &[]).await;
    let key = dialog.security_key();
    let done = browser
        .submit(
            &dialog,
            "/mfa/confirm",
            &[("code", &code(&key, server.now()))],
        )
        .await;
    done.expect("Signed in as");
    key
}
