//! A virtual YubiKey OATH applet: the card side of YKOATH, written from the
//! protocol description (not from the client in `device-tools`), so that the
//! two check each other. It answers APDUs as the real applet does: SELECT with
//! version, salt and (when protected) a challenge; PUT, DELETE, RENAME, LIST,
//! CALCULATE, CALCULATE ALL, SET CODE, VALIDATE, RESET; response chaining with
//! `61xx` and SEND REMAINING; `6A84` when 32 credentials are stored.

use hmac::{Hmac, Mac};
use zeroize::Zeroizing;

const AID: [u8; 7] = [0xA0, 0x00, 0x00, 0x05, 0x27, 0x21, 0x01];
/// The management applet: device information (serial, firmware).
const MANAGEMENT_AID: [u8; 8] = [0xA0, 0x00, 0x00, 0x05, 0x27, 0x47, 0x11, 0x17];
const FIRMWARE: [u8; 3] = [5, 4, 3];
/// A YubiKey 5's answer to reset.
pub const ATR: [u8; 20] = [
    0x3B, 0x8D, 0x80, 0x01, 0x80, 0x73, 0xC0, 0x21, 0xC0, 0x57, 0x59, 0x75, 0x62, 0x69, 0x4B, 0x65,
    0x79, 0xF9, 0x00, 0x00,
];
const MAX_CREDENTIALS: usize = 32;
const MIN_KEY_LEN: usize = 14;

const OK: u16 = 0x9000;
const NO_SPACE: u16 = 0x6A84;
const AUTH_REQUIRED: u16 = 0x6982;
const NO_SUCH_OBJECT: u16 = 0x6984;
const WRONG_DATA: u16 = 0x6A80;
const TOUCH_REQUIRED: u16 = 0x6985;
const INS_NOT_SUPPORTED: u16 = 0x6D00;
const WRONG_P1P2: u16 = 0x6B00;
const APPLICATION_NOT_FOUND: u16 = 0x6A82;

/// What a person does when the key blinks for a touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touch {
    /// Touches the key every time it asks.
    Always,
    /// Never touches it: touch credentials answer `6985`.
    Never,
    /// Pulls the key out of the reader instead of touching it.
    PullOut,
}

struct Credential {
    name: Vec<u8>,
    /// High nibble: type (0x10 HOTP, 0x20 TOTP); low nibble: hash.
    kind: u8,
    digits: u8,
    key: Zeroizing<Vec<u8>>,
    touch: bool,
}

/// The applet's state.
pub struct OathCard {
    credentials: Vec<Credential>,
    salt: [u8; 8],
    access_key: Option<Zeroizing<Vec<u8>>>,
    validated: bool,
    challenge: Option<[u8; 8]>,
    pending: Vec<u8>,
    pub touch: Touch,
    /// The serial number the management applet reports.
    pub serial: u32,
    management_selected: bool,
    /// Set when the person pulled the key out: the reader loses the card.
    pub pulled_out: bool,
}

impl OathCard {
    pub fn new(touch: Touch) -> OathCard {
        OathCard {
            credentials: Vec::new(),
            salt: random8(),
            access_key: None,
            validated: true,
            challenge: None,
            pending: Vec::new(),
            touch,
            serial: 10_000_000
                + u32::from_be_bytes([0, random8()[0], random8()[1], random8()[2]]) % 80_000_000,
            management_selected: false,
            pulled_out: false,
        }
    }

    /// Answer one command APDU with data and a status word.
    pub fn process(&mut self, apdu: &[u8]) -> Vec<u8> {
        let Some((instruction, p1, p2, data)) = parse_command(apdu) else {
            return status(Vec::new(), WRONG_DATA);
        };
        if instruction != 0xA5 {
            self.pending.clear();
        }
        if instruction == 0xA4 && p1 == 0x04 && data == MANAGEMENT_AID {
            self.management_selected = true;
            return status(b"5.4.3".to_vec(), OK);
        }
        if self.management_selected && !(instruction == 0xA4 && p1 == 0x04) {
            return match instruction {
                0x1D => status(self.device_info(), OK),
                _ => status(Vec::new(), INS_NOT_SUPPORTED),
            };
        }
        let (body, word) = match instruction {
            0xA4 if p1 == 0x04 => self.select(p1, data),
            0xA5 => return self.send_remaining(),
            0xA3 => self.validate(data),
            0x04 => self.reset(p1, p2),
            _ if !self.validated => (Vec::new(), AUTH_REQUIRED),
            0x01 => self.put(data),
            0x02 => self.delete(data),
            0x03 => self.set_code(data),
            0x05 => self.rename(data),
            0xA1 => self.list(),
            0xA2 => self.calculate(p2, data),
            // CALCULATE ALL shares its instruction byte with SELECT.
            0xA4 => self.calculate_all(data),
            _ => (Vec::new(), INS_NOT_SUPPORTED),
        };
        if word != OK {
            return status(Vec::new(), word);
        }
        self.chain(body)
    }

    /// Send at most 256 bytes; announce the rest with `61xx`.
    fn chain(&mut self, mut body: Vec<u8>) -> Vec<u8> {
        if body.len() <= 256 {
            return status(body, OK);
        }
        self.pending = body.split_off(256);
        let left = self.pending.len().min(0xFF) as u16;
        status(body, 0x6100 | left)
    }

    fn send_remaining(&mut self) -> Vec<u8> {
        let rest = std::mem::take(&mut self.pending);
        self.chain(rest)
    }

    /// GET DEVICE INFO: a length byte, then TLVs (serial, firmware, form
    /// factor, USB capabilities supported and enabled).
    fn device_info(&self) -> Vec<u8> {
        let mut tlvs = Vec::new();
        tlv(&mut tlvs, 0x02, &self.serial.to_be_bytes());
        tlv(&mut tlvs, 0x05, &FIRMWARE);
        tlv(&mut tlvs, 0x04, &[0x01]);
        tlv(&mut tlvs, 0x01, &[0x02, 0x3B]);
        tlv(&mut tlvs, 0x03, &[0x02, 0x3B]);
        let mut body = vec![tlvs.len() as u8];
        body.extend_from_slice(&tlvs);
        body
    }

    fn select(&mut self, p1: u8, data: &[u8]) -> (Vec<u8>, u16) {
        self.management_selected = false;
        if p1 != 0x04 || data != AID {
            // ISO 7816-4 "file or application not found", as a YubiKey says
            // for applets it does not have.
            return (Vec::new(), APPLICATION_NOT_FOUND);
        }
        let mut body = Vec::new();
        tlv(&mut body, 0x79, &FIRMWARE);
        tlv(&mut body, 0x71, &self.salt);
        self.validated = self.access_key.is_none();
        self.challenge = None;
        if self.access_key.is_some() {
            let challenge = random8();
            tlv(&mut body, 0x74, &challenge);
            tlv(&mut body, 0x7B, &[0x01]);
            self.challenge = Some(challenge);
        }
        (body, OK)
    }

    fn put(&mut self, data: &[u8]) -> (Vec<u8>, u16) {
        let mut name = None;
        let mut key = None;
        let mut touch = false;
        let mut rest = data;
        while let [tag, tail @ ..] = rest {
            if *tag == 0x78 {
                // The property tag has a value byte and no length.
                let [property, after @ ..] = tail else {
                    return (Vec::new(), WRONG_DATA);
                };
                touch |= property & 0x02 != 0;
                rest = after;
                continue;
            }
            let [length, after @ ..] = tail else {
                return (Vec::new(), WRONG_DATA);
            };
            let length = usize::from(*length);
            if after.len() < length {
                return (Vec::new(), WRONG_DATA);
            }
            match *tag {
                0x71 => name = Some(after[..length].to_vec()),
                0x73 => key = Some(Zeroizing::new(after[..length].to_vec())),
                _ => {}
            }
            rest = &after[length..];
        }
        let (Some(name), Some(key)) = (name, key) else {
            return (Vec::new(), WRONG_DATA);
        };
        let [kind, digits, secret @ ..] = key.as_slice() else {
            return (Vec::new(), WRONG_DATA);
        };
        if name.is_empty()
            || name.len() > 64
            || secret.len() < MIN_KEY_LEN
            || !(6..=8).contains(digits)
        {
            return (Vec::new(), WRONG_DATA);
        }
        if hash_len(kind & 0x0F).is_none() || !matches!(kind & 0xF0, 0x10 | 0x20) {
            return (Vec::new(), WRONG_DATA);
        }
        let credential = Credential {
            name: name.clone(),
            kind: *kind,
            digits: *digits,
            key: Zeroizing::new(secret.to_vec()),
            touch,
        };
        if let Some(existing) = self.credentials.iter_mut().find(|c| c.name == name) {
            *existing = credential;
        } else if self.credentials.len() >= MAX_CREDENTIALS {
            return (Vec::new(), NO_SPACE);
        } else {
            self.credentials.push(credential);
        }
        (Vec::new(), OK)
    }

    fn delete(&mut self, data: &[u8]) -> (Vec<u8>, u16) {
        let Some(name) = find_tag(data, 0x71) else {
            return (Vec::new(), WRONG_DATA);
        };
        let before = self.credentials.len();
        self.credentials.retain(|c| c.name != name);
        let word = if self.credentials.len() < before {
            OK
        } else {
            NO_SUCH_OBJECT
        };
        (Vec::new(), word)
    }

    fn rename(&mut self, data: &[u8]) -> (Vec<u8>, u16) {
        let names: Vec<&[u8]> = tlvs(data)
            .into_iter()
            .filter(|(tag, _)| *tag == 0x71)
            .map(|(_, v)| v)
            .collect();
        let [from, to] = names.as_slice() else {
            return (Vec::new(), WRONG_DATA);
        };
        if self.credentials.iter().any(|c| c.name == *to) {
            return (Vec::new(), WRONG_DATA);
        }
        match self.credentials.iter_mut().find(|c| c.name == *from) {
            Some(credential) => {
                credential.name = to.to_vec();
                (Vec::new(), OK)
            }
            None => (Vec::new(), NO_SUCH_OBJECT),
        }
    }

    fn list(&self) -> (Vec<u8>, u16) {
        let mut body = Vec::new();
        for credential in &self.credentials {
            let mut value = vec![credential.kind];
            value.extend_from_slice(&credential.name);
            tlv(&mut body, 0x72, &value);
        }
        (body, OK)
    }

    fn calculate(&mut self, p2: u8, data: &[u8]) -> (Vec<u8>, u16) {
        let (Some(name), Some(challenge)) = (find_tag(data, 0x71), find_tag(data, 0x74)) else {
            return (Vec::new(), WRONG_DATA);
        };
        let Some(credential) = self.credentials.iter().find(|c| c.name == name) else {
            return (Vec::new(), NO_SUCH_OBJECT);
        };
        if credential.touch && self.touch == Touch::Never {
            return (Vec::new(), TOUCH_REQUIRED);
        }
        if credential.touch && self.touch == Touch::PullOut {
            self.pulled_out = true;
            return (Vec::new(), TOUCH_REQUIRED);
        }
        let mac = hmac(credential.kind & 0x0F, &credential.key, challenge);
        let mut body = Vec::new();
        match p2 {
            0x01 => tlv(&mut body, 0x76, &truncate(credential.digits, &mac)),
            0x00 => {
                let mut full = vec![credential.digits];
                full.extend_from_slice(&mac);
                tlv(&mut body, 0x75, &full);
            }
            _ => return (Vec::new(), WRONG_P1P2),
        }
        (body, OK)
    }

    fn calculate_all(&self, data: &[u8]) -> (Vec<u8>, u16) {
        let Some(challenge) = find_tag(data, 0x74) else {
            return (Vec::new(), WRONG_DATA);
        };
        let mut body = Vec::new();
        for credential in &self.credentials {
            tlv(&mut body, 0x71, &credential.name);
            if credential.kind & 0xF0 == 0x10 {
                tlv(&mut body, 0x77, &[credential.digits]);
            } else if credential.touch {
                tlv(&mut body, 0x7C, &[credential.digits]);
            } else {
                let mac = hmac(credential.kind & 0x0F, &credential.key, challenge);
                tlv(&mut body, 0x76, &truncate(credential.digits, &mac));
            }
        }
        (body, OK)
    }

    fn set_code(&mut self, data: &[u8]) -> (Vec<u8>, u16) {
        let Some(key) = find_tag(data, 0x73) else {
            return (Vec::new(), WRONG_DATA);
        };
        if key.is_empty() {
            self.access_key = None;
            self.validated = true;
            return (Vec::new(), OK);
        }
        let (Some(challenge), Some(response)) = (find_tag(data, 0x74), find_tag(data, 0x75)) else {
            return (Vec::new(), WRONG_DATA);
        };
        let [algorithm, secret @ ..] = key else {
            return (Vec::new(), WRONG_DATA);
        };
        if hmac(*algorithm, secret, challenge) != response {
            return (Vec::new(), WRONG_DATA);
        }
        self.access_key = Some(Zeroizing::new(secret.to_vec()));
        (Vec::new(), OK)
    }

    fn validate(&mut self, data: &[u8]) -> (Vec<u8>, u16) {
        let (Some(key), Some(challenge)) = (self.access_key.as_ref(), self.challenge) else {
            return (Vec::new(), AUTH_REQUIRED);
        };
        let (Some(response), Some(host_challenge)) = (find_tag(data, 0x75), find_tag(data, 0x74))
        else {
            return (Vec::new(), WRONG_DATA);
        };
        if hmac(0x01, key, &challenge) != response {
            return (Vec::new(), WRONG_DATA);
        }
        self.validated = true;
        self.challenge = None;
        let mut body = Vec::new();
        tlv(&mut body, 0x75, &hmac(0x01, key, host_challenge));
        (body, OK)
    }

    fn reset(&mut self, p1: u8, p2: u8) -> (Vec<u8>, u16) {
        if (p1, p2) != (0xDE, 0xAD) {
            return (Vec::new(), WRONG_P1P2);
        }
        let (touch, serial) = (self.touch, self.serial);
        *self = OathCard::new(touch);
        self.serial = serial;
        (Vec::new(), OK)
    }
}

fn status(mut body: Vec<u8>, word: u16) -> Vec<u8> {
    body.extend_from_slice(&word.to_be_bytes());
    body
}

fn parse_command(apdu: &[u8]) -> Option<(u8, u8, u8, &[u8])> {
    let [_, instruction, p1, p2, rest @ ..] = apdu else {
        return None;
    };
    let data = match rest {
        [] | [_] => &[][..],
        [length, data @ ..] => {
            let length = usize::from(*length);
            data.get(..length)?
        }
    };
    Some((*instruction, *p1, *p2, data))
}

fn tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    out.push(value.len() as u8);
    out.extend_from_slice(value);
}

fn tlvs(mut data: &[u8]) -> Vec<(u8, &[u8])> {
    let mut items = Vec::new();
    while let [tag, length, rest @ ..] = data {
        let length = usize::from(*length);
        if rest.len() < length {
            break;
        }
        items.push((*tag, &rest[..length]));
        data = &rest[length..];
    }
    items
}

fn find_tag(data: &[u8], wanted: u8) -> Option<&[u8]> {
    tlvs(data)
        .into_iter()
        .find(|(tag, _)| *tag == wanted)
        .map(|(_, value)| value)
}

fn hash_len(algorithm: u8) -> Option<usize> {
    match algorithm {
        1 => Some(20),
        2 => Some(32),
        3 => Some(64),
        _ => None,
    }
}

fn hmac(algorithm: u8, key: &[u8], message: &[u8]) -> Vec<u8> {
    macro_rules! run {
        ($digest:ty) => {{
            let mut mac = Hmac::<$digest>::new_from_slice(key).expect("HMAC takes any key");
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }};
    }
    match algorithm {
        2 => run!(sha2::Sha256),
        3 => run!(sha2::Sha512),
        _ => run!(sha1::Sha1),
    }
}

/// Digits, then the 4 bytes RFC 4226 truncation picks (top bit cleared).
fn truncate(digits: u8, mac: &[u8]) -> [u8; 5] {
    let offset = usize::from(mac[mac.len() - 1] & 0x0F);
    [
        digits,
        mac[offset] & 0x7F,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]
}

fn random8() -> [u8; 8] {
    let mut bytes = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduces_the_reference_vector_byte_for_byte() {
        let mut card = OathCard::new(Touch::Always);
        assert!(
            card.process(&[
                0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x05, 0x27, 0x21, 0x01
            ])
            .ends_with(&[0x90, 0x00])
        );
        // JBSWY3DPEHPK3PXP, zero-padded to 14 bytes, TOTP SHA-1, 6 digits.
        let mut key = vec![
            0x21, 0x06, 0x48, 0x65, 0x6C, 0x6C, 0x6F, 0x21, 0xDE, 0xAD, 0xBE, 0xEF,
        ];
        key.resize(2 + 14, 0);
        let name = b"Example:alice@example.com";
        let mut put = vec![0x71, name.len() as u8];
        put.extend_from_slice(name);
        put.extend_from_slice(&[0x73, key.len() as u8]);
        put.extend_from_slice(&key);
        let mut apdu = vec![0x00, 0x01, 0x00, 0x00, put.len() as u8];
        apdu.extend_from_slice(&put);
        assert_eq!(card.process(&apdu), vec![0x90, 0x00]);
        let mut calculate = vec![0x71, name.len() as u8];
        calculate.extend_from_slice(name);
        calculate.extend_from_slice(&[0x74, 0x08, 0, 0, 0, 0, 0x02, 0x35, 0x23, 0xEC]);
        let mut apdu = vec![0x00, 0xA2, 0x00, 0x01, calculate.len() as u8];
        apdu.extend_from_slice(&calculate);
        assert_eq!(
            card.process(&apdu),
            vec![0x76, 0x05, 0x06, 0x67, 0x4C, 0x91, 0xA7, 0x90, 0x00]
        );
    }
}
