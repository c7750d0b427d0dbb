//! The vault's token keys: one wrapping key and one binding key per version.
//!
//! Version N is a wrapping key labelled `gatehouse-wrap-vN` and a binding key
//! `gatehouse-bind-vN` (HMAC-SHA256 generic secret, sign/verify only). The
//! wrapping key is AES-256 (wrap/unwrap only) for the AES schemes, or an
//! RSA-2048 key pair for RSA-OAEP: a private key that only unwraps and a
//! public key that only wraps (its value is read once, to seal on the host).
//! Secret and private keys are sensitive and never extractable. The active
//! version, used for new seals and rewraps, is the highest complete pair.

use std::collections::BTreeMap;
use std::sync::Arc;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use crate::error::{Result, VaultError};

const WRAP_PREFIX: &str = "gatehouse-wrap-v";
const BIND_PREFIX: &str = "gatehouse-bind-v";
const KEY_LEN: u64 = 32;
const RSA_BITS: u64 = 2048;

/// Which kind of wrapping key a version has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrapKind {
    /// AES-256: `aes-kwp`, `aes-kw`, `aes-cbc-pad`.
    Aes,
    /// RSA-2048 key pair: `rsa-oaep`.
    Rsa,
}

impl WrapKind {
    pub fn of(scheme: crate::WrapScheme) -> WrapKind {
        if scheme.uses_rsa() {
            WrapKind::Rsa
        } else {
            WrapKind::Aes
        }
    }
}

impl std::fmt::Display for WrapKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WrapKind::Aes => "AES-256",
            WrapKind::Rsa => "RSA-2048",
        })
    }
}

/// The wrapping half of a key version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WrapKey {
    Aes(ObjectHandle),
    Rsa {
        private: ObjectHandle,
        public: ObjectHandle,
        /// The public key's value, to seal on the host.
        public_key: Arc<rsa::RsaPublicKey>,
    },
}

impl WrapKey {
    /// The object that unwraps: the AES key, or the RSA private key.
    pub fn unwrapping(&self) -> ObjectHandle {
        match self {
            WrapKey::Aes(handle) => *handle,
            WrapKey::Rsa { private, .. } => *private,
        }
    }

    /// The object that wraps inside the token: the AES key, or the RSA
    /// public key.
    pub fn wrapping(&self) -> ObjectHandle {
        match self {
            WrapKey::Aes(handle) => *handle,
            WrapKey::Rsa { public, .. } => *public,
        }
    }

    pub fn kind(&self) -> WrapKind {
        match self {
            WrapKey::Aes(_) => WrapKind::Aes,
            WrapKey::Rsa { .. } => WrapKind::Rsa,
        }
    }
}

/// Which half of a key version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    Wrap,
    Bind,
}

impl KeyRole {
    pub(crate) fn label(self, version: u32) -> String {
        match self {
            KeyRole::Wrap => format!("{WRAP_PREFIX}{version}"),
            KeyRole::Bind => format!("{BIND_PREFIX}{version}"),
        }
    }

    fn parse_label(label: &str) -> Option<(KeyRole, u32)> {
        let (role, number) = if let Some(number) = label.strip_prefix(WRAP_PREFIX) {
            (KeyRole::Wrap, number)
        } else {
            (KeyRole::Bind, label.strip_prefix(BIND_PREFIX)?)
        };
        let version: u32 = number.parse().ok()?;
        (version > 0 && number == version.to_string()).then_some((role, version))
    }
}

/// The two token keys of one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyPair {
    pub wrap: WrapKey,
    pub bind: ObjectHandle,
}

/// Handles of every gatehouse key on the token, by version.
#[derive(Debug, Default, Clone)]
pub(crate) struct KeyRing {
    pairs: BTreeMap<u32, KeyPair>,
    /// Versions with only one of their two keys: reported, never used.
    incomplete: Vec<u32>,
    highest_seen: u32,
}

impl KeyRing {
    /// Read every gatehouse key's handle from the token.
    pub fn scan(session: &Session) -> Result<KeyRing> {
        let mut aes = BTreeMap::new();
        let mut privates = BTreeMap::new();
        let mut publics = BTreeMap::new();
        let mut binds = BTreeMap::new();
        // One search per class, reading only labels: some tokens
        // (opencryptoki) refuse to report CKA_CLASS of a sensitive key.
        for class in [
            ObjectClass::SECRET_KEY,
            ObjectClass::PRIVATE_KEY,
            ObjectClass::PUBLIC_KEY,
        ] {
            let handles = session
                .find_objects(&[Attribute::Class(class), Attribute::Token(true)])
                .map_err(VaultError::pkcs11)?;
            for handle in handles {
                let attributes = session
                    .get_attributes(handle, &[AttributeType::Label])
                    .map_err(VaultError::pkcs11)?;
                let Some(Attribute::Label(label)) = attributes.first() else {
                    continue;
                };
                let Some((role, version)) = KeyRole::parse_label(&String::from_utf8_lossy(label))
                else {
                    continue;
                };
                let table = match (role, class) {
                    (KeyRole::Wrap, ObjectClass::SECRET_KEY) => &mut aes,
                    (KeyRole::Wrap, ObjectClass::PRIVATE_KEY) => &mut privates,
                    (KeyRole::Wrap, ObjectClass::PUBLIC_KEY) => &mut publics,
                    (KeyRole::Bind, ObjectClass::SECRET_KEY) => &mut binds,
                    _ => continue,
                };
                table.insert(version, handle);
            }
        }
        let mut wraps = BTreeMap::new();
        for (version, handle) in aes {
            wraps.insert(version, WrapKey::Aes(handle));
        }
        for (version, private) in privates {
            if let Some(&public) = publics.get(&version) {
                let public_key = Arc::new(read_rsa_public_key(session, public)?);
                wraps.insert(
                    version,
                    WrapKey::Rsa {
                        private,
                        public,
                        public_key,
                    },
                );
            }
        }
        let mut ring = KeyRing::default();
        for (&version, wrap) in &wraps {
            ring.highest_seen = ring.highest_seen.max(version);
            match binds.get(&version) {
                Some(&bind) => {
                    let wrap = wrap.clone();
                    ring.pairs.insert(version, KeyPair { wrap, bind });
                }
                None => ring.incomplete.push(version),
            }
        }
        for &version in binds.keys() {
            ring.highest_seen = ring.highest_seen.max(version);
            if !wraps.contains_key(&version) {
                ring.incomplete.push(version);
            }
        }
        ring.incomplete.sort_unstable();
        Ok(ring)
    }

    pub fn get(&self, version: u32) -> Option<KeyPair> {
        self.pairs.get(&version).cloned()
    }

    pub fn active(&self) -> Result<(u32, KeyPair)> {
        self.pairs
            .iter()
            .next_back()
            .map(|(&version, pair)| (version, pair.clone()))
            .ok_or(VaultError::NoKeys)
    }

    pub fn versions(&self) -> impl Iterator<Item = (u32, &KeyPair)> + '_ {
        self.pairs.iter().map(|(&version, pair)| (version, pair))
    }

    pub fn incomplete(&self) -> &[u32] {
        &self.incomplete
    }

    /// The version a new key pair gets: above every version ever seen, even
    /// half-made ones, so a label is never reused.
    pub fn next_version(&self) -> u32 {
        self.highest_seen + 1
    }

    pub fn insert(&mut self, version: u32, pair: KeyPair) {
        self.highest_seen = self.highest_seen.max(version);
        self.pairs.insert(version, pair);
    }
}

/// Generate key version `version` on the token, with a wrapping key of
/// `kind`, and check what the token made.
pub(crate) fn generate_pair(session: &Session, version: u32, kind: WrapKind) -> Result<KeyPair> {
    let wrap = match kind {
        WrapKind::Aes => WrapKey::Aes(generate_key(session, KeyRole::Wrap, version)?),
        WrapKind::Rsa => generate_rsa_pair(session, version)?,
    };
    let bind = match generate_key(session, KeyRole::Bind, version) {
        Ok(bind) => bind,
        Err(error) => {
            if let WrapKey::Rsa { public, .. } = &wrap {
                let _ = session.destroy_object(*public);
            }
            let _ = session.destroy_object(wrap.unwrapping());
            return Err(error);
        }
    };
    Ok(KeyPair { wrap, bind })
}

fn ensure_label_free(session: &Session, label: &[u8], version: u32) -> Result<()> {
    // Labels name versions, so a version must never be made twice.
    if session
        .find_objects(&[Attribute::Label(label.to_vec())])
        .map_err(VaultError::pkcs11)?
        .is_empty()
    {
        Ok(())
    } else {
        Err(VaultError::KeyVersionTaken(version))
    }
}

/// An RSA key pair whose private half only unwraps (sensitive, never
/// extractable) and whose public half only wraps.
fn generate_rsa_pair(session: &Session, version: u32) -> Result<WrapKey> {
    let label = KeyRole::Wrap.label(version).into_bytes();
    ensure_label_free(session, &label, version)?;
    let public_template = [
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::ModulusBits(RSA_BITS.into()),
        Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
        Attribute::Wrap(true),
        Attribute::Encrypt(false),
        Attribute::Verify(false),
        Attribute::Label(label.clone()),
        Attribute::Id(label.clone()),
    ];
    let private_template = [
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Unwrap(true),
        Attribute::Decrypt(false),
        Attribute::Sign(false),
        Attribute::Derive(false),
        Attribute::Label(label.clone()),
        Attribute::Id(label),
    ];
    let (public, private) = session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &public_template,
            &private_template,
        )
        .map_err(VaultError::pkcs11)?;
    let destroy = || {
        let _ = session.destroy_object(public);
        let _ = session.destroy_object(private);
    };
    let attributes = read_key_attributes(session, private)?;
    let as_asked = attributes.sensitive
        && !attributes.extractable
        && attributes.never_extractable
        && attributes.unwrap
        && !attributes.decrypt
        && !attributes.sign;
    if !as_asked {
        destroy();
        return Err(VaultError::KeyPolicyViolated(format!(
            "the private key of {} came back as {attributes}",
            KeyRole::Wrap.label(version)
        )));
    }
    let public_key = match read_rsa_public_key(session, public) {
        Ok(key) => key,
        Err(error) => {
            destroy();
            return Err(error);
        }
    };
    let twins = session
        .find_objects(&[
            Attribute::Label(KeyRole::Wrap.label(version).into_bytes()),
            Attribute::Class(ObjectClass::PRIVATE_KEY),
        ])
        .map_err(VaultError::pkcs11)?;
    if twins.len() > 1 {
        destroy();
        return Err(VaultError::KeyVersionTaken(version));
    }
    Ok(WrapKey::Rsa {
        private,
        public,
        public_key: Arc::new(public_key),
    })
}

/// The value of a token RSA public key.
fn read_rsa_public_key(session: &Session, public: ObjectHandle) -> Result<rsa::RsaPublicKey> {
    let attributes = session
        .get_attributes(
            public,
            &[AttributeType::Modulus, AttributeType::PublicExponent],
        )
        .map_err(VaultError::pkcs11)?;
    let (mut modulus, mut exponent) = (None, None);
    for attribute in attributes {
        match attribute {
            Attribute::Modulus(value) => modulus = Some(value),
            Attribute::PublicExponent(value) => exponent = Some(value),
            _ => {}
        }
    }
    let (Some(modulus), Some(exponent)) = (modulus, exponent) else {
        return Err(VaultError::KeyPolicyViolated(
            "an RSA public key without modulus or exponent".to_owned(),
        ));
    };
    rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(&modulus),
        rsa::BigUint::from_bytes_be(&exponent),
    )
    .map_err(|error| VaultError::KeyPolicyViolated(format!("a token RSA public key: {error}")))
}

fn generate_key(session: &Session, role: KeyRole, version: u32) -> Result<ObjectHandle> {
    let label = role.label(version).into_bytes();
    ensure_label_free(session, &label, version)?;
    let (mechanism, key_type, wrap, sign) = match role {
        KeyRole::Wrap => (Mechanism::AesKeyGen, KeyType::AES, true, false),
        KeyRole::Bind => (
            Mechanism::GenericSecretKeyGen,
            KeyType::GENERIC_SECRET,
            false,
            true,
        ),
    };
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(key_type),
        Attribute::ValueLen(KEY_LEN.into()),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Wrap(wrap),
        Attribute::Unwrap(wrap),
        Attribute::Sign(sign),
        Attribute::Verify(sign),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Derive(false),
        Attribute::Label(label.clone()),
        Attribute::Id(label),
    ];
    let handle = session
        .generate_key(&mechanism, &template)
        .map_err(VaultError::pkcs11)?;
    let attributes = read_key_attributes(session, handle)?;
    let as_asked = attributes.sensitive
        && !attributes.extractable
        && attributes.never_extractable
        && attributes.wrap == wrap
        && attributes.unwrap == wrap
        && attributes.sign == sign
        && attributes.verify == sign
        && !attributes.encrypt
        && !attributes.decrypt;
    if !as_asked {
        let _ = session.destroy_object(handle);
        return Err(VaultError::KeyPolicyViolated(format!(
            "{} came back as {attributes}",
            role.label(version)
        )));
    }
    // Another process may have made the same version at the same moment.
    let twins = session
        .find_objects(&[Attribute::Label(role.label(version).into_bytes())])
        .map_err(VaultError::pkcs11)?;
    if twins.len() > 1 {
        let _ = session.destroy_object(handle);
        return Err(VaultError::KeyVersionTaken(version));
    }
    Ok(handle)
}

/// What a key's attributes say about how it may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyAttributes {
    pub sensitive: bool,
    pub extractable: bool,
    pub always_sensitive: bool,
    pub never_extractable: bool,
    pub wrap: bool,
    pub unwrap: bool,
    pub sign: bool,
    pub verify: bool,
    pub encrypt: bool,
    pub decrypt: bool,
}

impl std::fmt::Display for KeyAttributes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let flag = |on: bool, name: &'static str| if on { name } else { "" };
        let names: Vec<&str> = [
            flag(self.sensitive, "sensitive"),
            flag(self.extractable, "extractable"),
            flag(self.never_extractable, "never-extractable"),
            flag(self.wrap, "wrap"),
            flag(self.unwrap, "unwrap"),
            flag(self.sign, "sign"),
            flag(self.verify, "verify"),
            flag(self.encrypt, "encrypt"),
            flag(self.decrypt, "decrypt"),
        ]
        .into_iter()
        .filter(|name| !name.is_empty())
        .collect();
        write!(f, "[{}]", names.join(" "))
    }
}

/// Just `Sensitive` and `Extractable`: the check made after every unwrap,
/// kept to one small `C_GetAttributeValue` because it is on the hot path.
pub(crate) fn read_protection(session: &Session, handle: ObjectHandle) -> Result<Protection> {
    let attributes = session
        .get_attributes(
            handle,
            &[AttributeType::Sensitive, AttributeType::Extractable],
        )
        .map_err(VaultError::pkcs11)?;
    let mut protection = Protection {
        sensitive: false,
        extractable: true,
    };
    for attribute in attributes {
        match attribute {
            Attribute::Sensitive(on) => protection.sensitive = on,
            Attribute::Extractable(on) => protection.extractable = on,
            _ => {}
        }
    }
    Ok(protection)
}

/// Whether a key's value can be read or exported. Absent attributes count
/// as unprotected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Protection {
    pub sensitive: bool,
    pub extractable: bool,
}

pub(crate) fn read_key_attributes(
    session: &Session,
    handle: ObjectHandle,
) -> Result<KeyAttributes> {
    let attributes = session
        .get_attributes(
            handle,
            &[
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::AlwaysSensitive,
                AttributeType::NeverExtractable,
                AttributeType::Wrap,
                AttributeType::Unwrap,
                AttributeType::Sign,
                AttributeType::Verify,
                AttributeType::Encrypt,
                AttributeType::Decrypt,
            ],
        )
        .map_err(VaultError::pkcs11)?;
    let mut result = KeyAttributes::default();
    for attribute in attributes {
        match attribute {
            Attribute::Sensitive(on) => result.sensitive = on,
            Attribute::Extractable(on) => result.extractable = on,
            Attribute::AlwaysSensitive(on) => result.always_sensitive = on,
            Attribute::NeverExtractable(on) => result.never_extractable = on,
            Attribute::Wrap(on) => result.wrap = on,
            Attribute::Unwrap(on) => result.unwrap = on,
            Attribute::Sign(on) => result.sign = on,
            Attribute::Verify(on) => result.verify = on,
            Attribute::Encrypt(on) => result.encrypt = on,
            Attribute::Decrypt(on) => result.decrypt = on,
            _ => {}
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_strangers_are_ignored() {
        assert_eq!(
            KeyRole::parse_label("gatehouse-wrap-v12"),
            Some((KeyRole::Wrap, 12))
        );
        assert_eq!(
            KeyRole::parse_label("gatehouse-bind-v1"),
            Some((KeyRole::Bind, 1))
        );
        for stranger in [
            "gatehouse-wrap-v0",
            "gatehouse-wrap-v01",
            "gatehouse-bind-v",
            "other",
            "gatehouse-wrap-v-1",
        ] {
            assert_eq!(KeyRole::parse_label(stranger), None, "{stranger}");
        }
        assert_eq!(KeyRole::Wrap.label(3), "gatehouse-wrap-v3");
    }
}
