//! The vault's operations on one token session.
//!
//! Each function here runs on a worker thread that owns `session`. Seeds
//! exist in host memory only in `seal` (the enrollment moment, when the
//! person must see the seed once) and there only in `Zeroizing` buffers; every
//! other operation works on wrapped blobs and token-side session keys.
//!
//! Sealing depends on the scheme: the AES schemes create the (padded) seed as
//! a token session object and wrap it inside the token; RSA-OAEP encrypts it
//! on the host with the token's public key, so the clear seed never crosses
//! the PKCS#11 boundary (what an out-of-process token needs).

use std::sync::atomic::{AtomicU64, Ordering};

use cryptoki::error::{Error as CryptokiError, RvError};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::connection::Connection;
use crate::error::{Result, VaultError};
use crate::hot::KeyCache;
use crate::keys::{self, KeyPair, WrapKey, WrapKind};
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

const CBC_IV_LEN: usize = 16;

/// The mechanism of `scheme`; `iv` for CBC.
fn wrap_mechanism(scheme: WrapScheme, iv: [u8; CBC_IV_LEN]) -> Mechanism<'static> {
    match scheme {
        WrapScheme::AesKeyWrapPad => Mechanism::AesKeyWrapPad,
        WrapScheme::AesKeyWrap => Mechanism::AesKeyWrap,
        WrapScheme::AesCbcPad => Mechanism::AesCbcPad(iv),
        WrapScheme::RsaOaep => Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
            MechanismType::SHA1,
            PkcsMgfType::MGF1_SHA1,
            PkcsOaepSource::empty(),
        )),
    }
}

/// A blob as the unwrap mechanism takes it: CBC blobs carry their IV first.
fn split_blob(scheme: WrapScheme, blob: &[u8]) -> Result<([u8; CBC_IV_LEN], &[u8])> {
    if scheme != WrapScheme::AesCbcPad {
        return Ok(([0; CBC_IV_LEN], blob));
    }
    let (iv, ciphertext) =
        blob.split_first_chunk::<CBC_IV_LEN>()
            .ok_or(VaultError::MalformedRecord(
                "a CBC blob shorter than its IV",
            ))?;
    Ok((*iv, ciphertext))
}

/// The seed as the token will hold it: zero-padded to the token's shortest
/// HMAC key, and for plain AES key wrap to a multiple of 8 bytes (at least
/// 16). HMAC pads keys with zeros to its block size anyway, so the codes are
/// unchanged; padding never goes past the block size.
fn pad_seed(seed: &[u8], min_len: usize, scheme: WrapScheme) -> Zeroizing<Vec<u8>> {
    let mut padded = Zeroizing::new(seed.to_vec());
    let mut len = padded.len().max(min_len);
    if scheme == WrapScheme::AesKeyWrap {
        len = len.max(16).next_multiple_of(8);
    }
    padded.resize(len, 0);
    padded
}

/// RSA-OAEP (SHA-1, MGF1-SHA-1, no label) on the host, with the token's
/// public key: the token's `CKM_RSA_PKCS_OAEP` unwrap reverses it.
fn oaep_encrypt(public_key: &rsa::RsaPublicKey, padded: &[u8]) -> Result<Vec<u8>> {
    public_key
        .encrypt(
            &mut rand::rngs::OsRng,
            rsa::Oaep::new::<sha1::Sha1>(),
            padded,
        )
        .map_err(|error| VaultError::HostSeal(format!("RSA-OAEP: {error}")))
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

impl SessionKey<'_> {
    /// Hand the object over (to the hot-key cache) instead of destroying it.
    fn keep(self) -> ObjectHandle {
        let handle = self.handle;
        std::mem::forget(self);
        handle
    }
}

impl Drop for SessionKey<'_> {
    fn drop(&mut self) {
        if let Err(error) = self.session.destroy_object(self.handle) {
            tracing::warn!(%error, "could not destroy a session key; it dies with the session");
        }
    }
}

/// A fresh seed: from the token's random generator, or, when new seals use
/// RSA-OAEP (an out-of-process token), from the operating system's, so that
/// the seed never comes back across the PKCS#11 boundary.
pub(crate) fn generate_seed(
    session: &Session,
    connection: &Connection,
    algorithm: TotpAlgorithm,
) -> Result<Zeroizing<Vec<u8>>> {
    let mut seed = Zeroizing::new(vec![0u8; algorithm.seed_len()]);
    let (_, _, scheme) = connection.active_sealing()?;
    if scheme.uses_rsa() {
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        return Ok(seed);
    }
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
    let (key_version, pair, scheme) = connection.active_sealing()?;
    let padded = pad_seed(seed, connection.tokens.hmac_min(algorithm), scheme);
    if padded.len() > algorithm.block_len() {
        return Err(VaultError::InvalidRequest(
            "the token's shortest HMAC key is longer than the hash's block size",
        ));
    }
    let blob = match &pair.wrap {
        WrapKey::Rsa { public_key, .. } => oaep_encrypt(public_key, &padded)?,
        WrapKey::Aes(wrapping) => wrap_in_token(session, *wrapping, scheme, &padded)?,
    };
    finish_seal(session, owner, key_version, &pair, scheme, algorithm, blob)
}

/// Create the padded seed as a token session key and wrap it there.
fn wrap_in_token(
    session: &Session,
    wrapping: ObjectHandle,
    scheme: WrapScheme,
    padded: &[u8],
) -> Result<Vec<u8>> {
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
    let blob = wrap_seed_key(session, wrapping, scheme, seed_key.handle)?;
    drop(seed_key);
    count_calls(2);
    Ok(blob)
}

/// Wrap a token key under `scheme` (a CBC blob gets a fresh IV in front).
fn wrap_seed_key(
    session: &Session,
    wrapping: ObjectHandle,
    scheme: WrapScheme,
    key: ObjectHandle,
) -> Result<Vec<u8>> {
    let mut iv = [0u8; CBC_IV_LEN];
    if scheme == WrapScheme::AesCbcPad {
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut iv);
    }
    let wrapped = session
        .wrap_key(&wrap_mechanism(scheme, iv), wrapping, key)
        .map_err(VaultError::pkcs11)?;
    count_calls(1);
    Ok(if scheme == WrapScheme::AesCbcPad {
        [iv.as_slice(), &wrapped].concat()
    } else {
        wrapped
    })
}

fn finish_seal(
    session: &Session,
    owner: &Owner,
    key_version: u32,
    pair: &KeyPair,
    scheme: WrapScheme,
    algorithm: TotpAlgorithm,
    blob: Vec<u8>,
) -> Result<SealedSeed> {
    let message = SealedSeed::binding_message(owner, key_version, scheme, algorithm, &blob);
    let tag = session
        .sign(&Mechanism::Sha256Hmac, pair.bind, &message)
        .map_err(VaultError::pkcs11)?;
    count_calls(1);
    Ok(SealedSeed {
        key_version,
        wrap: scheme,
        algorithm,
        blob,
        tag,
    })
}

/// Check the binding tag inside the token: the record belongs to `owner` and
/// no field was changed.
fn check_binding(
    session: &Session,
    pair: &KeyPair,
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
    pair: &KeyPair,
    sealed: &SealedSeed,
    extractable: bool,
) -> Result<SessionKey<'s>> {
    if pair.wrap.kind() != WrapKind::of(sealed.wrap) {
        return Err(VaultError::MalformedRecord(
            "the record's wrap scheme does not match its key version",
        ));
    }
    let (iv, blob) = split_blob(sealed.wrap, &sealed.blob)?;
    let mechanism = wrap_mechanism(sealed.wrap, iv);
    let unwrapping = pair.wrap.unwrapping();
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sign(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(extractable),
    ];
    let handle = match session.unwrap_key(&mechanism, unwrapping, blob, &template) {
        Ok(handle) => handle,
        // Some tokens (opencryptoki) refuse protection attributes in an
        // unwrap template; they are then set, and checked, right after.
        Err(CryptokiError::Pkcs11(
            RvError::AttributeReadOnly | RvError::TemplateInconsistent,
            _,
        )) => session
            .unwrap_key(&mechanism, unwrapping, blob, &template[..5])
            .map_err(VaultError::pkcs11)?,
        Err(error) => return Err(VaultError::pkcs11(error)),
    };
    let key = SessionKey { session, handle };
    let wanted = keys::Protection {
        sensitive: true,
        extractable,
    };
    let protection = keys::read_protection(session, handle)?;
    if protection == wanted {
        return Ok(key);
    }
    // The token ignored the template. Ask again explicitly, one attribute at
    // a time and only where it differs (a token may refuse to set an
    // attribute to the value it already has), then re-check.
    let mut fix = Vec::new();
    if !protection.sensitive {
        fix.push(Attribute::Sensitive(true));
    }
    if protection.extractable != extractable {
        fix.push(Attribute::Extractable(extractable));
    }
    let fixed = fix
        .into_iter()
        .all(|attribute| session.update_attributes(handle, &[attribute]).is_ok());
    if fixed && keys::read_protection(session, handle)? == wanted {
        return Ok(key);
    }
    Err(VaultError::KeyPolicyViolated(format!(
        "an unwrapped seed came back as {protection:?}, asked for {wanted:?}"
    )))
}

/// Verify `code` against a sealed seed at time `now` (Unix seconds).
/// Returns the time step the code belongs to, or `None` for a wrong code.
#[allow(clippy::too_many_arguments)]
pub(crate) fn verify(
    session: &Session,
    connection: &Connection,
    cache: &mut KeyCache,
    owner: &Owner,
    sealed: &SealedSeed,
    code: &str,
    policy: &TotpPolicy,
    now: u64,
) -> Result<Option<u64>> {
    policy.validate()?;
    policy.check_code_shape(code)?;
    let pair = connection.key_pair(session, sealed.key_version)?;
    // The binding is checked on every use, cached key or not.
    check_binding(session, &pair, owner, sealed)?;
    let steps = policy.candidate_steps(now).count() as u64;
    let record = cache
        .enabled()
        .then(|| (sealed.key_version, sealed.blob.clone()));
    if let Some(record) = &record
        && let Some(handle) = cache.get(session, record)
    {
        match codes_match(session, handle, sealed.algorithm, code, policy, now) {
            Ok(matched) => {
                // C_Verify, one C_Sign per step.
                count_calls(1 + steps);
                VERIFICATIONS.fetch_add(1, Ordering::Relaxed);
                return Ok(matched);
            }
            // A kept handle that no longer works: forget it, unwrap anew.
            Err(_) => cache.remove(session, record),
        }
    }
    let seed_key = unwrap_seed(session, &pair, sealed, false)?;
    let matched = codes_match(
        session,
        seed_key.handle,
        sealed.algorithm,
        code,
        policy,
        now,
    )?;
    if let Some(record) = record {
        cache.insert(session, record, seed_key.keep());
        // C_Verify, C_UnwrapKey, C_GetAttributeValue, one C_Sign per step.
        count_calls(3 + steps);
    } else {
        drop(seed_key);
        // ... and C_DestroyObject.
        count_calls(4 + steps);
    }
    VERIFICATIONS.fetch_add(1, Ordering::Relaxed);
    Ok(matched)
}

/// HMAC each candidate step with `key` inside the token and compare with
/// `code` in constant time; the matched step, if any.
fn codes_match(
    session: &Session,
    key: ObjectHandle,
    algorithm: TotpAlgorithm,
    code: &str,
    policy: &TotpPolicy,
    now: u64,
) -> Result<Option<u64>> {
    let mechanism = hmac_mechanism(algorithm);
    let digits = usize::from(policy.digits);
    let mut matched = None;
    for step in policy.candidate_steps(now) {
        let mac = session
            .sign(&mechanism, key, &step.to_be_bytes())
            .map_err(VaultError::pkcs11)?;
        let candidate = totp::truncate(&mac, policy.digits)?;
        let equal: bool = candidate[..digits].ct_eq(code.as_bytes()).into();
        if equal && matched.is_none() {
            matched = Some(step);
        }
    }
    Ok(matched)
}

/// Move a sealed seed to the active key version and scheme. The seed is
/// unwrapped into a sensitive token session key and wrapped again inside the
/// token (under the RSA public key, for RSA-OAEP); it never reaches host
/// memory. A record already at the active version and scheme is returned
/// unchanged (after its binding is checked).
pub(crate) fn rewrap(
    session: &Session,
    connection: &Connection,
    owner: &Owner,
    sealed: &SealedSeed,
) -> Result<SealedSeed> {
    let old_pair = connection.key_pair(session, sealed.key_version)?;
    check_binding(session, &old_pair, owner, sealed)?;
    let (active_version, active_pair, scheme) = connection.active_sealing()?;
    if active_version == sealed.key_version && sealed.wrap == scheme {
        return Ok(sealed.clone());
    }
    let seed_key = unwrap_seed(session, &old_pair, sealed, true)?;
    let blob = wrap_seed_key(
        session,
        active_pair.wrap.wrapping(),
        scheme,
        seed_key.handle,
    )?;
    drop(seed_key);
    // C_Verify, C_UnwrapKey, C_GetAttributeValue, C_DestroyObject (and the
    // C_WrapKey counted above).
    count_calls(4);
    finish_seal(
        session,
        owner,
        active_version,
        &active_pair,
        scheme,
        sealed.algorithm,
        blob,
    )
}
