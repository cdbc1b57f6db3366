//! Resident identity card numbers (居民身份证号码, GB 11643-1999).
//!
//! An ID number has 18 characters: a 6-digit address code (the county where it was first issued), an 8-digit
//! birth date `YYYYMMDD`, a 3-digit sequence number (odd for men, even for women) and a check character computed
//! with ISO 7064 MOD 11-2. The check character is `0`-`9` or `X`; a lowercase `x` is accepted and normalised.

use thiserror::Error;

use crate::date::CivilDate;

/// ISO 7064 MOD 11-2 weights of the first 17 characters (2^(17-i) mod 11).
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check character for each value of (weighted sum mod 11).
const CHECK_CHARS: &[u8; 11] = b"10X98765432";
/// Province-level codes of GB/T 2260 (11 北京 … 65 新疆, 71 台湾, 81 香港, 82 澳门).
const PROVINCE_CODES: [u8; 34] = [
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82,
];
/// Earliest birth year accepted: nobody alive was born before 1900.
const MIN_BIRTH_YEAR: i32 = 1900;

/// Why a text is not a valid resident ID number.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CertNoError {
    /// The number does not have 18 characters.
    #[error("ID number must have 18 characters, got {len}")]
    Length {
        /// Number of characters found.
        len: usize,
    },
    /// One of the first 17 characters is not an ASCII digit.
    #[error("character {found:?} at position {position} must be a digit")]
    NotDigit {
        /// 1-based position of the offending character.
        position: usize,
        /// The offending character.
        found: char,
    },
    /// The 18th character is neither a digit nor `X`.
    #[error("check character {found:?} must be a digit or X")]
    BadCheckChar {
        /// The offending character.
        found: char,
    },
    /// The check character does not match the first 17 digits.
    #[error("check digit is {found}, expected {expected}")]
    CheckDigit {
        /// Check character in the input (normalised to uppercase).
        found: char,
        /// Check character computed from the first 17 digits.
        expected: char,
    },
    /// The first two digits are not a province-level code.
    #[error("province code {code} is not a GB/T 2260 province (11..82)")]
    UnknownProvince {
        /// The two-digit code found.
        code: String,
    },
    /// Digits 7-14 are not a calendar date.
    #[error("birth date {digits} is not a calendar date")]
    InvalidBirthDate {
        /// The eight digits found.
        digits: String,
    },
    /// The birth date is after the reference date.
    #[error("birth date {birth} is in the future (today is {today})")]
    BirthDateInFuture {
        /// The birth date.
        birth: CivilDate,
        /// The reference date it was compared with.
        today: CivilDate,
    },
    /// The birth date is before 1900.
    #[error("birth date {birth} is before {MIN_BIRTH_YEAR}")]
    BirthDateTooEarly {
        /// The birth date.
        birth: CivilDate,
    },
}

/// Gender encoded by the 17th digit of an ID number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gender {
    /// Odd sequence digit.
    Male,
    /// Even sequence digit.
    Female,
}

/// A valid resident ID number and what it encodes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertNo {
    normalized: String,
    birth_date: CivilDate,
    gender: Gender,
}

impl CertNo {
    /// The number in canonical form (uppercase `X`).
    pub fn as_str(&self) -> &str {
        &self.normalized
    }

    /// The 6-digit address code (county of first issue, GB/T 2260; may be a code since abolished).
    pub fn region_prefix(&self) -> &str {
        &self.normalized[..6]
    }

    /// The birth date.
    pub fn birth_date(&self) -> CivilDate {
        self.birth_date
    }

    /// The gender.
    pub fn gender(&self) -> Gender {
        self.gender
    }
}

/// The check character for the first 17 digits of an ID number (useful to generate valid test numbers).
pub fn cert_no_check_char(first17: &str) -> Result<char, CertNoError> {
    let len = first17.chars().count();
    if len != 17 {
        return Err(CertNoError::Length { len: len + 1 });
    }
    let mut sum = 0;
    for (i, (ch, weight)) in first17.chars().zip(WEIGHTS).enumerate() {
        let digit = ch.to_digit(10).filter(|_| ch.is_ascii_digit());
        let digit = digit.ok_or(CertNoError::NotDigit {
            position: i + 1,
            found: ch,
        })?;
        sum += digit * weight;
    }
    Ok(char::from(CHECK_CHARS[(sum % 11) as usize]))
}

/// Validates an ID number, checking that the birth date is not after today in China (UTC+8).
pub fn validate_cert_no(input: &str) -> Result<CertNo, CertNoError> {
    validate_cert_no_on(input, CivilDate::today_shanghai())
}

/// Validates an ID number against the reference date `today` (deterministic; for tests and replays).
pub fn validate_cert_no_on(input: &str, today: CivilDate) -> Result<CertNo, CertNoError> {
    let chars: Vec<char> = input.chars().collect();
    if chars.len() != 18 {
        return Err(CertNoError::Length { len: chars.len() });
    }
    let first17: String = chars[..17].iter().collect();
    let expected = cert_no_check_char(&first17)?;
    let found = chars[17].to_ascii_uppercase();
    if !(found.is_ascii_digit() || found == 'X') {
        return Err(CertNoError::BadCheckChar { found: chars[17] });
    }
    if found != expected {
        return Err(CertNoError::CheckDigit { found, expected });
    }
    let province = &first17[..2];
    if !province
        .parse::<u8>()
        .is_ok_and(|p| PROVINCE_CODES.contains(&p))
    {
        return Err(CertNoError::UnknownProvince {
            code: province.to_string(),
        });
    }
    let digits = &first17[6..14];
    let birth_date =
        CivilDate::parse_yyyymmdd(digits).ok_or_else(|| CertNoError::InvalidBirthDate {
            digits: digits.to_string(),
        })?;
    if birth_date.year() < MIN_BIRTH_YEAR {
        return Err(CertNoError::BirthDateTooEarly { birth: birth_date });
    }
    if birth_date > today {
        return Err(CertNoError::BirthDateInFuture {
            birth: birth_date,
            today,
        });
    }
    // The 17th character is a digit: cert_no_check_char accepted all 17.
    let gender = if (chars[16] as u32 - '0' as u32) % 2 == 1 {
        Gender::Male
    } else {
        Gender::Female
    };
    Ok(CertNo {
        normalized: format!("{first17}{found}"),
        birth_date,
        gender,
    })
}

/// Whether `input` is a valid ID number already in canonical form, checked against the reference date `today`,
/// without allocating: exactly when [`validate_cert_no_on`] accepts it and returns the same text (so a lowercase
/// `x` gives `false`). Callers that need the parsed value or the error call [`validate_cert_no_on`].
pub fn is_canonical_cert_no_on(input: &str, today: CivilDate) -> bool {
    let Ok(b) = <&[u8; 18]>::try_from(input.as_bytes()) else {
        return false;
    };
    let mut sum = 0u32;
    for (&d, weight) in b.iter().zip(WEIGHTS) {
        if !d.is_ascii_digit() {
            return false;
        }
        sum += u32::from(d - b'0') * weight;
    }
    if b[17] != CHECK_CHARS[(sum % 11) as usize] {
        return false;
    }
    let num = |r: std::ops::Range<usize>| {
        b[r].iter()
            .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'))
    };
    if !PROVINCE_CODES.contains(&(num(0..2) as u8)) {
        return false;
    }
    // Four digits always fit an i32 and two a u8.
    let birth = CivilDate::new(num(6..10) as i32, num(10..12) as u8, num(12..14) as u8);
    birth.is_some_and(|birth| birth.year() >= MIN_BIRTH_YEAR && birth <= today)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> CivilDate {
        CivilDate::new(2025, 1, 1).unwrap()
    }

    /// Computes the check character the long way, straight from the standard's definition
    /// (weights are 2^(17-i) mod 11, check value = (12 - sum mod 11) mod 11, 10 written X).
    fn check_by_definition(first17: &str) -> char {
        let sum: u64 = first17
            .bytes()
            .enumerate()
            .map(|(i, b)| u64::from(b - b'0') * (2u64.pow(17 - i as u32) % 11))
            .sum();
        match (12 - sum % 11) % 11 {
            10 => 'X',
            v => char::from(b'0' + v as u8),
        }
    }

    #[test]
    fn table_matches_the_definition() {
        for first17 in [
            "11010519491231002",
            "61092119680312457",
            "61092119520818402",
            "44030419991231000",
        ] {
            assert_eq!(
                cert_no_check_char(first17).unwrap(),
                check_by_definition(first17),
                "{first17}"
            );
        }
    }

    #[test]
    fn well_known_sample_is_valid() {
        let id = validate_cert_no_on("11010519491231002X", today()).unwrap();
        assert_eq!(id.as_str(), "11010519491231002X");
        assert_eq!(id.region_prefix(), "110105");
        assert_eq!(id.birth_date(), CivilDate::new(1949, 12, 31).unwrap());
        assert_eq!(id.gender(), Gender::Female);
    }

    #[test]
    fn lowercase_x_is_normalised() {
        let id = validate_cert_no_on("11010519491231002x", today()).unwrap();
        assert_eq!(id.as_str(), "11010519491231002X");
    }

    #[test]
    fn shaanxi_numbers_from_the_examples() {
        // 7*6+9*1+10*0+5*9+8*2+4*1+2*1+1*9+6*6+3*8+7*0+9*3+10*1+5*2+8*4+4*5+2*7 = 300; 300 mod 11 = 3 -> '9'.
        let id = validate_cert_no_on("610921196803124579", today()).unwrap();
        assert_eq!(id.gender(), Gender::Male);
        assert_eq!(id.birth_date(), CivilDate::new(1968, 3, 12).unwrap());
        assert!(validate_cert_no_on("61092119520818402X", today()).is_ok());
    }

    #[test]
    fn wrong_check_digit_names_both_digits() {
        let err = validate_cert_no_on("110105194912310023", today()).unwrap_err();
        assert_eq!(
            err,
            CertNoError::CheckDigit {
                found: '3',
                expected: 'X'
            }
        );
        assert_eq!(err.to_string(), "check digit is 3, expected X");
    }

    #[test]
    fn rejects_bad_shapes() {
        assert_eq!(
            validate_cert_no_on("1101051949123100", today()),
            Err(CertNoError::Length { len: 16 })
        );
        assert_eq!(
            validate_cert_no_on("11010519491231A02X", today()),
            Err(CertNoError::NotDigit {
                position: 15,
                found: 'A'
            })
        );
        assert_eq!(
            validate_cert_no_on("11010519491231002Y", today()),
            Err(CertNoError::BadCheckChar { found: 'Y' })
        );
    }

    fn with_check(first17: &str) -> String {
        format!("{first17}{}", cert_no_check_char(first17).unwrap())
    }

    #[test]
    fn rejects_impossible_birth_dates() {
        // 1900 is not a leap year; 2000 is.
        let err = validate_cert_no_on(&with_check("61092119000229001"), today()).unwrap_err();
        assert_eq!(
            err,
            CertNoError::InvalidBirthDate {
                digits: "19000229".into()
            }
        );
        assert!(validate_cert_no_on(&with_check("61092120000229001"), today()).is_ok());
        let err = validate_cert_no_on(&with_check("61092118991231001"), today()).unwrap_err();
        assert!(
            matches!(err, CertNoError::BirthDateTooEarly { .. }),
            "{err}"
        );
        let err = validate_cert_no_on(&with_check("61092120250102001"), today()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "birth date 2025-01-02 is in the future (today is 2025-01-01)"
        );
        assert!(validate_cert_no_on(&with_check("61092120250101001"), today()).is_ok());
    }

    /// A small deterministic generator for the randomised comparisons.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn fast_check_agrees_with_the_full_validator() {
        let mut state = 0x5eed_1234_abcd_0001_u64;
        let todays = [today(), CivilDate::new(1968, 3, 12).unwrap()];
        let mut valid = 0;
        for i in 0..200_000 {
            let n = next(&mut state);
            let province = PROVINCE_CODES[(n % 34) as usize];
            let province = if n.is_multiple_of(97) { 99 } else { province };
            let year = 1890 + (n >> 8) % 140;
            let month = 1 + (n >> 16) % 13;
            let day = 1 + (n >> 24) % 31;
            let first17 = format!(
                "{province:02}{:04}{year:04}{month:02}{day:02}{:03}",
                (n >> 32) % 10_000,
                (n >> 48) % 1_000
            );
            let mut text = with_check(&first17);
            match (n >> 60) % 8 {
                0 => text = text.replace('X', "x"),
                1 => {
                    // Replace one character with something else (digit, letter or a multi-byte character).
                    let pos = ((n >> 40) % 18) as usize;
                    let with = ["0", "7", "X", "x", "A", "é", "一"][((n >> 44) % 7) as usize];
                    text = text
                        .chars()
                        .enumerate()
                        .map(|(j, c)| {
                            if j == pos {
                                with.to_string()
                            } else {
                                c.to_string()
                            }
                        })
                        .collect();
                }
                2 => text.truncate(((n >> 40) % 18) as usize),
                3 => text.push('1'),
                _ => {}
            }
            let today = todays[i % 2];
            let slow = validate_cert_no_on(&text, today);
            let want = slow.as_ref().is_ok_and(|c| c.as_str() == text);
            valid += usize::from(want);
            assert_eq!(
                is_canonical_cert_no_on(&text, today),
                want,
                "{text}: {slow:?}"
            );
        }
        assert!(valid > 20_000, "only {valid} valid numbers generated");
    }

    #[test]
    fn rejects_unknown_provinces() {
        let err = validate_cert_no_on(&with_check("99092119680312457"), today()).unwrap_err();
        assert_eq!(err, CertNoError::UnknownProvince { code: "99".into() });
        assert!(validate_cert_no_on(&with_check("82000019680312457"), today()).is_ok());
    }
}
