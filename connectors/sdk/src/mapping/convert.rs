//! Scalar conversions: a raw JSON value (or text built from it) into a value of the target Avro type.
//!
//! The same functions run at load (to check and pre-encode `const`, `default` and code-table values) and per
//! record, so a constant and a source value always mean the same thing. Conversions borrow from the raw record
//! wherever they can; only numbers turned into text, templates and normalised identifiers allocate.

use std::borrow::Cow;

use serde_json::Value as Json;
use unsilo_schemas::date::CivilDate;
use unsilo_schemas::validate::{
    is_canonical_cert_no_on, is_canonical_uscc, is_valid_grid_code, validate_cert_no_on,
    validate_grid_code, validate_phone, validate_region_code, validate_uscc, CertNoError,
    PhoneError,
};

use super::datetime::{self, Input, Parsed};
use super::error::{RecordErrorKind, Validator};
use super::mask::Mask;
use super::plan::{Conv, DtSpec, ScalarTarget, ScalarType, TimeConv, TimeUnit};

/// A source value on its way to the target: a JSON value of the raw record, or text made from it.
#[derive(Debug, Clone)]
pub(crate) enum Raw<'a> {
    Json(&'a Json),
    Text(Cow<'a, str>),
}

/// `str::trim`, with a fast path for text that starts and ends with visible ASCII (most codes and numbers).
#[inline]
pub(crate) fn trim(s: &str) -> &str {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(&f), Some(&l)) if f > b' ' && f < 0x80 && l > b' ' && l < 0x80 => s,
        _ => s.trim(),
    }
}

impl<'a> Raw<'a> {
    /// The value with surrounding whitespace (including U+3000) removed, if it is text.
    pub(crate) fn trimmed(self) -> Raw<'a> {
        match self {
            Raw::Json(Json::String(s)) => Raw::Text(Cow::Borrowed(trim(s))),
            Raw::Text(Cow::Borrowed(s)) => Raw::Text(Cow::Borrowed(trim(s))),
            Raw::Text(Cow::Owned(s)) => {
                let t = trim(&s);
                if t.len() == s.len() {
                    Raw::Text(Cow::Owned(s))
                } else {
                    Raw::Text(Cow::Owned(t.to_string()))
                }
            }
            other => other,
        }
    }

    /// Whether the value is text with nothing but whitespace.
    pub(crate) fn is_blank(&self) -> bool {
        match self {
            Raw::Json(Json::String(s)) => trim(s).is_empty(),
            Raw::Text(t) => trim(t).is_empty(),
            _ => false,
        }
    }

    /// The value as text for a message (not yet masked).
    pub(crate) fn describe(&self) -> String {
        match self {
            Raw::Json(Json::String(s)) => s.clone(),
            Raw::Text(t) => t.to_string(),
            Raw::Json(Json::Object(_)) => "{…}".into(),
            Raw::Json(Json::Array(_)) => "[…]".into(),
            Raw::Json(other) => other.to_string(),
        }
    }

    fn json_type(&self) -> &'static str {
        match self {
            Raw::Text(_) | Raw::Json(Json::String(_)) => "a string",
            Raw::Json(Json::Null) => "null",
            Raw::Json(Json::Bool(_)) => "a boolean",
            Raw::Json(Json::Number(_)) => "a number",
            Raw::Json(Json::Array(_)) => "an array",
            Raw::Json(Json::Object(_)) => "an object",
        }
    }

    /// Text for string-like use (`Some` for strings, numbers and booleans).
    fn as_text(&self) -> Option<Cow<'a, str>> {
        match self {
            Raw::Json(Json::String(s)) => Some(Cow::Borrowed(s.as_str())),
            Raw::Text(t) => Some(t.clone()),
            // Non-negative integers (record versions, counts) without the formatting machinery.
            Raw::Json(Json::Number(n)) => Some(Cow::Owned(match n.as_u64() {
                Some(u) => datetime::format_u64(u, &mut [0u8; 20]).to_owned(),
                None => n.to_string(),
            })),
            Raw::Json(Json::Bool(b)) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            _ => None,
        }
    }
}

/// A value of the target type, ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Typed<'a> {
    Bool(bool),
    Int(i32),
    Long(i64),
    Float(f32),
    Double(f64),
    Str(Cow<'a, str>),
    Bytes(Cow<'a, [u8]>),
    Enum(u32),
}

/// Why a value does not convert; the walker adds the field path and raw path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fail {
    pub(crate) kind: RecordErrorKind,
    pub(crate) validator: Option<Validator>,
    pub(crate) message: String,
}

impl Fail {
    pub(crate) fn new(kind: RecordErrorKind, message: String) -> Self {
        Self {
            kind,
            validator: None,
            message,
        }
    }
}

fn bad_type(raw: &Raw<'_>, target: &ScalarTarget) -> Fail {
    Fail::new(
        RecordErrorKind::BadType,
        format!(
            "expected a value for a {} field, found {}",
            target.ty.describe(),
            raw.json_type()
        ),
    )
}

fn bad_number(raw: &Raw<'_>, target: &ScalarTarget, why: &str) -> Fail {
    Fail::new(
        RecordErrorKind::BadNumber,
        format!("{} {why}", target.mask.show(&raw.describe())),
    )
}

/// Converts a source value into the target type (see `docs/mapping.md`, "Conversions").
pub(crate) fn convert<'a>(
    raw: Raw<'a>,
    conv: &Conv,
    target: &ScalarTarget,
) -> Result<Typed<'a>, Fail> {
    match conv {
        Conv::Str => match raw {
            Raw::Json(Json::String(s)) => Ok(Typed::Str(Cow::Borrowed(s))),
            Raw::Text(t) => Ok(Typed::Str(t)),
            other => other
                .as_text()
                .map(Typed::Str)
                .ok_or_else(|| bad_type(&other, target)),
        },
        Conv::StrDatetime(spec) => {
            let parsed = parse_datetime(&raw, spec, target)?;
            datetime::to_text(parsed, &spec.zone)
                .map(|t| Typed::Str(Cow::Owned(t)))
                .map_err(|why| bad_datetime_why(&raw, target, why))
        }
        Conv::Int { money } => {
            let v = integer(&raw, *money, target)?;
            i32::try_from(v)
                .map(Typed::Int)
                .map_err(|_| bad_number(&raw, target, "is out of range for an int"))
        }
        Conv::Long { money } => integer(&raw, *money, target).map(Typed::Long),
        Conv::Float => {
            let v = float(&raw, target)?;
            let f = v as f32;
            if f.is_finite() {
                Ok(Typed::Float(f))
            } else {
                Err(bad_number(&raw, target, "is out of range for a float"))
            }
        }
        Conv::Double => float(&raw, target).map(Typed::Double),
        Conv::Bool => boolean(&raw, target).map(Typed::Bool),
        Conv::Enum => {
            let ScalarType::Enum(symbols) = &target.ty else {
                return Err(bad_type(&raw, target));
            };
            let text = match &raw {
                Raw::Json(Json::String(s)) => s.as_str(),
                Raw::Text(t) => t,
                other => {
                    return Err(Fail::new(
                        RecordErrorKind::BadCode,
                        format!(
                            "{} is not a symbol of the enum ({}); map source codes with `codes`",
                            target.mask.show(&other.describe()),
                            symbols.join(", ")
                        ),
                    ))
                }
            };
            match symbols.iter().position(|s| &**s == text) {
                Some(i) => Ok(Typed::Enum(i as u32)),
                None => Err(Fail::new(
                    RecordErrorKind::BadCode,
                    format!(
                        "{} is not a symbol of the enum ({}); map source codes with `codes`",
                        target.mask.show(text),
                        symbols.join(", ")
                    ),
                )),
            }
        }
        Conv::Bytes => match raw {
            Raw::Json(Json::String(s)) => Ok(Typed::Bytes(Cow::Borrowed(s.as_bytes()))),
            Raw::Text(Cow::Borrowed(t)) => Ok(Typed::Bytes(Cow::Borrowed(t.as_bytes()))),
            Raw::Text(Cow::Owned(t)) => Ok(Typed::Bytes(Cow::Owned(t.into_bytes()))),
            other => Err(bad_type(&other, target)),
        },
        Conv::Null => Err(bad_type(&raw, target)),
        Conv::Time(tc) => time(&raw, tc, target),
    }
}

fn bad_datetime(raw: &Raw<'_>, spec: &DtSpec, target: &ScalarTarget) -> Fail {
    Fail::new(
        RecordErrorKind::BadDatetime,
        format!(
            "{} is not a date/time in the format {}",
            target.mask.show(&raw.describe()),
            spec.describe()
        ),
    )
}

fn bad_datetime_why(raw: &Raw<'_>, target: &ScalarTarget, why: &str) -> Fail {
    Fail::new(
        RecordErrorKind::BadDatetime,
        format!("{} {why}", target.mask.show(&raw.describe())),
    )
}

fn parse_datetime(raw: &Raw<'_>, spec: &DtSpec, target: &ScalarTarget) -> Result<Parsed, Fail> {
    let input = match raw {
        Raw::Json(Json::String(s)) => Input::Text(s),
        Raw::Text(t) => Input::Text(t),
        Raw::Json(Json::Number(n)) => match n.as_i64() {
            Some(i) => Input::Int(i),
            None => Input::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        other => return Err(bad_type(other, target)),
    };
    let auto = [datetime::Format::Auto];
    let formats = spec.formats.as_deref().unwrap_or(&auto);
    datetime::parse(input, formats).ok_or_else(|| bad_datetime(raw, spec, target))
}

fn time<'a>(raw: &Raw<'a>, tc: &TimeConv, target: &ScalarTarget) -> Result<Typed<'a>, Fail> {
    let out_of_range = || bad_datetime_why(raw, target, "is out of range");
    // Without `datetime`, a number is already in the target's unit (plain JSON, as `json_to_avro` reads it).
    if tc.spec.formats.is_none() {
        if let Raw::Json(Json::Number(n)) = raw {
            let v = n
                .as_i64()
                .ok_or_else(|| bad_number(raw, target, "is not an integer in the field's unit"))?;
            return Ok(match tc.unit {
                TimeUnit::Days | TimeUnit::TimeOfDayMillis => {
                    Typed::Int(i32::try_from(v).map_err(|_| out_of_range())?)
                }
                _ => Typed::Long(v),
            });
        }
    }
    if matches!(
        tc.unit,
        TimeUnit::TimeOfDayMillis | TimeUnit::TimeOfDayMicros
    ) {
        let v = integer(raw, None, target)?;
        return Ok(match tc.unit {
            TimeUnit::TimeOfDayMillis => Typed::Int(i32::try_from(v).map_err(|_| out_of_range())?),
            _ => Typed::Long(v),
        });
    }
    let parsed = parse_datetime(raw, &tc.spec, target)?;
    let zone = &tc.spec.zone;
    let utc =
        || datetime::utc_micros(parsed, zone).map_err(|why| bad_datetime_why(raw, target, why));
    Ok(match tc.unit {
        TimeUnit::Days => Typed::Int(
            i32::try_from(datetime::date_days(parsed, zone)).map_err(|_| out_of_range())?,
        ),
        TimeUnit::Millis => Typed::Long(utc()?.div_euclid(1000)),
        TimeUnit::Micros => Typed::Long(utc()?),
        TimeUnit::Nanos => Typed::Long(utc()?.checked_mul(1000).ok_or_else(out_of_range)?),
        TimeUnit::LocalMillis => Typed::Long(datetime::local_micros(parsed, zone).div_euclid(1000)),
        TimeUnit::LocalMicros => Typed::Long(datetime::local_micros(parsed, zone)),
        TimeUnit::LocalNanos => Typed::Long(
            datetime::local_micros(parsed, zone)
                .checked_mul(1000)
                .ok_or_else(out_of_range)?,
        ),
        TimeUnit::TimeOfDayMillis | TimeUnit::TimeOfDayMicros => return Err(out_of_range()),
    })
}

/// An integer from a number, numeric text or a boolean; with `money`, a decimal amount shifted by that many
/// places (yuan → fen: 2).
fn integer(raw: &Raw<'_>, money: Option<u32>, target: &ScalarTarget) -> Result<i64, Fail> {
    let text: Cow<'_, str> = match raw {
        Raw::Json(Json::Number(n)) if money.is_none() => {
            if let Some(i) = n.as_i64() {
                return Ok(i);
            }
            return match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(f as i64),
                Some(f) if f.fract() == 0.0 => Err(bad_number(raw, target, "is out of range")),
                _ => Err(bad_number(raw, target, "is not a whole number")),
            };
        }
        Raw::Json(Json::Number(n)) => Cow::Owned(n.to_string()),
        Raw::Json(Json::Bool(b)) if money.is_none() => return Ok(i64::from(*b)),
        Raw::Json(Json::String(s)) => Cow::Borrowed(s.as_str()),
        Raw::Text(t) => Cow::Borrowed(&**t),
        other => return Err(bad_type(other, target)),
    };
    decimal(text.trim(), money.unwrap_or(0)).map_err(|why| bad_number(raw, target, why))
}

/// Parses `[+-]digits[.digits]` and shifts it `scale` places to an integer; more significant decimals than
/// `scale` are an error (a fraction of a fen is not money).
fn decimal(text: &str, scale: u32) -> Result<i64, &'static str> {
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (int_part, frac_part) = match body.split_once('.') {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err("is not a number");
    }
    let scale = scale as usize;
    if frac_part.len() > scale && frac_part[scale..].bytes().any(|b| b != b'0') {
        return Err(if scale == 0 {
            "is not a whole number"
        } else {
            "has more decimal places than the unit allows"
        });
    }
    let mut value: i64 = 0;
    let digits = int_part
        .bytes()
        .chain(frac_part.bytes().chain(std::iter::repeat(b'0')).take(scale));
    for d in digits {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(d - b'0')))
            .ok_or("is out of range")?;
    }
    Ok(if negative { -value } else { value })
}

fn float(raw: &Raw<'_>, target: &ScalarTarget) -> Result<f64, Fail> {
    let v = match raw {
        Raw::Json(Json::Number(n)) => n.as_f64(),
        Raw::Json(Json::String(s)) => s.trim().parse::<f64>().ok(),
        Raw::Text(t) => t.trim().parse::<f64>().ok(),
        other => return Err(bad_type(other, target)),
    };
    match v {
        Some(f) if f.is_finite() => Ok(f),
        _ => Err(bad_number(raw, target, "is not a finite number")),
    }
}

/// Words source systems use for yes and no.
const TRUE_WORDS: [&str; 9] = ["1", "true", "t", "y", "yes", "是", "有", "真", "对"];
const FALSE_WORDS: [&str; 9] = ["0", "false", "f", "n", "no", "否", "无", "假", "错"];

fn boolean(raw: &Raw<'_>, target: &ScalarTarget) -> Result<bool, Fail> {
    let text = match raw {
        Raw::Json(Json::Bool(b)) => return Ok(*b),
        Raw::Json(Json::Number(n)) => match n.as_i64() {
            Some(1) => return Ok(true),
            Some(0) => return Ok(false),
            _ => return Err(bad_type(raw, target)),
        },
        Raw::Json(Json::String(s)) => s.trim(),
        Raw::Text(t) => t.trim(),
        other => return Err(bad_type(other, target)),
    };
    let matches = |words: &[&str]| words.iter().any(|w| w.eq_ignore_ascii_case(text));
    if matches(&TRUE_WORDS) {
        Ok(true)
    } else if matches(&FALSE_WORDS) {
        Ok(false)
    } else {
        Err(Fail::new(
            RecordErrorKind::BadType,
            format!(
                "{} is not a yes/no value (是/否, Y/N, 1/0, true/false)",
                target.mask.show(text)
            ),
        ))
    }
}

/// Calls `f` with the text a code table is looked up by: trimmed text, a number's decimal form, `true`/`false`.
pub(crate) fn with_code_key<R>(
    raw: &Raw<'_>,
    target: &ScalarTarget,
    f: impl FnOnce(&str) -> R,
) -> Result<R, Fail> {
    match raw {
        Raw::Json(Json::String(s)) => Ok(f(trim(s))),
        Raw::Text(t) => Ok(f(trim(t))),
        Raw::Json(Json::Number(n)) => match n.as_i64() {
            Some(i) if i >= 0 => {
                let mut buf = [0u8; 20];
                Ok(f(datetime::format_u64(i as u64, &mut buf)))
            }
            _ => Ok(f(&n.to_string())),
        },
        Raw::Json(Json::Bool(b)) => Ok(f(if *b { "true" } else { "false" })),
        other => Err(bad_type(other, target)),
    }
}

/// Runs a validator on text; a valid value comes back in its normalised form (ID numbers with an upper-case
/// `X`, phone numbers as their bare 11 digits).
pub(crate) fn validate<'a>(
    value: Typed<'a>,
    validator: Validator,
    mask: Mask,
) -> Result<Typed<'a>, Fail> {
    let Typed::Str(text) = value else {
        return Ok(value);
    };
    let normalised: Result<Option<String>, String> = match validator {
        Validator::CertNo => {
            // The common case, a valid number as written, is checked without allocating; anything else goes
            // through the full validator (same reference date) for its normalised form or its error.
            let today = CivilDate::today_shanghai();
            if is_canonical_cert_no_on(&text, today) {
                Ok(None)
            } else {
                match validate_cert_no_on(&text, today) {
                    Ok(c) if c.as_str() == text => Ok(None),
                    Ok(c) => Ok(Some(c.as_str().to_string())),
                    Err(e) => Err(cert_no_reason(&e)),
                }
            }
        }
        // The common case, 11 plain digits, needs no normalising and no allocation.
        Validator::Phone if is_plain_mobile(&text) => Ok(None),
        // Other valid forms are normalised on the stack; only the errors need `validate_phone`.
        Validator::Phone => match normalise_mobile(&text) {
            Some(n) if n == *text.as_bytes() => Ok(None),
            Some(n) => Ok(Some(n.iter().map(|&b| char::from(b)).collect())),
            None => match validate_phone(&text) {
                Ok(p) if p == *text => Ok(None),
                Ok(p) => Ok(Some(p)),
                Err(e) => Err(phone_reason(&e)),
            },
        },
        // The code is ASCII; checked here because `validate_uscc` slices bytes and must not see other text.
        Validator::Uscc if !text.is_ascii() => {
            let (position, found) = text
                .chars()
                .enumerate()
                .find(|(_, c)| !c.is_ascii())
                .map_or((0, '?'), |(i, c)| (i + 1, c));
            Err(format!(
                "character {found:?} at position {position} is not in the code's character set"
            ))
        }
        Validator::Uscc if is_canonical_uscc(&text) => Ok(None),
        Validator::Uscc => match validate_uscc(&text) {
            Ok(u) if u.as_str() == text => Ok(None),
            Ok(u) => Ok(Some(u.as_str().to_string())),
            Err(e) => Err(e.to_string()),
        },
        Validator::RegionCode => validate_region_code(&text)
            .map(|_| None)
            .map_err(|e| e.to_string()),
        Validator::GridCode if is_valid_grid_code(&text) => Ok(None),
        Validator::GridCode => validate_grid_code(&text)
            .map(|_| None)
            .map_err(|e| e.to_string()),
    };
    match normalised {
        Ok(None) => Ok(Typed::Str(text)),
        Ok(Some(n)) => Ok(Typed::Str(Cow::Owned(n))),
        Err(reason) => Err(Fail {
            kind: RecordErrorKind::Validator,
            validator: Some(validator),
            message: format!(
                "{} fails the {validator} check: {reason}",
                mask.with_validator(Some(validator)).show(&text)
            ),
        }),
    }
}

/// Exactly what `validate_phone` accepts unchanged: 11 ASCII digits, `1`, then 3-9.
fn is_plain_mobile(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 11
        && b[0] == b'1'
        && (b'3'..=b'9').contains(&b[1])
        && b.iter().all(u8::is_ascii_digit)
}

/// The bare 11 digits `validate_phone` returns for a valid number, computed without allocating; `None` when it
/// would reject the text (the caller then asks it for the error).
fn normalise_mobile(text: &str) -> Option<[u8; 11]> {
    let trimmed = text.trim();
    let (plus, rest) = match trimmed.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, trimmed),
    };
    // A valid number has at most 15 digits (`0086` and 11); more can only be rejected.
    let mut digits = [0u8; 15];
    let mut n = 0;
    for ch in rest.chars() {
        match ch {
            '0'..='9' => {
                *digits.get_mut(n)? = ch as u8;
                n += 1;
            }
            ' ' | '-' | '\u{3000}' => {}
            _ => return None,
        }
    }
    let digits = &digits[..n];
    let national = if plus || n == 13 || n == 15 {
        digits
            .strip_prefix(b"0086")
            .or_else(|| digits.strip_prefix(b"86"))
            .unwrap_or(digits)
    } else {
        digits
    };
    let national: [u8; 11] = national.try_into().ok()?;
    (national[0] == b'1' && (b'3'..=b'9').contains(&national[1])).then_some(national)
}

/// Why an ID number is invalid, without repeating its digits (the birth date is personal data too).
fn cert_no_reason(e: &CertNoError) -> String {
    match e {
        CertNoError::Length { len } => format!("must have 18 characters, has {len}"),
        CertNoError::NotDigit { position, .. } => {
            format!("character {position} must be a digit")
        }
        CertNoError::BadCheckChar { .. } => "the 18th character must be a digit or X".into(),
        CertNoError::CheckDigit { .. } => "the check character does not match".into(),
        CertNoError::UnknownProvince { .. } => {
            "the first two digits are not a province code".into()
        }
        CertNoError::InvalidBirthDate { .. } => "the birth date is not a calendar date".into(),
        CertNoError::BirthDateInFuture { .. } => "the birth date is in the future".into(),
        CertNoError::BirthDateTooEarly { .. } => "the birth date is before 1900".into(),
    }
}

/// Why a mobile number is invalid, without repeating its digits.
fn phone_reason(e: &PhoneError) -> String {
    match e {
        PhoneError::BadChar { found } if found.is_ascii_punctuation() || found.is_alphabetic() => {
            format!("character {found:?} is not allowed")
        }
        PhoneError::BadChar { .. } => "it contains a character that is not allowed".into(),
        PhoneError::Length { digits, .. } => format!("must have 11 digits, has {digits}"),
        PhoneError::BadFirstDigit { .. } => "must start with 1".into(),
        PhoneError::BadSecondDigit { found, .. } => {
            format!("second digit {found} must be 3-9")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target(ty: ScalarType) -> ScalarTarget {
        ScalarTarget {
            ty,
            union: None,
            mask: Mask::Show,
        }
    }

    fn conv(json: Json, conv: &Conv, ty: ScalarType) -> Result<Typed<'static>, Fail> {
        let leaked: &'static Json = Box::leak(Box::new(json));
        convert(Raw::Json(leaked), conv, &target(ty))
    }

    #[test]
    fn numbers_from_text_and_money() {
        let long = Conv::Long { money: None };
        assert_eq!(
            conv(json!("42"), &long, ScalarType::Long),
            Ok(Typed::Long(42))
        );
        assert_eq!(
            conv(json!(" -7 "), &long, ScalarType::Long),
            Ok(Typed::Long(-7))
        );
        assert_eq!(
            conv(json!("12.00"), &long, ScalarType::Long),
            Ok(Typed::Long(12))
        );
        assert_eq!(
            conv(json!(3.0), &long, ScalarType::Long),
            Ok(Typed::Long(3))
        );
        assert_eq!(
            conv(json!(true), &long, ScalarType::Long),
            Ok(Typed::Long(1))
        );
        assert!(conv(json!("12.5"), &long, ScalarType::Long).is_err());
        assert!(conv(json!("1e3"), &long, ScalarType::Long).is_err());
        assert!(conv(json!("99999999999999999999"), &long, ScalarType::Long).is_err());
        assert!(conv(json!(1e300), &long, ScalarType::Long).is_err());
        let int = Conv::Int { money: None };
        assert!(conv(json!(3_000_000_000_i64), &int, ScalarType::Int).is_err());
        let fen = Conv::Long { money: Some(2) };
        assert_eq!(
            conv(json!("12.50"), &fen, ScalarType::Long),
            Ok(Typed::Long(1250))
        );
        assert_eq!(
            conv(json!("12.5"), &fen, ScalarType::Long),
            Ok(Typed::Long(1250))
        );
        assert_eq!(
            conv(json!(520), &fen, ScalarType::Long),
            Ok(Typed::Long(52_000))
        );
        assert_eq!(
            conv(json!(0.1), &fen, ScalarType::Long),
            Ok(Typed::Long(10))
        );
        assert_eq!(
            conv(json!("-0.01"), &fen, ScalarType::Long),
            Ok(Typed::Long(-1))
        );
        assert_eq!(
            conv(json!("12.500"), &fen, ScalarType::Long),
            Ok(Typed::Long(1250))
        );
        let e = conv(json!("12.505"), &fen, ScalarType::Long).unwrap_err();
        assert_eq!(e.kind, RecordErrorKind::BadNumber);
        assert!(conv(json!("."), &fen, ScalarType::Long).is_err());
        assert!(conv(json!("¥12"), &fen, ScalarType::Long).is_err());
    }

    #[test]
    fn booleans_from_chinese_and_letters() {
        for (v, want) in [
            (json!("是"), true),
            (json!("否"), false),
            (json!("Y"), true),
            (json!("n"), false),
            (json!("1"), true),
            (json!(0), false),
            (json!("TRUE"), true),
        ] {
            assert_eq!(
                conv(v.clone(), &Conv::Bool, ScalarType::Bool),
                Ok(Typed::Bool(want)),
                "{v}"
            );
        }
        assert!(conv(json!("maybe"), &Conv::Bool, ScalarType::Bool).is_err());
        assert!(conv(json!(2), &Conv::Bool, ScalarType::Bool).is_err());
    }

    #[test]
    fn strings_from_numbers_and_enums_by_symbol() {
        assert_eq!(
            conv(json!(101), &Conv::Str, ScalarType::String),
            Ok(Typed::Str(Cow::Owned("101".into())))
        );
        assert_eq!(
            conv(json!(1.5), &Conv::Str, ScalarType::String),
            Ok(Typed::Str(Cow::Owned("1.5".into())))
        );
        assert!(conv(json!({}), &Conv::Str, ScalarType::String).is_err());
        for n in [
            json!(0),
            json!(7),
            json!(u64::MAX),
            json!(-12),
            json!(i64::MIN),
            json!(2.5e-7),
        ] {
            assert_eq!(
                conv(n.clone(), &Conv::Str, ScalarType::String),
                Ok(Typed::Str(Cow::Owned(n.to_string()))),
                "{n}"
            );
        }
        let e = ScalarType::Enum(vec!["A".into(), "B".into()].into_boxed_slice());
        assert_eq!(conv(json!("B"), &Conv::Enum, e.clone()), Ok(Typed::Enum(1)));
        let err = conv(json!("C"), &Conv::Enum, e).unwrap_err();
        assert_eq!(err.kind, RecordErrorKind::BadCode);
    }

    #[test]
    fn stack_phone_normaliser_agrees_with_validate_phone() {
        let mut state = 0x0123_4567_89ab_cdef_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let pieces = [
            "0", "1", "3", "8", "9", "2", "86", "0086", "+", " ", "-", "\u{3000}", "(", "a", "一",
            "\t",
        ];
        let mut valid = 0;
        for _ in 0..300_000 {
            let n = next();
            let mut text = String::new();
            if n % 4 == 0 {
                text.push_str(["+86 ", "0086", "86", "+86-", " +"][((n >> 2) % 5) as usize]);
            }
            text.push_str(&format!(
                "1{}{:09}",
                (n >> 8) % 10,
                (n >> 12) % 1_000_000_000
            ));
            for k in 0..((n >> 42) % 4) {
                let at = ((n >> (44 + 4 * k)) % (text.len() as u64 + 1)) as usize;
                if text.is_char_boundary(at) {
                    let piece = pieces[((n >> (46 + 3 * k)) % pieces.len() as u64) as usize];
                    text.insert_str(at, piece);
                }
            }
            let slow = validate_phone(&text).ok();
            valid += usize::from(slow.is_some());
            let fast = normalise_mobile(&text).map(|d| String::from_utf8(d.to_vec()).unwrap());
            assert_eq!(fast, slow, "{text:?}");
        }
        assert!(valid > 50_000, "{valid}");
    }

    #[test]
    fn validators_normalise_and_never_echo_full_identifiers() {
        let ok = validate(
            Typed::Str("61092119520818402x".into()),
            Validator::CertNo,
            Mask::Show,
        )
        .unwrap();
        assert_eq!(ok, Typed::Str("61092119520818402X".into()));
        let ok = validate(
            Typed::Str("+86 138-9151-2376".into()),
            Validator::Phone,
            Mask::Show,
        )
        .unwrap();
        assert_eq!(ok, Typed::Str("13891512376".into()));
        let e = validate(
            Typed::Str("610921196803124570".into()),
            Validator::CertNo,
            Mask::Show,
        )
        .unwrap_err();
        assert_eq!(e.validator, Some(Validator::CertNo));
        assert!(e.message.contains("610921********4570"), "{}", e.message);
        assert!(!e.message.contains("610921196803124570"), "{}", e.message);
        assert!(!e.message.contains("19680312"), "{}", e.message);
        let e = validate(
            Typed::Str("一二三四五六七八九十一二三四五六七八".into()),
            Validator::Uscc,
            Mask::Show,
        )
        .unwrap_err();
        assert!(e.message.contains("position 1"), "{}", e.message);
        let e = validate(
            Typed::Str("1389151237".into()),
            Validator::Phone,
            Mask::Show,
        )
        .unwrap_err();
        assert!(e.message.contains("138***1237"), "{}", e.message);
        assert!(!e.message.contains("1389151237"), "{}", e.message);
    }
}
