//! Lockout with back-off, per account and per client address.
//!
//! An account is locked after `max_failures` failed attempts in a row; each
//! further failure doubles the lock, up to `max_delay`. Names that match no
//! account are tracked the same way (in memory), so a locked-out message
//! tells an attacker nothing about which names exist.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// How failures turn into locks.
#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    pub max_failures: u32,
    pub base_delay: u64,
    pub max_delay: u64,
    pub per_address_per_minute: u32,
}

impl LockoutPolicy {
    /// How long to lock after the `failures`-th failure in a row, if at all.
    pub fn lock_after(&self, failures: u32) -> Option<u64> {
        let beyond = failures.checked_sub(self.max_failures)?;
        let factor = 1u64.checked_shl(beyond.min(32)).unwrap_or(u64::MAX);
        Some(self.base_delay.saturating_mul(factor).min(self.max_delay))
    }
}

/// Failures of names that are not accounts, so they lock like accounts do.
/// Bounded: the oldest entries are dropped when it grows too large.
#[derive(Default)]
pub struct UnknownNames {
    entries: Mutex<HashMap<String, (u32, u64)>>,
}

const MAX_UNKNOWN_NAMES: usize = 10_000;

impl UnknownNames {
    /// Seconds until `name` may try again, if it is locked at `now`.
    pub fn locked_for(&self, name: &str, now: u64) -> Option<u64> {
        let entries = lock(&self.entries);
        entries
            .get(&name.to_ascii_lowercase())
            .and_then(|&(_, until)| (until > now).then(|| until - now))
    }

    /// Count a failure; returns the lock it earned, if any.
    pub fn fail(&self, name: &str, now: u64, policy: &LockoutPolicy) -> Option<u64> {
        let mut entries = lock(&self.entries);
        if entries.len() >= MAX_UNKNOWN_NAMES {
            entries.retain(|_, &mut (_, until)| until > now);
            if entries.len() >= MAX_UNKNOWN_NAMES {
                entries.clear();
            }
        }
        let entry = entries.entry(name.to_ascii_lowercase()).or_insert((0, 0));
        entry.0 += 1;
        let lock = policy.lock_after(entry.0);
        if let Some(delay) = lock {
            entry.1 = now + delay;
        }
        lock
    }
}

/// Sign-in attempts per client address per minute, counted in fixed
/// one-minute windows.
pub struct AddressLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<IpAddr, (u64, u32)>>,
}

impl AddressLimiter {
    pub fn new(per_minute: u32) -> Self {
        AddressLimiter {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Count an attempt from `address` at `now`; false when over the limit.
    pub fn allow(&self, address: IpAddr, now: u64) -> bool {
        let minute = now / 60;
        let mut windows = lock(&self.windows);
        if windows.len() > 100_000 {
            windows.retain(|_, &mut (window, _)| window == minute);
        }
        let entry = windows.entry(address).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 <= self.per_minute
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: LockoutPolicy = LockoutPolicy {
        max_failures: 3,
        base_delay: 30,
        max_delay: 600,
        per_address_per_minute: 5,
    };

    #[test]
    fn locks_grow_then_stop_growing() {
        assert_eq!(POLICY.lock_after(2), None);
        assert_eq!(POLICY.lock_after(3), Some(30));
        assert_eq!(POLICY.lock_after(4), Some(60));
        assert_eq!(POLICY.lock_after(5), Some(120));
        assert_eq!(POLICY.lock_after(9), Some(600));
        assert_eq!(POLICY.lock_after(u32::MAX), Some(600));
    }

    #[test]
    fn unknown_names_lock_like_accounts() {
        let names = UnknownNames::default();
        assert_eq!(names.fail("ghost", 100, &POLICY), None);
        assert_eq!(names.fail("GHOST", 100, &POLICY), None);
        assert_eq!(names.fail("ghost", 100, &POLICY), Some(30));
        assert_eq!(names.locked_for("Ghost", 110), Some(20));
        assert_eq!(names.locked_for("ghost", 130), None);
    }

    #[test]
    fn addresses_are_limited_per_minute() {
        let limiter = AddressLimiter::new(2);
        let address: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(limiter.allow(address, 60));
        assert!(limiter.allow(address, 61));
        assert!(!limiter.allow(address, 62));
        assert!(limiter.allow("192.0.2.2".parse().unwrap(), 62));
        assert!(limiter.allow(address, 120), "a new minute starts afresh");
    }
}
