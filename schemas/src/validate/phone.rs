//! Mainland China mobile phone numbers (手机号码).
//!
//! A mobile number has 11 digits, starts with `1` and has a second digit 3-9 (13x, 14x, … 19x). Input from source
//! systems often carries a country prefix (`+86`, `0086`, `86`) or separators (spaces, dashes); they are removed
//! and the bare 11-digit number is returned.

use thiserror::Error;

/// Why a text is not a valid mainland mobile number.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PhoneError {
    /// A character other than a digit, a separator or a leading `+`.
    #[error("character {found:?} is not allowed in a phone number")]
    BadChar {
        /// The offending character.
        found: char,
    },
    /// Not 11 digits after removing the country prefix and separators.
    #[error("mobile number must have 11 digits, got {digits} ({normalized})")]
    Length {
        /// Number of digits left.
        digits: usize,
        /// The digits left.
        normalized: String,
    },
    /// The number does not start with 1.
    #[error("mobile number {normalized} must start with 1")]
    BadFirstDigit {
        /// The 11 digits.
        normalized: String,
    },
    /// The second digit is not 3-9.
    #[error("mobile number {normalized} has second digit {found}, expected 3-9")]
    BadSecondDigit {
        /// The 11 digits.
        normalized: String,
        /// The second digit found.
        found: char,
    },
}

/// Validates a mainland mobile number and returns its bare 11-digit form.
pub fn validate_phone(input: &str) -> Result<String, PhoneError> {
    let trimmed = input.trim();
    let (plus, rest) = match trimmed.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    let mut digits = String::with_capacity(rest.len());
    for ch in rest.chars() {
        match ch {
            '0'..='9' => digits.push(ch),
            ' ' | '-' | '\u{3000}' => {}
            _ => return Err(PhoneError::BadChar { found: ch }),
        }
    }
    let national = if plus || digits.len() == 13 || digits.len() == 15 {
        digits
            .strip_prefix("0086")
            .or_else(|| digits.strip_prefix("86"))
            .unwrap_or(&digits)
    } else {
        &digits
    };
    let normalized = national.to_string();
    if normalized.len() != 11 {
        return Err(PhoneError::Length {
            digits: normalized.len(),
            normalized,
        });
    }
    let bytes = normalized.as_bytes();
    if bytes[0] != b'1' {
        return Err(PhoneError::BadFirstDigit { normalized });
    }
    if !(b'3'..=b'9').contains(&bytes[1]) {
        let found = char::from(bytes[1]);
        return Err(PhoneError::BadSecondDigit { normalized, found });
    }
    Ok(normalized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalises_common_forms() {
        for input in [
            "13891512376",
            "+86 138 9151 2376",
            "+86-13891512376",
            "8613891512376",
            "0086 13891512376",
            "138-9151-2376",
        ] {
            assert_eq!(
                validate_phone(input).as_deref(),
                Ok("13891512376"),
                "{input}"
            );
        }
        for input in ["15929436821", "18691827354", "19909150001", "17791234567"] {
            assert!(validate_phone(input).is_ok(), "{input}");
        }
    }

    #[test]
    fn rejects_landlines_and_bad_prefixes() {
        assert_eq!(
            validate_phone("029-86123456"),
            Err(PhoneError::BadFirstDigit {
                normalized: "02986123456".into()
            })
        );
        assert_eq!(
            validate_phone("12891512376"),
            Err(PhoneError::BadSecondDigit {
                normalized: "12891512376".into(),
                found: '2'
            })
        );
        assert_eq!(
            validate_phone("23891512376"),
            Err(PhoneError::BadFirstDigit {
                normalized: "23891512376".into()
            })
        );
        assert_eq!(
            validate_phone("1389151237"),
            Err(PhoneError::Length {
                digits: 10,
                normalized: "1389151237".into()
            })
        );
        assert_eq!(
            validate_phone("138(9151)2376"),
            Err(PhoneError::BadChar { found: '(' })
        );
    }

    #[test]
    fn error_message_says_what_is_wrong() {
        let err = validate_phone("11891512376").unwrap_err();
        assert_eq!(
            err.to_string(),
            "mobile number 11891512376 has second digit 1, expected 3-9"
        );
    }
}
