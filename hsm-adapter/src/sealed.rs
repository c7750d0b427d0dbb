//! The sealed seed record: what the database stores instead of a seed.
//!
//! A record names everything needed to verify it later: the key version that
//! wrapped it, the wrap scheme, the TOTP algorithm, the wrapped blob and a
//! binding tag. The tag is an HMAC-SHA256, computed inside the token with a
//! non-extractable binding key, over the owner and all other fields, so a
//! blob copied to another user's row, or any altered field, is refused before
//! the blob is ever unwrapped.
//!
//! Text form: `gh1:<key version>:<wrap scheme>:<algorithm>:<blob>:<tag>`,
//! blob and tag in unpadded base64url.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{Result, VaultError};

const FORMAT_PREFIX: &str = "gh1";
const BINDING_DOMAIN: &[u8] = b"gatehouse.seal.v1\0";
/// Longest blob accepted when parsing: a 64-byte seed wrapped with padding is
/// 72 bytes; RSA-wrapped blobs of future schemes stay under 512 bytes.
const MAX_BLOB_LEN: usize = 1024;
const TAG_LEN: usize = 32;
const MAX_OWNER_LEN: usize = 256;

/// The HMAC function of a TOTP credential (RFC 6238 allows these three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TotpAlgorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl TotpAlgorithm {
    pub const ALL: [TotpAlgorithm; 3] = [Self::Sha1, Self::Sha256, Self::Sha512];

    /// The seed length generated for new credentials: the hash's output size.
    pub fn seed_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }

    /// HMAC's block size: a key longer than this would be hashed first, so
    /// padding must never go past it.
    pub(crate) fn block_len(self) -> usize {
        match self {
            Self::Sha1 | Self::Sha256 => 64,
            Self::Sha512 => 128,
        }
    }

    /// Name as used in `otpauth://` URIs and in the record.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }
}

impl fmt::Display for TotpAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TotpAlgorithm {
    type Err = VaultError;
    fn from_str(text: &str) -> Result<Self> {
        match text.to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Ok(Self::Sha1),
            "SHA256" => Ok(Self::Sha256),
            "SHA512" => Ok(Self::Sha512),
            _ => Err(VaultError::MalformedRecord("unknown TOTP algorithm")),
        }
    }
}

/// How a seed blob was wrapped. Each record names its own scheme, so records
/// of different schemes verify side by side and rewrap moves them to the
/// current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WrapScheme {
    /// RFC 5649 AES key wrap with padding (`CKM_AES_KEY_WRAP_PAD`).
    AesKeyWrapPad,
    /// RFC 3394 AES key wrap (`CKM_AES_KEY_WRAP`); the seed is zero-padded to
    /// a multiple of 8 bytes first.
    AesKeyWrap,
    /// AES-CBC with PKCS#7 padding (`CKM_AES_CBC_PAD`); the blob is the IV
    /// followed by the ciphertext. It has no integrity of its own: the
    /// binding tag, checked before any unwrap, is what refuses a tampered
    /// blob.
    AesCbcPad,
    /// RSA-OAEP with SHA-1 (`CKM_RSA_PKCS_OAEP`) under a token RSA key pair:
    /// seeds are sealed on the host with the public key, so the clear seed
    /// never crosses the PKCS#11 boundary; only the token's sensitive,
    /// never-extractable private key unwraps them.
    RsaOaep,
}

impl WrapScheme {
    /// Every scheme, best first: the order negotiation picks in.
    pub const PREFERENCE: [WrapScheme; 4] = [
        Self::AesKeyWrapPad,
        Self::AesKeyWrap,
        Self::AesCbcPad,
        Self::RsaOaep,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AesKeyWrapPad => "aes-kwp",
            Self::AesKeyWrap => "aes-kw",
            Self::AesCbcPad => "aes-cbc-pad",
            Self::RsaOaep => "rsa-oaep",
        }
    }

    /// The PKCS#11 mechanism name, for status output.
    pub fn mechanism_name(self) -> &'static str {
        match self {
            Self::AesKeyWrapPad => "CKM_AES_KEY_WRAP_PAD",
            Self::AesKeyWrap => "CKM_AES_KEY_WRAP",
            Self::AesCbcPad => "CKM_AES_CBC_PAD",
            Self::RsaOaep => "CKM_RSA_PKCS_OAEP",
        }
    }

    /// Whether this scheme wraps under an RSA key pair (else an AES key).
    pub fn uses_rsa(self) -> bool {
        matches!(self, Self::RsaOaep)
    }
}

impl fmt::Display for WrapScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WrapScheme {
    type Err = VaultError;
    fn from_str(text: &str) -> Result<Self> {
        Self::PREFERENCE
            .into_iter()
            .find(|scheme| scheme.as_str() == text)
            .ok_or(VaultError::MalformedRecord("unknown wrap scheme"))
    }
}

/// Whom a sealed seed belongs to, e.g. `user:42/authenticator:7`. The binding
/// tag covers it, so a record only verifies for the owner it was sealed for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner(String);

impl Owner {
    pub fn new(owner: impl Into<String>) -> Result<Self> {
        let owner = owner.into();
        if owner.is_empty() || owner.len() > MAX_OWNER_LEN {
            return Err(VaultError::InvalidRequest(
                "owner must be 1 to 256 bytes long",
            ));
        }
        Ok(Owner(owner))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A seed as stored at rest: wrapped by a token key and bound to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSeed {
    pub key_version: u32,
    pub wrap: WrapScheme,
    pub algorithm: TotpAlgorithm,
    pub blob: Vec<u8>,
    pub tag: Vec<u8>,
}

impl SealedSeed {
    /// The bytes this record's binding tag covers for `owner`.
    pub fn binding_message_for(&self, owner: &Owner) -> Vec<u8> {
        Self::binding_message(
            owner,
            self.key_version,
            self.wrap,
            self.algorithm,
            &self.blob,
        )
    }

    /// The bytes the binding tag is computed over. Every field is
    /// length-prefixed, so no two different inputs encode alike.
    pub(crate) fn binding_message(
        owner: &Owner,
        key_version: u32,
        wrap: WrapScheme,
        algorithm: TotpAlgorithm,
        blob: &[u8],
    ) -> Vec<u8> {
        let mut message =
            Vec::with_capacity(BINDING_DOMAIN.len() + 64 + owner.0.len() + blob.len());
        message.extend_from_slice(BINDING_DOMAIN);
        push_field(&mut message, owner.0.as_bytes());
        message.extend_from_slice(&key_version.to_be_bytes());
        push_field(&mut message, wrap.as_str().as_bytes());
        push_field(&mut message, algorithm.as_str().as_bytes());
        push_field(&mut message, blob);
        message
    }
}

fn push_field(message: &mut Vec<u8>, field: &[u8]) {
    // Fields are bounded far below u32::MAX by the parser and `Owner::new`.
    message.extend_from_slice(&(field.len() as u32).to_be_bytes());
    message.extend_from_slice(field);
}

impl fmt::Display for SealedSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{FORMAT_PREFIX}:{}:{}:{}:{}:{}",
            self.key_version,
            self.wrap,
            self.algorithm,
            URL_SAFE_NO_PAD.encode(&self.blob),
            URL_SAFE_NO_PAD.encode(&self.tag)
        )
    }
}

impl FromStr for SealedSeed {
    type Err = VaultError;

    fn from_str(text: &str) -> Result<Self> {
        if text.len() > 4 * MAX_BLOB_LEN {
            return Err(VaultError::MalformedRecord("record too long"));
        }
        let fields: Vec<&str> = text.split(':').collect();
        let [prefix, key_version, wrap, algorithm, blob, tag] = fields.as_slice() else {
            return Err(VaultError::MalformedRecord("wrong number of fields"));
        };
        if *prefix != FORMAT_PREFIX {
            return Err(VaultError::MalformedRecord("unknown record format"));
        }
        let key_version: u32 = key_version
            .parse()
            .map_err(|_| VaultError::MalformedRecord("key version is not a number"))?;
        if key_version == 0 {
            return Err(VaultError::MalformedRecord("key version 0 does not exist"));
        }
        let blob = URL_SAFE_NO_PAD
            .decode(blob)
            .map_err(|_| VaultError::MalformedRecord("blob is not base64url"))?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| VaultError::MalformedRecord("tag is not base64url"))?;
        if blob.is_empty() || blob.len() > MAX_BLOB_LEN {
            return Err(VaultError::MalformedRecord("blob has an impossible length"));
        }
        if tag.len() != TAG_LEN {
            return Err(VaultError::MalformedRecord("tag has the wrong length"));
        }
        Ok(SealedSeed {
            key_version,
            wrap: wrap.parse()?,
            algorithm: algorithm.parse()?,
            blob,
            tag,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SealedSeed {
        SealedSeed {
            key_version: 3,
            wrap: WrapScheme::AesKeyWrapPad,
            algorithm: TotpAlgorithm::Sha256,
            blob: vec![1, 2, 3, 250, 251],
            tag: vec![9; TAG_LEN],
        }
    }

    #[test]
    fn text_form_round_trips() {
        let record = sample();
        let text = record.to_string();
        assert!(text.starts_with("gh1:3:aes-kwp:SHA256:"));
        assert_eq!(text.parse::<SealedSeed>().unwrap(), record);
    }

    #[test]
    fn hostile_text_is_refused_with_a_reason() {
        for bad in [
            "",
            "gh1",
            "gh2:1:aes-kwp:SHA1:AQID:CQkJ",
            "gh1:0:aes-kwp:SHA1:AQID:CQkJ",
            "gh1:x:aes-kwp:SHA1:AQID:CQkJ",
            "gh1:1:des:SHA1:AQID:CQkJ",
            "gh1:1:aes-kwp:MD5:AQID:CQkJ",
            "gh1:1:aes-kwp:SHA1:!!!:CQkJ",
            "gh1:1:aes-kwp:SHA1:AQID:CQkJ",
            "gh1:1:aes-kwp:SHA1:AQID:CQkJ:extra",
        ] {
            assert!(
                matches!(
                    bad.parse::<SealedSeed>(),
                    Err(VaultError::MalformedRecord(_))
                ),
                "{bad:?} was accepted"
            );
        }
        let huge = format!("gh1:1:aes-kwp:SHA1:{}:CQkJ", "A".repeat(10_000));
        assert!(huge.parse::<SealedSeed>().is_err());
    }

    #[test]
    fn binding_message_separates_fields() {
        let a = SealedSeed::binding_message(
            &Owner::new("ab").unwrap(),
            1,
            WrapScheme::AesKeyWrapPad,
            TotpAlgorithm::Sha1,
            b"c",
        );
        let b = SealedSeed::binding_message(
            &Owner::new("a").unwrap(),
            1,
            WrapScheme::AesKeyWrapPad,
            TotpAlgorithm::Sha1,
            b"bc",
        );
        assert_ne!(a, b);
    }

    #[test]
    fn owners_are_bounded() {
        assert!(Owner::new("").is_err());
        assert!(Owner::new("x".repeat(257)).is_err());
        assert!(Owner::new("user:1/authenticator:1").is_ok());
    }
}
