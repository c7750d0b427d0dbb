//! ISO 7816-4 command and response APDUs, status words, and the YKOATH
//! TLV encoding (one-byte tags, one-byte lengths; keys are zeroized).

use zeroize::Zeroizing;

/// A command APDU in short form (data up to 255 bytes).
pub struct Command {
    pub class: u8,
    pub instruction: u8,
    pub p1: u8,
    pub p2: u8,
    /// May hold key material: zeroized when dropped.
    pub data: Zeroizing<Vec<u8>>,
}

impl Command {
    pub fn new(instruction: u8, p1: u8, p2: u8, data: Vec<u8>) -> Command {
        Command {
            class: 0x00,
            instruction,
            p1,
            p2,
            data: Zeroizing::new(data),
        }
    }

    /// The bytes on the wire: CLA INS P1 P2 [Lc data].
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>, ApduError> {
        let length =
            u8::try_from(self.data.len()).map_err(|_| ApduError::TooLong(self.data.len()))?;
        let mut bytes = Zeroizing::new(Vec::with_capacity(5 + self.data.len()));
        bytes.extend_from_slice(&[self.class, self.instruction, self.p1, self.p2]);
        if length > 0 {
            bytes.push(length);
            bytes.extend_from_slice(&self.data);
        }
        Ok(bytes)
    }
}

/// A status word the OATH applet answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusWord(pub u16);

impl StatusWord {
    pub const OK: StatusWord = StatusWord(0x9000);
    pub const NO_SPACE: StatusWord = StatusWord(0x6A84);
    pub const AUTH_REQUIRED: StatusWord = StatusWord(0x6982);
    pub const NO_SUCH_OBJECT: StatusWord = StatusWord(0x6984);
    pub const WRONG_DATA: StatusWord = StatusWord(0x6A80);
    pub const TOUCH_REQUIRED: StatusWord = StatusWord(0x6985);

    /// `61xx`: more response data waits for SEND REMAINING.
    pub fn more_data(self) -> bool {
        self.0 >> 8 == 0x61
    }

    pub fn describe(self) -> &'static str {
        match self {
            StatusWord::OK => "success",
            StatusWord::NO_SPACE => "the OATH applet is full (32 credentials; 64 on firmware 5.7+)",
            StatusWord::AUTH_REQUIRED => "the OATH applet is protected by an access code",
            StatusWord::NO_SUCH_OBJECT => "no such credential",
            StatusWord::WRONG_DATA => "the applet refused the data",
            StatusWord::TOUCH_REQUIRED => "the credential needs a touch of the key",
            _ => "unexpected status",
        }
    }
}

impl std::fmt::Display for StatusWord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04X} ({})", self.0, self.describe())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApduError {
    #[error("command data too long for a short APDU ({0} bytes)")]
    TooLong(usize),
    #[error("response shorter than a status word")]
    Truncated,
    #[error("malformed TLV in the card's answer")]
    MalformedTlv,
}

/// Split a response into data and status word.
pub fn split_response(bytes: &[u8]) -> Result<(&[u8], StatusWord), ApduError> {
    let length = bytes.len();
    if length < 2 {
        return Err(ApduError::Truncated);
    }
    let status = StatusWord(u16::from_be_bytes([bytes[length - 2], bytes[length - 1]]));
    Ok((&bytes[..length - 2], status))
}

/// Append a TLV with a one-byte length.
pub fn push_tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) -> Result<(), ApduError> {
    let length = u8::try_from(value.len()).map_err(|_| ApduError::TooLong(value.len()))?;
    out.push(tag);
    out.push(length);
    out.extend_from_slice(value);
    Ok(())
}

/// Parse a sequence of TLVs. The property tag `78` carries no length: it is
/// only ever sent, never received, so it is not handled here.
pub fn parse_tlvs(mut bytes: &[u8]) -> Result<Vec<(u8, &[u8])>, ApduError> {
    let mut items = Vec::new();
    while !bytes.is_empty() {
        let [tag, length, rest @ ..] = bytes else {
            return Err(ApduError::MalformedTlv);
        };
        let length = usize::from(*length);
        if rest.len() < length {
            return Err(ApduError::MalformedTlv);
        }
        items.push((*tag, &rest[..length]));
        bytes = &rest[length..];
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_short_apdus() {
        let select = Command::new(
            0xA4,
            0x04,
            0x00,
            vec![0xA0, 0x00, 0x00, 0x05, 0x27, 0x21, 0x01],
        );
        assert_eq!(
            select.encode().unwrap().as_slice(),
            &[
                0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x05, 0x27, 0x21, 0x01
            ]
        );
        let list = Command::new(0xA1, 0, 0, Vec::new());
        assert_eq!(list.encode().unwrap().as_slice(), &[0x00, 0xA1, 0x00, 0x00]);
        assert_eq!(
            Command::new(1, 0, 0, vec![0; 256]).encode().unwrap_err(),
            ApduError::TooLong(256)
        );
    }

    #[test]
    fn parses_responses_and_tlvs() {
        let (data, status) =
            split_response(&[0x76, 0x05, 0x06, 0x67, 0x4C, 0x91, 0xA7, 0x90, 0x00]).unwrap();
        assert_eq!(status, StatusWord::OK);
        assert_eq!(
            parse_tlvs(data).unwrap(),
            vec![(0x76, &[0x06, 0x67, 0x4C, 0x91, 0xA7][..])]
        );
        assert!(StatusWord(0x6110).more_data());
        assert_eq!(
            parse_tlvs(&[0x71, 0x05, 0x01]),
            Err(ApduError::MalformedTlv)
        );
        assert_eq!(split_response(&[0x90]), Err(ApduError::Truncated));
    }
}
