//! `hsm selftest`: the RFC 6238 appendix B vectors, through the token.
//!
//! Each vector's seed is sealed under the active key version and its code
//! verified inside the token, exactly as a sign-in would. Nothing is stored.

use std::process::ExitCode;

use hsm_adapter::{Owner, TotpAlgorithm, TotpPolicy, Vault, VaultConfig, VerifyRequest};
use zeroize::Zeroizing;

use super::{module_config, print_json, user_pin};
use crate::cli::TokenArgs;
use crate::exit::{self, Failure};

/// (time, SHA-1, SHA-256, SHA-512 code) from RFC 6238 appendix B.
const VECTORS: &[(u64, [&str; 3])] = &[
    (59, ["94287082", "46119246", "90693936"]),
    (1111111109, ["07081804", "68084774", "25091201"]),
    (1111111111, ["14050471", "67062674", "99943326"]),
    (1234567890, ["89005924", "91819424", "93441116"]),
    (2000000000, ["69279037", "90698825", "38618901"]),
    (20000000000, ["65353130", "77737706", "47863826"]),
];

#[derive(serde::Serialize)]
struct VectorResult {
    algorithm: &'static str,
    time: u64,
    code: &'static str,
    passed: bool,
    error: Option<String>,
}

#[derive(serde::Serialize)]
struct SelftestReport {
    key_version: u32,
    passed: usize,
    failed: usize,
    vectors: Vec<VectorResult>,
}

/// RFC 6238's seed for `algorithm`: "1234567890" repeated to the hash size.
fn rfc_seed(algorithm: TotpAlgorithm) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(
        b"1234567890"
            .iter()
            .copied()
            .cycle()
            .take(algorithm.seed_len())
            .collect(),
    )
}

pub fn run(token: &TokenArgs, json: bool) -> Result<ExitCode, Failure> {
    let pin = user_pin(token)?;
    let mut config = VaultConfig::new(module_config(token), token.label.clone(), pin);
    config.workers = 1;
    let vault = Vault::open(config)?;
    let key_version = vault.refresh_keys().wait()?;
    let policy = TotpPolicy {
        digits: 8,
        period: 30,
        window: 0,
    };
    let mut vectors = Vec::new();
    for (index, algorithm) in TotpAlgorithm::ALL.into_iter().enumerate() {
        let owner = Owner::new(format!("selftest/{algorithm}"))?;
        let sealed = vault
            .seal(owner.clone(), algorithm, rfc_seed(algorithm))
            .wait()?;
        for &(time, codes) in VECTORS {
            let code = codes[index];
            let outcome = vault
                .verify(VerifyRequest {
                    owner: owner.clone(),
                    sealed: sealed.clone(),
                    code: code.to_owned(),
                    policy,
                    now: time,
                })
                .wait();
            let (passed, error) = match outcome {
                Ok(step) => (step == Some(time / policy.period), None),
                Err(error) => (false, Some(error.to_string())),
            };
            vectors.push(VectorResult {
                algorithm: algorithm.as_str(),
                time,
                code,
                passed,
                error,
            });
        }
    }
    let passed = vectors.iter().filter(|v| v.passed).count();
    let report = SelftestReport {
        key_version,
        passed,
        failed: vectors.len() - passed,
        vectors,
    };
    if json {
        print_json(&report)?;
    } else {
        println!(
            "RFC 6238 vectors through token {:?}, key version {key_version}",
            token.label
        );
        for vector in &report.vectors {
            let mark = if vector.passed { "pass" } else { "FAIL" };
            print!(
                "  {mark}  {:<7} T={:<12} {}",
                vector.algorithm, vector.time, vector.code
            );
            match &vector.error {
                Some(error) => println!("  ({error})"),
                None => println!(),
            }
        }
        println!(
            "self-test: {} of {} vectors passed",
            report.passed,
            report.vectors.len()
        );
    }
    Ok(if report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::PROBLEM_FOUND)
    })
}
