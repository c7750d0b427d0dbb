//! The OATH applet's commands: put, list, calculate, calculate all,
//! delete, rename, set and clear the access code, reset.

use secrecy::SecretString;
use zeroize::Zeroizing;

use super::apdu::{self, Command};
use super::session::{self, OathError, OathSession};

const INS_PUT: u8 = 0x01;
const INS_DELETE: u8 = 0x02;
const INS_SET_CODE: u8 = 0x03;
const INS_RESET: u8 = 0x04;
const INS_RENAME: u8 = 0x05;
const INS_LIST: u8 = 0xA1;
const INS_CALCULATE: u8 = 0xA2;
const INS_CALCULATE_ALL: u8 = 0xA4;

const TAG_NAME: u8 = 0x71;
const TAG_NAME_LIST: u8 = 0x72;
const TAG_KEY: u8 = 0x73;
const TAG_CHALLENGE: u8 = 0x74;
const TAG_TRUNCATED: u8 = 0x76;
const TAG_HOTP: u8 = 0x77;
const TAG_PROPERTY: u8 = 0x78;
const TAG_TOUCH: u8 = 0x7C;
const PROPERTY_REQUIRE_TOUCH: u8 = 0x02;

/// YubiKey 4/5 refuse keys shorter than this; shorter ones are zero-padded
/// (HMAC pads keys with zeros anyway, so codes do not change).
pub const MIN_KEY_LEN: usize = 14;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum OathKind {
    Totp,
    Hotp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum HashAlgorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl HashAlgorithm {
    fn code(self) -> u8 {
        match self {
            HashAlgorithm::Sha1 => 1,
            HashAlgorithm::Sha256 => 2,
            HashAlgorithm::Sha512 => 3,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(HashAlgorithm::Sha1),
            2 => Some(HashAlgorithm::Sha256),
            3 => Some(HashAlgorithm::Sha512),
            _ => None,
        }
    }
}

/// A credential as the applet lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Credential {
    /// As stored: a non-30 s period is a `P/` prefix.
    pub name: String,
    pub kind: OathKind,
    pub algorithm: HashAlgorithm,
}

/// What CALCULATE ALL answers for one credential.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum CodeResult {
    Code(String),
    /// A touch-required credential: calculate it alone, touching the key.
    TouchRequired,
    /// HOTP credentials are not calculated by CALCULATE ALL.
    Hotp,
}

/// A new TOTP credential.
pub struct NewCredential<'a> {
    pub name: &'a str,
    pub algorithm: HashAlgorithm,
    pub digits: u8,
    pub key: &'a [u8],
    pub require_touch: bool,
}

/// RFC 4226 dynamic truncation result from the applet: digits + 4 bytes.
fn format_code(value: &[u8]) -> Result<String, OathError> {
    let [digits, a, b, c, d] = value else {
        return Err(OathError::Protocol("a truncated response is 5 bytes"));
    };
    if !(6..=8).contains(digits) {
        return Err(OathError::Protocol("digits out of range"));
    }
    let number = u32::from_be_bytes([*a & 0x7f, *b, *c, *d]) % 10u32.pow(u32::from(*digits));
    Ok(format!("{number:0width$}", width = usize::from(*digits)))
}

/// The TOTP challenge: the time step as 8 bytes, big-endian.
pub fn time_challenge(unix_seconds: u64, period: u64) -> [u8; 8] {
    (unix_seconds / period.max(1)).to_be_bytes()
}

impl OathSession {
    pub fn put(&self, credential: &NewCredential<'_>) -> Result<(), OathError> {
        let mut key = Zeroizing::new(credential.key.to_vec());
        if key.len() < MIN_KEY_LEN {
            key.resize(MIN_KEY_LEN, 0);
        }
        let mut key_value = Zeroizing::new(Vec::with_capacity(key.len() + 2));
        key_value.push(0x20 | credential.algorithm.code());
        key_value.push(credential.digits);
        key_value.extend_from_slice(&key);
        let mut data = Zeroizing::new(Vec::new());
        apdu::push_tlv(&mut data, TAG_NAME, credential.name.as_bytes())?;
        apdu::push_tlv(&mut data, TAG_KEY, &key_value)?;
        if credential.require_touch {
            data.extend_from_slice(&[TAG_PROPERTY, PROPERTY_REQUIRE_TOUCH]);
        }
        self.transmit(&Command::new(INS_PUT, 0, 0, data.to_vec()))?;
        Ok(())
    }

    pub fn list(&self) -> Result<Vec<Credential>, OathError> {
        let data = self.transmit(&Command::new(INS_LIST, 0, 0, Vec::new()))?;
        let mut credentials = Vec::new();
        for (tag, value) in apdu::parse_tlvs(&data)? {
            if tag != TAG_NAME_LIST {
                continue;
            }
            let [type_and_algorithm, name @ ..] = value else {
                return Err(OathError::Protocol("empty list entry"));
            };
            let kind = if type_and_algorithm & 0xF0 == 0x10 {
                OathKind::Hotp
            } else {
                OathKind::Totp
            };
            let algorithm = HashAlgorithm::from_code(type_and_algorithm & 0x0F)
                .ok_or(OathError::Protocol("unknown hash algorithm"))?;
            credentials.push(Credential {
                name: String::from_utf8_lossy(name).into_owned(),
                kind,
                algorithm,
            });
        }
        Ok(credentials)
    }

    /// The code of one credential for `challenge` (a TOTP time step).
    pub fn calculate(&self, name: &str, challenge: &[u8]) -> Result<String, OathError> {
        let mut data = Vec::new();
        apdu::push_tlv(&mut data, TAG_NAME, name.as_bytes())?;
        apdu::push_tlv(&mut data, TAG_CHALLENGE, challenge)?;
        let answer = self.transmit(&Command::new(INS_CALCULATE, 0, 0x01, data))?;
        let (_, value) = apdu::parse_tlvs(&answer)?
            .into_iter()
            .find(|(tag, _)| *tag == TAG_TRUNCATED)
            .ok_or(OathError::Protocol(
                "CALCULATE without a truncated response",
            ))?;
        format_code(value)
    }

    /// Codes of every credential for one TOTP challenge.
    pub fn calculate_all(&self, challenge: &[u8]) -> Result<Vec<(String, CodeResult)>, OathError> {
        let mut data = Vec::new();
        apdu::push_tlv(&mut data, TAG_CHALLENGE, challenge)?;
        let answer = self.transmit(&Command::new(INS_CALCULATE_ALL, 0, 0x01, data))?;
        let items = apdu::parse_tlvs(&answer)?;
        let mut results = Vec::new();
        for pair in items.chunks(2) {
            let [(TAG_NAME, name), (tag, value)] = pair else {
                return Err(OathError::Protocol("CALCULATE ALL answer out of order"));
            };
            let result = match *tag {
                TAG_TRUNCATED => CodeResult::Code(format_code(value)?),
                TAG_TOUCH => CodeResult::TouchRequired,
                TAG_HOTP => CodeResult::Hotp,
                _ => return Err(OathError::Protocol("unknown CALCULATE ALL entry")),
            };
            results.push((String::from_utf8_lossy(name).into_owned(), result));
        }
        Ok(results)
    }

    pub fn delete(&self, name: &str) -> Result<(), OathError> {
        let mut data = Vec::new();
        apdu::push_tlv(&mut data, TAG_NAME, name.as_bytes())?;
        self.transmit(&Command::new(INS_DELETE, 0, 0, data))?;
        Ok(())
    }

    pub fn rename(&self, from: &str, to: &str) -> Result<(), OathError> {
        let mut data = Vec::new();
        apdu::push_tlv(&mut data, TAG_NAME, from.as_bytes())?;
        apdu::push_tlv(&mut data, TAG_NAME, to.as_bytes())?;
        self.transmit(&Command::new(INS_RENAME, 0, 0, data))?;
        Ok(())
    }

    /// Protect the applet with an access code (the session must be
    /// validated or unprotected).
    pub fn set_access_code(&self, access_code: &SecretString) -> Result<(), OathError> {
        let key = session::derive_key(access_code, &self.salt);
        let challenge = session::rand_challenge();
        let response = session::hmac_sha1(key.as_ref(), &challenge);
        let mut key_value = Zeroizing::new(vec![0x01]);
        key_value.extend_from_slice(key.as_ref());
        let mut data = Zeroizing::new(Vec::new());
        apdu::push_tlv(&mut data, TAG_KEY, &key_value)?;
        apdu::push_tlv(&mut data, TAG_CHALLENGE, &challenge)?;
        apdu::push_tlv(&mut data, 0x75, &response)?;
        self.transmit(&Command::new(INS_SET_CODE, 0, 0, data.to_vec()))?;
        Ok(())
    }

    pub fn clear_access_code(&self) -> Result<(), OathError> {
        self.transmit(&Command::new(INS_SET_CODE, 0, 0, vec![TAG_KEY, 0x00]))?;
        Ok(())
    }

    /// Erase every credential and the access code.
    pub fn reset(&self) -> Result<(), OathError> {
        self.transmit(&Command::new(INS_RESET, 0xDE, 0xAD, Vec::new()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_the_reference_vector() {
        // Notes: time 1111111109 with JBSWY3DPEHPK3PXP answers 76 05 06 674C91A7.
        assert_eq!(
            format_code(&[0x06, 0x67, 0x4C, 0x91, 0xA7]).unwrap(),
            "071271"
        );
        assert_eq!(
            time_challenge(1_111_111_109, 30),
            [0, 0, 0, 0, 0x02, 0x35, 0x23, 0xEC]
        );
        assert!(format_code(&[0x06, 1, 2]).is_err());
    }
}
