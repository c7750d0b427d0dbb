//! Configuration: embedded defaults, then a TOML file (unknown keys are
//! refused), then `GATEHOUSE_*` environment variables, then command-line
//! flags. Secrets (the token PIN) are only ever read from files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hsm_adapter::{TotpAlgorithm, TotpPolicy, WrapScheme};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("configuration file {path}: {reason}")]
    Parse { path: String, reason: String },
    #[error("{name}={value:?} is not valid: {reason}")]
    Environment {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration, as the server uses it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the database (and, without a PKCS#11 module, the SoftHSM token) live.
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Serve plain HTTP on a non-loopback address (behind a TLS proxy).
    pub allow_plain_http: bool,
    /// Shown in authenticator apps next to the account name.
    pub issuer: String,
    /// The address people and tools use to reach this server (for example
    /// `https://mfa.example.com`), when it differs from the listening
    /// address: behind a proxy. It names the OAuth endpoints.
    pub public_url: Option<String>,
    pub tls: Option<TlsConfig>,
    pub pkcs11: Pkcs11Config,
    pub totp: TotpConfig,
    pub lockout: LockoutConfig,
    pub sessions: SessionConfig,
    pub passwords: PasswordConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pkcs11Config {
    /// The module; absent means a SoftHSM token in `<data_dir>/softhsm`,
    /// created on first start.
    pub module: Option<PathBuf>,
    pub token_label: String,
    /// File holding the user PIN. Required with `module`; with the embedded
    /// SoftHSM token it defaults to the PIN file created beside the token.
    pub pin_file: Option<PathBuf>,
    /// Worker threads, each with a token session.
    pub workers: usize,
    /// Wrap scheme for new seals: `aes-kwp`, `aes-kw`, `aes-cbc-pad`,
    /// `rsa-oaep`, or `auto` (the best the token offers; the default).
    pub wrap_scheme: String,
    /// Unwrapped keys each worker keeps in its token session, so that
    /// verifying one authenticator again skips the unwrap; 0 turns it off.
    pub hot_keys: usize,
    /// How long such a key is kept.
    pub hot_key_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TotpConfig {
    pub algorithm: String,
    pub digits: u8,
    pub period: u64,
    pub window: u8,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutConfig {
    /// Failed attempts on one account before it is locked.
    pub max_failures: u32,
    /// The first lock's length; each further failure doubles it.
    pub base_delay_seconds: u64,
    pub max_delay_seconds: u64,
    /// Sign-in attempts one client address may make per minute.
    pub per_address_per_minute: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    pub lifetime_seconds: u64,
    /// How long a started authenticator registration stays open.
    pub enrollment_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordConfig {
    /// Argon2id memory in KiB.
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    pub min_length: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("gatehouse-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            allow_plain_http: false,
            issuer: "Gatehouse".to_owned(),
            public_url: None,
            tls: None,
            pkcs11: Pkcs11Config::default(),
            totp: TotpConfig::default(),
            lockout: LockoutConfig::default(),
            sessions: SessionConfig::default(),
            passwords: PasswordConfig::default(),
        }
    }
}

impl Default for Pkcs11Config {
    fn default() -> Self {
        Pkcs11Config {
            module: None,
            token_label: "gatehouse".to_owned(),
            pin_file: None,
            workers: 2,
            wrap_scheme: "auto".to_owned(),
            hot_keys: 256,
            hot_key_seconds: 120,
        }
    }
}

impl Default for TotpConfig {
    fn default() -> Self {
        TotpConfig {
            algorithm: "SHA1".to_owned(),
            digits: 6,
            period: 30,
            window: 1,
        }
    }
}

impl Default for LockoutConfig {
    fn default() -> Self {
        LockoutConfig {
            max_failures: 5,
            base_delay_seconds: 30,
            max_delay_seconds: 3600,
            per_address_per_minute: 60,
        }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            lifetime_seconds: 8 * 3600,
            enrollment_seconds: 600,
        }
    }
}

impl Default for PasswordConfig {
    fn default() -> Self {
        // OWASP's first Argon2id recommendation: 19 MiB, 2 passes, 1 lane.
        PasswordConfig {
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            min_length: 10,
        }
    }
}

impl Config {
    /// Defaults, overlaid with `file` (if any) and the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some(path) => Self::from_file(path)?,
            None => Config::default(),
        };
        config.apply_environment(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.display().to_string(),
            reason: error.to_string(),
        })?;
        toml::from_str(&text).map_err(|error| ConfigError::Parse {
            path: path.display().to_string(),
            reason: error.to_string(),
        })
    }

    /// Apply `GATEHOUSE_*` overrides, read through `lookup`.
    pub fn apply_environment(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(name: &'static str, value: String) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            value
                .parse()
                .map_err(|error: T::Err| ConfigError::Environment {
                    name,
                    value,
                    reason: error.to_string(),
                })
        }
        macro_rules! env {
            ($name:literal, $target:expr) => {
                if let Some(value) = lookup($name) {
                    $target = parse($name, value)?;
                }
            };
            ($name:literal, some $target:expr) => {
                if let Some(value) = lookup($name) {
                    $target = Some(parse($name, value)?);
                }
            };
        }
        env!("GATEHOUSE_DATA_DIR", self.data_dir);
        env!("GATEHOUSE_LISTEN", self.listen);
        env!("GATEHOUSE_ALLOW_PLAIN_HTTP", self.allow_plain_http);
        env!("GATEHOUSE_ISSUER", self.issuer);
        env!("GATEHOUSE_PUBLIC_URL", some self.public_url);
        env!("GATEHOUSE_PKCS11_MODULE", some self.pkcs11.module);
        env!("GATEHOUSE_TOKEN_LABEL", self.pkcs11.token_label);
        env!("GATEHOUSE_PIN_FILE", some self.pkcs11.pin_file);
        env!("GATEHOUSE_VAULT_WORKERS", self.pkcs11.workers);
        env!("GATEHOUSE_WRAP_SCHEME", self.pkcs11.wrap_scheme);
        env!("GATEHOUSE_HOT_KEYS", self.pkcs11.hot_keys);
        env!("GATEHOUSE_HOT_KEY_SECONDS", self.pkcs11.hot_key_seconds);
        env!("GATEHOUSE_TOTP_ALGORITHM", self.totp.algorithm);
        env!("GATEHOUSE_TOTP_DIGITS", self.totp.digits);
        env!("GATEHOUSE_TOTP_PERIOD", self.totp.period);
        env!("GATEHOUSE_TOTP_WINDOW", self.totp.window);
        env!("GATEHOUSE_LOCKOUT_MAX_FAILURES", self.lockout.max_failures);
        env!(
            "GATEHOUSE_LOCKOUT_BASE_DELAY_SECONDS",
            self.lockout.base_delay_seconds
        );
        env!(
            "GATEHOUSE_LOCKOUT_MAX_DELAY_SECONDS",
            self.lockout.max_delay_seconds
        );
        env!(
            "GATEHOUSE_LOCKOUT_PER_ADDRESS_PER_MINUTE",
            self.lockout.per_address_per_minute
        );
        env!(
            "GATEHOUSE_SESSION_LIFETIME_SECONDS",
            self.sessions.lifetime_seconds
        );
        env!(
            "GATEHOUSE_ENROLLMENT_SECONDS",
            self.sessions.enrollment_seconds
        );
        env!(
            "GATEHOUSE_ARGON2_MEMORY_KIB",
            self.passwords.argon2_memory_kib
        );
        env!(
            "GATEHOUSE_ARGON2_ITERATIONS",
            self.passwords.argon2_iterations
        );
        env!("GATEHOUSE_PASSWORD_MIN_LENGTH", self.passwords.min_length);
        let certificate = lookup("GATEHOUSE_TLS_CERTIFICATE");
        let private_key = lookup("GATEHOUSE_TLS_PRIVATE_KEY");
        match (certificate, private_key) {
            (Some(certificate), Some(private_key)) => {
                self.tls = Some(TlsConfig {
                    certificate: certificate.into(),
                    private_key: private_key.into(),
                })
            }
            (None, None) => {}
            _ => {
                return Err(ConfigError::Invalid(
                    "set both GATEHOUSE_TLS_CERTIFICATE and GATEHOUSE_TLS_PRIVATE_KEY, or neither"
                        .to_owned(),
                ));
            }
        }
        Ok(())
    }

    /// Check values that types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.totp_policy()?;
        self.wrap_scheme()?;
        self.algorithm()?;
        if self.pkcs11.module.is_some() && self.pkcs11.pin_file.is_none() {
            return Err(ConfigError::Invalid(
                "a PKCS#11 module needs pkcs11.pin_file (GATEHOUSE_PIN_FILE)".to_owned(),
            ));
        }
        if self.tls.is_none() && !self.listen.ip().is_loopback() && !self.allow_plain_http {
            return Err(ConfigError::Invalid(format!(
                "refusing plain HTTP on {}: configure TLS, listen on a loopback address, \
                 or set allow_plain_http when a TLS proxy sits in front",
                self.listen
            )));
        }
        if self.lockout.max_failures == 0 || self.lockout.per_address_per_minute == 0 {
            return Err(ConfigError::Invalid(
                "lockout limits must be at least 1".to_owned(),
            ));
        }
        if self.sessions.enrollment_seconds == 0 || self.sessions.lifetime_seconds == 0 {
            return Err(ConfigError::Invalid(
                "session lifetimes must be positive".to_owned(),
            ));
        }
        if let Some(url) = &self.public_url {
            let valid = (url.starts_with("https://") || url.starts_with("http://"))
                && !url.contains(['?', '#', ' '])
                && url.len() <= 256;
            if !valid {
                return Err(ConfigError::Invalid(format!(
                    "public_url {url:?}: give an http(s) address without query or fragment, like https://mfa.example.com"
                )));
            }
        }
        if self.passwords.min_length < 8 {
            return Err(ConfigError::Invalid(
                "passwords.min_length must be at least 8".to_owned(),
            ));
        }
        Ok(())
    }

    pub fn totp_policy(&self) -> Result<TotpPolicy, ConfigError> {
        let policy = TotpPolicy {
            digits: self.totp.digits,
            period: self.totp.period,
            window: self.totp.window,
        };
        policy
            .validate()
            .map_err(|error| ConfigError::Invalid(format!("totp: {error}")))?;
        Ok(policy)
    }

    /// The configured wrap scheme; `None` for `auto`.
    pub fn wrap_scheme(&self) -> Result<Option<WrapScheme>, ConfigError> {
        match self.pkcs11.wrap_scheme.as_str() {
            "auto" | "" => Ok(None),
            other => other.parse().map(Some).map_err(|_| {
                ConfigError::Invalid(format!(
                    "pkcs11.wrap_scheme {other:?}: use auto, aes-kwp, aes-kw, aes-cbc-pad or rsa-oaep"
                ))
            }),
        }
    }

    pub fn algorithm(&self) -> Result<TotpAlgorithm, ConfigError> {
        self.totp.algorithm.parse().map_err(|_| {
            ConfigError::Invalid(format!(
                "totp.algorithm {:?}: use SHA1, SHA256 or SHA512",
                self.totp.algorithm
            ))
        })
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("gatehouse.db")
    }

    pub fn softhsm_dir(&self) -> PathBuf {
        self.data_dir.join("softhsm")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused() {
        let error = toml::from_str::<Config>("listen = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();
        assert!(error.to_string().contains("unknown field"), "{error}");
        let error = toml::from_str::<Config>("[totp]\ndigit = 6\n").unwrap_err();
        assert!(error.to_string().contains("unknown field"), "{error}");
    }

    #[test]
    fn file_then_environment() {
        let mut config: Config =
            toml::from_str("issuer = \"Example\"\n[totp]\ndigits = 8\n").unwrap();
        config
            .apply_environment(|name| (name == "GATEHOUSE_TOTP_DIGITS").then(|| "7".to_owned()))
            .unwrap();
        assert_eq!(config.issuer, "Example");
        assert_eq!(config.totp.digits, 7);
        assert_eq!(config.totp.period, 30);
        let bad = config
            .apply_environment(|name| (name == "GATEHOUSE_LISTEN").then(|| "nowhere".to_owned()));
        assert!(bad.unwrap_err().to_string().contains("GATEHOUSE_LISTEN"));
    }

    #[test]
    fn plain_http_only_on_loopback_unless_allowed() {
        let mut config = Config::default();
        assert!(config.validate().is_ok());
        config.listen = "0.0.0.0:8080".parse().unwrap();
        assert!(config.validate().is_err());
        config.allow_plain_http = true;
        assert!(config.validate().is_ok());
    }

    #[test]
    fn public_url_comes_from_the_environment_and_must_be_an_address() {
        let mut config = Config::default();
        config
            .apply_environment(|name| {
                (name == "GATEHOUSE_PUBLIC_URL").then(|| "https://mfa.example.com".to_owned())
            })
            .unwrap();
        assert_eq!(
            config.public_url.as_deref(),
            Some("https://mfa.example.com")
        );
        assert!(config.validate().is_ok());
        for bad in [
            "mfa.example.com",
            "https://mfa.example.com/?x=1",
            "ftp://mfa",
        ] {
            config.public_url = Some(bad.to_owned());
            assert!(config.validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn wrap_schemes_and_hot_keys_are_settings() {
        let mut config: Config =
            toml::from_str("[pkcs11]\nwrap_scheme = \"rsa-oaep\"\nhot_keys = 0\n").unwrap();
        assert_eq!(config.wrap_scheme().unwrap(), Some(WrapScheme::RsaOaep));
        assert_eq!(config.pkcs11.hot_keys, 0);
        config.pkcs11.wrap_scheme = "auto".to_owned();
        assert_eq!(config.wrap_scheme().unwrap(), None);
        config.pkcs11.wrap_scheme = "rot13".to_owned();
        assert!(config.validate().is_err());
    }

    #[test]
    fn a_module_needs_a_pin_file() {
        let mut config = Config::default();
        config.pkcs11.module = Some("/usr/lib/x.so".into());
        assert!(config.validate().is_err());
    }
}
