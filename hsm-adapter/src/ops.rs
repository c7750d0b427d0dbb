//! The vault's operations on one token session.
//!
//! Each function here runs on a worker thread that owns `session`. Seeds
//! exist in host memory only in `seal` (the enrollment moment, when the
//! person must see the seed once) and there only in `Zeroizing` buffers; every
//! other operation works on wrapped blobs and token-side session keys.

use std::sync::atomic::{AtomicU64, Ordering};

use cryptoki::error::{Error as CryptokiError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::connection::Connection;
use crate::error::{Result, VaultError};
use crate::keys::{self, KeyPair};
use crate::sealed::{Owner, SealedSeed, TotpAlgorithm, WrapScheme};
use crate::totp::{self, TotpPolicy};

/// PKCS#11 calls made by completed operations, and verifications, since the
/// process started: for benchmarks and health output.
static TOKEN_CALLS: AtomicU64 = AtomicU64::new(0);
static VERIFICATIONS: AtomicU64 = AtomicU64::new(0);

fn count_calls(calls: u64) {
    TOKEN_CALLS.fetch_add(calls, Ordering::Relaxed);
}

/// Counters of the vault's work in this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TokenStats {
    /// PKCS#11 calls made by completed operations.
    pub token_calls: u64,
    /// Codes verified (right or wrong).
    pub verifications: u64,
}

pub(crate) fn stats() -> TokenStats {
    TokenStats {
        token_calls: TOKEN_CALLS.load(Ordering::Relaxed),
        verifications: VERIFICATIONS.load(Ordering::Relaxed),
    }
}

/// Shortest seed accepted for sealing: RFC 4226 requires 128 bits; 80-bit
/// (10-byte) seeds are still common in the wild and are accepted.
const MIN_SEED_LEN: usize = 10;

/// The wrap scheme for new seals on this token.
const WRAP_SCHEME: WrapScheme = WrapScheme::AesKeyWrapPad;

fn wrap_mechanism(scheme: WrapScheme) -> Mechanism<'static> {
    match scheme {
        WrapScheme::AesKeyWrapPad => Mechanism::AesKeyWrapPad,
    }
}

pub(crate) fn hmac_mechanism(algorithm: TotpAlgorithm) -> Mechanism<'static> {
    match algorithm {
        TotpAlgorithm::Sha1 => Mechanism::Sha1Hmac,
        TotpAlgorithm::Sha256 => Mechanism::Sha256Hmac,
        TotpAlgorithm::Sha512 => Mechanism::Sha512Hmac,
    }
}

/// A session object that is destroyed when it goes out of scope, whatever
/// happens in between.
struct SessionKey<'s> {
    session: &'s Session,
    handle: ObjectHandle,
}

impl Drop for SessionKey<'_> {
    fn drop(&mut self) {
        if let Err(error) = self.session.destroy_object(self.handle) {
            tracing::warn!(%error, "could not destroy a session key; it dies with the session");
        }
    }
}

/// A fresh seed from the token's random generator.
pub(crate) fn generate_seed(
    session: &Session,
    algorithm: TotpAlgorithm,
) -> Result<Zeroizing<Vec<u8>>> {
    let mut seed = Zeroizing::new(vec![0u8; algorithm.seed_len()]);
    session
        .generate_random_slice(&mut seed)
        .map_err(VaultError::pkcs11)?;
    count_calls(1);
    Ok(seed)
}

/// Wrap `seed` under the active key version and bind it to `owner`.
pub(crate) fn seal(
    session: &Session,
    connection: &Connection,
    owner: &Owner,
    algorithm: TotpAlgorithm,
    seed: &[u8],
) -> Result<SealedSeed> {
    if seed.len() < MIN_SEED_LEN || seed.len() > algorithm.block_len() {
        return Err(VaultError::InvalidRequest(
            "the seed must be between 10 bytes and the hash's block size",
        ));
    }
    let (key_version, pair) = connection.active_pair()?;
    // Zero-pad to the token's minimum HMAC key length: HMAC pads keys with
    // zeros to its block size anyway, so the codes are unchanged.
    let mut padded = Zeroizing::new(seed.to_vec());
    if padded.len() < algorithm.min_token_key_len() {
        padded.resize(algorithm.min_token_key_len(), 0);
    }
    let mut template = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(true),
        Attribute::Sign(true),
        Attribute::Value(padded.to_vec()),
    ];
    let created = session.create_object(&template);
    for attribute in &mut template {
        if let Attribute::Value(value) = attribute {
            value.zeroize();
        }
    }
    let seed_key = SessionKey {
        session,
        handle: created.map_err(VaultError::pkcs11)?,
    };
    let blob = session
        .wrap_key(&wrap_mechanism(WRAP_SCHEME), pair.wrap, seed_key.handle)
        .map_err(VaultError::pkcs11)?;
    drop(seed_key);
    count_calls(3);
    finish_seal(session, owner, key_version, pair, algorithm, blob)
}

fn finish_seal(
    session: &Session,
    owner: &Owner,
    key_version: u32,
    pair: KeyPair,
    algorithm: TotpAlgorithm,
    blob: Vec<u8>,
) -> Result<SealedSeed> {
    let message = SealedSeed::binding_message(owner, key_version, WRAP_SCHEME, algorithm, &blob);
    let tag = session
        .sign(&Mechanism::Sha256Hmac, pair.bind, &message)
        .map_err(VaultError::pkcs11)?;
    count_calls(1);
    Ok(SealedSeed {
        key_version,
        wrap: WRAP_SCHEME,
        algorithm,
        blob,
        tag,
    })
}

/// Check the binding tag inside the token: the record belongs to `owner` and
/// no field was changed.
fn check_binding(
    session: &Session,
    pair: KeyPair,
    owner: &Owner,
    sealed: &SealedSeed,
) -> Result<()> {
    let message = sealed.binding_message_for(owner);
    match session.verify(&Mechanism::Sha256Hmac, pair.bind, &message, &sealed.tag) {
        Ok(()) => Ok(()),
        Err(CryptokiError::Pkcs11(RvError::SignatureInvalid | RvError::SignatureLenRange, _)) => {
            Err(VaultError::BindingMismatch)
        }
        Err(error) => Err(VaultError::pkcs11(error)),
    }
}

/// Unwrap a blob into a token session key and make sure the token made it
/// sensitive, and extractable only when asked (some tokens ignore the
/// template; such a key is fixed or refused).
fn unwrap_seed<'s>(
    session: &'s Session,
    pair: KeyPair,
    sealed: &SealedSeed,
    extractable: bool,
) -> Result<SessionKey<'s>> {
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(extractable),
        Attribute::Sign(true),
    ];
    let handle = session
        .unwrap_key(
            &wrap_mechanism(sealed.wrap),
            pair.wrap,
            &sealed.blob,
            &template,
        )
        .map_err(VaultError::pkcs11)?;
    let key = SessionKey { session, handle };
    let wanted = keys::Protection {
        sensitive: true,
        extractable,
    };
    let protection = keys::read_protection(session, handle)?;
    if protection == wanted {
        return Ok(key);
    }
    // The token ignored the template. Ask again explicitly, then re-check.
    let fix = [
        Attribute::Sensitive(true),
        Attribute::Extractable(extractable),
    ];
    if session.update_attributes(handle, &fix).is_ok()
        && keys::read_protection(session, handle)? == wanted
    {
        return Ok(key);
    }
    Err(VaultError::KeyPolicyViolated(format!(
        "an unwrapped seed came back as {protection:?}, asked for {wanted:?}"
    )))
}

/// Verify `code` against a sealed seed at time `now` (Unix seconds).
/// Returns the time step the code belongs to, or `None` for a wrong code.
pub(crate) fn verify(
    session: &Session,
    connection: &Connection,
    owner: &Owner,
    sealed: &SealedSeed,
    code: &str,
    policy: &TotpPolicy,
    now: u64,
) -> Result<Option<u64>> {
    policy.validate()?;
    policy.check_code_shape(code)?;
    let pair = connection.key_pair(session, sealed.key_version)?;
    check_binding(session, pair, owner, sealed)?;
    let seed_key = unwrap_seed(session, pair, sealed, false)?;
    let mechanism = hmac_mechanism(sealed.algorithm);
    let digits = usize::from(policy.digits);
    let mut matched = None;
    for step in policy.candidate_steps(now) {
        let mac = session
            .sign(&mechanism, seed_key.handle, &step.to_be_bytes())
            .map_err(VaultError::pkcs11)?;
        let candidate = totp::truncate(&mac, policy.digits)?;
        let equal: bool = candidate[..digits].ct_eq(code.as_bytes()).into();
        if equal && matched.is_none() {
            matched = Some(step);
        }
    }
    drop(seed_key);
    // C_Verify, C_UnwrapKey, C_GetAttributeValue, one C_Sign per step,
    // C_DestroyObject.
    count_calls(4 + policy.candidate_steps(now).count() as u64);
    VERIFICATIONS.fetch_add(1, Ordering::Relaxed);
    Ok(matched)
}

/// Move a sealed seed to the active key version. The seed is unwrapped into
/// a sensitive token session key and wrapped again inside the token; it never
/// reaches host memory. A record already at the active version is returned
/// unchanged (after its binding is checked).
pub(crate) fn rewrap(
    session: &Session,
    connection: &Connection,
    owner: &Owner,
    sealed: &SealedSeed,
) -> Result<SealedSeed> {
    let old_pair = connection.key_pair(session, sealed.key_version)?;
    check_binding(session, old_pair, owner, sealed)?;
    let (active_version, active_pair) = connection.active_pair()?;
    if active_version == sealed.key_version && sealed.wrap == WRAP_SCHEME {
        return Ok(sealed.clone());
    }
    let seed_key = unwrap_seed(session, old_pair, sealed, true)?;
    let blob = session
        .wrap_key(
            &wrap_mechanism(WRAP_SCHEME),
            active_pair.wrap,
            seed_key.handle,
        )
        .map_err(VaultError::pkcs11)?;
    drop(seed_key);
    // C_Verify, C_UnwrapKey, C_GetAttributeValue, C_WrapKey, C_DestroyObject.
    count_calls(5);
    finish_seal(
        session,
        owner,
        active_version,
        active_pair,
        sealed.algorithm,
        blob,
    )
}
