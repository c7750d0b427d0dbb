//! An out-of-process token: `p11-kit server` serving a SoftHSM token over a
//! Unix socket, for clients that load `p11-kit-client.so` with
//! `P11_KIT_SERVER_ADDRESS`. Unwrap and HMAC then run in the server's
//! process, not the client's. Started by the test, stopped by PID.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct P11KitServer {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
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
        let program = crate::require_tool("p11-kit", "p11-kit");
        let dir = tempfile::Builder::new()
            .prefix("p11-kit-server-")
            .tempdir()
            .expect("temporary directory");
        let socket = dir.path().join("token.sock");
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let mut child = Command::new(program)
            .args(["server", "-f", "-n"])
            .arg(&socket)
            .arg("--provider")
            .arg(softhsm_module)
            .arg(format!("pkcs11:token={label}"))
            .env("SOFTHSM2_CONF", softhsm_conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start p11-kit server");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let log =
                    std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
                panic!("p11-kit server exited ({status}):\n{log}");
            }
            assert!(Instant::now() < deadline, "p11-kit server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        P11KitServer {
            child,
            socket,
            _dir: dir,
        }
    }

    /// The value for `P11_KIT_SERVER_ADDRESS`.
    pub fn address(&self) -> String {
        format!("unix:path={}", self.socket.display())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for P11KitServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
