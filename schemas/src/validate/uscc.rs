//! Unified social credit codes (统一社会信用代码, GB 32100-2015) of legal persons and other organisations.
//!
//! A code has 18 characters from the 31-character set `0-9 A-H J-N P-R T U W-Y` (no I, O, Z, S, V):
//!
//! | position | meaning |
//! |---|---|
//! | 1 | registration authority (登记管理部门), e.g. `1` 机构编制, `5` 民政, `9` 市场监管(工商) |
//! | 2 | organisation type within that authority (机构类别), e.g. `91` 企业, `92` 个体工商户 |
//! | 3-8 | 6-digit administrative division of the registering office (GB/T 2260; `100000` for central bodies) |
//! | 9-17 | subject identifier (主体标识码, the former organisation code) |
//! | 18 | check character: weights 3^i mod 31, check = (31 - sum mod 31) mod 31 |
//!
//! The authority/type table is the standard's Annex A plus the authority codes assigned since its publication
//! (外交, 司法行政, 文化, 旅游, 宗教, 工会, 中央军委改革和编制办公室, 农业).

use thiserror::Error;

/// The code's character set, in value order (value = index).
const CHARSET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";
/// Weights of the first 17 characters: 3^i mod 31.
const WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];
/// Organisation types an authority may issue: (code, name).
type OrgTypes = &'static [(char, &'static str)];
/// Registration authorities (code, name) and the organisation types each may issue.
const AUTHORITIES: [(char, &str, OrgTypes); 12] = [
    (
        '1',
        "机构编制",
        &[
            ('1', "机关"),
            ('2', "事业单位"),
            ('3', "中央编办直接管理机构编制的群众团体"),
            ('9', "其他"),
        ],
    ),
    ('2', "外交", &[('1', "外国常驻新闻机构"), ('9', "其他")]),
    (
        '3',
        "司法行政",
        &[
            ('1', "律师执业机构"),
            ('2', "公证处"),
            ('3', "基层法律服务所"),
            ('4', "司法鉴定机构"),
            ('5', "仲裁委员会"),
            ('9', "其他"),
        ],
    ),
    ('4', "文化", &[('1', "外国在华文化中心"), ('9', "其他")]),
    (
        '5',
        "民政",
        &[
            ('1', "社会团体"),
            ('2', "民办非企业单位"),
            ('3', "基金会"),
            ('9', "其他"),
        ],
    ),
    (
        '6',
        "旅游",
        &[
            ('1', "外国旅游部门常驻代表机构"),
            ('2', "港澳台地区旅游部门常驻内地(大陆)代表机构"),
            ('9', "其他"),
        ],
    ),
    (
        '7',
        "宗教",
        &[('1', "宗教活动场所"), ('2', "宗教院校"), ('9', "其他")],
    ),
    ('8', "工会", &[('1', "基层工会"), ('9', "其他")]),
    (
        '9',
        "工商",
        &[('1', "企业"), ('2', "个体工商户"), ('3', "农民专业合作社")],
    ),
    (
        'A',
        "中央军委改革和编制办公室",
        &[('1', "军队事业单位"), ('9', "其他")],
    ),
    (
        'N',
        "农业",
        &[
            ('1', "组级集体经济组织"),
            ('2', "村级集体经济组织"),
            ('3', "乡镇级集体经济组织"),
            ('9', "其他"),
        ],
    ),
    ('Y', "其他", &[('1', "其他")]),
];
/// Province-level codes of GB/T 2260, plus `10` used by bodies registered centrally.
const DIVISION_PREFIXES: [u8; 35] = [
    10, 11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51,
    52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82,
];

/// Why a text is not a valid unified social credit code.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UsccError {
    /// The code does not have 18 characters.
    #[error("unified social credit code must have 18 characters, got {len}")]
    Length {
        /// Number of characters found.
        len: usize,
    },
    /// A character outside the code's character set (which has no I, O, Z, S or V).
    #[error("character {found:?} at position {position} is not in the code's character set 0-9 A-H J-N P-R T U W-Y")]
    BadChar {
        /// 1-based position of the offending character.
        position: usize,
        /// The offending character.
        found: char,
    },
    /// The check character does not match the first 17 characters.
    #[error("check character is {found}, expected {expected}")]
    CheckChar {
        /// Check character in the input.
        found: char,
        /// Check character computed from the first 17 characters.
        expected: char,
    },
    /// The first character is not a registration authority code.
    #[error("registration authority code {found:?} is unknown")]
    UnknownAuthority {
        /// The character found.
        found: char,
    },
    /// The second character is not an organisation type of the authority.
    #[error("organisation type {found:?} is not defined for registration authority {authority:?} ({authority_name})")]
    UnknownOrgType {
        /// The authority character.
        authority: char,
        /// The authority's name.
        authority_name: &'static str,
        /// The type character found.
        found: char,
    },
    /// Characters 3-8 are not a 6-digit administrative division code.
    #[error("characters 3-8 ({found}) must be a 6-digit administrative division code of a known province")]
    BadDivision {
        /// The six characters found.
        found: String,
    },
}

/// A valid unified social credit code and what it encodes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Uscc {
    code: String,
    authority_name: &'static str,
    org_type_name: &'static str,
}

impl Uscc {
    /// The code in canonical (uppercase) form.
    pub fn as_str(&self) -> &str {
        &self.code
    }

    /// Registration authority name, e.g. `工商`.
    pub fn authority_name(&self) -> &'static str {
        self.authority_name
    }

    /// Organisation type name, e.g. `企业`.
    pub fn org_type_name(&self) -> &'static str {
        self.org_type_name
    }

    /// 6-digit administrative division code of the registering office.
    pub fn division_code(&self) -> &str {
        &self.code[2..8]
    }

    /// 9-character subject identifier (the former organisation code).
    pub fn subject_id(&self) -> &str {
        &self.code[8..17]
    }
}

fn char_value(position: usize, ch: char) -> Result<u32, UsccError> {
    CHARSET
        .find(ch)
        .map(|v| v as u32)
        .ok_or(UsccError::BadChar {
            position,
            found: ch,
        })
}

/// The check character for the first 17 characters of a code (useful to generate valid test codes).
pub fn uscc_check_char(first17: &str) -> Result<char, UsccError> {
    let len = first17.chars().count();
    if len != 17 {
        return Err(UsccError::Length { len: len + 1 });
    }
    let mut sum = 0;
    for (i, (ch, weight)) in first17.chars().zip(WEIGHTS).enumerate() {
        sum += char_value(i + 1, ch)? * weight;
    }
    let check = ((31 - sum % 31) % 31) as usize;
    // `check` < 31 = CHARSET.len(), so the index is in range.
    Ok(char::from(CHARSET.as_bytes()[check]))
}

/// Validates a unified social credit code; lowercase letters are accepted and normalised to uppercase.
pub fn validate_uscc(input: &str) -> Result<Uscc, UsccError> {
    let code = input.to_ascii_uppercase();
    let chars: Vec<char> = code.chars().collect();
    if chars.len() != 18 {
        return Err(UsccError::Length { len: chars.len() });
    }
    // Every character must be in the code's charset before any byte slicing: a non-ASCII character would make
    // the byte offsets below land inside it.
    for (i, c) in chars.iter().enumerate() {
        char_value(i + 1, *c)?;
    }
    let expected = uscc_check_char(&code[..17])?;
    let found = chars[17];
    char_value(18, found)?;
    if found != expected {
        return Err(UsccError::CheckChar { found, expected });
    }
    let (_, authority_name, types) = AUTHORITIES
        .iter()
        .find(|(c, _, _)| *c == chars[0])
        .ok_or(UsccError::UnknownAuthority { found: chars[0] })?;
    let (_, org_type_name) =
        types
            .iter()
            .find(|(c, _)| *c == chars[1])
            .ok_or(UsccError::UnknownOrgType {
                authority: chars[0],
                authority_name,
                found: chars[1],
            })?;
    let division = &code[2..8];
    let division_ok = division.bytes().all(|b| b.is_ascii_digit())
        && division[..2]
            .parse::<u8>()
            .is_ok_and(|p| DIVISION_PREFIXES.contains(&p));
    if !division_ok {
        return Err(UsccError::BadDivision {
            found: division.to_string(),
        });
    }
    Ok(Uscc {
        code,
        authority_name,
        org_type_name,
    })
}

/// The value of each byte in [`CHARSET`], `u8::MAX` for bytes outside it.
const CHAR_VALUES: [u8; 256] = {
    let mut table = [u8::MAX; 256];
    let set = CHARSET.as_bytes();
    let mut i = 0;
    while i < set.len() {
        table[set[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Whether `input` is a valid unified social credit code already in canonical (uppercase) form, without
/// allocating: exactly when [`validate_uscc`] accepts it and returns the same text. Callers that need the parsed
/// value or the error call [`validate_uscc`].
pub fn is_canonical_uscc(input: &str) -> bool {
    let Ok(b) = <&[u8; 18]>::try_from(input.as_bytes()) else {
        return false;
    };
    let mut sum = 0u32;
    for (&c, weight) in b.iter().zip(WEIGHTS) {
        let v = CHAR_VALUES[usize::from(c)];
        if v == u8::MAX {
            return false;
        }
        sum += u32::from(v) * weight;
    }
    let check = ((31 - sum % 31) % 31) as usize;
    if CHARSET.as_bytes().get(check) != Some(&b[17]) {
        return false;
    }
    let (first, second) = (char::from(b[0]), char::from(b[1]));
    let type_known = AUTHORITIES
        .iter()
        .find(|(c, _, _)| *c == first)
        .is_some_and(|(_, _, types)| types.iter().any(|(c, _)| *c == second));
    let division = &b[2..8];
    type_known
        && division.iter().all(u8::is_ascii_digit)
        && DIVISION_PREFIXES.contains(&((division[0] - b'0') * 10 + (division[1] - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_ascii_input_of_eighteen_characters_is_an_error_not_a_panic() {
        assert!(validate_uscc("九一三五零一零零M000100Y43").is_err());
        assert!(validate_uscc("91350100M000100Y4é").is_err());
        assert!(validate_uscc("é1350100M000100Y43").is_err());
    }

    #[test]
    fn weights_are_powers_of_three_mod_31() {
        let mut w = 1;
        for expected in WEIGHTS {
            assert_eq!(expected, w);
            w = w * 3 % 31;
        }
        assert_eq!(CHARSET.len(), 31);
        assert!(!CHARSET.contains(['I', 'O', 'Z', 'S', 'V']));
    }

    #[test]
    fn commonly_cited_sample_is_valid() {
        // 9*1 + 1*3 + 3*9 + 5*27 + 0 + 1*26 + 0 + 0 + M(21)*20 + 0 + 0 + 0 + 1*8 + 0 + 0 + Y(30)*30 + 4*28
        // = 9+3+27+135+26+420+8+900+112 = 1640; 1640 mod 31 = 28; (31-28) mod 31 = 3.
        let code = validate_uscc("91350100M000100Y43").unwrap();
        assert_eq!(code.authority_name(), "工商");
        assert_eq!(code.org_type_name(), "企业");
        assert_eq!(code.division_code(), "350100");
        assert_eq!(code.subject_id(), "M000100Y4");
    }

    #[test]
    fn example_codes_are_valid() {
        for code in [
            "11610921016050213P",
            "11610114MB1E283669",
            "12610000MB2960F19E",
            "91610902MA6YQ8K18A",
        ] {
            assert!(validate_uscc(code).is_ok(), "{code}");
        }
        assert_eq!(
            validate_uscc("91350100m000100y43").unwrap().as_str(),
            "91350100M000100Y43"
        );
    }

    #[test]
    fn wrong_check_char_is_reported() {
        let err = validate_uscc("91350100M000100Y44").unwrap_err();
        assert_eq!(err.to_string(), "check character is 4, expected 3");
    }

    #[test]
    fn letters_outside_the_charset_are_rejected() {
        let err = validate_uscc("91350100O000100Y43").unwrap_err();
        assert_eq!(
            err,
            UsccError::BadChar {
                position: 9,
                found: 'O'
            }
        );
        assert_eq!(
            validate_uscc("91350100M000100Y4"),
            Err(UsccError::Length { len: 17 })
        );
    }

    fn with_check(first17: &str) -> String {
        format!("{first17}{}", uscc_check_char(first17).unwrap())
    }

    #[test]
    fn authority_type_and_division_are_checked() {
        let err = validate_uscc(&with_check("B1350100M000100Y4")).unwrap_err();
        assert_eq!(err, UsccError::UnknownAuthority { found: 'B' });
        let err = validate_uscc(&with_check("94350100M000100Y4")).unwrap_err();
        assert!(
            matches!(
                err,
                UsccError::UnknownOrgType {
                    authority: '9',
                    found: '4',
                    ..
                }
            ),
            "{err}"
        );
        let err = validate_uscc(&with_check("9199A100M000100Y4")).unwrap_err();
        assert_eq!(
            err,
            UsccError::BadDivision {
                found: "99A100".into()
            }
        );
        assert!(
            validate_uscc(&with_check("11100000000013127")).is_ok(),
            "central bodies use 100000"
        );
    }

    #[test]
    fn fast_check_agrees_with_the_full_validator() {
        let mut state = 0x0dd5_eed5_2024_0618_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet: Vec<char> = "0123456789ABCDEFGHJKLMNPQRTUWXYabcxyzIOSVZ-é一"
            .chars()
            .collect();
        let charset: Vec<char> = CHARSET.chars().collect();
        let mut valid = 0;
        for _ in 0..200_000 {
            let n = next();
            let (authority, _, types) = AUTHORITIES[(n % 12) as usize];
            let org_type = types[((n >> 4) % types.len() as u64) as usize].0;
            let prefix = DIVISION_PREFIXES[((n >> 8) % 35) as usize];
            let mut first17 = format!("{authority}{org_type}{prefix:02}{:04}", (n >> 16) % 10_000);
            for k in 0..9 {
                first17.push(charset[((n >> (20 + 4 * k)) % 31) as usize]);
            }
            let mut text = with_check(&first17);
            let m = next();
            match m % 6 {
                0 => text = text.to_ascii_lowercase(),
                1 => {
                    let pos = ((m >> 8) % 18) as usize;
                    let with = alphabet[((m >> 16) % alphabet.len() as u64) as usize];
                    text = text
                        .chars()
                        .enumerate()
                        .map(|(j, c)| if j == pos { with } else { c })
                        .collect();
                }
                2 => text.truncate(((m >> 8) % 18) as usize),
                _ => {}
            }
            let slow = validate_uscc(&text);
            let want = slow.as_ref().is_ok_and(|u| u.as_str() == text);
            valid += usize::from(want);
            assert_eq!(is_canonical_uscc(&text), want, "{text}: {slow:?}");
        }
        assert!(valid > 50_000, "only {valid} valid codes generated");
    }
}
