//! `device-tools login | logout | whoami`: sign in to a Gatehouse server
//! through the browser, as an external client (OAuth 2.0 for native apps).
//!
//! The loopback flow (RFC 8252): listen on 127.0.0.1 on a free port, open
//! the browser at the server's authorization endpoint with a PKCE challenge
//! (S256), wait for the browser to come back with a code, exchange it. The
//! device flow (RFC 8628, `--device-code`): print a code to type at the
//! server's verification page from any browser, and poll. Either way the
//! person signs in (and registers an authenticator, if MFA is enforced and
//! none exists) and allows the request on a page that shows the same
//! confirmation code this command prints.
//!
//! The tokens go to a credentials file only its owner can read; `yubikey
//! enroll` uses (and refreshes) them.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use oauth2::basic::{BasicClient, BasicTokenResponse};
use oauth2::url::Url;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, DeviceAuthorizationUrl, EndpointNotSet,
    EndpointSet, PkceCodeChallenge, RedirectUrl, RefreshToken, RequestTokenError, Scope,
    StandardDeviceAuthorizationResponse, TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::exit::{self, Failure};

/// What `login` needs from the command line.
pub struct Login<'a> {
    pub server: &'a str,
    pub client_id: &'a str,
    pub scope: &'a str,
    pub device_code: bool,
    pub open_browser: bool,
    pub credentials: Option<&'a Path>,
    pub ca_file: Option<&'a Path>,
    pub timeout: Duration,
    pub json: bool,
    /// Unix seconds, read at the command line's edge.
    pub now: u64,
}

fn server_failure(message: impl Into<String>) -> Failure {
    Failure::new(exit::SERVER, message)
}

fn not_signed_in(message: impl Into<String>) -> Failure {
    Failure::new(exit::NOT_SIGNED_IN, message)
}

/// The credentials file: `--credentials`, else `$XDG_CONFIG_HOME/gatehouse/
/// credentials.json`, else `~/.config/gatehouse/credentials.json`.
pub fn credentials_path(given: Option<&Path>) -> Result<PathBuf, Failure> {
    if let Some(path) = given {
        return Ok(path.to_owned());
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .ok_or_else(|| {
            Failure::new(
                exit::USAGE,
                "neither $XDG_CONFIG_HOME nor $HOME is set: give --credentials FILE",
            )
        })?;
    Ok(base.join("gatehouse").join("credentials.json"))
}

/// The server's endpoints, from its RFC 8414 metadata.
#[derive(Debug, Deserialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    device_authorization_endpoint: String,
    revocation_endpoint: String,
}

/// A signed-in tool's tokens, as kept in the credentials file.
pub struct Credentials {
    pub server: String,
    pub client_id: String,
    pub user: String,
    pub scope: String,
    token_endpoint: String,
    revocation_endpoint: String,
    pub access_token: SecretString,
    refresh_token: SecretString,
    pub expires_at: u64,
}

#[derive(Deserialize)]
struct StoredCredentials {
    server: String,
    client_id: String,
    user: String,
    scope: String,
    token_endpoint: String,
    revocation_endpoint: String,
    access_token: String,
    refresh_token: String,
    expires_at: u64,
}

impl Credentials {
    pub fn load(path: &Path) -> Result<Credentials, Failure> {
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|error| {
            not_signed_in(format!(
                "not signed in ({}: {error}): run `device-tools login --server URL`",
                path.display()
            ))
        })?);
        let stored: StoredCredentials = serde_json::from_str(&text).map_err(|error| {
            not_signed_in(format!(
                "{} is not a credentials file ({error}): run `device-tools login` again",
                path.display()
            ))
        })?;
        Ok(Credentials {
            server: stored.server,
            client_id: stored.client_id,
            user: stored.user,
            scope: stored.scope,
            token_endpoint: stored.token_endpoint,
            revocation_endpoint: stored.revocation_endpoint,
            access_token: SecretString::from(stored.access_token),
            refresh_token: SecretString::from(stored.refresh_token),
            expires_at: stored.expires_at,
        })
    }

    /// Write the file readable by its owner only (0600, in a 0700
    /// directory), replacing any earlier one at once.
    pub fn save(&self, path: &Path) -> Result<(), Failure> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let failed = |error: std::io::Error| {
            Failure::new(
                exit::USAGE,
                format!("cannot write {}: {error}", path.display()),
            )
        };
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(failed)?;
        }
        let body = zeroize::Zeroizing::new(
            serde_json::to_string_pretty(&json!({
                "server": self.server,
                "client_id": self.client_id,
                "user": self.user,
                "scope": self.scope,
                "token_endpoint": self.token_endpoint,
                "revocation_endpoint": self.revocation_endpoint,
                "access_token": self.access_token.expose_secret(),
                "refresh_token": self.refresh_token.expose_secret(),
                "expires_at": self.expires_at,
            }))
            .map_err(|error| Failure::new(exit::USAGE, error.to_string()))?,
        );
        let temporary = path.with_extension("json.new");
        let _ = std::fs::remove_file(&temporary);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(failed)?;
        file.write_all(body.as_bytes()).map_err(failed)?;
        file.sync_all().map_err(failed)?;
        std::fs::rename(&temporary, path).map_err(failed)
    }

    fn client(&self) -> Result<TokenClient, Failure> {
        Ok(BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_token_uri(TokenUrl::new(self.token_endpoint.clone()).map_err(bad_metadata)?))
    }
}

type TokenClient =
    BasicClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

fn bad_metadata(error: impl std::fmt::Display) -> Failure {
    server_failure(format!("the server's metadata has a bad endpoint: {error}"))
}

/// An HTTP client that trusts the system's CAs plus `ca_file`, and follows
/// no redirects (a token endpoint must not send us elsewhere).
pub fn http_client(ca_file: Option<&Path>) -> Result<reqwest::blocking::Client, Failure> {
    let mut builder = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|error| {
            Failure::new(
                exit::USAGE,
                format!("cannot read {}: {error}", path.display()),
            )
        })?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| {
            Failure::new(
                exit::USAGE,
                format!("{} holds no PEM certificate: {error}", path.display()),
            )
        })?;
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder
        .build()
        .map_err(|error| server_failure(format!("cannot set up HTTPS: {error}")))
}

/// An error with its causes (connection refused, certificate not trusted…).
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn fetch_metadata(http: &reqwest::blocking::Client, server: &str) -> Result<Metadata, Failure> {
    let url = format!("{server}/.well-known/oauth-authorization-server");
    let response = http.get(&url).send().map_err(|error| {
        server_failure(format!(
            "cannot reach the server at {server}: {}",
            chain(&error)
        ))
    })?;
    if !response.status().is_success() {
        return Err(server_failure(format!(
            "{url} answered {}: is this a Gatehouse server?",
            response.status()
        )));
    }
    let metadata: Metadata = response
        .json()
        .map_err(|error| server_failure(format!("{url} is not OAuth metadata: {error}")))?;
    if metadata.issuer.trim_end_matches('/') != server {
        return Err(server_failure(format!(
            "the server calls itself {}, not {server}: use that address with --server",
            metadata.issuer
        )));
    }
    Ok(metadata)
}

/// The confirmation code the server's consent page shows for a loopback
/// request: eight letters derived from the PKCE challenge, `ABCD-EFGH`.
pub fn consent_code(code_challenge: &str) -> String {
    const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let digest = Sha256::digest(format!("gatehouse consent code\n{code_challenge}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let mut value = u64::from_be_bytes(first);
    let letters: String = (0..8)
        .map(|_| {
            let letter = ALPHABET[(value % ALPHABET.len() as u64) as usize];
            value /= ALPHABET.len() as u64;
            char::from(letter)
        })
        .collect();
    format!("{}-{}", &letters[..4], &letters[4..])
}

fn token_failure<E: std::error::Error + 'static, T: oauth2::ErrorResponse + 'static>(
    what: &str,
    error: RequestTokenError<E, T>,
) -> Failure {
    match error {
        RequestTokenError::ServerResponse(response) => {
            let text = serde_json::to_value(&response)
                .ok()
                .map(|value| {
                    let code = value["error"].as_str().unwrap_or("error").to_owned();
                    match value["error_description"].as_str() {
                        Some(description) => format!("{code}: {description}"),
                        None => code,
                    }
                })
                .unwrap_or_else(|| response.to_string());
            let code = if text.starts_with("access_denied") || text.starts_with("expired_token") {
                exit::NOT_SIGNED_IN
            } else {
                exit::SERVER
            };
            Failure::new(code, format!("{what}: the server refused: {text}"))
        }
        other => server_failure(format!("{what}: {}", chain(&other))),
    }
}

pub fn login(login: &Login<'_>) -> Result<ExitCode, Failure> {
    let server = login.server.trim_end_matches('/');
    let path = credentials_path(login.credentials)?;
    let http = http_client(login.ca_file)?;
    let metadata = fetch_metadata(&http, server)?;
    let client = BasicClient::new(ClientId::new(login.client_id.to_owned()))
        .set_auth_uri(AuthUrl::new(metadata.authorization_endpoint.clone()).map_err(bad_metadata)?)
        .set_token_uri(TokenUrl::new(metadata.token_endpoint.clone()).map_err(bad_metadata)?)
        .set_device_authorization_url(
            DeviceAuthorizationUrl::new(metadata.device_authorization_endpoint.clone())
                .map_err(bad_metadata)?,
        );
    let scopes: Vec<Scope> = login
        .scope
        .split_ascii_whitespace()
        .map(|scope| Scope::new(scope.to_owned()))
        .collect();
    let tokens = if login.device_code {
        device_flow(&client, &http, &scopes, login)?
    } else {
        loopback_flow(&client, &http, &scopes, server, login)?
    };
    let access_token = SecretString::from(tokens.access_token().secret().clone());
    let refresh_token = tokens
        .refresh_token()
        .map(|token| SecretString::from(token.secret().clone()))
        .ok_or_else(|| server_failure("the server issued no refresh token"))?;
    let identity = whoami_call(&http, server, &access_token)?;
    let credentials = Credentials {
        server: server.to_owned(),
        client_id: login.client_id.to_owned(),
        user: identity["user"].as_str().unwrap_or_default().to_owned(),
        scope: tokens
            .scopes()
            .map(|scopes| {
                scopes
                    .iter()
                    .map(|scope| scope.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_else(|| identity["scope"].as_str().unwrap_or_default().to_owned()),
        token_endpoint: metadata.token_endpoint,
        revocation_endpoint: metadata.revocation_endpoint,
        access_token,
        refresh_token,
        expires_at: login.now
            + tokens
                .expires_in()
                .map(|lifetime| lifetime.as_secs())
                .unwrap_or(0),
    };
    credentials.save(&path)?;
    if login.json {
        println!(
            "{}",
            json!({
                "user": credentials.user,
                "scope": credentials.scope,
                "server": credentials.server,
                "credentials": path.display().to_string(),
            })
        );
    } else {
        println!(
            "Signed in to {} as {} (scope: {}).",
            credentials.server, credentials.user, credentials.scope
        );
        if !credentials.scope.split(' ').any(|scope| scope == "admin") {
            println!(
                "{} is not an administrator: the admin commands will be refused.",
                credentials.user
            );
        }
        println!(
            "Credentials saved in {} (readable only by you).",
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

type FullClient =
    BasicClient<EndpointSet, EndpointSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

fn loopback_flow(
    client: &FullClient,
    http: &reqwest::blocking::Client,
    scopes: &[Scope],
    server: &str,
    login: &Login<'_>,
) -> Result<BasicTokenResponse, Failure> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(|error| {
        Failure::new(exit::USAGE, format!("cannot listen on 127.0.0.1: {error}"))
    })?;
    let port = listener
        .local_addr()
        .map_err(|error| Failure::new(exit::USAGE, error.to_string()))?
        .port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let client = client
        .clone()
        .set_redirect_uri(RedirectUrl::new(redirect).map_err(bad_metadata)?);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let confirmation = consent_code(challenge.as_str());
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(scopes.iter().cloned())
        .set_pkce_challenge(challenge)
        .url();
    let opened = login.open_browser && open_browser(url.as_str());
    if opened {
        println!("Your browser is opening the Gatehouse sign-in page. If it does not, open:");
    } else {
        println!("Open this address in a browser on this computer to sign in:");
    }
    println!("  {url}");
    println!("Confirmation code (the browser shows the same): {confirmation}");
    println!(
        "Waiting for the browser (up to {} minutes)...",
        login.timeout.as_secs().div_ceil(60)
    );
    let code = wait_for_callback(&listener, state.secret(), server, login.timeout)?;
    client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request(http)
        .map_err(|error| token_failure("exchanging the authorization code", error))
}

/// Serve the loopback redirect until the browser brings this request's
/// answer (other requests get 404, a wrong `state` is turned away), then
/// send the browser on to the server's "You can close this window".
fn wait_for_callback(
    listener: &TcpListener,
    state: &str,
    server: &str,
    timeout: Duration,
) -> Result<String, Failure> {
    listener
        .set_nonblocking(true)
        .map_err(|error| Failure::new(exit::USAGE, error.to_string()))?;
    let deadline = Instant::now() + timeout;
    loop {
        if Instant::now() > deadline {
            return Err(not_signed_in(
                "no answer from the browser in time: run the command again",
            ));
        }
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(error) => return Err(Failure::new(exit::USAGE, error.to_string())),
        };
        if let Some(answer) = answer_callback(stream, state, server) {
            return answer;
        }
    }
}

/// One request to the loopback address: `Some` once it carries this
/// request's answer.
fn answer_callback(
    mut stream: TcpStream,
    state: &str,
    server: &str,
) -> Option<Result<String, Failure>> {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|window| window == b"\r\n\r\n") && request.len() < 8192 {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => request.extend_from_slice(&buffer[..read]),
        }
    }
    let text = String::from_utf8_lossy(&request);
    let target = text
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("GET "))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or("");
    let reply = |stream: &mut TcpStream, status: &str, extra: &str, body: &str| {
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n{extra}\r\n{body}",
            body.len()
        );
    };
    let Ok(url) = Url::parse(&format!("http://127.0.0.1{target}")) else {
        reply(&mut stream, "400 Bad Request", "", "Bad request.\n");
        return None;
    };
    if url.path() != "/callback" {
        reply(&mut stream, "404 Not Found", "", "Not found.\n");
        return None;
    }
    let value = |name: &str| {
        url.query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    let state_matches =
        value("state").is_some_and(|given| bool::from(given.as_bytes().ct_eq(state.as_bytes())));
    if !state_matches {
        reply(
            &mut stream,
            "400 Bad Request",
            "",
            "This answer is not for the sign-in device-tools is waiting for.\n",
        );
        return None;
    }
    if let Some(error) = value("error") {
        let location = format!("Location: {server}/oauth/done?denied=1\r\n");
        reply(&mut stream, "303 See Other", &location, "Denied.\n");
        let description = value("error_description").unwrap_or_default();
        return Some(Err(not_signed_in(format!(
            "the sign-in was not allowed ({error}{}{description})",
            if description.is_empty() { "" } else { ": " }
        ))));
    }
    let code = value("code")?;
    let location = format!("Location: {server}/oauth/done\r\n");
    reply(
        &mut stream,
        "303 See Other",
        &location,
        "Signed in. You can close this window.\n",
    );
    Some(Ok(code))
}

/// Open `url` in the person's browser: `$BROWSER` if set (the first of its
/// colon-separated commands), else `xdg-open` when there is a display.
fn open_browser(url: &str) -> bool {
    let command = std::env::var("BROWSER")
        .ok()
        .and_then(|value| {
            value
                .split(':')
                .find(|part| !part.is_empty())
                .map(str::to_owned)
        })
        .or_else(|| {
            let display = std::env::var_os("DISPLAY").is_some()
                || std::env::var_os("WAYLAND_DISPLAY").is_some();
            display.then(|| "xdg-open".to_owned())
        });
    let Some(command) = command else {
        return false;
    };
    let mut words = command.split_whitespace();
    let Some(program) = words.next() else {
        return false;
    };
    let mut arguments: Vec<String> = words.map(str::to_owned).collect();
    if let Some(slot) = arguments
        .iter_mut()
        .find(|argument| argument.contains("%s"))
    {
        *slot = slot.replace("%s", url);
    } else {
        arguments.push(url.to_owned());
    }
    let spawned = Command::new(program)
        .args(&arguments)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match spawned {
        Ok(mut child) => {
            // Reap it whenever it ends; the browser may outlive this command.
            std::thread::spawn(move || child.wait());
            true
        }
        Err(_) => false,
    }
}

fn device_flow(
    client: &FullClient,
    http: &reqwest::blocking::Client,
    scopes: &[Scope],
    login: &Login<'_>,
) -> Result<BasicTokenResponse, Failure> {
    let details: StandardDeviceAuthorizationResponse = client
        .exchange_device_code()
        .add_scopes(scopes.iter().cloned())
        .request(http)
        .map_err(|error| token_failure("starting the device sign-in", error))?;
    let user_code = details.user_code().secret();
    println!(
        "On any device, open {} and enter the code: {user_code}",
        details.verification_uri().as_str()
    );
    if let Some(complete) = details.verification_uri_complete() {
        println!("(or open {} directly)", complete.secret());
    }
    println!(
        "The page shows the same code before you allow the sign-in. Waiting (up to {} minutes)...",
        details.expires_in().as_secs().div_ceil(60)
    );
    client
        .exchange_device_access_token(&details)
        .request(
            http,
            std::thread::sleep,
            Some(login.timeout.min(details.expires_in())),
        )
        .map_err(|error| token_failure("waiting for the device sign-in", error))
}

fn whoami_call(
    http: &reqwest::blocking::Client,
    server: &str,
    access_token: &SecretString,
) -> Result<Value, Failure> {
    let response = http
        .get(format!("{server}/api/v1/whoami"))
        .bearer_auth(access_token.expose_secret())
        .send()
        .map_err(|error| server_failure(format!("cannot reach {server}: {}", chain(&error))))?;
    let status = response.status();
    let body: Value = response.json().unwrap_or(Value::Null);
    match status.as_u16() {
        200 => Ok(body),
        401 => Err(not_signed_in(
            "the server no longer accepts this sign-in: run `device-tools login` again",
        )),
        _ => Err(server_failure(format!(
            "whoami: the server answered {status}: {}",
            body["error"].as_str().unwrap_or("no reason given")
        ))),
    }
}

/// A live access token for `server`, refreshed (and saved) when it has
/// expired or is about to.
pub fn access_token(
    server: &str,
    credentials_file: Option<&Path>,
    ca_file: Option<&Path>,
    now: u64,
) -> Result<SecretString, Failure> {
    let path = credentials_path(credentials_file)?;
    let mut credentials = Credentials::load(&path)?;
    let server = server.trim_end_matches('/');
    if credentials.server != server {
        return Err(not_signed_in(format!(
            "signed in to {}, not {server}: run `device-tools login --server {server}`",
            credentials.server
        )));
    }
    if credentials.expires_at > now + 30 {
        return Ok(credentials.access_token);
    }
    let http = http_client(ca_file)?;
    let tokens = credentials
        .client()?
        .exchange_refresh_token(&RefreshToken::new(
            credentials.refresh_token.expose_secret().to_owned(),
        ))
        .request(&http)
        .map_err(|error| {
            let failure = token_failure("refreshing the sign-in", error);
            if failure.message.contains("invalid_grant") {
                not_signed_in(format!(
                    "{}; run `device-tools login --server {server}` again",
                    failure.message
                ))
            } else {
                failure
            }
        })?;
    credentials.access_token = SecretString::from(tokens.access_token().secret().clone());
    if let Some(refresh) = tokens.refresh_token() {
        credentials.refresh_token = SecretString::from(refresh.secret().clone());
    }
    credentials.expires_at = now
        + tokens
            .expires_in()
            .map(|lifetime| lifetime.as_secs())
            .unwrap_or(0);
    credentials.save(&path)?;
    Ok(credentials.access_token)
}

pub fn whoami(
    server: Option<&str>,
    credentials_file: Option<&Path>,
    ca_file: Option<&Path>,
    json: bool,
    now: u64,
) -> Result<ExitCode, Failure> {
    let path = credentials_path(credentials_file)?;
    let saved = Credentials::load(&path)?;
    let server = server
        .unwrap_or(&saved.server)
        .trim_end_matches('/')
        .to_owned();
    let token = access_token(&server, Some(&path), ca_file, now)?;
    let identity = whoami_call(&http_client(ca_file)?, &server, &token)?;
    if json {
        println!("{identity}");
    } else {
        println!(
            "{} on {server} (scope: {}{})",
            identity["user"].as_str().unwrap_or_default(),
            identity["scope"].as_str().unwrap_or_default(),
            if identity["admin"] == true {
                ", administrator"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Revoke the saved sign-in at the server (RFC 7009) and delete the file.
pub fn logout(
    credentials_file: Option<&Path>,
    ca_file: Option<&Path>,
) -> Result<ExitCode, Failure> {
    let path = credentials_path(credentials_file)?;
    let credentials = Credentials::load(&path)?;
    let http = http_client(ca_file)?;
    let revoked = revoke(&http, &credentials);
    std::fs::remove_file(&path).map_err(|error| {
        Failure::new(
            exit::USAGE,
            format!("cannot delete {}: {error}", path.display()),
        )
    })?;
    match revoked {
        Ok(()) => {
            println!(
                "Signed out of {}: the server revoked the tokens and {} is deleted.",
                credentials.server,
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => Err(server_failure(format!(
            "{} is deleted, but the server could not revoke the tokens ({error}); an administrator can (gatehouse client revoke-user {})",
            path.display(),
            credentials.user
        ))),
    }
}

/// RFC 7009: revoke the refresh token (the server ends the whole sign-in).
/// Over HTTPS, or plain HTTP to this machine only.
fn revoke(http: &reqwest::blocking::Client, credentials: &Credentials) -> Result<(), String> {
    let url = Url::parse(&credentials.revocation_endpoint).map_err(|error| error.to_string())?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    if url.scheme() != "https" && !loopback {
        return Err("the revocation endpoint is not HTTPS".to_owned());
    }
    let response = http
        .post(url)
        .form(&[
            ("token", credentials.refresh_token.expose_secret()),
            ("token_type_hint", "refresh_token"),
            ("client_id", credentials.client_id.as_str()),
        ])
        .send()
        .map_err(|error| chain(&error))?;
    if response.status().is_success() {
        Ok(())
    } else {
        let body: Value = response.json().unwrap_or(Value::Null);
        Err(body["error_description"]
            .as_str()
            .or(body["error"].as_str())
            .unwrap_or("refused")
            .to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consent_code_matches_the_servers_formula() {
        // The same challenge the server's unit test uses (RFC 7636 App. B).
        let code = consent_code("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert_eq!(code.len(), 9);
        assert_eq!(&code[4..5], "-");
        assert!(
            code.chars()
                .all(|c| c == '-' || "BCDFGHJKLMNPQRSTVWXZ".contains(c))
        );
    }
}
