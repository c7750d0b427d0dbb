//! Shared harness for Gatehouse's end-to-end tests.
//!
//! Tests use real parts: a SoftHSM token in a temporary directory with its own
//! configuration, and the project's real binaries run as a person would run
//! them. Nothing here mocks a token.
//!
//! A harness reports trouble by panicking with a message, like the tests it
//! serves, so `expect` is allowed here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod oath_card;
pub mod opencryptoki;
pub mod p11kit;
pub mod pcscd;
pub mod vpcd;
pub mod webdriver;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary directory for a SoftHSM token, with PIN files beside it.
/// Removed when dropped.
pub struct SoftHsmDir {
    root: tempfile::TempDir,
}

impl SoftHsmDir {
    pub const USER_PIN: &'static str = "harness-user-pin";
    pub const SO_PIN: &'static str = "harness-so-pin";

    pub fn new() -> SoftHsmDir {
        let root = tempfile::Builder::new()
            .prefix("gatehouse-softhsm-")
            .tempdir()
            .expect("create a temporary directory");
        std::fs::write(
            root.path().join("user.pin"),
            format!("{}\n", Self::USER_PIN),
        )
        .expect("write PIN file");
        std::fs::write(root.path().join("so.pin"), Self::SO_PIN).expect("write SO PIN file");
        SoftHsmDir { root }
    }

    /// Where the token lives (`--softhsm DIR`).
    pub fn token_dir(&self) -> PathBuf {
        self.root.path().join("token")
    }

    pub fn pin_file(&self) -> PathBuf {
        self.root.path().join("user.pin")
    }

    pub fn so_pin_file(&self) -> PathBuf {
        self.root.path().join("so.pin")
    }

    /// The `softhsm2.conf` that independent clients (pkcs11-tool) must read.
    pub fn config_file(&self) -> PathBuf {
        self.token_dir().join("softhsm2.conf")
    }

    pub fn path(&self) -> &Path {
        self.root.path()
    }
}

impl Default for SoftHsmDir {
    fn default() -> Self {
        Self::new()
    }
}

/// What a finished command printed, decoded for assertions.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn from_output(output: Output) -> Ran {
        Ran {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics with everything printed unless the command exited with `code`.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Ran {
        assert_eq!(
            self.code,
            Some(code),
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Run `command` with no standard input (as CI does) and collect its output.
pub fn run(command: &mut Command) -> Ran {
    let output = command
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    Ran::from_output(output)
}

/// The path of a tool the tests need, with a message naming its package.
pub fn require_tool(name: &str, package: &str) -> PathBuf {
    for dir in std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
    {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("{name} is not installed: the test command installs it (Debian package {package})");
}

/// A running `gatehouse serve` on a free loopback port, with its own data
/// directory (and so its own SoftHSM token) and a clock file the test drives.
/// Stopped by PID when dropped.
pub struct GatehouseServer {
    child: std::process::Child,
    pub url: String,
    pub data_dir: PathBuf,
    pub clock_file: PathBuf,
    /// The server reads the system clock, not `clock_file`.
    system_clock: bool,
    /// The administrator's one-time password, when this start created it.
    pub admin_password: Option<String>,
    pub stderr_log: PathBuf,
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
    _root: Option<tempfile::TempDir>,
}

/// How to start a server.
#[derive(Default, Clone)]
pub struct ServerOptions {
    /// Share this data directory (a second process on one database).
    pub data_dir: Option<PathBuf>,
    pub clock_file: Option<PathBuf>,
    pub extra_args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Let the server read the system clock (no test clock file): for tests
    /// where a tool runs in real time, such as a device flow's polling.
    pub system_clock: bool,
}

impl GatehouseServer {
    pub fn start(binary: &Path, options: ServerOptions) -> GatehouseServer {
        use std::io::BufRead;
        let (root, data_dir) = match &options.data_dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let root = tempfile::Builder::new()
                    .prefix("gatehouse-server-")
                    .tempdir()
                    .expect("temporary directory");
                let dir = root.path().join("data");
                (Some(root), dir)
            }
        };
        let clock_file = options
            .clock_file
            .clone()
            .unwrap_or_else(|| data_dir.with_file_name("clock"));
        if !clock_file.exists() {
            let now = std::time::SystemTime::UNIX_EPOCH
                .elapsed()
                .expect("clock after 1970")
                .as_secs();
            std::fs::create_dir_all(clock_file.parent().expect("clock file has a parent"))
                .expect("clock dir");
            std::fs::write(&clock_file, now.to_string()).expect("write clock file");
        }
        let stderr_log = data_dir.with_file_name(format!(
            "server-{}.log",
            std::time::SystemTime::UNIX_EPOCH
                .elapsed()
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let stderr = std::fs::File::create(&stderr_log).expect("server log file");
        let mut command = Command::new(binary);
        command
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(&options.extra_args)
            .env("GATEHOUSE_LOG", "info,cryptoki::mechanism=off")
            .envs(options.env.iter().map(|(k, v)| (k.clone(), v.clone())))
            .env_remove("GATEHOUSE_CONFIG")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(stderr);
        if !options.system_clock {
            command.env("GATEHOUSE_UNSAFE_TEST_CLOCK_FILE", &clock_file);
        }
        let mut child = command.spawn().expect("start gatehouse");
        let stdout = child.stdout.take().expect("stdout piped");
        let (sender, receiver) = std::sync::mpsc::channel();
        let collected = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = std::sync::Arc::clone(&collected);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(mut all) = sink.lock() {
                    all.push_str(&line);
                    all.push('\n');
                }
                let _ = sender.send(line);
            }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut admin_password = None;
        let url = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match receiver.recv_timeout(left) {
                Ok(line) => {
                    if let Some(password) = line.trim().strip_prefix("One-time password: ") {
                        admin_password = Some(password.to_owned());
                    }
                    if let Some(url) = line.strip_prefix("Gatehouse is listening on ") {
                        break url.trim().trim_end_matches('/').to_owned();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let log = std::fs::read_to_string(&stderr_log).unwrap_or_default();
                    panic!("gatehouse did not start within 60 s; its log:\n{log}");
                }
            }
        };
        GatehouseServer {
            child,
            url,
            data_dir,
            clock_file,
            system_clock: options.system_clock,
            admin_password,
            stderr_log,
            stdout: collected,
            _root: root,
        }
    }

    /// The server's current time (Unix seconds), as the test set it (or the
    /// system's, for a server on the system clock).
    pub fn now(&self) -> u64 {
        if self.system_clock {
            return std::time::SystemTime::UNIX_EPOCH
                .elapsed()
                .expect("clock after 1970")
                .as_secs();
        }
        std::fs::read_to_string(&self.clock_file)
            .expect("read clock file")
            .trim()
            .parse()
            .expect("clock file holds Unix seconds")
    }

    pub fn set_now(&self, now: u64) {
        assert!(!self.system_clock, "this server reads the system clock");
        std::fs::write(&self.clock_file, now.to_string()).expect("write clock file");
    }

    pub fn advance(&self, seconds: u64) {
        self.set_now(self.now() + seconds);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Run `gatehouse` with the same data directory (the user commands).
    pub fn command(&self, binary: &Path) -> Command {
        let mut command = Command::new(binary);
        command
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env("GATEHOUSE_LOG", "warn,cryptoki::mechanism=off");
        if !self.system_clock {
            command.env("GATEHOUSE_UNSAFE_TEST_CLOCK_FILE", &self.clock_file);
        }
        command
    }
}

impl Drop for GatehouseServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A self-signed end-entity certificate for 127.0.0.1 and its key, made with
/// `openssl` in `dir`: `(certificate.pem, key.pem)`.
pub fn self_signed_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let certificate = dir.join("cert.pem");
    let private_key = dir.join("key.pem");
    let made = Command::new(require_tool("openssl", "openssl"))
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args([
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        // End-entity: rustls refuses a CA certificate as a server's own.
        .args(["-extensions", "v3_req"])
        .arg("-keyout")
        .arg(&private_key)
        .arg("-out")
        .arg(&certificate)
        .output()
        .expect("run openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    (certificate, private_key)
}
