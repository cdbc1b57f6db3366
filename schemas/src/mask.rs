//! The one PII masker: how a personal value is shown with part of it hidden (GB/T 37964 suppression).
//!
//! The policy engine masks released fields with it, and the connectors use it when a rejection reason must
//! mention a value, so a value looks the same wherever the hub shows it masked. Works on characters, not
//! bytes, so Chinese names mask correctly. A masked value never contains the complete original: values too
//! short to keep anything (one character, two for text other than names, or ID/phone numbers too short to hide
//! a middle) become all `*`.
//!
//! ```
//! use unsilo_schemas::mask::{mask, MaskStyle};
//! assert_eq!(mask(MaskStyle::CertNo, "61092119680312123X"), "610921********123X");
//! assert_eq!(mask(MaskStyle::Name, "张德明"), "张**");
//! ```

use crate::PiiKind;

/// Which masking pattern a value gets; chosen from the field's `x-pii` kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MaskStyle {
    /// Identity document number: keep the first 6 (region) and last 4 characters, `610921********123X`.
    CertNo,
    /// Mobile number: keep the first 3 and last 4 digits, `138****5678`.
    Phone,
    /// Person's name: keep the first character (the surname), `张**`.
    Name,
    /// Anything else: keep the first and last character, `南*****号`.
    Generic,
}

impl MaskStyle {
    /// The pattern for a field of the given `x-pii` kind (`None`: untagged field).
    pub fn for_pii(pii: Option<PiiKind>) -> Self {
        match pii {
            Some(PiiKind::CertNo) => Self::CertNo,
            Some(PiiKind::Phone) => Self::Phone,
            Some(PiiKind::Name) => Self::Name,
            _ => Self::Generic,
        }
    }
}

/// Masks `value` (GB/T 37964 suppression of part of a value) with the given pattern.
///
/// Surrounding whitespace is trimmed first. The result has as many characters as the trimmed original and
/// never contains the complete original: originals of at most 2 characters, ID numbers shorter than 11 and
/// mobiles shorter than 8 characters (which would have no hidden middle) become all `*`. (The only exception
/// is an original made of `*` only, which carries nothing to hide.)
pub fn mask(style: MaskStyle, value: &str) -> String {
    let value = value.trim();
    match style {
        MaskStyle::CertNo => {
            let masked = keep_ends(value, 6, 4, 11);
            // Keep the check character canonical: lower-case x is the same ID number.
            if masked.ends_with('x') {
                masked.to_ascii_uppercase()
            } else {
                masked
            }
        }
        MaskStyle::Phone => keep_ends(value, 3, 4, 8),
        // GB/T 37964 practice and the issue's rule: a name keeps its first character, also for two-character
        // names (王芳 → 王*), the most common length; a one-character value is starred entirely.
        MaskStyle::Name => keep_ends(value, 1, 0, 2),
        MaskStyle::Generic => keep_ends(value, 1, 1, 3),
    }
}

/// Masks an ID number: first 6 + last 4 characters kept (`610921********123X`).
pub fn mask_cert_no(value: &str) -> String {
    mask(MaskStyle::CertNo, value)
}

/// Masks a mobile number: first 3 + last 4 digits kept (`138****5678`).
pub fn mask_phone(value: &str) -> String {
    mask(MaskStyle::Phone, value)
}

/// Masks a name: first character kept (`张**`).
pub fn mask_name(value: &str) -> String {
    mask(MaskStyle::Name, value)
}

/// Masks any other text: first and last character kept.
pub fn mask_generic(value: &str) -> String {
    mask(MaskStyle::Generic, value)
}

/// Keeps `head` leading and `tail` trailing characters of `value` and stars the rest; values with fewer than
/// `min_len` characters are starred entirely.
fn keep_ends(value: &str, head: usize, tail: usize, min_len: usize) -> String {
    let n = value.chars().count();
    if n < min_len.max(2) || n <= head + tail {
        return "*".repeat(n);
    }
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        if i < head || i >= n - tail {
            out.push(c);
        } else {
            out.push('*');
        }
    }
    // Only possible when the hidden middle already consisted of '*': hide the ends too.
    if out == value {
        return "*".repeat(n);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_id_numbers_six_plus_four() {
        assert_eq!(mask_cert_no("61092119680312123X"), "610921********123X");
        assert_eq!(mask_cert_no("61092119680312123x"), "610921********123X");
        assert_eq!(mask_cert_no(" 610921196803124579 "), "610921********4579");
        // 15-digit (first-generation) number: the middle 5 are hidden.
        assert_eq!(mask_cert_no("610921680312457"), "610921*****2457");
        // Too short to hide a middle: everything hidden.
        assert_eq!(mask_cert_no("6109211234"), "**********");
        assert_eq!(mask_cert_no("12"), "**");
        assert_eq!(mask_cert_no(""), "");
    }

    #[test]
    fn masks_mobiles_three_plus_four() {
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("1381234"), "*******");
        assert_eq!(mask_phone("09158881"), "091*8881");
    }

    #[test]
    fn masks_names_by_characters() {
        assert_eq!(mask_name("张德明"), "张**");
        assert_eq!(mask_name("欧阳娜娜"), "欧***");
        assert_eq!(mask_name("王芳"), "王*");
        assert_eq!(mask_name("李"), "*");
        assert_eq!(mask_name("Ayşe Kaya"), "A********");
    }

    #[test]
    fn masks_other_text_keeping_ends() {
        assert_eq!(mask_generic("南街社区3组17号"), "南*******号");
        assert_eq!(mask_generic("abc"), "a*c");
        assert_eq!(mask_generic("ab"), "**");
        assert_eq!(mask_generic("a"), "*");
        // A middle that is already starred: output would equal the input, so the ends go too.
        assert_eq!(mask_generic("a*b"), "***");
    }

    #[test]
    fn mask_style_follows_pii_kind() {
        assert_eq!(MaskStyle::for_pii(Some(PiiKind::CertNo)), MaskStyle::CertNo);
        assert_eq!(MaskStyle::for_pii(Some(PiiKind::Phone)), MaskStyle::Phone);
        assert_eq!(MaskStyle::for_pii(Some(PiiKind::Name)), MaskStyle::Name);
        assert_eq!(
            MaskStyle::for_pii(Some(PiiKind::Address)),
            MaskStyle::Generic
        );
        assert_eq!(MaskStyle::for_pii(None), MaskStyle::Generic);
    }
}
