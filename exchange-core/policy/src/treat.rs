//! Value treatments: the de-identification techniques of GB/T 37964-2019 (信息安全技术 个人信息去标识化指南)
//! applied to single values before a record is released to a subscriber.
//!
//! The functions here are pure and work on one value at a time; [`super::view`] decides which one runs on which
//! field. Four techniques are offered:
//!
//! - **Masking** (屏蔽/掩码, GB/T 37964 §A.3 "suppression" applied to parts of a value): keep a recognisable prefix
//!   and/or suffix, replace the rest with `*` — the one masker of the hub, [`unsilo_schemas::mask`], shared with
//!   the connectors' rejection reasons.
//! - **Keyed pseudonymisation** (假名化, §A.4 "cryptographic techniques": keyed hash). HMAC-SM3 (国密, the
//!   default) or HMAC-SHA256 (`[security] crypto = "international"`) under a hub-wide secret [`PseudonymKey`] over a domain-separated, normalised value. The same value yields the same
//!   pseudonym for every subscription and agency — that is the point: two agencies can join their views on a person
//!   without either seeing the ID number — while nobody without the key can recompute or brute-force it (ID numbers
//!   have little entropy, so an unkeyed hash would be reversible by enumeration).
//! - **Generalisation** (泛化, §A.5): replace a value by a coarser one — a birth date by its year, coordinates by
//!   ~100 m cells, a timestamp by its day, a village code by its county, an address by its village code (the
//!   address rule needs the record around the value and lives in [`super::view`]).
//! - **Free-text redaction** (§A.3 suppression inside unstructured text): ID numbers and mobile numbers written
//!   into descriptions and opinions are replaced by fixed placeholders. A byte scanner, no regex: ASCII digits are
//!   never part of a multi-byte UTF-8 sequence, so scanning bytes for digit runs is exact on Chinese text.

use std::borrow::Cow;
use std::fmt;

use thiserror::Error;
use unsilo_schemas::crypto::{KeyedMac, Suite};
use unsilo_schemas::PiiKind;

/// Placeholder that replaces an ID number found in free text.
pub const ID_PLACEHOLDER: &str = "[证件号已隐去]";
/// Placeholder that replaces a mobile number found in free text.
pub const PHONE_PLACEHOLDER: &str = "[手机号已隐去]";

// ---------------------------------------------------------------------------------------------------------------
// Keyed pseudonymisation
// ---------------------------------------------------------------------------------------------------------------

/// Prefix of every HMAC-SHA256 pseudonym (recipe 1); the digit is the recipe, so no two recipes' pseudonyms can
/// be confused.
pub const PSEUDONYM_PREFIX: &str = "p1_";

/// Prefix of every HMAC-SM3 pseudonym (recipe 2, 国密).
pub const PSEUDONYM_PREFIX_SM3: &str = "p2_";

/// Domain-separation tag that starts every HMAC input of recipe `p1`.
const PSEUDONYM_DOMAIN: &[u8] = b"unsilo/pseudonym/v1\0";

/// The hub's secret pseudonymisation key (32 bytes).
///
/// Holds the HMAC-SM3 or HMAC-SHA256 state with the key already absorbed, so each pseudonym costs only the
/// message blocks. `Debug` prints a key id, never the key.
#[derive(Clone)]
pub struct PseudonymKey {
    mac: KeyedMac,
}

/// A pseudonym key that could not be read. Never contains the key material.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// The text is not 64 hex characters.
    #[error("a pseudonym key must be 64 hexadecimal characters (32 bytes)")]
    BadHex,
}

impl PseudonymKey {
    /// The HMAC-SHA256 key (recipe `p1`) from its 32 secret bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self::of_suite(Suite::International, bytes)
    }

    /// The key of `suite` — HMAC-SM3 (recipe `p2`) under gm, HMAC-SHA256 (`p1`) under international — from its
    /// 32 secret bytes.
    pub fn of_suite(suite: Suite, bytes: [u8; 32]) -> Self {
        Self {
            mac: KeyedMac::new(suite, &bytes),
        }
    }

    /// The key from 64 hex characters (surrounding whitespace ignored), e.g. from a secret file.
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| KeyError::BadHex)?;
        Ok(Self::from_bytes(bytes))
    }

    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    /// A public identifier of the key (`k` + 8 hex chars), for logs and audit records that must say which key
    /// produced a pseudonym. Derived through the HMAC, so it reveals nothing about the key.
    pub fn key_id(&self) -> String {
        let mut mac = self.mac.clone();
        mac.update(b"unsilo/pseudonym/key-id");
        let tag = mac.finalize();
        format!("k{}", hex::encode(&tag[..4]))
    }
}

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PseudonymKey({}, secret redacted)", self.key_id())
    }
}

/// The normalised form of a value that is pseudonymised: trimmed; ID numbers (`kind` `cert_no`) with an
/// upper-case check character, so `…457x` and `…457X` are the same person.
pub fn normalise_for_pseudonym<'a>(kind: &str, value: &'a str) -> Cow<'a, str> {
    let value = value.trim();
    if kind == PiiKind::CertNo.as_str() && value.contains('x') {
        Cow::Owned(value.to_ascii_uppercase())
    } else {
        Cow::Borrowed(value)
    }
}

/// Keyed pseudonym of `value` (GB/T 37964 §A.4, keyed hash): `p2_` (HMAC-SM3) or `p1_` (HMAC-SHA256) + the
/// first 16 bytes of HMAC(key, `"unsilo/pseudonym/v1\0"` ‖ len(kind) as u32 big-endian ‖ kind ‖ normalised
/// value) as 32 lowercase hex characters.
///
/// `kind` is the domain: the field's `x-pii` kind (`cert_no`, `phone`, `name`, `person_ref`, …) so that the same
/// person gets the same pseudonym in every schema, subscription and agency; [`super::view`] uses
/// `field:<schema>.<path>` for fields without an `x-pii` tag. Because the kind is part of the MAC input
/// (length-prefixed, so no two (kind, value) pairs share an input), the same text pseudonymised as `cert_no` and
/// as `person_ref` gives unrelated pseudonyms: a record id can never be matched against an ID number.
pub fn pseudonym(key: &PseudonymKey, kind: &str, value: &str) -> String {
    let normalised = normalise_for_pseudonym(kind, value);
    let mut mac = key.mac.clone();
    mac.update(PSEUDONYM_DOMAIN);
    let kind_len = u32::try_from(kind.len()).unwrap_or(u32::MAX);
    mac.update(&kind_len.to_be_bytes());
    mac.update(kind.as_bytes());
    mac.update(normalised.as_bytes());
    let prefix = match mac.suite() {
        Suite::Gm => PSEUDONYM_PREFIX_SM3,
        Suite::International => PSEUDONYM_PREFIX,
    };
    let tag = mac.finalize();
    let mut buf = [0u8; 35];
    buf[..3].copy_from_slice(prefix.as_bytes());
    // Infallible: 16 bytes always fit 32 hex characters.
    let _ = hex::encode_to_slice(&tag[..16], &mut buf[3..]);
    String::from_utf8_lossy(&buf).into_owned()
}

// ---------------------------------------------------------------------------------------------------------------
// Generalisation
// ---------------------------------------------------------------------------------------------------------------

const DAY_MILLIS: i64 = 86_400_000;
const BEIJING_OFFSET_MILLIS: i64 = 8 * 3_600_000;

/// Generalises a date (Avro `date`: days since 1970-01-01) to its year (GB/T 37964 generalisation).
pub fn birth_year(days_since_epoch: i32) -> i32 {
    unsilo_schemas::date::CivilDate::from_days_since_epoch(days_since_epoch).year()
}

/// Generalises a coordinate in degrees to 3 decimals, a cell of about 100 m (GB/T 37964 generalisation by
/// rounding). Non-finite values are returned unchanged (they locate nothing).
pub fn round_coordinate(degrees: f64) -> f64 {
    if degrees.is_finite() {
        (degrees * 1000.0).round() / 1000.0
    } else {
        degrees
    }
}

/// Generalises an epoch-millisecond timestamp to the start (00:00) of its day in Beijing time, UTC+8
/// (GB/T 37964 generalisation of time).
pub fn day_start_beijing(epoch_millis: i64) -> i64 {
    epoch_millis
        .saturating_add(BEIJING_OFFSET_MILLIS)
        .div_euclid(DAY_MILLIS)
        .saturating_mul(DAY_MILLIS)
        .saturating_sub(BEIJING_OFFSET_MILLIS)
}

/// Generalises a 12-digit statistical division code (village, town, …) to its county: the first 6 digits
/// followed by `000000` (GB/T 37964 generalisation along the administrative hierarchy). A value that does not
/// start with 6 ASCII digits cannot be placed and becomes the empty string rather than leaking as is.
pub fn county_of(region_code: &str) -> String {
    let code = region_code.trim();
    match code.as_bytes().get(..6) {
        Some(prefix) if prefix.iter().all(u8::is_ascii_digit) => {
            let mut out = String::with_capacity(12);
            out.push_str(&code[..6]);
            out.push_str("000000");
            out
        }
        _ => String::new(),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Free-text redaction
// ---------------------------------------------------------------------------------------------------------------

/// What [`redact_free_text`] replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Redaction {
    /// Replace 18-character ID numbers by [`ID_PLACEHOLDER`].
    pub ids: bool,
    /// Replace mainland mobile numbers by [`PHONE_PLACEHOLDER`].
    pub phones: bool,
}

impl Redaction {
    /// Whether anything is replaced at all.
    pub fn any(self) -> bool {
        self.ids || self.phones
    }
}

/// Redacts identifiers written into free text (GB/T 37964 suppression inside unstructured data).
///
/// The text is split into maximal runs of ASCII digits:
/// - ID numbers: a run of 17 digits followed by `X`/`x`, or a run of 18 or more digits (an ID number glued to
///   other digits is still an ID number), becomes [`ID_PLACEHOLDER`] (trailing `X`/`x` included);
/// - first-generation (15-digit) ID numbers, recognised by their birth date (see `is_first_generation_id`);
/// - mobiles: a run of exactly 11 digits `1[3-9]…`, or 13 digits `861[3-9]…` (the `+86` form), or 15 digits
///   `00861[3-9]…`, becomes
///   [`PHONE_PLACEHOLDER`]; an 11-digit pattern inside a longer digit run is left alone (order numbers etc.).
///
/// Full-width digits and numbers split by spaces or dashes are not recognised. Returns the input borrowed when
/// nothing was replaced.
pub fn redact_free_text(text: &str, what: Redaction) -> Cow<'_, str> {
    if !what.any() {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Skip digit-free 16-byte chunks without branching per byte (the loop vectorises); most free text is
        // Chinese, whose UTF-8 bytes are all ≥ 0x80.
        while let Some(chunk) = bytes.get(i..i + 16) {
            if chunk
                .iter()
                .fold(0u8, |acc, b| acc | u8::from(b.wrapping_sub(b'0') < 10))
                != 0
            {
                break;
            }
            i += 16;
        }
        match bytes.get(i) {
            Some(b) if b.is_ascii_digit() => {}
            Some(_) => {
                i += 1;
                continue;
            }
            None => break,
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let run = &bytes[start..i];
        let check_x = matches!(bytes.get(i), Some(b'X' | b'x'));
        let (placeholder, end) = if what.ids
            && (run.len() >= 18 || (run.len() == 17 && check_x) || is_first_generation_id(run))
        {
            (ID_PLACEHOLDER, if check_x { i + 1 } else { i })
        } else if what.phones && is_mobile_run(run) {
            (PHONE_PLACEHOLDER, i)
        } else {
            continue;
        };
        let buf = out.get_or_insert_with(|| String::with_capacity(text.len() + 16));
        // Both indices sit on ASCII bytes (or the end), hence on char boundaries.
        buf.push_str(text.get(copied..start).unwrap_or_default());
        buf.push_str(placeholder);
        copied = end;
        i = end;
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut buf) => {
            buf.push_str(text.get(copied..).unwrap_or_default());
            Cow::Owned(buf)
        }
    }
}

/// A 15-digit first-generation ID number (1984–2004 cards, still in old records): a province digit 1–6, then
/// after the 6-digit region a `YYMMDD` birth date with a real month and day. Grid codes (15 digits too) fail the
/// date check: their 7th–10th digits are a township and village serial, not a month.
fn is_first_generation_id(run: &[u8]) -> bool {
    if run.len() != 15 || !(b'1'..=b'6').contains(&run[0]) {
        return false;
    }
    let two = |i: usize| u32::from(run[i] - b'0') * 10 + u32::from(run[i + 1] - b'0');
    let (month, day) = (two(8), two(10));
    (1..=12).contains(&month) && (1..=31).contains(&day)
}

/// A complete digit run that is a mainland mobile number, bare or with the 86 / 0086 country code.
fn is_mobile_run(run: &[u8]) -> bool {
    let number = match run.len() {
        11 => run,
        13 if run.starts_with(b"86") => &run[2..],
        15 if run.starts_with(b"0086") => &run[4..],
        _ => return false,
    };
    number[0] == b'1' && (b'3'..=b'9').contains(&number[1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    #[test]
    fn old_ids_and_0086_mobiles_are_redacted_but_grid_codes_are_not() {
        let all = Redaction {
            ids: true,
            phones: true,
        };
        assert_eq!(
            redact_free_text(
                "旧证610921680312457，电话008615929436821，网格610921107200002",
                all
            ),
            format!("旧证{ID_PLACEHOLDER}，电话{PHONE_PLACEHOLDER}，网格610921107200002")
        );
    }

    fn key(byte: u8) -> PseudonymKey {
        PseudonymKey::from_bytes([byte; 32])
    }

    #[test]
    fn pseudonyms_are_stable_keyed_and_domain_separated() {
        let p = pseudonym(&key(1), "cert_no", "61092119680312123X");
        assert!(p.starts_with("p1_"));
        assert_eq!(p.len(), 35);
        assert!(p[3..]
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
        // Same key, same value: same pseudonym, also after normalisation.
        assert_eq!(pseudonym(&key(1), "cert_no", "61092119680312123X"), p);
        assert_eq!(pseudonym(&key(1), "cert_no", " 61092119680312123x "), p);
        // Another key: unrelated.
        assert_ne!(pseudonym(&key(2), "cert_no", "61092119680312123X"), p);
        // Another kind: unrelated, and no case folding outside cert_no.
        assert_ne!(pseudonym(&key(1), "person_ref", "61092119680312123X"), p);
        assert_ne!(
            pseudonym(&key(1), "person_ref", "abx"),
            pseudonym(&key(1), "person_ref", "abX")
        );
        // The length prefix keeps (kind, value) pairs apart.
        assert_ne!(
            pseudonym(&key(1), "name", "x"),
            pseudonym(&key(1), "namex", "")
        );
    }

    #[test]
    fn pseudonym_matches_the_documented_recipe() {
        let bytes = [7u8; 32];
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&bytes).unwrap();
        mac.update(b"unsilo/pseudonym/v1\0");
        mac.update(&7u32.to_be_bytes());
        mac.update(b"cert_no");
        mac.update(b"61092119680312123X");
        let expected = format!("p1_{}", hex::encode(&mac.finalize().into_bytes()[..16]));
        assert_eq!(
            pseudonym(
                &PseudonymKey::from_bytes(bytes),
                "cert_no",
                "61092119680312123x"
            ),
            expected
        );
        // Recipe 2 is the same over HMAC-SM3, prefixed `p2_`.
        let mut sm3 = unsilo_schemas::crypto::Suite::Gm.keyed(&bytes);
        sm3.update(b"unsilo/pseudonym/v1\0");
        sm3.update(&7u32.to_be_bytes());
        sm3.update(b"cert_no");
        sm3.update(b"61092119680312123X");
        assert_eq!(
            pseudonym(
                &PseudonymKey::of_suite(unsilo_schemas::crypto::Suite::Gm, bytes),
                "cert_no",
                "61092119680312123x"
            ),
            format!("p2_{}", hex::encode(&sm3.finalize()[..16]))
        );
    }

    #[test]
    fn key_debug_and_errors_hide_the_secret() {
        let hex_key = "ab".repeat(32);
        let k = PseudonymKey::from_hex(&hex_key).unwrap();
        let debug = format!("{k:?}");
        assert!(!debug.contains("abab"), "{debug}");
        assert!(debug.contains(&k.key_id()));
        assert_eq!(k.key_id().len(), 9);
        assert_ne!(k.key_id(), key(1).key_id());
        let err = PseudonymKey::from_hex("abcd").unwrap_err();
        assert!(!err.to_string().contains("abcd"));
        assert!(PseudonymKey::from_hex(&"zz".repeat(32)).is_err());
        assert_ne!(
            pseudonym(&PseudonymKey::generate(), "name", "x"),
            pseudonym(&PseudonymKey::generate(), "name", "x")
        );
    }

    #[test]
    fn generalisations() {
        // 1968-03-12 is day -667.
        assert_eq!(birth_year(-667), 1968);
        assert_eq!(birth_year(0), 1970);
        assert_eq!(birth_year(19_723), 2024);
        assert_eq!(round_coordinate(108.508431), 108.508);
        assert_eq!(round_coordinate(32.8935), 32.894);
        assert_eq!(round_coordinate(-0.0004), -0.0);
        assert!(round_coordinate(f64::NAN).is_nan());
        // 2024-06-18 09:32:15 +08:00 → 2024-06-18 00:00 +08:00 = 2024-06-17T16:00Z.
        assert_eq!(day_start_beijing(1_718_674_335_000), 1_718_640_000_000);
        // 2024-06-17T23:30Z is already the 18th in Beijing.
        assert_eq!(day_start_beijing(1_718_667_000_000), 1_718_640_000_000);
        // Before the epoch.
        assert_eq!(day_start_beijing(-1), -BEIJING_OFFSET_MILLIS);
        // Extremes saturate instead of overflowing.
        assert_eq!(day_start_beijing(i64::MIN), i64::MIN);
        let top = day_start_beijing(i64::MAX);
        assert!(
            top <= i64::MAX - BEIJING_OFFSET_MILLIS
                && top > i64::MAX - DAY_MILLIS - BEIJING_OFFSET_MILLIS
        );
        assert_eq!(county_of("610921100001"), "610921000000");
        assert_eq!(county_of("61092"), "");
        assert_eq!(county_of("南街社区"), "");
    }

    #[test]
    fn redacts_ids_and_mobiles_in_free_text() {
        let all = Redaction {
            ids: true,
            phones: true,
        };
        let text =
            "张德明(身份证61092119680312123x，电话13891512376)与王建国610921198506073516发生争执";
        assert_eq!(
            redact_free_text(text, all),
            "张德明(身份证[证件号已隐去]，电话[手机号已隐去])与王建国[证件号已隐去]发生争执"
        );
        // Only ids / only phones.
        let ids_only = redact_free_text(
            text,
            Redaction {
                ids: true,
                phones: false,
            },
        );
        assert!(ids_only.contains("13891512376") && !ids_only.contains("610921198506073516"));
        let phones_only = redact_free_text(
            text,
            Redaction {
                ids: false,
                phones: true,
            },
        );
        assert!(!phones_only.contains("13891512376") && phones_only.contains("610921198506073516"));
        // Mobiles inside longer digit runs, too short, or with a bad second digit are left; +86 form is caught.
        assert_eq!(
            redact_free_text("单号138915123761，12345，12012345678，+8613891512376", all),
            "单号138915123761，12345，12012345678，+[手机号已隐去]"
        );
        // ID glued to more digits is still removed; text without digits is borrowed.
        assert_eq!(
            redact_free_text("x6109211985060735169y", all),
            "x[证件号已隐去]y"
        );
        assert!(matches!(
            redact_free_text("没有号码", all),
            Cow::Borrowed(_)
        ));
        assert!(matches!(
            redact_free_text(text, Redaction::default()),
            Cow::Borrowed(_)
        ));
        // Edge positions.
        assert_eq!(redact_free_text("13891512376", all), "[手机号已隐去]");
        assert_eq!(
            redact_free_text("61092119680312123X", all),
            "[证件号已隐去]"
        );
        assert_eq!(
            redact_free_text("6109211968031212X", all),
            "6109211968031212X"
        );
        // Numbers at every offset around the scanner's 16-byte chunks, after multi-byte text.
        for pad in 0..40 {
            let lead = "南".repeat(pad % 7) + &"a".repeat(pad);
            let text = format!("{lead}61092119680312457X号{lead}13891512376");
            assert_eq!(
                redact_free_text(&text, all),
                format!("{lead}[证件号已隐去]号{lead}[手机号已隐去]"),
                "pad {pad}"
            );
        }
    }
}
