//! The domain: sign-in, enrollment, lockout, sessions and administration.
//! Pure logic over the store and the vault: no HTTP here, no SQL.

mod admin;
pub mod api_tokens;
mod audit;
mod enrollment;
mod lockout;
mod names;
pub mod oauth;
mod passwords;
mod sessions;
mod signin;
pub mod yubikey;

use std::sync::Arc;

use hsm_adapter::{TotpAlgorithm, TotpPolicy, Vault, VaultError};

pub use admin::{AdminOps, NewAccount, UserOverview};
pub use audit::{AuditEvent, Outcome};
pub use enrollment::{EnrollmentView, PendingEnrollments};
pub use lockout::{AddressLimiter, LockoutPolicy};
pub use names::validate_user_name;
pub use passwords::{MAX_PASSWORD_BYTES, Passwords};
pub use sessions::{Session, SessionId, Stage};
pub use signin::{Credentials, SignInOutcome};

use crate::clock::Clock;
use crate::store::{Store, StoreError};

/// Everything the domain needs, shared by all requests.
pub struct Gatehouse {
    pub store: Arc<Store>,
    pub vault: Arc<Vault>,
    pub clock: Clock,
    pub policy: Policy,
    pub passwords: Arc<Passwords>,
    pub pending: PendingEnrollments,
    pub addresses: AddressLimiter,
    pub unknown_names: lockout::UnknownNames,
    pub yubikeys: yubikey::PendingYubikeys,
}

/// The knobs of the sign-in procedure.
#[derive(Debug, Clone)]
pub struct Policy {
    pub issuer: String,
    pub algorithm: TotpAlgorithm,
    pub totp: TotpPolicy,
    pub lockout: LockoutPolicy,
    pub session_lifetime: u64,
    pub enrollment_lifetime: u64,
}

/// What went wrong, in terms a page can explain.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The one message for a wrong user name, password or code.
    #[error("sign-in failed: check your user name, password and authenticator code")]
    SignInFailed,
    #[error("too many failed sign-in attempts: try again in {retry_after} seconds")]
    LockedOut { retry_after: u64 },
    #[error("too many sign-in attempts from your address: wait a minute and try again")]
    AddressLimited,
    #[error("the authenticator code is not right: enter the code your app shows now")]
    WrongCode,
    #[error("the registration expired or was not started: click Initialize to start again")]
    NoPendingEnrollment,
    #[error("the security token is not available, so sign-in is paused: try again shortly")]
    TokenUnavailable(#[source] VaultError),
    #[error("this sign-in request has expired or was already answered: start again from your tool")]
    NoPendingAuthorization,
    #[error("{0}")]
    Invalid(String),
    #[error("not allowed")]
    Forbidden,
    #[error("no such user")]
    NoSuchUser,
    #[error("a user with that name already exists")]
    DuplicateUser,
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for DomainError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::DuplicateUser(_) => DomainError::DuplicateUser,
            other => DomainError::Internal(other.to_string()),
        }
    }
}

impl From<VaultError> for DomainError {
    fn from(error: VaultError) -> Self {
        match error {
            VaultError::InvalidRequest(_) => DomainError::WrongCode,
            VaultError::BindingMismatch | VaultError::MalformedRecord(_) => {
                DomainError::Internal(format!("a stored authenticator does not verify: {error}"))
            }
            other => DomainError::TokenUnavailable(other),
        }
    }
}

pub type Result<T, E = DomainError> = std::result::Result<T, E>;

impl Gatehouse {
    /// Run a store call on a blocking thread.
    pub async fn db<T, F>(&self, call: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || call(&store))
            .await
            .map_err(|error| DomainError::Internal(format!("store task failed: {error}")))?
            .map_err(DomainError::from)
    }

    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Admin operations on behalf of `actor`, from `client`.
    pub fn admin(&self, actor: &str, client: Option<String>) -> AdminOps {
        AdminOps {
            store: Arc::clone(&self.store),
            passwords: Arc::clone(&self.passwords),
            clock: self.clock.clone(),
            actor: actor.to_owned(),
            client,
        }
    }
}
