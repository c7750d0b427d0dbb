//! What the token looks like: module, token, mechanisms and key versions.

use cryptoki::mechanism::MechanismType;
use cryptoki::session::Session;

use crate::connection::Connection;
use crate::error::{Result, VaultError};
use crate::keys::{self, KeyAttributes, KeyRing, KeyRole};

/// Mechanisms the vault needs whatever the wrap scheme, with what it needs
/// each for. (The wrap schemes are negotiated: see `Health::wrap_scheme`.)
pub const REQUIRED_MECHANISMS: &[(MechanismType, &str)] = &[
    (MechanismType::GENERIC_SECRET_KEY_GEN, "create binding keys"),
    (MechanismType::SHA256_HMAC, "binding tags, SHA-256 codes"),
    (MechanismType::SHA1_HMAC, "SHA-1 codes"),
    (MechanismType::SHA512_HMAC, "SHA-512 codes"),
];

/// A report on the module, the token and the vault's keys.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Health {
    pub module: ModuleReport,
    pub token: TokenReport,
    pub mechanisms: Vec<MechanismReport>,
    /// The wrap schemes the token carries, best first.
    pub wrap_schemes_offered: Vec<&'static str>,
    /// The scheme new seals use (under the active key version), if any.
    pub wrap_scheme: Option<&'static str>,
    /// Why that scheme, or why none.
    pub wrap_scheme_reason: String,
    /// The shortest HMAC key the token takes for SHA-1, SHA-256, SHA-512.
    pub hmac_min_key_bytes: [usize; 3],
    pub active_key_version: Option<u32>,
    pub key_versions: Vec<KeyVersionReport>,
    /// Versions with only one of their two keys (a failed keygen).
    pub incomplete_key_versions: Vec<u32>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ModuleReport {
    pub path: String,
    pub manufacturer: String,
    pub description: String,
    pub library_version: String,
    pub cryptoki_version: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenReport {
    pub label: String,
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct MechanismReport {
    pub name: String,
    pub purpose: &'static str,
    pub present: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyVersionReport {
    pub version: u32,
    /// `AES-256` or `RSA-2048`.
    pub wrap_kind: String,
    pub wrap_key: KeyReport,
    pub bind_key: KeyReport,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyReport {
    pub label: String,
    pub sensitive: bool,
    pub extractable: bool,
    pub always_sensitive: bool,
    pub never_extractable: bool,
    pub wrap: bool,
    pub unwrap: bool,
    pub sign: bool,
    pub verify: bool,
}

impl KeyReport {
    fn new(label: String, attributes: KeyAttributes) -> Self {
        KeyReport {
            label,
            sensitive: attributes.sensitive,
            extractable: attributes.extractable,
            always_sensitive: attributes.always_sensitive,
            never_extractable: attributes.never_extractable,
            wrap: attributes.wrap,
            unwrap: attributes.unwrap,
            sign: attributes.sign,
            verify: attributes.verify,
        }
    }

    /// Sensitive and never extractable: the key's value cannot leave the token.
    pub fn is_protected(&self) -> bool {
        self.sensitive && !self.extractable && self.never_extractable
    }
}

impl Health {
    /// Every required mechanism present, an active key version, and every
    /// key protected.
    pub fn is_healthy(&self) -> bool {
        self.mechanisms.iter().all(|m| m.present)
            && self.active_key_version.is_some()
            && self.wrap_scheme.is_some()
            && self
                .key_versions
                .iter()
                .all(|v| v.wrap_key.is_protected() && v.bind_key.is_protected())
    }

    /// The required mechanisms the token lacks.
    pub fn missing_mechanisms(&self) -> Vec<&str> {
        self.mechanisms
            .iter()
            .filter(|m| !m.present)
            .map(|m| m.name.as_str())
            .collect()
    }
}

pub(crate) fn report(session: &Session, connection: &Connection) -> Result<Health> {
    let ring = connection.read_keys().clone();
    build(session, connection, &ring)
}

pub(crate) fn build(session: &Session, connection: &Connection, ring: &KeyRing) -> Result<Health> {
    let info = connection
        .pkcs11
        .get_library_info()
        .map_err(VaultError::pkcs11)?;
    let module = ModuleReport {
        path: connection.module_path().display().to_string(),
        manufacturer: info.manufacturer_id().trim_end().to_owned(),
        description: info.library_description().trim_end().to_owned(),
        library_version: info.library_version().to_string(),
        cryptoki_version: info.cryptoki_version().to_string(),
    };
    let token = match connection.pkcs11.get_token_info(connection.slot) {
        Ok(info) => TokenReport {
            label: info.label().trim_end().to_owned(),
            manufacturer: info.manufacturer_id().trim_end().to_owned(),
            model: info.model().trim_end().to_owned(),
            serial: info.serial_number().trim_end().to_owned(),
        },
        Err(_) => TokenReport {
            label: crate::module::token_label(
                &connection.pkcs11,
                connection.module_path(),
                connection.slot,
            )?
            .unwrap_or_default(),
            manufacturer: "(unreadable token info)".to_owned(),
            model: String::new(),
            serial: String::new(),
        },
    };
    let mechanisms = REQUIRED_MECHANISMS
        .iter()
        .map(|(mechanism, purpose)| MechanismReport {
            name: mechanism.to_string(),
            purpose,
            present: connection.mechanisms.contains(mechanism),
        })
        .collect();
    let mut key_versions = Vec::new();
    for (version, pair) in ring.versions() {
        key_versions.push(KeyVersionReport {
            version,
            wrap_kind: pair.wrap.kind().to_string(),
            wrap_key: KeyReport::new(
                KeyRole::Wrap.label(version),
                keys::read_key_attributes(session, pair.wrap.unwrapping())?,
            ),
            bind_key: KeyReport::new(
                KeyRole::Bind.label(version),
                keys::read_key_attributes(session, pair.bind)?,
            ),
        });
    }
    let abilities = &connection.tokens;
    let (wrap_scheme, wrap_scheme_reason) = match ring.active() {
        Ok((version, pair)) => match abilities.seal_scheme(pair.wrap.kind()) {
            Ok(scheme) => (
                Some(scheme.as_str()),
                format!(
                    "{} under key version {version} ({}): {}",
                    scheme.mechanism_name(),
                    pair.wrap.kind(),
                    match abilities.preferred {
                        Some(_) => "the scheme configured",
                        None => "the best scheme the token offers for this key",
                    }
                ),
            ),
            Err(error) => (None, error.to_string()),
        },
        Err(_) => match abilities.keygen_scheme() {
            Ok(scheme) => (
                None,
                format!(
                    "no key version yet; keygen would make one for {} ({})",
                    scheme.as_str(),
                    scheme.mechanism_name()
                ),
            ),
            Err(error) => (None, error.to_string()),
        },
    };
    Ok(Health {
        module,
        token,
        mechanisms,
        wrap_schemes_offered: abilities.schemes.iter().map(|s| s.as_str()).collect(),
        wrap_scheme,
        wrap_scheme_reason,
        hmac_min_key_bytes: abilities.hmac_min,
        active_key_version: ring.active().ok().map(|(version, _)| version),
        key_versions,
        incomplete_key_versions: ring.incomplete().to_vec(),
    })
}
