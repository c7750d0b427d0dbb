//! `device-tools yubikey …`: the OATH applet of a YubiKey over PC/SC.

use std::process::ExitCode;

use serde_json::json;

use crate::cli::{AccessCodeAction, CardArgs, YubikeyCommand};
use crate::exit::{self, Failure};
use crate::secrets::{self, PinKind};
use crate::ykoath::applet::{CodeResult, time_challenge};
use crate::ykoath::{OathError, OathSession, session};

pub fn run(command: YubikeyCommand, json: bool) -> Result<ExitCode, Failure> {
    match command {
        YubikeyCommand::List => list(json),
        YubikeyCommand::Accounts { card } => {
            let session = open(&card)?;
            let credentials = session.list()?;
            if json {
                print(&json!({ "reader": session.reader, "credentials": credentials }));
            } else if credentials.is_empty() {
                println!("No OATH credentials on the key in {}.", session.reader);
            } else {
                for credential in credentials {
                    println!("{}", credential.name);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        YubikeyCommand::Code { card, name, at } => code(&card, name.as_deref(), at, json),
        YubikeyCommand::Enroll {
            server,
            user,
            token_file,
            saved,
            name,
            no_touch,
            card,
        } => crate::enroll::run(&crate::enroll::Enrollment {
            ca_file: saved.ca_file.as_deref(),
            credentials: saved.credentials.as_deref(),
            server: &server,
            user: &user,
            token_file: token_file.as_deref(),
            name: name.as_deref(),
            touch: !no_touch,
            card: &card,
            now: crate::now(),
        }),
        YubikeyCommand::Delete { name, card } => {
            let session = open(&card)?;
            session.delete(&name)?;
            println!("Deleted {name}.");
            Ok(ExitCode::SUCCESS)
        }
        YubikeyCommand::AccessCode { action } => match action {
            AccessCodeAction::Set {
                card,
                new_code_file,
            } => {
                let session = open(&card)?;
                let code =
                    secrets::read_pin(PinKind::NewAccessCode, new_code_file.as_deref(), true)?;
                session.set_access_code(&code)?;
                println!("The OATH applet now needs the access code.");
                Ok(ExitCode::SUCCESS)
            }
            AccessCodeAction::Clear { card } => {
                let session = open(&card)?;
                session.clear_access_code()?;
                println!("The OATH applet's access code is removed.");
                Ok(ExitCode::SUCCESS)
            }
        },
        YubikeyCommand::Reset { card, yes } => {
            if !yes {
                return Err(Failure::new(
                    exit::USAGE,
                    "reset erases every OATH credential on the key: add --yes to confirm",
                ));
            }
            let session = OathSession::open(card.reader.as_deref())?;
            session.reset()?;
            println!(
                "The OATH applet in {} is reset: no credentials, no access code.",
                session.reader
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Open the applet, answering an access-code challenge when it asks.
pub(crate) fn open(card: &CardArgs) -> Result<OathSession, Failure> {
    let mut session = OathSession::open(card.reader.as_deref())?;
    if session.locked() {
        let code = secrets::read_pin(PinKind::AccessCode, card.access_code_file.as_deref(), false)
            .map_err(|_| Failure::from(OathError::AccessCodeRequired))?;
        session.validate(&code)?;
    }
    Ok(session)
}

fn list(json: bool) -> Result<ExitCode, Failure> {
    let readers = session::readers()?;
    let mut rows = Vec::new();
    for (reader, present) in readers {
        let applet = if present {
            match OathSession::open(Some(&reader)) {
                Ok(session) => {
                    let device = match &session.device {
                        Some(crate::ykoath::DeviceInfo {
                            serial: Some(serial),
                            firmware,
                        }) => {
                            let firmware = firmware
                                .map(|[a, b, c]| format!(", firmware {a}.{b}.{c}"))
                                .unwrap_or_default();
                            format!("YubiKey serial {serial}{firmware}, ")
                        }
                        _ => String::new(),
                    };
                    let lock = if session.locked() {
                        ", access code set"
                    } else {
                        ""
                    };
                    let [major, minor, patch] = session.version;
                    Some(format!("{device}OATH {major}.{minor}.{patch}{lock}"))
                }
                Err(_) => None,
            }
        } else {
            None
        };
        rows.push((reader, present, applet));
    }
    if json {
        let items: Vec<_> = rows
            .iter()
            .map(|(reader, present, applet)| json!({ "reader": reader, "card": present, "oath": applet }))
            .collect();
        print(&json!(items));
    } else if rows.is_empty() {
        println!("No smart-card readers (is pcscd running, and the YubiKey plugged in?).");
    } else {
        for (reader, present, applet) in rows {
            let state = match (present, applet) {
                (false, _) => "empty".to_owned(),
                (true, Some(applet)) => applet,
                (true, None) => "a card without the OATH applet".to_owned(),
            };
            println!("{reader}: {state}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn code(
    card: &CardArgs,
    name: Option<&str>,
    at: Option<u64>,
    json: bool,
) -> Result<ExitCode, Failure> {
    let session = open(card)?;
    let now = at.unwrap_or_else(crate::now);
    let challenge = time_challenge(now, 30);
    let mut codes = Vec::new();
    for (credential, result) in session.calculate_all(&challenge)? {
        if name.is_some_and(|wanted| wanted != credential) {
            continue;
        }
        let result = match result {
            // A touch credential is calculated alone; the key blinks.
            CodeResult::TouchRequired => {
                eprintln!("Touch the key for {credential}…");
                CodeResult::Code(session.calculate(&credential, &challenge)?)
            }
            other => other,
        };
        codes.push((credential, result));
    }
    if let (Some(wanted), true) = (name, codes.is_empty()) {
        return Err(Failure::new(
            exit::CARD_REFUSED,
            format!("no credential named {wanted:?} on the key"),
        ));
    }
    if json {
        let items: Vec<_> = codes
            .iter()
            .map(|(credential, result)| match result {
                CodeResult::Code(code) => json!({ "name": credential, "code": code }),
                _ => json!({ "name": credential, "code": null, "hotp": true }),
            })
            .collect();
        print(&json!(items));
    } else {
        for (credential, result) in codes {
            match result {
                CodeResult::Code(code) => println!("{credential}  {code}"),
                _ => println!("{credential}  (HOTP: not calculated)"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print(value: &serde_json::Value) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(error) => eprintln!("error: cannot encode JSON: {error}"),
    }
}
