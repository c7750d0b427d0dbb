//! The vault: worker threads that own token sessions, an async-friendly
//! facade, and a supervisor that reconnects after token faults.
//!
//! Every operation is a job sent to a small pool of worker threads; each
//! worker owns one PKCS#11 session (`Session` is `Send`, not `Sync`). Callers
//! get a [`Pending`] that can be awaited from async code without blocking the
//! executor, or waited on from plain threads.
//!
//! Faults: a job that fails with a device-level error (or fails oddly and then
//! fails a probe) marks the connection down. From then on every call fails
//! closed at once with [`VaultError::Unavailable`], while the supervisor
//! finalises the module and re-initialises it with back-off until the token
//! answers again.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use cryptoki::session::Session;
use secrecy::SecretString;
use tokio::sync::oneshot;
use zeroize::Zeroizing;

use crate::connection::Connection;
use crate::error::{Result, VaultError};
use crate::health::{self, Health};
use crate::hot::{HotKeys, KeyCache};
use crate::module::ModuleConfig;
use crate::ops;
use crate::sealed::{Owner, SealedSeed, TotpAlgorithm, WrapScheme};
use crate::totp::TotpPolicy;

/// How the vault is reached and sized.
pub struct VaultConfig {
    pub module: ModuleConfig,
    pub token_label: String,
    pub pin: SecretString,
    /// Worker threads, each with its own session.
    pub workers: usize,
    /// Jobs that may wait for a worker before callers get [`VaultError::Busy`].
    pub queue_capacity: usize,
    pub reconnect: ReconnectPolicy,
    /// The wrap scheme for new seals; `None` negotiates the best one the
    /// token offers for the active key version.
    pub wrap_scheme: Option<WrapScheme>,
    /// Unwrapped keys each worker keeps in its token session for repeated
    /// verifications of one authenticator.
    pub hot_keys: HotKeys,
}

impl VaultConfig {
    pub fn new(module: ModuleConfig, token_label: impl Into<String>, pin: SecretString) -> Self {
        VaultConfig {
            module,
            token_label: token_label.into(),
            pin,
            // Two workers let one wake its caller while the other is in the
            // token (docs/PERFORMANCE.md). Raise this for network HSMs that
            // serve sessions in parallel.
            workers: 2,
            queue_capacity: 4096,
            reconnect: ReconnectPolicy::default(),
            wrap_scheme: None,
            hot_keys: HotKeys::default(),
        }
    }
}

/// Back-off between reconnection attempts after a fault.
#[derive(Debug, Clone, Copy)]
pub struct ReconnectPolicy {
    pub initial_delay: Duration,
    pub max_delay: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// A request to verify one code.
#[derive(Debug, Clone)]
pub struct VerifyRequest {
    pub owner: Owner,
    pub sealed: SealedSeed,
    pub code: String,
    pub policy: TotpPolicy,
    /// Unix seconds; the caller reads the clock.
    pub now: u64,
}

/// Whether the vault can currently reach its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultState {
    Up,
    Down {
        reason: String,
        since: Instant,
        attempts: u32,
    },
}

type JobFn = Box<dyn FnOnce(Result<(&Session, &Connection, &mut KeyCache)>) -> Signal + Send>;

/// What a finished job tells its worker about the token's health.
enum Signal {
    Fine,
    /// A device-level fault: reconnect.
    Fault(String),
    /// An unexpected PKCS#11 error: probe the token before deciding.
    Suspect(String),
}

struct Shared {
    config: VaultConfig,
    connection: RwLock<Option<Connection>>,
    up: AtomicBool,
    generation: AtomicU64,
    down: Mutex<Option<DownInfo>>,
    faults: Sender<Control>,
    shutting_down: AtomicBool,
}

#[derive(Clone)]
struct DownInfo {
    reason: String,
    since: Instant,
    attempts: u32,
}

enum Control {
    Fault,
    Shutdown,
}

/// The seed vault. Cheap to share behind an `Arc`; dropping it stops the
/// workers and finalises the module.
pub struct Vault {
    shared: Arc<Shared>,
    jobs: Option<Sender<JobFn>>,
    threads: Vec<JoinHandle<()>>,
}

impl Vault {
    /// Connect to the token and start the workers. Blocks (tens of
    /// milliseconds); from async code call it inside `spawn_blocking`.
    pub fn open(config: VaultConfig) -> Result<Vault> {
        let connection = Connection::open(
            &config.module,
            &config.token_label,
            &config.pin,
            1,
            None,
            config.wrap_scheme,
        )?;
        if connection.read_keys().active().is_err() {
            connection.finalize();
            return Err(VaultError::NoKeys);
        }
        let workers = config.workers.max(1);
        let (job_sender, job_receiver) =
            crossbeam_channel::bounded::<JobFn>(config.queue_capacity.max(1));
        let (fault_sender, fault_receiver) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            config,
            connection: RwLock::new(Some(connection)),
            up: AtomicBool::new(true),
            generation: AtomicU64::new(1),
            down: Mutex::new(None),
            faults: fault_sender,
            shutting_down: AtomicBool::new(false),
        });
        let mut threads = Vec::with_capacity(workers + 1);
        for index in 0..workers {
            let shared = Arc::clone(&shared);
            let receiver = job_receiver.clone();
            threads.push(spawn_thread(format!("vault-worker-{index}"), move || {
                worker_loop(&shared, &receiver)
            })?);
        }
        let supervisor_shared = Arc::clone(&shared);
        threads.push(spawn_thread("vault-supervisor".to_owned(), move || {
            supervisor_loop(&supervisor_shared, &fault_receiver)
        })?);
        Ok(Vault {
            shared,
            jobs: Some(job_sender),
            threads,
        })
    }

    /// A fresh seed of the hash's length: from the token's random generator,
    /// or the system's when seeds are sealed on the host (RSA-OAEP). The one
    /// time a seed is in host memory: show it, seal it, drop it.
    pub fn generate_seed(&self, algorithm: TotpAlgorithm) -> Pending<Zeroizing<Vec<u8>>> {
        self.submit(move |session, connection| ops::generate_seed(session, connection, algorithm))
    }

    /// Seal `seed` for `owner` under the active key version.
    pub fn seal(
        &self,
        owner: Owner,
        algorithm: TotpAlgorithm,
        seed: Zeroizing<Vec<u8>>,
    ) -> Pending<SealedSeed> {
        self.submit(move |session, connection| {
            ops::seal(session, connection, &owner, algorithm, &seed)
        })
    }

    /// Verify a code inside the token. `Ok(Some(step))` names the matched time
    /// step, so the caller can refuse it when it comes again; `Ok(None)` is a
    /// wrong code; a record that is not the owner's is an error.
    pub fn verify(&self, request: VerifyRequest) -> Pending<Option<u64>> {
        self.submit_cached(move |session, connection, cache| {
            ops::verify(
                session,
                connection,
                cache,
                &request.owner,
                &request.sealed,
                &request.code,
                &request.policy,
                request.now,
            )
        })
    }

    /// Re-seal a record under the active key version, inside the token.
    pub fn rewrap(&self, owner: Owner, sealed: SealedSeed) -> Pending<SealedSeed> {
        self.submit(move |session, connection| ops::rewrap(session, connection, &owner, &sealed))
    }

    /// Create key version N+1; it becomes the active version.
    pub fn generate_key_version(&self) -> Pending<u32> {
        self.submit(|session, connection| connection.generate_version(session))
    }

    /// Re-read the key versions from the token (another process may have
    /// added one). Returns the active version.
    pub fn refresh_keys(&self) -> Pending<u32> {
        self.submit(|session, connection| {
            connection.rescan(session)?;
            Ok(connection.active_pair()?.0)
        })
    }

    /// Module, token, mechanisms and keys, as the token reports them now.
    pub fn health(&self) -> Pending<Health> {
        self.submit(|session, connection| {
            connection.rescan(session)?;
            health::report(session, connection)
        })
    }

    /// Counters of the vault's work in this process.
    pub fn stats(&self) -> ops::TokenStats {
        ops::stats()
    }

    /// Whether the token is reachable right now (no token call is made).
    pub fn state(&self) -> VaultState {
        if self.shared.up.load(Ordering::Acquire) {
            return VaultState::Up;
        }
        match lock(&self.shared.down).clone() {
            Some(info) => VaultState::Down {
                reason: info.reason,
                since: info.since,
                attempts: info.attempts,
            },
            None => VaultState::Up,
        }
    }

    fn submit<T, F>(&self, operation: F) -> Pending<T>
    where
        T: Send + 'static,
        F: FnOnce(&Session, &Connection) -> Result<T> + Send + 'static,
    {
        self.submit_cached(move |session, connection, _| operation(session, connection))
    }

    /// Like `submit`, with the worker's hot-key cache.
    fn submit_cached<T, F>(&self, operation: F) -> Pending<T>
    where
        T: Send + 'static,
        F: FnOnce(&Session, &Connection, &mut KeyCache) -> Result<T> + Send + 'static,
    {
        let (reply, receiver) = oneshot::channel();
        if let Some(error) = self.shared.unavailable() {
            let _ = reply.send(Err(error));
            return Pending { receiver };
        }
        let job: JobFn = Box::new(move |context| {
            let result = context
                .and_then(|(session, connection, cache)| operation(session, connection, cache));
            let signal = match &result {
                Err(error) if error.is_device_fault() => Signal::Fault(error.to_string()),
                Err(error @ VaultError::Pkcs11(_)) => Signal::Suspect(error.to_string()),
                _ => Signal::Fine,
            };
            let _ = reply.send(result);
            signal
        });
        let Some(jobs) = &self.jobs else {
            return Pending::failed(VaultError::ShutDown);
        };
        match jobs.try_send(job) {
            Ok(()) => Pending { receiver },
            Err(TrySendError::Full(_)) => Pending::failed(VaultError::Busy),
            Err(TrySendError::Disconnected(_)) => Pending::failed(VaultError::ShutDown),
        }
    }
}

impl Drop for Vault {
    fn drop(&mut self) {
        self.shared.shutting_down.store(true, Ordering::Release);
        // Closing the job channel ends the workers once the queue is drained.
        self.jobs = None;
        let _ = self.shared.faults.send(Control::Shutdown);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        let connection = write(&self.shared.connection).take();
        if let Some(connection) = connection {
            connection.finalize();
        }
    }
}

impl Shared {
    fn unavailable(&self) -> Option<VaultError> {
        if self.up.load(Ordering::Acquire) {
            return None;
        }
        let reason = lock(&self.down)
            .as_ref()
            .map(|info| info.reason.clone())
            .unwrap_or_else(|| "reconnecting".to_owned());
        Some(VaultError::Unavailable { reason })
    }

    /// Mark generation `generation` as broken (once) and wake the supervisor.
    fn report_fault(&self, generation: u64, reason: String) {
        let mut down = lock(&self.down);
        if self.generation.load(Ordering::Acquire) != generation || !self.up.load(Ordering::Acquire)
        {
            return;
        }
        tracing::error!(%reason, "token fault: failing closed and reconnecting");
        self.up.store(false, Ordering::Release);
        *down = Some(DownInfo {
            reason,
            since: Instant::now(),
            attempts: 0,
        });
        drop(down);
        let _ = self.faults.send(Control::Fault);
    }
}

/// A worker's session, tagged with the connection generation it belongs to.
struct WorkerSession {
    generation: u64,
    session: Session,
    /// Keys unwrapped in this session, kept for a while; they die with it.
    cache: KeyCache,
}

fn worker_loop(shared: &Shared, jobs: &Receiver<JobFn>) {
    let mut own: Option<WorkerSession> = None;
    while let Some(job) = next_job(jobs) {
        let guard = read(&shared.connection);
        let Some(connection) = guard.as_ref().filter(|_| shared.up.load(Ordering::Acquire)) else {
            // Abandon the old session without a call: its context is gone.
            own = None;
            job(Err(shared.unavailable().unwrap_or(
                VaultError::Unavailable {
                    reason: "reconnecting".to_owned(),
                },
            )));
            continue;
        };
        if own
            .as_ref()
            .is_none_or(|own| own.generation != connection.generation)
        {
            own = None;
            match connection.open_session() {
                Ok(session) => {
                    own = Some(WorkerSession {
                        generation: connection.generation,
                        session,
                        cache: KeyCache::new(shared.config.hot_keys),
                    })
                }
                Err(error) => {
                    let reason = error.to_string();
                    job(Err(error));
                    shared.report_fault(connection.generation, reason);
                    continue;
                }
            }
        }
        let Some(worker_session) = own.as_mut() else {
            continue;
        };
        match job(Ok((
            &worker_session.session,
            connection,
            &mut worker_session.cache,
        ))) {
            Signal::Fine => {}
            Signal::Fault(reason) => shared.report_fault(connection.generation, reason),
            Signal::Suspect(reason) => {
                if let Err(probe_error) = connection.probe(&worker_session.session) {
                    shared.report_fault(
                        connection.generation,
                        format!("{reason}; then {probe_error}"),
                    );
                }
            }
        }
    }
    // Shutting down: close a session that is still valid.
    if let Some(worker_session) = own {
        let guard = read(&shared.connection);
        if guard
            .as_ref()
            .is_some_and(|c| c.generation == worker_session.generation)
        {
            let _ = worker_session.session.close();
        }
    }
}

/// Wait for the next job. A worker that just finished one polls briefly
/// before parking: callers usually send their next job within microseconds,
/// and waking a parked thread costs as much as a token call on a virtual
/// machine.
fn next_job(jobs: &Receiver<JobFn>) -> Option<JobFn> {
    let start = Instant::now();
    while start.elapsed() < POLL_BEFORE_PARKING {
        match jobs.try_recv() {
            Ok(job) => return Some(job),
            Err(crossbeam_channel::TryRecvError::Disconnected) => return None,
            Err(crossbeam_channel::TryRecvError::Empty) => std::hint::spin_loop(),
        }
    }
    jobs.recv().ok()
}

/// How long an idle worker polls for the next job before parking.
const POLL_BEFORE_PARKING: Duration = Duration::from_micros(50);

fn supervisor_loop(shared: &Shared, control: &Receiver<Control>) {
    while let Ok(message) = control.recv() {
        match message {
            Control::Shutdown => return,
            Control::Fault => reconnect(shared, control),
        }
        if shared.shutting_down.load(Ordering::Acquire) {
            return;
        }
    }
}

/// Finalise the broken context, then initialise a new one with back-off
/// until the token answers or the vault shuts down.
fn reconnect(shared: &Shared, control: &Receiver<Control>) {
    let policy = shared.config.reconnect;
    let mut delay = policy.initial_delay;
    loop {
        // Waits for running jobs to finish with the old context.
        let old = write(&shared.connection).take();
        if let Some(old) = old {
            old.finalize();
        }
        let generation = shared.generation.load(Ordering::Acquire) + 1;
        let config = &shared.config;
        match Connection::open(
            &config.module,
            &config.token_label,
            &config.pin,
            generation,
            Some(1),
            config.wrap_scheme,
        ) {
            Ok(connection) if connection.read_keys().active().is_ok() => {
                *write(&shared.connection) = Some(connection);
                let mut down = lock(&shared.down);
                shared.generation.store(generation, Ordering::Release);
                shared.up.store(true, Ordering::Release);
                *down = None;
                tracing::info!(generation, "token is back; vault reconnected");
                return;
            }
            Ok(connection) => {
                connection.finalize();
                note_attempt(shared, VaultError::NoKeys.to_string());
            }
            Err(error) => note_attempt(shared, error.to_string()),
        }
        // Wait for the next attempt, or stop at shutdown.
        match control.recv_timeout(delay) {
            Ok(Control::Shutdown) => return,
            Ok(Control::Fault) | Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        }
        if shared.shutting_down.load(Ordering::Acquire) {
            return;
        }
        delay = (delay * 2).min(policy.max_delay);
    }
}

fn note_attempt(shared: &Shared, reason: String) {
    tracing::warn!(%reason, "token still unavailable");
    let mut down = lock(&shared.down);
    let info = down.get_or_insert_with(|| DownInfo {
        reason: reason.clone(),
        since: Instant::now(),
        attempts: 0,
    });
    info.attempts += 1;
    info.reason = reason;
}

fn spawn_thread(name: String, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name)
        .spawn(body)
        .map_err(|error| VaultError::Unavailable {
            reason: format!("cannot start a vault thread: {error}"),
        })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How long the one polling waiter polls before it parks.
const SPIN_BEFORE_PARKING: Duration = Duration::from_micros(400);

/// Whether a waiter is polling now (0 or 1).
static SPINNING_WAITERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The answer to a vault call: `.await` it from async code, or `.wait()` for
/// it on a plain thread.
pub struct Pending<T> {
    receiver: oneshot::Receiver<Result<T>>,
}

impl<T> Pending<T> {
    fn failed(error: VaultError) -> Self {
        let (reply, receiver) = oneshot::channel();
        let _ = reply.send(Err(error));
        Pending { receiver }
    }

    /// Block this thread until the answer comes. Not for async executors.
    ///
    /// Waking a parked thread costs about as much as a token call on a
    /// virtual machine, so one waiting thread at a time polls for up to
    /// [`SPIN_BEFORE_PARKING`] (longer than a typical token call) before it
    /// parks; any other waiters park at once, leaving the cores to the
    /// workers.
    pub fn wait(mut self) -> Result<T> {
        if SPINNING_WAITERS
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            let start = Instant::now();
            let polled = loop {
                match self.receiver.try_recv() {
                    Ok(result) => break Some(result),
                    Err(oneshot::error::TryRecvError::Closed) => {
                        break Some(Err(VaultError::ShutDown));
                    }
                    Err(oneshot::error::TryRecvError::Empty)
                        if start.elapsed() < SPIN_BEFORE_PARKING =>
                    {
                        std::hint::spin_loop();
                    }
                    Err(oneshot::error::TryRecvError::Empty) => break None,
                }
            };
            SPINNING_WAITERS.store(0, Ordering::Release);
            if let Some(result) = polled {
                return result;
            }
        }
        self.receiver
            .blocking_recv()
            .unwrap_or(Err(VaultError::ShutDown))
    }
}

impl<T: Send + 'static> IntoFuture for Pending<T> {
    type Output = Result<T>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<T>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.receiver.await.unwrap_or(Err(VaultError::ShutDown)) })
    }
}
