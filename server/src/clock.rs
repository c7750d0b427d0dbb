//! The one place that reads the wall clock. Everything else takes `now`
//! (Unix seconds) as a parameter, so tests can drive TOTP time.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the server gets the time from.
#[derive(Debug, Clone)]
pub enum Clock {
    /// The system clock.
    System,
    /// Unix seconds read from a file on every call, for end-to-end tests of
    /// back-off and expiry. Only set through `GATEHOUSE_UNSAFE_TEST_CLOCK_FILE`;
    /// the server logs a warning when it is in use.
    File(PathBuf),
}

impl Clock {
    /// Seconds since the Unix epoch.
    pub fn now(&self) -> u64 {
        match self {
            Clock::System => system_now(),
            Clock::File(path) => std::fs::read_to_string(path)
                .ok()
                .and_then(|text| text.trim().parse().ok())
                .unwrap_or_else(system_now),
        }
    }
}

#[allow(clippy::disallowed_methods)] // the one allowed reading of the clock
fn system_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}
