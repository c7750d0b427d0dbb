//! TOTP arithmetic that needs no key: time steps and RFC 4226 truncation.
//! The HMAC itself is always computed inside the token.

use crate::error::{Result, VaultError};

/// How codes are formed and how much clock drift is tolerated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpPolicy {
    /// 6 to 8.
    pub digits: u8,
    /// Seconds per time step, usually 30.
    pub period: u64,
    /// Steps accepted either side of the current one, usually 1.
    pub window: u8,
}

impl Default for TotpPolicy {
    fn default() -> Self {
        TotpPolicy {
            digits: 6,
            period: 30,
            window: 1,
        }
    }
}

impl TotpPolicy {
    pub fn validate(&self) -> Result<()> {
        if !(6..=8).contains(&self.digits) {
            return Err(VaultError::InvalidRequest("digits must be 6 to 8"));
        }
        if self.period == 0 || self.period > 300 {
            return Err(VaultError::InvalidRequest(
                "period must be 1 to 300 seconds",
            ));
        }
        if self.window > 10 {
            return Err(VaultError::InvalidRequest(
                "window must be at most 10 steps",
            ));
        }
        Ok(())
    }

    /// The time steps a code given at `now` (Unix seconds) may belong to,
    /// oldest first.
    pub fn candidate_steps(&self, now: u64) -> impl Iterator<Item = u64> + use<> {
        let center = now / self.period;
        let window = u64::from(self.window);
        center.saturating_sub(window)..=center.saturating_add(window)
    }

    /// Check a code's shape before any token work: exactly `digits` ASCII digits.
    pub fn check_code_shape(&self, code: &str) -> Result<()> {
        if code.len() == usize::from(self.digits) && code.bytes().all(|b| b.is_ascii_digit()) {
            Ok(())
        } else {
            Err(VaultError::InvalidRequest(
                "the code must be all digits, of the configured length",
            ))
        }
    }
}

/// RFC 4226 dynamic truncation of an HMAC into a `digits`-long decimal code.
pub(crate) fn truncate(mac: &[u8], digits: u8) -> Result<[u8; 8]> {
    let last = *mac
        .last()
        .ok_or(VaultError::InvalidRequest("empty HMAC from the token"))?;
    let offset = usize::from(last & 0x0f);
    let bytes = mac
        .get(offset..offset + 4)
        .ok_or(VaultError::InvalidRequest("short HMAC from the token"))?;
    let binary = u32::from_be_bytes([bytes[0] & 0x7f, bytes[1], bytes[2], bytes[3]]);
    let value = binary % 10u32.pow(u32::from(digits));
    let mut code = [b'0'; 8];
    let mut rest = value;
    for index in (0..usize::from(digits)).rev() {
        code[index] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_like_rfc_4226_appendix_d() {
        // RFC 4226 section 5.4's worked example.
        let mac = [
            0x1f, 0x86, 0x98, 0x69, 0x0e, 0x02, 0xca, 0x16, 0x61, 0x85, 0x50, 0xef, 0x7f, 0x19,
            0xda, 0x8e, 0x94, 0x5b, 0x55, 0x5a,
        ];
        let code = truncate(&mac, 6).unwrap();
        assert_eq!(&code[..6], b"872921");
    }

    #[test]
    fn candidate_steps_cover_the_window_and_stop_at_zero() {
        let policy = TotpPolicy::default();
        assert_eq!(
            policy.candidate_steps(95).collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
        assert_eq!(policy.candidate_steps(5).collect::<Vec<_>>(), vec![0, 1]);
    }

    #[test]
    fn code_shape_is_checked() {
        let policy = TotpPolicy::default();
        assert!(policy.check_code_shape("012345").is_ok());
        for bad in ["12345", "1234567", "12a456", "١٢٣٤٥٦", ""] {
            assert!(policy.check_code_shape(bad).is_err(), "{bad}");
        }
    }
}
