//! An out-of-process token: `p11-kit server` serving a SoftHSM token over a
//! Unix socket, for clients that load `p11-kit-client.so` with
//! `P11_KIT_SERVER_ADDRESS`. Unwrap and HMAC then run in the server's
//! process, not the client's. Started by the test, stopped by PID; it can be
//! stopped and started again on the same socket, as a network HSM that goes
//! away and comes back.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct P11KitServer {
    child: Child,
    socket: PathBuf,
    /// How it was started, to start it again on the same socket.
    provider: PathBuf,
    softhsm_conf: PathBuf,
    label: String,
    dir: tempfile::TempDir,
}

/// Where Debian puts the client module, per architecture.
pub fn client_module() -> PathBuf {
    let candidates = [
        "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so",
        "/usr/lib/aarch64-linux-gnu/pkcs11/p11-kit-client.so",
        "/usr/lib/pkcs11/p11-kit-client.so",
        "/usr/lib64/pkcs11/p11-kit-client.so",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .unwrap_or_else(|| {
            panic!(
                "p11-kit-client.so is missing: apt-get install p11-kit-modules (tests/run.sh does)"
            )
        })
}

impl P11KitServer {
    /// Serve the token labelled `label` of the SoftHSM module configured by
    /// `softhsm_conf`.
    pub fn start(softhsm_module: &Path, softhsm_conf: &Path, label: &str) -> P11KitServer {
        let dir = tempfile::Builder::new()
            .prefix("p11-kit-server-")
            .tempdir()
            .expect("temporary directory");
        let socket = dir.path().join("token.sock");
        let child = spawn(&socket, softhsm_module, softhsm_conf, label, dir.path());
        P11KitServer {
            child,
            socket,
            provider: softhsm_module.to_owned(),
            softhsm_conf: softhsm_conf.to_owned(),
            label: label.to_owned(),
            dir,
        }
    }

    /// Stop the server, as a network HSM that goes away.
    pub fn stop(&mut self) {
        stop(&mut self.child);
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Start it again on the same socket, as the HSM coming back.
    pub fn restart(&mut self) {
        self.stop();
        self.child = spawn(
            &self.socket,
            &self.provider,
            &self.softhsm_conf,
            &self.label,
            self.dir.path(),
        );
    }

    /// The value for `P11_KIT_SERVER_ADDRESS`.
    pub fn address(&self) -> String {
        format!("unix:path={}", self.socket.display())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

fn spawn(socket: &Path, provider: &Path, softhsm_conf: &Path, label: &str, dir: &Path) -> Child {
    let program = crate::require_tool("p11-kit", "p11-kit");
    let log = std::fs::File::create(dir.join("server.log")).expect("log file");
    use std::os::unix::process::CommandExt;
    // Its own process group: it serves each connection from a process of
    // its own, and stopping the token must stop those too.
    let mut child = Command::new(program)
        .process_group(0)
        .args(["server", "-f", "-n"])
        .arg(socket)
        .arg("--provider")
        .arg(provider)
        .arg(format!("pkcs11:token={label}"))
        .env("SOFTHSM2_CONF", softhsm_conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start p11-kit server");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            panic!("p11-kit server exited ({status}):\n{log}");
        }
        assert!(Instant::now() < deadline, "p11-kit server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// SIGTERM to its process group, then wait (a kill after five seconds).
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{}", child.id())])
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.wait();
}

impl Drop for P11KitServer {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}
