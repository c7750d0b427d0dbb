//! The PC/SC daemon for tests: started in the foreground (there is no
//! systemd), stopped by PID with SIGTERM so it removes its pid file and
//! socket. A pcscd that is already running is used and left alone (only one
//! can own `/run/pcscd`); stale files of a dead one are cleared first, since
//! pcscd refuses to start while its pid file names a live process.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PID_FILE: &str = "/run/pcscd/pcscd.pid";
const SOCKET: &str = "/run/pcscd/pcscd.comm";

pub struct Pcscd {
    child: Option<Child>,
}

impl Pcscd {
    pub fn start() -> Pcscd {
        crate::require_tool("pcscd", "pcscd");
        assert!(
            Path::new("/usr/lib/pcsc/drivers/serial/libifdvpcd.so").exists(),
            "the virtual reader driver is missing: the test command installs it (Debian package vsmartcard-vpcd)"
        );
        if running_pcscd().is_some() && Path::new(SOCKET).exists() {
            return Pcscd { child: None };
        }
        let _ = std::fs::create_dir_all("/run/pcscd");
        let _ = std::fs::remove_file(PID_FILE);
        let _ = std::fs::remove_file(SOCKET);
        let mut child = Command::new("pcscd")
            .arg("--foreground")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pcscd");
        let pid = child.id();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(Path::new(SOCKET).exists() && running_pcscd() == Some(pid)) {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("pcscd did not start within 20 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Pcscd { child: Some(child) }
    }
}

/// The pid in pcscd's pid file, if that process is a pcscd.
fn running_pcscd() -> Option<u32> {
    // pcscd ends its pid file with a newline and a NUL byte.
    let text = std::fs::read_to_string(PID_FILE).ok()?;
    let pid: u32 = text
        .trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .parse()
        .ok()?;
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (name.trim() == "pcscd").then_some(pid)
}

impl Drop for Pcscd {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_file(PID_FILE);
        let _ = std::fs::remove_file(SOCKET);
    }
}
