//! Password hashing with Argon2id, off the async executor and bounded in
//! concurrency (each hash takes its memory cost in RAM).

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use super::{DomainError, Result};

pub struct Passwords {
    params: Params,
    permits: Arc<Semaphore>,
    /// A hash of a random password, verified against for unknown users so
    /// that they take as long as known ones.
    dummy_hash: String,
    pub min_length: usize,
    /// Argon2 computations so far (hashes and verifications).
    computed: std::sync::atomic::AtomicU64,
}

/// Longest password accepted, in bytes: long enough for any passphrase,
/// short enough that hashing cannot be abused.
pub const MAX_PASSWORD_BYTES: usize = 1024;

impl Passwords {
    pub fn new(
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
        min_length: usize,
    ) -> Result<Passwords> {
        let params = Params::new(memory_kib, iterations, parallelism, None)
            .map_err(|error| DomainError::Invalid(format!("Argon2 parameters: {error}")))?;
        let lanes = std::thread::available_parallelism().map_or(2, |n| n.get());
        let dummy_secret = SecretString::from(crate::random::token(24));
        let dummy_hash = hash_with(&params, &dummy_secret)?;
        Ok(Passwords {
            params,
            permits: Arc::new(Semaphore::new(lanes)),
            dummy_hash,
            min_length,
            computed: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Hash a new password. Checks its length first.
    pub async fn hash(&self, password: SecretString) -> Result<String> {
        self.check_policy(&password)?;
        let params = self.params.clone();
        self.run(move || hash_with(&params, &password)).await
    }

    /// Whether `password` matches `stored`; with `None`, checks against a
    /// dummy hash so an unknown user costs the same time, and answers false.
    pub async fn verify(&self, stored: Option<String>, password: SecretString) -> Result<bool> {
        if password.expose_secret().len() > MAX_PASSWORD_BYTES {
            return Ok(false);
        }
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let matches = self
            .run(move || {
                let parsed = PasswordHash::new(&hash).map_err(|error| {
                    DomainError::Internal(format!("stored password hash: {error}"))
                })?;
                Ok(Argon2::default()
                    .verify_password(password.expose_secret().as_bytes(), &parsed)
                    .is_ok())
            })
            .await?;
        Ok(known && matches)
    }

    /// How many Argon2 computations this process has made.
    pub fn computed(&self) -> u64 {
        self.computed.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn check_policy(&self, password: &SecretString) -> Result<()> {
        let length = password.expose_secret().chars().count();
        if length < self.min_length {
            return Err(DomainError::Invalid(format!(
                "the password must be at least {} characters long",
                self.min_length
            )));
        }
        if password.expose_secret().len() > MAX_PASSWORD_BYTES {
            return Err(DomainError::Invalid(format!(
                "the password must be at most {MAX_PASSWORD_BYTES} bytes long"
            )));
        }
        Ok(())
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| DomainError::Internal("password hashing closed".to_owned()))?;
        self.computed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|error| DomainError::Internal(format!("password task failed: {error}")))?
    }
}

fn hash_with(params: &Params, password: &SecretString) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| DomainError::Internal(format!("hashing a password: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passwords() -> Passwords {
        // Small parameters: these tests are about what is computed, not cost.
        Passwords::new(1024, 1, 1, 10).unwrap()
    }

    #[tokio::test]
    async fn an_unknown_user_costs_a_full_verification_like_a_known_one() {
        let passwords = passwords();
        let stored = passwords
            .hash(SecretString::from("right password".to_owned()))
            .await
            .unwrap();
        let before = passwords.computed();
        let known = passwords
            .verify(
                Some(stored.clone()),
                SecretString::from("wrong password".to_owned()),
            )
            .await
            .unwrap();
        let after_known = passwords.computed();
        let unknown = passwords
            .verify(None, SecretString::from("right password".to_owned()))
            .await
            .unwrap();
        assert!(!known && !unknown);
        assert_eq!(after_known - before, 1);
        assert_eq!(
            passwords.computed() - after_known,
            1,
            "the unknown user was not hashed against"
        );
        assert!(
            passwords
                .verify(
                    Some(stored),
                    SecretString::from("right password".to_owned())
                )
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn hashes_are_argon2id_with_the_configured_parameters() {
        let passwords = passwords();
        let hash = passwords
            .hash(SecretString::from("a long password".to_owned()))
            .await
            .unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{hash}");
        assert!(!hash.contains("a long password"));
        let short = passwords.hash(SecretString::from("short".to_owned())).await;
        assert!(matches!(short, Err(DomainError::Invalid(_))));
    }
}
