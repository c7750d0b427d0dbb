//! What a user name may be.

use super::{DomainError, Result};

pub const MAX_NAME_LEN: usize = 64;

/// 1 to 64 characters: ASCII letters, digits, and `. _ - @`; starting with a
/// letter or digit. Names are compared without regard to case.
pub fn validate_user_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_@".contains(&b))
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(DomainError::Invalid(
            "a user name is 1 to 64 letters, digits, dots, dashes, underscores or @, starting with a letter or digit"
                .to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused() {
        for name in ["alice", "bob.smith", "c3po", "x@example.com", "a_b-c"] {
            assert!(validate_user_name(name).is_ok(), "{name}");
        }
        let long = "a".repeat(65);
        for name in [
            "",
            " alice",
            "-x",
            "<script>",
            "al ice",
            "ålice",
            "a\0b",
            "a/b",
            long.as_str(),
        ] {
            assert!(validate_user_name(name).is_err(), "{name:?}");
        }
    }
}
