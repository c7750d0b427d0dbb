//! Shared harness for Gatehouse's end-to-end tests.
//!
//! Tests use real parts: a SoftHSM token in a temporary directory with its own
//! configuration, and the project's real binaries run as a person would run
//! them. Nothing here mocks a token.
//!
//! A harness reports trouble by panicking with a message, like the tests it
//! serves, so `expect` is allowed here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

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
