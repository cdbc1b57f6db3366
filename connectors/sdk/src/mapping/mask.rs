//! How values of a field may appear in error messages.
//!
//! A rejected record goes to the dead-letter topic with a reason, and reasons end up in logs and consoles. So a
//! reason never repeats personal data in full: the target field's `x-pii` tag (or its validator) picks the
//! treatment, following GB/T 37964 like the policy engine: ID numbers keep the first 6 and last 4 characters,
//! mobile numbers 3 + 4, names their first character (the one masker, [`unsilo_schemas::mask`]); other
//! sensitive (S3/S4) values are withheld entirely.

use unsilo_schemas::mask::{mask, MaskStyle};
use unsilo_schemas::{FieldTag, PiiKind, Sensitivity};

use super::error::Validator;

/// Longest value (in characters) repeated in a message.
const MAX_SHOWN: usize = 64;

/// The treatment of a field's values in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mask {
    /// Shown (truncated to 64 characters).
    Show,
    /// First 6 and last 4 characters.
    CertNo,
    /// First 3 and last 4 characters.
    Phone,
    /// First character.
    Name,
    /// Only the length is told.
    Withhold,
}

impl Mask {
    /// The treatment for a field with these tags.
    pub(crate) fn from_tag(tag: Option<&FieldTag>) -> Mask {
        let Some(tag) = tag else {
            return Mask::Show;
        };
        match tag.pii {
            Some(PiiKind::CertNo) => Mask::CertNo,
            Some(PiiKind::Phone) => Mask::Phone,
            Some(PiiKind::Name) => Mask::Name,
            Some(PiiKind::Uscc) => Mask::Show,
            Some(_) => Mask::Withhold,
            None if tag.sensitivity >= Sensitivity::S3 => Mask::Withhold,
            None => Mask::Show,
        }
    }

    /// The stricter of this and what a validator implies (a `cert_no` check on an untagged field still masks).
    pub(crate) fn with_validator(self, validator: Option<Validator>) -> Mask {
        match validator {
            Some(Validator::CertNo) => Mask::CertNo,
            Some(Validator::Phone) if self != Mask::CertNo => Mask::Phone,
            _ => self,
        }
    }

    /// The value as it may appear in a message, quoted (or a note that it is withheld).
    pub(crate) fn show(self, value: &str) -> String {
        let style = match self {
            Mask::Show => {
                let n = value.chars().count();
                if n > MAX_SHOWN {
                    let mut s: String = value.chars().take(MAX_SHOWN).collect();
                    s.push('…');
                    return format!("{s:?}");
                }
                return format!("{value:?}");
            }
            Mask::Withhold => {
                return format!(
                    "(a value of {} characters, withheld)",
                    value.chars().count()
                )
            }
            Mask::CertNo => MaskStyle::CertNo,
            Mask::Phone => MaskStyle::Phone,
            Mask::Name => MaskStyle::Name,
        };
        format!("{:?}", mask(style, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_only_what_the_policy_allows() {
        assert_eq!(
            Mask::CertNo.show("610921196803124579"),
            "\"610921********4579\""
        );
        assert_eq!(Mask::Phone.show("13891512376"), "\"138****2376\"");
        assert_eq!(Mask::Phone.show("1389"), "\"****\"");
        assert_eq!(Mask::Name.show("张德明"), "\"张**\"");
        // The same masker as the policy's: a one-character name is starred, not shown whole.
        assert_eq!(Mask::Name.show("李"), "\"*\"");
        assert_eq!(
            Mask::Withhold.show("城关镇南街社区3组17号"),
            "(a value of 12 characters, withheld)"
        );
        assert_eq!(Mask::Show.show("0101"), "\"0101\"");
        assert_eq!(Mask::Show.show(&"x".repeat(100)).chars().count(), 64 + 3);
        assert_eq!(
            Mask::Show.with_validator(Some(Validator::CertNo)),
            Mask::CertNo
        );
        assert_eq!(
            Mask::Withhold.with_validator(Some(Validator::Phone)),
            Mask::Phone
        );
        assert_eq!(
            Mask::Show.with_validator(Some(Validator::RegionCode)),
            Mask::Show
        );
    }
}
