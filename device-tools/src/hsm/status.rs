//! `hsm status`: what the token is and whether the vault can use it.

use std::process::ExitCode;

use hsm_adapter::{Health, KeyReport, TokenAdmin};

use super::{module_config, print_json, user_pin};
use crate::cli::TokenArgs;
use crate::exit::{self, Failure};

#[derive(serde::Serialize)]
struct StatusReport<'a> {
    healthy: bool,
    #[serde(flatten)]
    health: &'a Health,
}

pub fn run(token: &TokenArgs, json: bool) -> Result<ExitCode, Failure> {
    let pin = user_pin(token)?;
    let admin = TokenAdmin::open(&module_config(token), &token.label, &pin, token.wrap_scheme)?;
    let health = admin.health()?;
    let healthy = health.is_healthy();
    if json {
        print_json(&StatusReport {
            healthy,
            health: &health,
        })?;
    } else {
        print_human(&health, healthy);
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::PROBLEM_FOUND)
    })
}

fn print_human(health: &Health, healthy: bool) {
    let module = &health.module;
    let token = &health.token;
    println!("Module     {}", module.path);
    println!(
        "           {} {} (library {}, PKCS#11 {})",
        module.manufacturer, module.description, module.library_version, module.cryptoki_version
    );
    println!("Token      {:?}", token.label);
    println!(
        "           {} {}, serial {}",
        token.manufacturer, token.model, token.serial
    );
    println!(
        "Wrap with  {}",
        health
            .wrap_scheme
            .unwrap_or("(nothing: new seals are impossible)")
    );
    println!("           {}", health.wrap_scheme_reason);
    println!(
        "Offered    {}",
        if health.wrap_schemes_offered.is_empty() {
            "no wrap scheme".to_owned()
        } else {
            health.wrap_schemes_offered.join(", ")
        }
    );
    let [sha1, sha256, sha512] = health.hmac_min_key_bytes;
    println!(
        "HMAC keys  at least {sha1}/{sha256}/{sha512} bytes (SHA-1/256/512); shorter seeds are zero-padded"
    );
    println!();
    println!("Mechanisms required");
    for mechanism in &health.mechanisms {
        let mark = if mechanism.present {
            "present"
        } else {
            "MISSING"
        };
        println!("  {mark:<8} {:<28} {}", mechanism.name, mechanism.purpose);
    }
    println!();
    match health.active_key_version {
        Some(active) => println!("Key versions (active: {active})"),
        None => {
            println!("Key versions: none (create one with `device-tools hsm init` or `hsm keygen`)")
        }
    }
    for version in &health.key_versions {
        println!(
            "  v{:<4} {} ({})",
            version.version,
            describe(&version.wrap_key),
            version.wrap_kind
        );
        println!("  {:<5} {}", "", describe(&version.bind_key));
    }
    for version in &health.incomplete_key_versions {
        println!("  v{version:<4} INCOMPLETE: one of its two keys is missing; it is not used");
    }
    println!();
    if healthy {
        println!("Status     healthy");
    } else {
        let missing = health.missing_mechanisms();
        let mut problems = Vec::new();
        if !missing.is_empty() {
            problems.push(format!("missing mechanisms: {}", missing.join(", ")));
        }
        if health.active_key_version.is_none() {
            problems.push("no key version".to_owned());
        } else if health.wrap_scheme.is_none() {
            problems.push(health.wrap_scheme_reason.clone());
        }
        if health
            .key_versions
            .iter()
            .any(|v| !v.wrap_key.is_protected() || !v.bind_key.is_protected())
        {
            problems.push("a key is not sensitive and never-extractable".to_owned());
        }
        println!("Status     UNHEALTHY: {}", problems.join("; "));
    }
}

fn describe(key: &KeyReport) -> String {
    let flags = [
        (key.sensitive, "sensitive"),
        (key.extractable, "EXTRACTABLE"),
        (key.never_extractable, "never-extractable"),
        (key.wrap, "wrap"),
        (key.unwrap, "unwrap"),
        (key.sign, "sign"),
        (key.verify, "verify"),
    ];
    let names: Vec<&str> = flags
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
    format!("{:<20} {}", key.label, names.join(" "))
}
