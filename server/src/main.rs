//! `gatehouse`: the sign-in server.
//!
//! A placeholder until the browser sign-in lands on top of the seed vault
//! (`hsm-adapter`); it only reports what it is.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "gatehouse {}: the sign-in server is not built yet; use device-tools to prepare a token",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(2)
}
