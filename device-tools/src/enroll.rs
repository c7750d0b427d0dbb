//! `device-tools yubikey enroll`: provision a YubiKey as a user's
//! authenticator on a Gatehouse server, with no half-registered state.
//!
//! 1. Open the key's OATH applet (before asking the server for anything).
//! 2. Ask the server's admin API for a pending registration: it makes and
//!    seals a seed and hands it over once.
//! 3. Store the credential on the key, zeroize the seed, let the key
//!    calculate a code, and send the code to the server, which activates the
//!    authenticator.
//!
//! If anything fails after step 2, the credential is removed from the key
//! (if it got there) and the pending registration is withdrawn.

use std::path::Path;
use std::process::ExitCode;

use data_encoding::BASE32_NOPAD;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::cli::CardArgs;
use crate::exit::{self, Failure};
use crate::login::{chain, http_client};
use crate::ykoath::applet::{HashAlgorithm, NewCredential, time_challenge};
use crate::ykoath::{OathError, OathSession};

pub struct Enrollment<'a> {
    pub server: &'a str,
    pub ca_file: Option<&'a Path>,
    pub user: &'a str,
    pub token_file: Option<&'a Path>,
    /// The sign-in saved by `device-tools login`, used when no admin token
    /// is given.
    pub credentials: Option<&'a Path>,
    pub name: Option<&'a str>,
    pub touch: bool,
    pub card: &'a CardArgs,
    /// Unix seconds, read at the command line's edge.
    pub now: u64,
}

fn server_failure(message: impl Into<String>) -> Failure {
    Failure::new(exit::SERVER, message)
}

/// The bearer token for the admin API: an admin token from `--token-file`
/// or `$GATEHOUSE_TOKEN`, else the saved `device-tools login` (refreshed if
/// need be).
fn admin_token(enrollment: &Enrollment<'_>) -> Result<SecretString, Failure> {
    let value = match enrollment.token_file {
        Some(path) => Zeroizing::new(std::fs::read_to_string(path).map_err(|error| {
            Failure::new(
                exit::PIN,
                format!("cannot read the API token from {}: {error}", path.display()),
            )
        })?),
        None => match std::env::var("GATEHOUSE_TOKEN") {
            Ok(value) => Zeroizing::new(value),
            Err(_) => {
                return crate::login::access_token(
                    enrollment.server,
                    enrollment.credentials,
                    enrollment.ca_file,
                    enrollment.now,
                );
            }
        },
    };
    Ok(SecretString::from(value.trim().to_owned()))
}

struct Api<'a> {
    http: reqwest::blocking::Client,
    base: &'a str,
    token: SecretString,
}

impl Api<'_> {
    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), Failure> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base.trim_end_matches('/')))
            .bearer_auth(self.token.expose_secret());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().map_err(|error| {
            server_failure(format!(
                "cannot reach the server at {}: {}",
                self.base,
                chain(&error)
            ))
        })?;
        let status = response.status().as_u16();
        let body = response.json::<Value>().unwrap_or(Value::Null);
        Ok((status, body))
    }
}

fn refused(status: u16, body: &Value) -> Failure {
    let message = body["error"].as_str().unwrap_or("no reason given");
    match status {
        401 => Failure::new(
            exit::PIN,
            format!("the server refused the API token: {message}"),
        ),
        _ => server_failure(format!("the server refused ({status}): {message}")),
    }
}

pub fn run(enrollment: &Enrollment<'_>) -> Result<ExitCode, Failure> {
    let session = crate::yubikey::open(enrollment.card)?;
    let api = Api {
        http: http_client(enrollment.ca_file)?,
        base: enrollment.server,
        token: admin_token(enrollment)?,
    };
    let user_path = urlencode(enrollment.user);
    let (status, offer) = api.call(
        reqwest::Method::POST,
        &format!("/api/v1/admin/users/{user_path}/yubikey"),
        None,
    )?;
    if status != 201 {
        return Err(refused(status, &offer));
    }
    let registration = offer["enrollment_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let outcome = program_and_confirm(&session, &api, enrollment, &offer, &registration);
    match outcome {
        Ok(name) => {
            println!(
                "The YubiKey in {} is now {}'s authenticator (credential {name}{}).",
                session.reader,
                enrollment.user,
                if enrollment.touch {
                    ", touch required"
                } else {
                    ""
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Err((failure, stored_name)) => {
            if let Some(name) = stored_name {
                let _ = session.delete(&name);
            }
            let _ = api.call(
                reqwest::Method::DELETE,
                &format!("/api/v1/admin/yubikey-registrations/{registration}"),
                None,
            );
            Err(Failure::new(
                failure.code,
                format!(
                    "{}; nothing was registered, run the command again",
                    failure.message
                ),
            ))
        }
    }
}

/// Store the credential, let the key calculate a code, confirm it. On
/// failure, says which credential name (if any) reached the key.
fn program_and_confirm(
    session: &OathSession,
    api: &Api<'_>,
    enrollment: &Enrollment<'_>,
    offer: &Value,
    registration: &str,
) -> Result<String, (Failure, Option<String>)> {
    let name = enrollment
        .name
        .map(str::to_owned)
        .or_else(|| offer["credential_name"].as_str().map(str::to_owned))
        .ok_or_else(|| {
            (
                server_failure("the server's offer has no credential name"),
                None,
            )
        })?;
    let algorithm = match offer["algorithm"].as_str() {
        Some("SHA1") => HashAlgorithm::Sha1,
        Some("SHA256") => HashAlgorithm::Sha256,
        Some("SHA512") => HashAlgorithm::Sha512,
        _ => {
            return Err((
                server_failure("the server offered an unknown algorithm"),
                None,
            ));
        }
    };
    let period = offer["period"].as_u64().unwrap_or(30);
    let digits = offer["digits"]
        .as_u64()
        .and_then(|d| u8::try_from(d).ok())
        .unwrap_or(6);
    // A non-30-second period goes into the name, as the applet expects.
    let stored_name = if period == 30 {
        name.clone()
    } else {
        format!("{period}/{name}")
    };
    {
        let secret = Zeroizing::new(offer["secret"].as_str().unwrap_or_default().to_owned());
        let seed = Zeroizing::new(
            BASE32_NOPAD
                .decode(secret.as_bytes())
                .map_err(|_| (server_failure("the server's seed is not base32"), None))?,
        );
        session
            .put(&NewCredential {
                name: &stored_name,
                algorithm,
                digits,
                key: &seed,
                require_touch: enrollment.touch,
            })
            .map_err(|error| (card_failure(error), None))?;
    }
    if enrollment.touch {
        eprintln!("Touch the key to confirm the registration…");
    }
    let code = session
        .calculate(&stored_name, &time_challenge(enrollment.now, period))
        .map_err(|error| (card_failure(error), Some(stored_name.clone())))?;
    let (status, body) = api
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/admin/yubikey-registrations/{registration}/confirm"),
            Some(json!({
                "code": code,
                "serial": session.device.as_ref().and_then(|device| device.serial).map(|serial| serial.to_string()),
            })),
        )
        .map_err(|failure| (failure, Some(stored_name.clone())))?;
    if status != 200 {
        return Err((refused(status, &body), Some(stored_name)));
    }
    Ok(stored_name)
}

/// An HTTPS-capable client trusting the system's CAs and `ca_file`'s.
fn card_failure(error: OathError) -> Failure {
    let hint = match &error {
        OathError::Status(word) if *word == crate::ykoath::apdu::StatusWord::NO_SPACE => {
            ": delete a credential with `device-tools yubikey delete NAME`"
        }
        OathError::Status(word) if *word == crate::ykoath::apdu::StatusWord::TOUCH_REQUIRED => {
            ": touch the key when it blinks"
        }
        _ => "",
    };
    let mut failure = Failure::from(error);
    failure.message.push_str(hint);
    failure
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
