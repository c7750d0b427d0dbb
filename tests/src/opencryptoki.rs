//! opencryptoki's software token (Debian `opencryptoki`): a second PKCS#11
//! implementation with none of SoftHSM's conveniences (no AES key wrap, an
//! unwrap that ignores `Sensitive`/`Extractable`, token info `cryptoki`
//! cannot parse, 4–8 character PINs). Its state is global to the machine
//! (`/var/lib/opencryptoki/swtok`, slot 3). A token still in its factory
//! state is initialised with this harness's label and PINs; later runs reuse
//! it (re-initialising with `C_InitToken` leaves opencryptoki 3.8's token
//! unable to log the SO in), so tests must not assume which key versions
//! exist. A token initialised by someone else is never touched. `pkcsslotd`
//! is started if it is not running, and then stopped again by PID.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PID_FILE: &str = "/var/run/pkcsslotd.pid";
/// Held by a process for as long as it uses the token: test binaries using
/// it take turns, and a `pkcsslotd` is stopped only when no one holds it.
const LOCK_FILE: &str = "/run/lock/gatehouse-opencryptoki.lock";
const SLOT: &str = "3";
const FACTORY_SO_PIN: &str = "87654321";

pub struct OpenCryptoki {
    /// The `pkcsslotd` this harness started, if it had to.
    started: Option<u32>,
    pub module: PathBuf,
    pub label: String,
    dir: tempfile::TempDir,
    _turn: std::fs::File,
}

impl OpenCryptoki {
    pub const USER_PIN: &'static str = "user1234";
    pub const SO_PIN: &'static str = "sopin123";

    /// The label of the token this harness makes.
    pub const LABEL: &'static str = "gatehouse-test";

    /// Make sure `pkcsslotd` runs and the software token is this harness's
    /// (initialising it if it is new).
    pub fn start() -> OpenCryptoki {
        let slotd = crate::require_tool("pkcsslotd", "opencryptoki");
        let _ = std::fs::create_dir_all("/run/lock");
        let turn = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LOCK_FILE)
            .expect("open the opencryptoki lock file");
        turn.lock().expect("wait for the opencryptoki token");
        let module = [
            "/usr/lib/x86_64-linux-gnu/pkcs11/libopencryptoki.so",
            "/usr/lib/aarch64-linux-gnu/pkcs11/libopencryptoki.so",
            "/usr/lib/opencryptoki/libopencryptoki.so",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .expect("libopencryptoki.so: apt-get install opencryptoki (tests/run.sh does)");
        let started = match running_slotd() {
            Some(_) => None,
            None => {
                let _ = std::fs::remove_file(PID_FILE);
                let status = Command::new(slotd)
                    .stdin(Stdio::null())
                    .status()
                    .expect("run pkcsslotd");
                assert!(status.success(), "pkcsslotd failed to start: {status}");
                let deadline = Instant::now() + Duration::from_secs(20);
                loop {
                    if let Some(pid) = running_slotd() {
                        break Some(pid);
                    }
                    assert!(Instant::now() < deadline, "pkcsslotd did not start");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        let harness = OpenCryptoki {
            started,
            module,
            label: Self::LABEL.to_owned(),
            dir: tempfile::tempdir().expect("temporary directory"),
            _turn: turn,
        };
        harness.initialise();
        std::fs::write(harness.pin_file(), Self::USER_PIN).expect("PIN file");
        harness
    }

    fn initialise(&self) {
        let info = token_info();
        let label = info
            .lines()
            .find_map(|line| line.trim().strip_prefix("Label:"))
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
        if info.contains("TOKEN_INITIALIZED") {
            assert_eq!(
                label, self.label,
                "opencryptoki's software token (slot {SLOT}) belongs to someone else \
                 (label {label:?}); the tests will not touch it. On a machine where it may \
                 go: stop pkcsslotd, empty /var/lib/opencryptoki/swtok, start pkcsslotd"
            );
            return;
        }
        assert!(
            pkcsconf(&["-I", "-S", FACTORY_SO_PIN], Some(&self.label)),
            "pkcsconf could not initialise the token with the factory SO PIN"
        );
        assert!(
            pkcsconf(&["-P", "-S", FACTORY_SO_PIN, "-n", Self::SO_PIN], None),
            "pkcsconf could not set the SO PIN"
        );
        assert!(
            pkcsconf(&["-u", "-S", Self::SO_PIN, "-n", Self::USER_PIN], None),
            "pkcsconf could not set the user PIN"
        );
    }

    /// A file holding the user PIN.
    pub fn pin_file(&self) -> PathBuf {
        self.dir.path().join("user.pin")
    }

    pub fn module(&self) -> &Path {
        &self.module
    }

    /// For a test binary that shares one token among its tests for the
    /// whole process: the harness lives until the process ends, and a
    /// `pkcsslotd` it started is stopped then by a watcher that waits for
    /// the process's turn on the token to end (the lock goes with the
    /// process, even when it panics).
    pub fn start_for_process() -> &'static OpenCryptoki {
        let mut harness = OpenCryptoki::start();
        if let Some(pid) = harness.started.take() {
            use std::os::unix::process::CommandExt;
            // Stop it, and hold the lock until it is gone.
            let script = format!(
                "kill -TERM {pid}; while [ -e /proc/{pid} ] && ! grep -q '^State:.*Z' /proc/{pid}/status 2>/dev/null; do sleep 0.05; done"
            );
            let watcher = Command::new("flock")
                .args([LOCK_FILE, "sh", "-c", &script])
                .process_group(0)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            if watcher.is_err() {
                harness.started = Some(pid);
            }
        }
        Box::leak(Box::new(harness))
    }
}

/// `pkcsconf -t`: the token's info as text.
fn token_info() -> String {
    let program = crate::require_tool("pkcsconf", "opencryptoki");
    let output = Command::new(program)
        .args(["-t", "-c", SLOT])
        .stdin(Stdio::null())
        .output()
        .expect("run pkcsconf");
    assert!(
        output.status.success(),
        "pkcsconf -t failed (is pkcsslotd running?): {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `pkcsconf -c 3 ARGS`, with `label` typed at its prompt if given.
fn pkcsconf(args: &[&str], label: Option<&str>) -> bool {
    let program = crate::require_tool("pkcsconf", "opencryptoki");
    let mut child = Command::new(program)
        .args(["-c", SLOT])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run pkcsconf");
    if let (Some(mut input), Some(label)) = (child.stdin.take(), label) {
        let _ = writeln!(input, "{label}");
    }
    child.wait().map(|status| status.success()).unwrap_or(false)
}

fn running_slotd() -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(PID_FILE)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (name.trim() == "pkcsslotd" && alive(pid)).then_some(pid)
}

/// Whether `pid` is a live process (not gone, not a zombie awaiting reaping).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after_name = stat.rsplit_once(')')?.1;
            after_name.split_whitespace().next().map(str::to_owned)
        })
        .is_some_and(|state| state != "Z" && state != "X")
}

impl Drop for OpenCryptoki {
    fn drop(&mut self) {
        let Some(pid) = self.started else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && alive(pid) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
