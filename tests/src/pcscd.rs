//! The PC/SC daemon for tests: started in the foreground (no systemd here),
//! stopped by PID. If one is already running it is used and left alone: only
//! one pcscd can own `/run/pcscd`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Pcscd {
    child: Option<Child>,
}

impl Pcscd {
    pub fn start() -> Pcscd {
        crate::require_tool("pcscd", "pcscd");
        assert!(
            std::path::Path::new("/usr/lib/pcsc/drivers/serial/libifdvpcd.so").exists(),
            "the virtual reader driver is missing: the test command installs it (Debian package vsmartcard-vpcd)"
        );
        if already_running() {
            return Pcscd { child: None };
        }
        let _ = std::fs::create_dir_all("/run/pcscd");
        // A socket left by a pcscd that died would look like readiness.
        let _ = std::fs::remove_file("/run/pcscd/pcscd.comm");
        let child = Command::new("pcscd")
            .arg("--foreground")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pcscd");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !std::path::Path::new("/run/pcscd/pcscd.comm").exists() {
            assert!(Instant::now() < deadline, "pcscd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Pcscd { child: Some(child) }
    }
}

fn already_running() -> bool {
    std::fs::read_to_string("/run/pcscd/pcscd.pid")
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
}

impl Drop for Pcscd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
