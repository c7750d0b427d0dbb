//! A session with the OATH applet on a card in one PC/SC reader.

use std::ffi::CString;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::apdu::{self, ApduError, Command, StatusWord};

pub const OATH_AID: [u8; 7] = [0xA0, 0x00, 0x00, 0x05, 0x27, 0x21, 0x01];
pub const MANAGEMENT_AID: [u8; 8] = [0xA0, 0x00, 0x00, 0x05, 0x27, 0x47, 0x11, 0x17];
const INS_DEVICE_INFO: u8 = 0x1D;
const INS_SELECT: u8 = 0xA4;
const INS_SEND_REMAINING: u8 = 0xA5;
const INS_VALIDATE: u8 = 0xA3;

#[derive(Debug, thiserror::Error)]
pub enum OathError {
    #[error("PC/SC: {0}; is pcscd running?")]
    Pcsc(#[from] pcsc::Error),
    #[error("no smart-card reader found: connect the YubiKey (and check that pcscd is running)")]
    NoReader,
    #[error("no reader named {0:?}; `device-tools yubikey list` shows the readers")]
    NoSuchReader(String),
    #[error("no reader has a card with the OATH applet in it")]
    NoCard,
    #[error("the card answered {0}")]
    Status(StatusWord),
    #[error("the OATH applet is protected by an access code: give it with --access-code-file")]
    AccessCodeRequired,
    #[error("the access code is wrong")]
    WrongAccessCode,
    #[error("{0}")]
    Apdu(#[from] ApduError),
    #[error("unexpected answer from the card: {0}")]
    Protocol(&'static str),
}

/// An open session: the card is held exclusively until it is dropped.
pub struct OathSession {
    card: pcsc::Card,
    pub reader: String,
    /// Applet version (major, minor, patch).
    pub version: [u8; 3],
    /// The device id / salt from SELECT.
    pub salt: Vec<u8>,
    /// The card's challenge when an access code is set.
    challenge: Option<Vec<u8>>,
    /// Serial number and firmware from the management applet, if the key
    /// tells them.
    pub device: Option<DeviceInfo>,
}

/// What the management applet says about the key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceInfo {
    pub serial: Option<u32>,
    pub firmware: Option<[u8; 3]>,
}

/// The readers PC/SC knows, with whether a card is present.
pub fn readers() -> Result<Vec<(String, bool)>, OathError> {
    let context = pcsc::Context::establish(pcsc::Scope::User)?;
    let names = match context.list_readers_owned() {
        Ok(names) => names,
        Err(pcsc::Error::NoReadersAvailable) => return Ok(Vec::new()),
        Err(error) => return Err(error.into()),
    };
    let mut states: Vec<pcsc::ReaderState> = names
        .iter()
        .map(|name| pcsc::ReaderState::new(name.clone(), pcsc::State::UNAWARE))
        .collect();
    context.get_status_change(std::time::Duration::ZERO, &mut states)?;
    Ok(states
        .iter()
        .map(|state| {
            (
                state.name().to_string_lossy().into_owned(),
                state.event_state().contains(pcsc::State::PRESENT),
            )
        })
        .collect())
}

impl OathSession {
    /// Open the OATH applet in `reader` (a name, or a unique part of one),
    /// or in the first reader whose card has it.
    pub fn open(reader: Option<&str>) -> Result<OathSession, OathError> {
        let context = pcsc::Context::establish(pcsc::Scope::User)?;
        let names = match context.list_readers_owned() {
            Ok(names) => names,
            Err(pcsc::Error::NoReadersAvailable) => return Err(OathError::NoReader),
            Err(error) => return Err(error.into()),
        };
        let candidates: Vec<CString> = match reader {
            Some(wanted) => {
                let found: Vec<CString> = names
                    .into_iter()
                    .filter(|name| name.to_string_lossy().contains(wanted))
                    .collect();
                if found.is_empty() {
                    return Err(OathError::NoSuchReader(wanted.to_owned()));
                }
                found
            }
            None => names,
        };
        let mut last_error = OathError::NoCard;
        for name in candidates {
            let card =
                match context.connect(&name, pcsc::ShareMode::Exclusive, pcsc::Protocols::ANY) {
                    Ok(card) => card,
                    Err(pcsc::Error::NoSmartcard | pcsc::Error::RemovedCard) => continue,
                    Err(error) => {
                        last_error = error.into();
                        continue;
                    }
                };
            let mut session = OathSession {
                card,
                reader: name.to_string_lossy().into_owned(),
                version: [0; 3],
                salt: Vec::new(),
                challenge: None,
                device: None,
            };
            // Device information first: selecting another applet later would
            // drop an access code's validation.
            session.device = session.read_device_info().ok();
            match session.select() {
                Ok(()) => return Ok(session),
                Err(error) => last_error = error,
            }
        }
        Err(last_error)
    }

    fn read_device_info(&self) -> Result<DeviceInfo, OathError> {
        self.transmit(&Command::new(
            INS_SELECT,
            0x04,
            0x00,
            MANAGEMENT_AID.to_vec(),
        ))?;
        let data = self.transmit(&Command::new(INS_DEVICE_INFO, 0x00, 0x00, Vec::new()))?;
        let [length, tlvs @ ..] = data.as_slice() else {
            return Err(OathError::Protocol("empty device information"));
        };
        let tlvs = tlvs
            .get(..usize::from(*length))
            .ok_or(OathError::Protocol("short device information"))?;
        let mut info = DeviceInfo {
            serial: None,
            firmware: None,
        };
        for (tag, value) in apdu::parse_tlvs(tlvs)? {
            match (tag, value) {
                (0x02, [a, b, c, d]) => info.serial = Some(u32::from_be_bytes([*a, *b, *c, *d])),
                (0x05, [major, minor, patch]) => info.firmware = Some([*major, *minor, *patch]),
                _ => {}
            }
        }
        Ok(info)
    }

    fn select(&mut self) -> Result<(), OathError> {
        let data = self.transmit(&Command::new(INS_SELECT, 0x04, 0x00, OATH_AID.to_vec()))?;
        for (tag, value) in apdu::parse_tlvs(&data)? {
            match tag {
                0x79 => {
                    for (slot, byte) in self.version.iter_mut().zip(value) {
                        *slot = *byte;
                    }
                }
                0x71 => self.salt = value.to_vec(),
                0x74 => self.challenge = Some(value.to_vec()),
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether the applet wants an access code before anything else.
    pub fn locked(&self) -> bool {
        self.challenge.is_some()
    }

    /// Send a command; follow `61xx` with SEND REMAINING; fail on any other
    /// status than `9000`.
    pub fn transmit(&self, command: &Command) -> Result<Vec<u8>, OathError> {
        let mut collected = Vec::new();
        let mut next = command.encode()?;
        loop {
            let mut buffer = [0u8; pcsc::MAX_BUFFER_SIZE];
            let response = self.card.transmit(&next, &mut buffer)?;
            let (data, status) = apdu::split_response(response)?;
            collected.extend_from_slice(data);
            buffer.fill(0);
            if status.more_data() {
                next = Command::new(INS_SEND_REMAINING, 0, 0, Vec::new()).encode()?;
                continue;
            }
            return match status {
                StatusWord::OK => Ok(collected),
                StatusWord::AUTH_REQUIRED => Err(OathError::AccessCodeRequired),
                other => Err(OathError::Status(other)),
            };
        }
    }

    /// Unlock with the access code: answer the card's challenge and check the
    /// card's answer to ours (mutual authentication).
    pub fn validate(&mut self, access_code: &SecretString) -> Result<(), OathError> {
        let Some(challenge) = self.challenge.clone() else {
            return Ok(());
        };
        let key = derive_key(access_code, &self.salt);
        let response = hmac_sha1(key.as_ref(), &challenge);
        let ours: [u8; 8] = rand_challenge();
        let mut data = Vec::new();
        apdu::push_tlv(&mut data, 0x75, &response)?;
        apdu::push_tlv(&mut data, 0x74, &ours)?;
        let answer = match self.transmit(&Command::new(INS_VALIDATE, 0, 0, data)) {
            Ok(answer) => answer,
            Err(OathError::Status(StatusWord::WRONG_DATA)) | Err(OathError::AccessCodeRequired) => {
                return Err(OathError::WrongAccessCode);
            }
            Err(error) => return Err(error),
        };
        let card_says = apdu::parse_tlvs(&answer)?
            .into_iter()
            .find(|(tag, _)| *tag == 0x75)
            .map(|(_, value)| value.to_vec())
            .ok_or(OathError::Protocol("VALIDATE without a response"))?;
        let expected = hmac_sha1(key.as_ref(), &ours);
        if !bool::from(expected.as_slice().ct_eq(&card_says)) {
            return Err(OathError::Protocol(
                "the card did not prove it knows the access code",
            ));
        }
        self.challenge = None;
        Ok(())
    }
}

/// The applet's access-code key: PBKDF2-HMAC-SHA1(code, salt, 1000, 16 bytes).
pub fn derive_key(access_code: &SecretString, salt: &[u8]) -> zeroize::Zeroizing<[u8; 16]> {
    let mut key = zeroize::Zeroizing::new([0u8; 16]);
    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(
        access_code.expose_secret().as_bytes(),
        salt,
        1000,
        key.as_mut(),
    );
    key
}

pub fn hmac_sha1(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length.
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

pub fn rand_challenge() -> [u8; 8] {
    let mut bytes = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    bytes
}
