//! Sign-in under load, against the real `gatehouse` binary on loopback.
//!
//! `cargo bench -p server --bench signin_load` (add `-- --quick` for a short
//! run). Enrolls users through the real registration flow, then reports
//! throughput and p50/p99 latency of `POST /signin` at 1, 8 and 32 concurrent
//! clients for: password-only sign-in, password + code sign-in, and a flood of
//! wrong codes; the PKCS#11 calls per sign-in (from `/healthz`); the share of
//! a sign-in that is the Argon2id hash; and whether a flood of wrong codes
//! starves other users.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark stops on any failure

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use data_encoding::BASE32_NOPAD;
use gatehouse_tests::{GatehouseServer, ServerOptions};

const PASSWORD: &str = "load-test-password";

struct Options {
    users: usize,
    ops_per_level: usize,
}

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let options = if quick {
        Options {
            users: 16,
            ops_per_level: 48,
        }
    } else {
        Options {
            users: 64,
            ops_per_level: 256,
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(options));
}

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gatehouse"))
}

async fn run(options: Options) {
    let server = GatehouseServer::start(
        &binary(),
        ServerOptions {
            env: vec![
                // All clients are 127.0.0.1, and the flood must cost what an
                // unlocked account's wrong code costs: lift both limits.
                (
                    "GATEHOUSE_LOCKOUT_PER_ADDRESS_PER_MINUTE".into(),
                    "1000000000".into(),
                ),
                ("GATEHOUSE_LOCKOUT_MAX_FAILURES".into(), "1000000000".into()),
                (
                    "GATEHOUSE_LOG".into(),
                    "warn,cryptoki::mechanism=off".into(),
                ),
            ],
            ..ServerOptions::default()
        },
    );
    eprintln!("enrolling {} users of each kind…", options.users);
    let plain: Vec<String> = (0..options.users).map(|i| format!("plain{i:03}")).collect();
    let mfa: Vec<String> = (0..options.users).map(|i| format!("mfa{i:03}")).collect();
    let victims: Vec<String> = (0..options.users)
        .map(|i| format!("victim{i:03}"))
        .collect();
    for name in plain.iter() {
        add_user(&server, name, false);
    }
    for name in mfa.iter().chain(&victims) {
        add_user(&server, name, true);
    }
    let mut keys = Vec::new();
    for name in mfa.iter().chain(&victims) {
        keys.push((name.clone(), enroll(&server, name).await));
    }
    let mfa_keys: Vec<_> = keys[..options.users].to_vec();
    let victim_names: Vec<_> = victims.clone();

    let argon2 = argon2_verify_cost();
    println!("## Sign-in under load");
    println!();
    println!(
        "{} users of each kind, {} sign-ins per row; `POST /signin` latency; Argon2id verify alone: {:.1} ms",
        options.users,
        options.ops_per_level,
        argon2.as_secs_f64() * 1e3
    );
    println!();
    println!("| scenario | clients | sign-ins/s | p50 ms | p99 ms | PKCS#11 calls per sign-in |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut single_code_p50 = Duration::ZERO;
    let mut single_plain_p50 = Duration::ZERO;
    for clients in [1, 8, 32] {
        let report = scenario(
            &server,
            clients,
            options.ops_per_level,
            Kind::Password,
            &plain,
            &[],
        )
        .await;
        if clients == 1 {
            single_plain_p50 = report.p50;
        }
        report.row("password only", clients);
    }
    for clients in [1, 8, 32] {
        let report = scenario(
            &server,
            clients,
            options.ops_per_level,
            Kind::Code,
            &[],
            &mfa_keys,
        )
        .await;
        if clients == 1 {
            single_code_p50 = report.p50;
        }
        report.row("password + code", clients);
    }
    for clients in [1, 8, 32] {
        scenario(
            &server,
            clients,
            options.ops_per_level,
            Kind::WrongCode,
            &victim_names,
            &[],
        )
        .await
        .row("wrong codes (flood)", clients);
    }
    println!();

    // Starvation: one person signing in while 32 clients, each from its own
    // address, flood wrong codes; first with the limits lifted (the worst
    // case), then on a server with the default lockout and address limits.
    let defended = GatehouseServer::start(
        &binary(),
        ServerOptions {
            env: vec![(
                "GATEHOUSE_LOG".into(),
                "warn,cryptoki::mechanism=off".into(),
            )],
            ..ServerOptions::default()
        },
    );
    let mut defended_keys = Vec::new();
    for name in mfa.iter().chain(&victims).take(options.users + 8) {
        add_user(&defended, name, true);
    }
    for name in mfa.iter() {
        defended_keys.push((name.clone(), enroll(&defended, name).await));
    }
    for name in victims.iter().take(8) {
        enroll(&defended, name).await;
    }
    let defended_victims: Vec<String> = victims.iter().take(8).cloned().collect();
    // One person stays under the default 60 attempts per address per minute.
    let person_ops = (options.ops_per_level / 4).min(48);
    println!("| one person signing in (password + code) | p50 ms | p99 ms |");
    println!("|---|---:|---:|");
    let quiet = scenario(&server, 1, person_ops, Kind::Code, &[], &mfa_keys).await;
    println!("| alone | {:.1} | {:.1} |", ms(quiet.p50), ms(quiet.p99));
    let flooded = under_flood(&server, &mfa_keys, &victim_names, person_ops).await;
    println!(
        "| while 32 addresses flood wrong codes, lockout and address limits lifted | {:.1} | {:.1} |",
        ms(flooded.p50),
        ms(flooded.p99)
    );
    let flooded = under_flood(&defended, &defended_keys, &defended_victims, person_ops).await;
    println!(
        "| while 32 addresses flood wrong codes, default limits | {:.1} | {:.1} |",
        ms(flooded.p50),
        ms(flooded.p99)
    );
    println!();
    let floor = request_floor(&server).await;
    println!(
        "Request floor (a `POST /signin` refused at its CSRF check: HTTP on loopback, no hashing): p50 {:.2} ms",
        ms(floor)
    );
    let other_plain = single_plain_p50.saturating_sub(argon2);
    let other_code = single_code_p50.saturating_sub(argon2);
    println!(
        "Argon2id share of one sign-in (1 client): password only {:.0}% (other work {:.1} ms), password + code {:.0}% (other work {:.1} ms)",
        100.0 * argon2.as_secs_f64() / single_plain_p50.as_secs_f64(),
        ms(other_plain),
        100.0 * argon2.as_secs_f64() / single_code_p50.as_secs_f64(),
        ms(other_code),
    );
}

/// One person's sign-ins while 32 clients from 32 addresses flood wrong codes.
async fn under_flood(
    server: &GatehouseServer,
    keys: &[(String, String)],
    victims: &[String],
    ops: usize,
) -> Report {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood_stop = Arc::clone(&stop);
    let flood = async move {
        while !flood_stop.load(std::sync::atomic::Ordering::Relaxed) {
            scenario_from(server, 32, 64, Kind::WrongCode, victims, &[], Some(1)).await;
        }
    };
    let person = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let report = scenario(server, 1, ops, Kind::Code, &[], keys).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        report
    };
    let (report, ()) = tokio::join!(person, flood);
    report
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Password,
    Code,
    WrongCode,
}

struct Report {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    calls_per_sign_in: f64,
}

impl Report {
    fn row(&self, scenario: &str, clients: usize) {
        println!(
            "| {scenario} | {clients} | {:.1} | {:.1} | {:.1} | {:.1} |",
            self.per_second,
            ms(self.p50),
            ms(self.p99),
            self.calls_per_sign_in
        );
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// `ops` sign-ins by `clients` concurrent clients. With codes, the users are
/// taken round by round and the server's clock moves 30 s between rounds, so
/// every code is fresh (a code is accepted once).
async fn scenario(
    server: &GatehouseServer,
    clients: usize,
    ops: usize,
    kind: Kind,
    names: &[String],
    keys: &[(String, String)],
) -> Report {
    scenario_from(server, clients, ops, kind, names, keys, None).await
}

/// As `scenario`, with client `i` connecting from loopback address
/// `127.0.1.(i+1)` when `spread` is set (a flood from many addresses).
async fn scenario_from(
    server: &GatehouseServer,
    clients: usize,
    ops: usize,
    kind: Kind,
    names: &[String],
    keys: &[(String, String)],
    spread: Option<u8>,
) -> Report {
    let calls_before = token_calls(server).await;
    let mut latencies = Vec::with_capacity(ops);
    let start = Instant::now();
    let mut remaining = ops;
    while remaining > 0 {
        // One round: each user at most once, so codes never repeat in a step.
        let round = match kind {
            Kind::Code => remaining.min(keys.len()),
            _ => remaining.min(names.len().max(1) * 4),
        };
        if kind == Kind::Code {
            server.advance(30);
        }
        let now = server.now();
        let queue: VecDeque<(String, String)> = (0..round)
            .map(|index| match kind {
                Kind::Password => (names[index % names.len()].clone(), String::new()),
                Kind::Code => (keys[index].0.clone(), code(&keys[index].1, now)),
                Kind::WrongCode => (names[index % names.len()].clone(), "000000".to_owned()),
            })
            .collect();
        let queue = Arc::new(Mutex::new(queue));
        let mut tasks = Vec::new();
        for client_index in 0..clients {
            let queue = Arc::clone(&queue);
            let url = server.url.clone();
            let source =
                spread.map(|third| std::net::IpAddr::from([127, 0, third, client_index as u8 + 1]));
            tasks.push(tokio::spawn(async move {
                let mut timings = Vec::new();
                loop {
                    let next = queue.lock().unwrap().pop_front();
                    let Some((name, code)) = next else { break };
                    // Every sign-in is a new visitor with an empty cookie jar.
                    let client = reqwest::Client::builder()
                        .cookie_store(true)
                        .redirect(reqwest::redirect::Policy::none())
                        .local_address(source)
                        .build()
                        .unwrap();
                    let form = client
                        .get(format!("{url}/signin"))
                        .send()
                        .await
                        .unwrap()
                        .text()
                        .await
                        .unwrap();
                    let csrf = csrf(&form);
                    let began = Instant::now();
                    let response = client
                        .post(format!("{url}/signin"))
                        .form(&[
                            ("csrf", csrf.as_str()),
                            ("name", &name),
                            ("password", PASSWORD),
                            ("code", &code),
                        ])
                        .send()
                        .await
                        .unwrap();
                    let status = response.status();
                    let _ = response.bytes().await;
                    timings.push(began.elapsed());
                    if kind == Kind::WrongCode {
                        assert_ne!(status, 303, "{name}: a wrong code signed in");
                    } else {
                        assert_eq!(status, 303, "{name}: status {status}");
                    }
                }
                timings
            }));
        }
        for task in tasks {
            latencies.extend(task.await.unwrap());
        }
        remaining -= round;
    }
    let elapsed = start.elapsed();
    let calls = token_calls(server).await - calls_before;
    latencies.sort();
    let at = |quantile: f64| {
        latencies[((latencies.len() as f64 * quantile) as usize).min(latencies.len() - 1)]
    };
    Report {
        per_second: ops as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        calls_per_sign_in: calls as f64 / ops as f64,
    }
}

/// The median round trip of a `POST /signin` that stops at the CSRF check.
async fn request_floor(server: &GatehouseServer) -> Duration {
    let client = reqwest::Client::new();
    let mut timings = Vec::new();
    for _ in 0..200 {
        let began = Instant::now();
        let response = client
            .post(format!("{}/signin", server.url))
            .form(&[
                ("csrf", "x"),
                ("name", "x"),
                ("password", "x"),
                ("code", ""),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
        let _ = response.bytes().await;
        timings.push(began.elapsed());
    }
    timings.sort();
    timings[timings.len() / 2]
}

async fn token_calls(server: &GatehouseServer) -> u64 {
    let health: serde_json::Value = reqwest::get(format!("{}/healthz", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    health["token"]["stats"]["token_calls"].as_u64().unwrap()
}

fn csrf(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).unwrap() + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

fn code(key: &str, time: u64) -> String {
    let seed = BASE32_NOPAD.decode(key.as_bytes()).unwrap();
    totp_rs::Builder::new()
        .with_secret(seed)
        .build_noncompliant()
        .generate(time)
        .to_string()
}

fn add_user(server: &GatehouseServer, name: &str, force_mfa: bool) {
    let mut command = server.command(&binary());
    command.args(["user", "add", name, "--password-stdin"]);
    if force_mfa {
        command.arg("--force-mfa");
    }
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    assert!(child.wait().unwrap().success());
}

/// Sign in, Initialize, confirm with a code: returns the security key.
async fn enroll(server: &GatehouseServer, name: &str) -> String {
    // Each enrollment from its own loopback address, so the per-address
    // limit of a server with default settings does not get in the way.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let index = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let source = std::net::IpAddr::from([127, 0, 2 + (index / 250) as u8, (index % 250) as u8 + 1]);
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .local_address(source)
        .build()
        .unwrap();
    let url = &server.url;
    let form = client
        .get(format!("{url}/signin"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let page = client
        .post(format!("{url}/signin"))
        .form(&[
            ("csrf", csrf(&form).as_str()),
            ("name", name),
            ("password", PASSWORD),
            ("code", ""),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dialog = client
        .post(format!("{url}/mfa/initialize"))
        .form(&[("csrf", csrf(&page).as_str())])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let marker = "id=\"security-key\">";
    let start = dialog.find(marker).unwrap_or_else(|| {
        let log = server.log();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        panic!("{name}: no security key after sign-in (source {source}):\n{page}\n{tail:#?}")
    }) + marker.len();
    let key: String = dialog[start..start + dialog[start..].find('<').unwrap()]
        .split_whitespace()
        .collect();
    let done = client
        .post(format!("{url}/mfa/confirm"))
        .form(&[
            ("csrf", csrf(&dialog).as_str()),
            ("code", &code(&key, server.now())),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(done.contains("Signed in as"), "{name} did not enroll");
    key
}

/// One Argon2id verification with the server's default parameters.
fn argon2_verify_cost() -> Duration {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let hash = argon2
        .hash_password(PASSWORD.as_bytes(), &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
    let parsed = PasswordHash::new(&hash).unwrap();
    let mut timings: Vec<Duration> = (0..15)
        .map(|_| {
            let start = Instant::now();
            Argon2::default()
                .verify_password(PASSWORD.as_bytes(), &parsed)
                .unwrap();
            start.elapsed()
        })
        .collect();
    timings.sort();
    timings[timings.len() / 2]
}
