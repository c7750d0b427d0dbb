//! Random values from the operating system's generator.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use rand::rngs::OsRng;

/// `N` random bytes.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

/// `length` random bytes as unpadded base64url text.
pub fn token(length: usize) -> String {
    let mut bytes = vec![0u8; length];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A password a person can type: letters and digits without look-alikes,
/// in dash-separated groups of five.
pub fn readable_password(groups: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzACDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut groups_out = Vec::with_capacity(groups);
    for _ in 0..groups {
        let group: String = (0..5)
            .map(|_| {
                // Rejection sampling keeps every character equally likely.
                loop {
                    let byte = (OsRng.next_u32() & 0xff) as usize;
                    if byte < 256 - 256 % ALPHABET.len() {
                        return char::from(ALPHABET[byte % ALPHABET.len()]);
                    }
                }
            })
            .collect();
        groups_out.push(group);
    }
    groups_out.join("-")
}
