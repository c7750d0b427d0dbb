//! Hot keys: a worker keeps the token session keys it unwrapped for a while,
//! so that verifying the same authenticator again skips the unwrap (an RSA
//! private-key operation under RSA-OAEP). The keys stay what they were: token
//! session objects, sensitive and never extractable; only their handles are
//! kept here. Each worker's session has its own cache, bounded in size and
//! age; entries are destroyed in the token when they go, and the whole cache
//! dies with the session.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;

/// How many unwrapped keys a worker keeps, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct HotKeys {
    /// Keys kept per worker session; 0 turns the cache off.
    pub capacity: usize,
    /// How long a key is kept after it was unwrapped.
    pub lifetime: Duration,
}

impl Default for HotKeys {
    fn default() -> Self {
        HotKeys {
            capacity: 256,
            lifetime: Duration::from_secs(120),
        }
    }
}

impl HotKeys {
    pub fn off() -> Self {
        HotKeys {
            capacity: 0,
            lifetime: Duration::ZERO,
        }
    }
}

/// Which sealed record a key was unwrapped from: its key version and blob.
pub(crate) type RecordKey = (u32, Vec<u8>);

pub(crate) struct KeyCache {
    limits: HotKeys,
    entries: HashMap<RecordKey, (ObjectHandle, Instant)>,
}

impl KeyCache {
    pub fn new(limits: HotKeys) -> Self {
        KeyCache {
            limits,
            entries: HashMap::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.limits.capacity > 0
    }

    /// The live key unwrapped from `record`, if one is kept.
    pub fn get(&mut self, session: &Session, record: &RecordKey) -> Option<ObjectHandle> {
        let (handle, since) = *self.entries.get(record)?;
        if since.elapsed() < self.limits.lifetime {
            return Some(handle);
        }
        self.remove(session, record);
        None
    }

    /// Keep `handle` (unwrapped from `record`), making room if needed. Only
    /// for an enabled cache.
    pub fn insert(&mut self, session: &Session, record: RecordKey, handle: ObjectHandle) {
        let lifetime = self.limits.lifetime;
        let expired: Vec<RecordKey> = self
            .entries
            .iter()
            .filter(|(_, (_, since))| since.elapsed() >= lifetime)
            .map(|(key, _)| key.clone())
            .collect();
        for key in expired {
            self.remove(session, &key);
        }
        while self.entries.len() >= self.limits.capacity {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, since))| *since)
                .map(|(key, _)| key.clone());
            match oldest {
                Some(key) => self.remove(session, &key),
                None => break,
            }
        }
        if let Some((previous, _)) = self.entries.insert(record, (handle, Instant::now())) {
            let _ = session.destroy_object(previous);
        }
    }

    /// Forget (and destroy) the key of `record`.
    pub fn remove(&mut self, session: &Session, record: &RecordKey) {
        if let Some((handle, _)) = self.entries.remove(record) {
            let _ = session.destroy_object(handle);
        }
    }
}
