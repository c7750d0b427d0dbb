//! Verification throughput: the vault against the raw token calls it makes,
//! and against the host floor.
//!
//! Run with `cargo bench -p hsm-adapter --bench verify` (add `-- --quick` for a
//! short run). Every figure is a median over several rounds, measured in one
//! process so that the ratios are fair on a noisy machine:
//!
//! * host floor: HMAC-SHA1 computed on the host for the three time steps of a
//!   ±1 window, plus truncation (no token at all);
//! * raw token path: the exact PKCS#11 calls one vault verification makes
//!   (C_Verify of the binding tag, C_UnwrapKey, C_GetAttributeValue, three
//!   C_Sign, C_DestroyObject), issued directly on one session;
//! * vault: `Vault::verify` end to end, one caller waiting for each answer,
//!   and many callers at once.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark stops on any failure

use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use hmac::{Hmac, Mac};
use hsm_adapter::{
    HotKeys, ModuleConfig, Owner, SecretString, TokenAdmin, TotpAlgorithm, TotpPolicy, Vault,
    VaultConfig, VerifyRequest,
};
use zeroize::Zeroizing;

const LABEL: &str = "gatehouse-bench";
const PIN: &str = "bench-user-pin";
const NOW: u64 = 1_800_000_000;

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let (rounds, per_round) = if quick { (3, 2_000) } else { (7, 10_000) };

    let dir = tempfile::tempdir().unwrap();
    hsm_adapter::softhsm::prepare_dir(dir.path()).unwrap();
    let module = ModuleConfig::softhsm_dir(dir.path());
    let pin = SecretString::from(PIN.to_owned());
    hsm_adapter::init_token(
        &module,
        LABEL,
        &SecretString::from("bench-so-pin".to_owned()),
        &pin,
    )
    .unwrap();
    TokenAdmin::open(&module, LABEL, &pin, None)
        .unwrap()
        .add_key_version()
        .unwrap();

    // Two vaults share the process's one module context: one with a single
    // worker, one with two, so both are measured under the same conditions.
    let open_vault = |workers: usize| {
        let mut config = VaultConfig::new(module.clone(), LABEL, pin.clone());
        config.workers = workers;
        // Every verification unwraps, like the raw path it is compared with
        // (hot keys are measured by the `schemes` benchmark).
        config.hot_keys = HotKeys::off();
        Vault::open(config).unwrap()
    };
    let vault = open_vault(1);
    let vault_two = open_vault(2);
    let owner = Owner::new("bench/user").unwrap();
    let seed = Zeroizing::new(b"12345678901234567890".to_vec());
    let sealed = vault
        .seal(owner.clone(), TotpAlgorithm::Sha1, seed.clone())
        .wait()
        .unwrap();
    let code = host_code(&seed, NOW / 30);
    let request = VerifyRequest {
        owner: owner.clone(),
        sealed: sealed.clone(),
        code: code.clone(),
        policy: TotpPolicy::default(),
        now: NOW,
    };
    assert_eq!(
        vault.verify(request.clone()).wait().unwrap(),
        Some(NOW / 30)
    );

    // The raw path shares the vault's initialised module (one context per
    // process), on a session of its own.
    let raw = RawPath::open(
        &module,
        &sealed.binding_message_for(&owner),
        &sealed.tag,
        &sealed.blob,
    );
    assert_eq!(raw.verify(&code), Some(NOW / 30));

    let mut host = Vec::new();
    let mut raw_rates = Vec::new();
    let mut vault_serial = Vec::new();
    let mut vault_parallel = Vec::new();
    let mut raw_two = Vec::new();
    let mut raw_parked = Vec::new();
    let handoff = Handoff::start(&module, &sealed, &owner, &code);
    let mut vault_async = Vec::new();
    let mut two_serial = Vec::new();
    let mut two_parallel = Vec::new();
    let mut two_async = Vec::new();
    let mut round_trip = Vec::new();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let malformed = VerifyRequest {
        code: "not a code".to_owned(),
        ..request.clone()
    };
    for _ in 0..rounds {
        host.push(rate(per_round * 20, || {
            assert!(host_verify(&seed, &code, NOW).is_some());
        }));
        raw_rates.push(rate(per_round, || {
            assert!(raw.verify(&code).is_some());
        }));
        raw_parked.push(rate(per_round, || assert!(handoff.verify_parked())));
        vault_serial.push(rate(per_round, || {
            assert!(vault.verify(request.clone()).wait().unwrap().is_some());
        }));
        raw_two.push(parallel_rate(per_round, 2, |_| {
            let raw = RawPath::open(
                &module,
                &sealed.binding_message_for(&owner),
                &sealed.tag,
                &sealed.blob,
            );
            let code = code.clone();
            move || assert!(raw.verify(&code).is_some())
        }));
        round_trip.push(rate(per_round, || {
            assert!(vault.verify(malformed.clone()).wait().is_err());
        }));
        vault_async.push(runtime.block_on(async_rate(&vault, &request, per_round, 64)));
        two_async.push(runtime.block_on(async_rate(&vault_two, &request, per_round, 64)));
        two_serial.push(rate(per_round, || {
            assert!(vault_two.verify(request.clone()).wait().unwrap().is_some());
        }));
        two_parallel.push(parallel_rate(per_round, 16, |_| {
            let request = request.clone();
            let vault = &vault_two;
            move || assert!(vault.verify(request.clone()).wait().unwrap().is_some())
        }));
        vault_parallel.push(parallel_rate(per_round, 16, |_| {
            let request = request.clone();
            let vault = &vault;
            move || assert!(vault.verify(request.clone()).wait().unwrap().is_some())
        }));
    }
    let host = median(host);
    let raw_rate = median(raw_rates);
    let serial = median(vault_serial);
    let raw_two = median(raw_two);
    let parallel = median(vault_parallel);
    let vault_async = median(vault_async);
    let round_trip = median(round_trip);
    let raw_parked = median(raw_parked);
    let two_serial = median(two_serial);
    let two_parallel = median(two_parallel);
    let two_async = median(two_async);

    println!("verify, TOTP SHA-1, window ±1 (3 HMACs), {rounds} rounds of {per_round}, medians");
    println!();
    println!("| path | verifications/s | µs each | vs raw token path |");
    println!("|---|---:|---:|---:|");
    row("host floor: HMAC-SHA1 on the host", host, raw_rate);
    row("raw token path, 1 session", raw_rate, raw_rate);
    row(
        "raw token path on a second thread, caller parked while waiting",
        raw_parked,
        raw_rate,
    );
    row("raw token path, 2 sessions on 2 threads", raw_two, raw_rate);
    row(
        "vault, 1 worker, 1 caller waiting on each answer",
        serial,
        raw_rate,
    );
    row("vault, 1 worker, 16 threads waiting", parallel, raw_rate);
    row(
        "vault, 1 worker, 64 async tasks on 2 runtime threads",
        vault_async,
        raw_rate,
    );
    row(
        "vault, 2 workers, 1 caller waiting on each answer",
        two_serial,
        raw_rate,
    );
    row(
        "vault, 2 workers, 16 threads waiting",
        two_parallel,
        raw_rate,
    );
    row(
        "vault, 2 workers, 64 async tasks on 2 runtime threads",
        two_async,
        raw_rate,
    );
    row(
        "vault round trip alone (malformed code: no token call)",
        round_trip,
        raw_rate,
    );
    println!();
    let overhead = |rate: f64| (raw_rate / rate - 1.0) * 100.0;
    println!(
        "time added over the raw token path: 1 worker {:+.1}% one caller, {:+.1}% 16 threads, {:+.1}% async; \
         2 workers {:+.1}% / {:+.1}% / {:+.1}%",
        overhead(serial),
        overhead(parallel),
        overhead(vault_async),
        overhead(two_serial),
        overhead(two_parallel),
        overhead(two_async),
    );
}

fn row(name: &str, per_second: f64, baseline: f64) {
    println!(
        "| {name} | {per_second:.0} | {:.1} | {:.2}× |",
        1e6 / per_second,
        per_second / baseline
    );
}

fn rate(count: usize, mut operation: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..count {
        operation();
    }
    count as f64 / start.elapsed().as_secs_f64()
}

/// `threads` threads share `count` operations; each thread builds its own
/// operation first (sessions are per thread), outside the timed part.
fn parallel_rate<F, Op>(count: usize, threads: usize, make: F) -> f64
where
    F: Fn(usize) -> Op + Sync,
    Op: FnMut(),
{
    let barrier = std::sync::Barrier::new(threads + 1);
    let per_thread = count / threads;
    let elapsed = std::thread::scope(|scope| {
        for index in 0..threads {
            let make = &make;
            let barrier = &barrier;
            scope.spawn(move || {
                let mut operation = make(index);
                barrier.wait();
                for _ in 0..per_thread {
                    operation();
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    });
    (per_thread * threads) as f64 / elapsed.max(Duration::from_nanos(1)).as_secs_f64()
}

/// `tasks` async tasks share `count` verifications, as a server's handlers do.
async fn async_rate(vault: &Vault, request: &VerifyRequest, count: usize, tasks: usize) -> f64 {
    let per_task = count / tasks;
    let start = Instant::now();
    let futures = (0..tasks).map(|_| async {
        for _ in 0..per_task {
            assert!(vault.verify(request.clone()).await.unwrap().is_some());
        }
    });
    let mut handles = Vec::new();
    for future in futures {
        handles.push(future);
    }
    join_all(handles).await;
    (per_task * tasks) as f64 / start.elapsed().as_secs_f64()
}

/// Poll every future to completion concurrently on the current task.
async fn join_all<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    std::future::poll_fn(|context| {
        futures.retain_mut(|future| future.as_mut().poll(context).is_pending());
        if futures.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn host_code(seed: &[u8], step: u64) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(seed).unwrap();
    mac.update(&step.to_be_bytes());
    truncate(&mac.finalize().into_bytes())
}

fn host_verify(seed: &[u8], code: &str, now: u64) -> Option<u64> {
    let mut matched = None;
    for step in now / 30 - 1..=now / 30 + 1 {
        if host_code(seed, step) == code && matched.is_none() {
            matched = Some(step);
        }
    }
    matched
}

fn truncate(mac: &[u8]) -> String {
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    format!("{:06}", binary % 1_000_000)
}

/// The raw token path on a thread of its own, fed over a channel, with the
/// caller parked while it waits: what a thread hand-off costs here.
struct Handoff {
    jobs: crossbeam_channel::Sender<tokio::sync::oneshot::Sender<bool>>,
}

impl Handoff {
    fn start(
        module: &ModuleConfig,
        sealed: &hsm_adapter::SealedSeed,
        owner: &Owner,
        code: &str,
    ) -> Handoff {
        let (jobs, receiver) = crossbeam_channel::bounded::<tokio::sync::oneshot::Sender<bool>>(16);
        let (module, message, tag, blob, code) = (
            module.clone(),
            sealed.binding_message_for(owner),
            sealed.tag.clone(),
            sealed.blob.clone(),
            code.to_owned(),
        );
        std::thread::spawn(move || {
            let raw = RawPath::open(&module, &message, &tag, &blob);
            while let Ok(reply) = receiver.recv() {
                let _ = reply.send(raw.verify(&code).is_some());
            }
        });
        Handoff { jobs }
    }

    fn verify_parked(&self) -> bool {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs.send(reply).unwrap();
        answer.blocking_recv().unwrap()
    }
}

/// The vault's verification, as bare cryptoki calls on one session.
struct RawPath {
    session: Session,
    wrap: ObjectHandle,
    bind: ObjectHandle,
    message: Vec<u8>,
    tag: Vec<u8>,
    blob: Vec<u8>,
}

impl RawPath {
    fn open(module: &ModuleConfig, message: &[u8], tag: &[u8], blob: &[u8]) -> RawPath {
        let pkcs11 = Pkcs11::new(module.resolve_module_path().unwrap()).unwrap();
        // Already initialised by the vault in this process: that is fine.
        let _ = pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
        let slot = pkcs11
            .get_slots_with_token()
            .unwrap()
            .into_iter()
            .find(|slot| pkcs11.get_token_info(*slot).unwrap().label().trim_end() == LABEL)
            .unwrap();
        let session = pkcs11.open_rw_session(slot).unwrap();
        let _ = session.login(UserType::User, Some(&SecretString::from(PIN.to_owned())));
        let find = |label: &str| {
            session
                .find_objects(&[Attribute::Label(label.as_bytes().to_vec())])
                .unwrap()[0]
        };
        RawPath {
            wrap: find("gatehouse-wrap-v1"),
            bind: find("gatehouse-bind-v1"),
            session,
            message: message.to_vec(),
            tag: tag.to_vec(),
            blob: blob.to_vec(),
        }
    }

    fn verify(&self, code: &str) -> Option<u64> {
        let session = &self.session;
        session
            .verify(&Mechanism::Sha256Hmac, self.bind, &self.message, &self.tag)
            .unwrap();
        let key = session
            .unwrap_key(
                &Mechanism::AesKeyWrapPad,
                self.wrap,
                &self.blob,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::GENERIC_SECRET),
                    Attribute::Token(false),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Sign(true),
                ],
            )
            .unwrap();
        session
            .get_attributes(key, &[AttributeType::Sensitive, AttributeType::Extractable])
            .unwrap();
        let mut matched = None;
        for step in NOW / 30 - 1..=NOW / 30 + 1 {
            let mac = session
                .sign(&Mechanism::Sha1Hmac, key, &step.to_be_bytes())
                .unwrap();
            if truncate(&mac) == code && matched.is_none() {
                matched = Some(step);
            }
        }
        session.destroy_object(key).unwrap();
        matched
    }
}
