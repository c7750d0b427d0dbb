//! Verification throughput per token and wrap scheme, with and without hot
//! keys (unwrapped keys kept in the worker's token session).
//!
//! Run with `cargo bench -p hsm-adapter --bench schemes` (add `-- --quick`
//! for a short run). It needs what the test command installs: SoftHSM,
//! p11-kit (`p11-kit server`, `p11-kit-client.so`) and opencryptoki, whose
//! `pkcsslotd` it starts if needed. Each token is measured in a process of
//! its own (a PKCS#11 module is initialised once per process):
//!
//! * SoftHSM in process: `aes-kwp`, `aes-kw`, `rsa-oaep`;
//! * the same SoftHSM served by `p11-kit server` over a Unix socket: only
//!   `rsa-oaep` crosses p11-kit's RPC;
//! * opencryptoki's software token: `aes-cbc-pad`, `rsa-oaep`.
//!
//! "cold": every verification unwraps the seed (hot keys off), the cost of
//! a first sign-in. "hot": the same authenticator again within the hot-key
//! lifetime (the unwrap is skipped). Medians of several rounds, one caller,
//! one worker.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark stops on any failure

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use gatehouse_tests::opencryptoki::OpenCryptoki;
use gatehouse_tests::p11kit::{P11KitServer, client_module};
use hsm_adapter::{
    HotKeys, ModuleConfig, Owner, SecretString, TokenAdmin, TotpAlgorithm, TotpPolicy, Vault,
    VaultConfig, VerifyRequest, WrapScheme,
};
use zeroize::Zeroizing;

const NOW: u64 = 1_800_000_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|arg| arg == "--quick");
    if let Some(position) = args.iter().position(|arg| arg == "--child") {
        let module = PathBuf::from(&args[position + 1]);
        let label = &args[position + 2];
        let pin = &args[position + 3];
        let token = &args[position + 4];
        let schemes: Vec<WrapScheme> = args[position + 5]
            .split(',')
            .map(|scheme| scheme.parse().unwrap())
            .collect();
        let softhsm_config = std::env::var_os("BENCH_SOFTHSM_DIR").map(PathBuf::from);
        let config = match softhsm_config {
            Some(dir) => ModuleConfig::softhsm_dir(&dir),
            None => ModuleConfig {
                module_path: Some(module),
                softhsm_config: None,
            },
        };
        measure(&config, label, pin, token, &schemes, quick);
        return;
    }

    println!(
        "{:<22} {:<12} {:>10} {:>10} {:>8} {:>6} {:>6}",
        "token", "scheme", "cold /s", "hot /s", "hot/cold", "calls", "calls"
    );
    let me = std::env::current_exe().unwrap();
    let quick_arg = if quick { "--quick" } else { "--full" };

    // SoftHSM in this machine's process.
    let softhsm = tempfile::tempdir().unwrap();
    let softhsm_module = new_softhsm_token(softhsm.path(), "bench-local", None);
    run_child(
        &me,
        quick_arg,
        &softhsm_module,
        "bench-local",
        "bench-user-pin",
        "softhsm (in process)",
        "aes-kwp,aes-kw,rsa-oaep",
        &[(
            "BENCH_SOFTHSM_DIR".to_owned(),
            softhsm.path().display().to_string(),
        )],
    );

    // The same kind of token behind p11-kit.
    let remote = tempfile::tempdir().unwrap();
    let module = new_softhsm_token(remote.path(), "bench-remote", Some(WrapScheme::RsaOaep));
    let server = P11KitServer::start(
        &module,
        &hsm_adapter::softhsm::config_path(remote.path()),
        "bench-remote",
    );
    run_child(
        &me,
        quick_arg,
        &client_module(),
        "bench-remote",
        "bench-user-pin",
        "softhsm via p11-kit",
        "rsa-oaep",
        &[("P11_KIT_SERVER_ADDRESS".to_owned(), server.address())],
    );
    drop(server);

    let opencryptoki = OpenCryptoki::start();
    run_child(
        &me,
        quick_arg,
        opencryptoki.module(),
        OpenCryptoki::LABEL,
        OpenCryptoki::USER_PIN,
        "opencryptoki",
        "aes-cbc-pad,rsa-oaep",
        &[],
    );
}

/// A SoftHSM token in `dir` (made in this process, which then lets go of
/// the module), optionally with a first key version for `scheme`.
fn new_softhsm_token(dir: &std::path::Path, label: &str, scheme: Option<WrapScheme>) -> PathBuf {
    hsm_adapter::softhsm::prepare_dir(dir).unwrap();
    let config = ModuleConfig::softhsm_dir(dir);
    let pin = SecretString::from("bench-user-pin".to_owned());
    hsm_adapter::init_token(
        &config,
        label,
        &SecretString::from("bench-so-pin".to_owned()),
        &pin,
    )
    .unwrap();
    if scheme.is_some() {
        TokenAdmin::open(&config, label, &pin, scheme)
            .unwrap()
            .add_key_version()
            .unwrap();
    }
    config.resolve_module_path().unwrap()
}

#[allow(clippy::too_many_arguments)]
fn run_child(
    me: &std::path::Path,
    quick: &str,
    module: &std::path::Path,
    label: &str,
    pin: &str,
    token: &str,
    schemes: &str,
    env: &[(String, String)],
) {
    let status = Command::new(me)
        .arg(quick)
        .arg("--child")
        .arg(module)
        .args([label, pin, token, schemes])
        .envs(env.iter().cloned())
        .status()
        .unwrap();
    assert!(status.success(), "measuring {token} failed");
}

fn measure(
    config: &ModuleConfig,
    label: &str,
    pin: &str,
    token: &str,
    schemes: &[WrapScheme],
    quick: bool,
) {
    let (rounds, per_round) = if quick { (3, 300) } else { (9, 1_000) };
    let pin = SecretString::from(pin.to_owned());
    for &scheme in schemes {
        // A key version of this scheme's kind, active for the measurement.
        TokenAdmin::open(config, label, &pin, Some(scheme))
            .unwrap()
            .add_key_version()
            .unwrap();
        // Both vaults share the process's module context; their rounds
        // alternate, so that both see the same machine.
        let vaults: Vec<Vault> = [HotKeys::off(), HotKeys::default()]
            .into_iter()
            .map(|hot_keys| {
                let mut vault_config = VaultConfig::new(config.clone(), label, pin.clone());
                vault_config.workers = 1;
                vault_config.wrap_scheme = Some(scheme);
                vault_config.hot_keys = hot_keys;
                Vault::open(vault_config).unwrap()
            })
            .collect();
        let owner = Owner::new("bench/user").unwrap();
        let seed = Zeroizing::new(b"12345678901234567890".to_vec());
        let sealed = vaults[0]
            .seal(owner.clone(), TotpAlgorithm::Sha1, seed.clone())
            .wait()
            .unwrap();
        assert_eq!(sealed.wrap, scheme);
        let code = totp_rs::Builder::new()
            .with_secret(seed.to_vec())
            .build_noncompliant()
            .generate(NOW)
            .to_string();
        let request = VerifyRequest {
            owner,
            sealed,
            code,
            policy: TotpPolicy::default(),
            now: NOW,
        };
        for vault in &vaults {
            assert!(vault.verify(request.clone()).wait().unwrap().is_some());
        }
        let mut rates = [Vec::new(), Vec::new()];
        let mut calls = [0u64, 0u64];
        for _ in 0..rounds {
            for (index, vault) in vaults.iter().enumerate() {
                let calls_before = vault.stats().token_calls;
                let start = Instant::now();
                for _ in 0..per_round {
                    assert!(vault.verify(request.clone()).wait().unwrap().is_some());
                }
                rates[index].push(per_round as f64 / start.elapsed().as_secs_f64());
                calls[index] += vault.stats().token_calls - calls_before;
            }
        }
        let calls = calls.map(|total| total as f64 / (rounds * per_round) as f64);
        let cold = median(std::mem::take(&mut rates[0]));
        let hot = median(std::mem::take(&mut rates[1]));
        println!(
            "{token:<22} {:<12} {cold:>10.0} {hot:>10.0} {:>7.1}x {:>6.1} {:>6.1}",
            scheme.as_str(),
            hot / cold,
            calls[0],
            calls[1]
        );
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
