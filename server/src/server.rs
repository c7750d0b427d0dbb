//! Starting the server: the data directory, the embedded SoftHSM token on
//! first start, the vault, the administrator bootstrap, and the listener.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hsm_adapter::{ModuleConfig, SecretString, TokenAdmin, Vault, VaultConfig};
use secrecy::ExposeSecret;

use crate::clock::Clock;
use crate::config::{Config, ConfigError};
use crate::domain::{
    AddressLimiter, DomainError, Gatehouse, LockoutPolicy, NewAccount, Passwords,
    PendingEnrollments, Policy,
};
use crate::http::{AppState, CookiePolicy, CsrfKey};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot prepare {path}: {reason}")]
    DataDir { path: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("security token: {0}")]
    Vault(#[from] hsm_adapter::VaultError),
    #[error("cannot read the token PIN from {path}: {reason}")]
    Pin { path: String, reason: String },
    #[error("{0}")]
    Domain(#[from] DomainError),
    #[error("cannot listen on {address}: {reason}")]
    Listen { address: SocketAddr, reason: String },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("server failed: {0}")]
    Serve(String),
}

fn data_dir_error(path: &Path, error: impl std::fmt::Display) -> StartError {
    StartError::DataDir {
        path: path.display().to_string(),
        reason: error.to_string(),
    }
}

/// Create `dir` readable by its owner only, if it does not exist.
pub fn private_dir(dir: &Path) -> Result<(), StartError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|error| data_dir_error(dir, error))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|error| data_dir_error(dir, error))
}

/// Write a file only its owner can read, failing if it exists.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), StartError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|error| data_dir_error(path, error))?;
    file.write_all(contents)
        .map_err(|error| data_dir_error(path, error))
}

fn read_pin(path: &Path) -> Result<SecretString, StartError> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|error| {
        StartError::Pin {
            path: path.display().to_string(),
            reason: error.to_string(),
        }
    })?);
    Ok(SecretString::from(
        text.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

/// The module and PIN to use: the configured module, or the embedded
/// SoftHSM token in the data directory, created (with random PINs kept in
/// owner-only files beside it) on first start.
fn token_setup(config: &Config) -> Result<(ModuleConfig, SecretString), StartError> {
    if let Some(module) = &config.pkcs11.module {
        let pin_file = config.pkcs11.pin_file.clone().ok_or_else(|| {
            ConfigError::Invalid("a PKCS#11 module needs pkcs11.pin_file".to_owned())
        })?;
        let module = ModuleConfig {
            module_path: Some(module.clone()),
            softhsm_config: None,
        };
        return Ok((module, read_pin(&pin_file)?));
    }
    let dir = config.softhsm_dir();
    let pin_file = config
        .pkcs11
        .pin_file
        .clone()
        .unwrap_or_else(|| dir.join("user.pin"));
    let module = ModuleConfig::softhsm_dir(&dir);
    if !dir.join("tokens").exists() {
        tracing::info!(dir = %dir.display(), "creating the embedded SoftHSM token");
        hsm_adapter::softhsm::prepare_dir(&dir)?;
        let user_pin = SecretString::from(crate::random::token(24));
        let so_pin = SecretString::from(crate::random::token(24));
        if !pin_file.exists() {
            write_private(&pin_file, user_pin.expose_secret().as_bytes())?;
        }
        write_private(&dir.join("so.pin"), so_pin.expose_secret().as_bytes())?;
        let user_pin = read_pin(&pin_file)?;
        hsm_adapter::init_token(&module, &config.pkcs11.token_label, &so_pin, &user_pin)?;
        TokenAdmin::open(
            &module,
            &config.pkcs11.token_label,
            &user_pin,
            config.wrap_scheme()?,
        )?
        .add_key_version()?;
        println!(
            "Created a SoftHSM token in {} (PINs in owner-only files there).",
            dir.display()
        );
    }
    let pin = read_pin(&pin_file)?;
    Ok((module, pin))
}

fn csrf_key(data_dir: &Path) -> Result<CsrfKey, StartError> {
    let path = data_dir.join("csrf.key");
    if !path.exists() {
        write_private(&path, &crate::random::bytes::<32>())?;
    }
    let bytes = std::fs::read(&path).map_err(|error| data_dir_error(&path, error))?;
    let key: [u8; 32] = bytes.try_into().map_err(|_| {
        data_dir_error(
            &path,
            "expected 32 bytes; delete the file to make a new key",
        )
    })?;
    Ok(CsrfKey::new(key))
}

/// The clock: the system's, unless a test points the server at a file.
pub fn clock_from_environment() -> Clock {
    match std::env::var_os("GATEHOUSE_UNSAFE_TEST_CLOCK_FILE") {
        Some(path) => {
            tracing::warn!(
                "the clock is read from a file (GATEHOUSE_UNSAFE_TEST_CLOCK_FILE): for tests only"
            );
            Clock::File(PathBuf::from(path))
        }
        None => Clock::System,
    }
}

pub fn passwords(config: &Config) -> Result<Passwords, StartError> {
    let passwords = &config.passwords;
    Ok(Passwords::new(
        passwords.argon2_memory_kib,
        passwords.argon2_iterations,
        passwords.argon2_parallelism,
        passwords.min_length,
    )?)
}

/// Everything the server needs, built from the configuration.
pub async fn build(config: &Config) -> Result<Arc<AppState>, StartError> {
    config.validate()?;
    private_dir(&config.data_dir)?;
    let store = Arc::new(Store::open(&config.database_path())?);
    let setup_config = config.clone();
    let vault = tokio::task::spawn_blocking(move || -> Result<Vault, StartError> {
        let (module, pin) = token_setup(&setup_config)?;
        let mut vault_config =
            VaultConfig::new(module, setup_config.pkcs11.token_label.clone(), pin);
        vault_config.workers = setup_config.pkcs11.workers.max(1);
        vault_config.wrap_scheme = setup_config.wrap_scheme()?;
        vault_config.hot_keys = hsm_adapter::HotKeys {
            capacity: setup_config.pkcs11.hot_keys,
            lifetime: std::time::Duration::from_secs(setup_config.pkcs11.hot_key_seconds),
        };
        Ok(Vault::open(vault_config)?)
    })
    .await
    .map_err(|error| StartError::Serve(error.to_string()))??;
    let policy = Policy {
        issuer: config.issuer.clone(),
        algorithm: config.algorithm()?,
        totp: config.totp_policy()?,
        lockout: LockoutPolicy {
            max_failures: config.lockout.max_failures,
            base_delay: config.lockout.base_delay_seconds,
            max_delay: config.lockout.max_delay_seconds,
            per_address_per_minute: config.lockout.per_address_per_minute,
        },
        session_lifetime: config.sessions.lifetime_seconds,
        enrollment_lifetime: config.sessions.enrollment_seconds,
    };
    let gatehouse = Gatehouse {
        store,
        vault: Arc::new(vault),
        clock: clock_from_environment(),
        addresses: AddressLimiter::new(policy.lockout.per_address_per_minute),
        policy,
        passwords: Arc::new(passwords(config)?),
        pending: PendingEnrollments::default(),
        unknown_names: Default::default(),
        yubikeys: Default::default(),
    };
    Ok(Arc::new(AppState {
        gatehouse,
        csrf: csrf_key(&config.data_dir)?,
        cookies: CookiePolicy {
            secure: config.tls.is_some(),
        },
        public_url: std::sync::OnceLock::new(),
    }))
}

/// On a first start with no users, create `admin` (an administrator with
/// MFA enforced) with a one-time password, and print it once.
async fn bootstrap_admin(state: &AppState, url: &str) -> Result<(), StartError> {
    let gatehouse = &state.gatehouse;
    if gatehouse.db(|store| store.count_users()).await? > 0 {
        return Ok(());
    }
    let password = SecretString::from(crate::random::readable_password(4));
    let ops = gatehouse.admin("gatehouse", None);
    ops.create_user(NewAccount {
        name: "admin".to_owned(),
        password: password.clone(),
        is_admin: true,
        force_mfa: true,
        must_change_password: true,
    })
    .await?;
    println!();
    println!("Created the administrator account (this password is shown only once):");
    println!("  User name: admin");
    println!("  One-time password: {}", password.expose_secret());
    println!("Sign in at {url} to register an authenticator and choose your own password.");
    println!();
    Ok(())
}

/// Run the server until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> Result<(), StartError> {
    let state = build(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|error| StartError::Listen {
            address: config.listen,
            reason: error.to_string(),
        })?;
    let address = listener.local_addr().map_err(|error| StartError::Listen {
        address: config.listen,
        reason: error.to_string(),
    })?;
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let url = format!("{scheme}://{address}/");
    let public = config
        .public_url
        .clone()
        .unwrap_or_else(|| url.clone())
        .trim_end_matches('/')
        .to_owned();
    let _ = state.public_url.set(public);
    bootstrap_admin(&state, &url).await?;
    let app =
        crate::http::router(Arc::clone(&state)).into_make_service_with_connect_info::<SocketAddr>();
    println!("Gatehouse is listening on {url}");
    let _ = std::io::stdout().flush();
    match &config.tls {
        Some(tls) => crate::tls::serve(listener, app, tls).await,
        None => axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(|error| StartError::Serve(error.to_string())),
    }
}

pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}
