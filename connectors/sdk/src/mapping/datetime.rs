//! Dates and times as Chinese source systems write them, read without allocating.
//!
//! A rule's `datetime` names one format or a list tried in order:
//!
//! - `"auto"` — recognises, in this order: JSON numbers and all-digit strings (`20210914` and `20210914092100`
//!   style when the digits form a real date, otherwise epoch seconds below 10^11 and epoch milliseconds above),
//!   and the separated forms `2021-09-14 09:21:00`, `2021/9/14 9:21`, `2021.09.14`, `2021年9月14日 9时21分`,
//!   `2021年9月14日09:21:05`, ISO 8601 `2021-09-14T09:21:00+08:00` / `…Z`, with optional fractions of a second;
//! - `"iso8601"` — `YYYY-MM-DD[(T| )HH:MM[:SS[.fff]]][Z|±HH:MM]` only;
//! - `"epoch_seconds"`, `"epoch_millis"` — a number or a numeric string;
//! - a pattern: `%Y` (4 digits) `%m` `%d` `%H` `%M` `%S` (1–2 digits, exactly 2 when another number follows
//!   without a separator, as in `%Y%m%d%H%M%S`), `%f` (fraction digits), `%.f` (optional `.fff`), `%z` (`Z`,
//!   `+08:00`, `+0800`, `+08`), `%F` (= `%Y-%m-%d`), `%T` (= `%H:%M:%S`), `%%`; a space matches one or more
//!   spaces (including the ideographic space U+3000); any other character matches itself (`年`, `时`, `/`, `T`).
//!
//! Text without an offset is wall-clock time in the rule's `zone` (default `Asia/Shanghai`, which has been UTC+8
//! all year since 1992; earlier instants go through the IANA database, as do other named zones).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, LocalResult, Offset, TimeZone};
use chrono_tz::Tz;
use unsilo_schemas::date::CivilDate;

const MICROS_PER_SEC: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SEC;
/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z in epoch seconds: the range every conversion stays in.
const MIN_EPOCH_SECS: i64 = -62_135_596_800;
const MAX_EPOCH_SECS: i64 = 253_402_300_799;
/// 1992-01-01T00:00:00 in Beijing, as epoch seconds; from here on China has no daylight saving time.
const SHANGHAI_FIXED_SINCE: i64 = 694_195_200;
const SHANGHAI_OFFSET: i32 = 8 * 3600;

/// A time zone: a fixed offset or a named IANA zone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Zone {
    /// Seconds east of UTC.
    Fixed(i32),
    /// China Standard Time (UTC+8 since 1992) with the IANA history before.
    Shanghai(Tz),
    /// Any other IANA zone.
    Named(Tz),
}

impl Default for Zone {
    fn default() -> Self {
        Zone::Shanghai(Tz::Asia__Shanghai)
    }
}

impl Zone {
    /// `Asia/Shanghai`, `UTC`, `+08:00`, `-0530`, `+8`.
    pub(crate) fn parse(text: &str) -> Result<Zone, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("utc") || t == "Z" {
            return Ok(Zone::Fixed(0));
        }
        if t.starts_with(['+', '-']) {
            return parse_offset_exact(t).map(Zone::Fixed).ok_or_else(|| {
                format!("time zone {text:?} is not an offset like +08:00 or a zone name like Asia/Shanghai")
            });
        }
        match Tz::from_str(t) {
            Ok(tz) => {
                let name = tz.name();
                if matches!(
                    name,
                    "Asia/Shanghai" | "PRC" | "Asia/Chongqing" | "Asia/Chungking" | "Asia/Harbin"
                ) {
                    Ok(Zone::Shanghai(tz))
                } else {
                    Ok(Zone::Named(tz))
                }
            }
            Err(_) => Err(format!(
                "unknown time zone {text:?} (use an IANA name like Asia/Shanghai, or an offset like +08:00)"
            )),
        }
    }

    /// Offset (seconds east) in force at a wall-clock time given as epoch seconds of that time read as UTC.
    fn offset_for_local(&self, local_secs: i64) -> Result<i32, &'static str> {
        let tz = match self {
            Zone::Fixed(o) => return Ok(*o),
            Zone::Shanghai(_) if local_secs >= SHANGHAI_FIXED_SINCE => return Ok(SHANGHAI_OFFSET),
            Zone::Shanghai(tz) | Zone::Named(tz) => tz,
        };
        let naive = DateTime::from_timestamp(local_secs, 0)
            .ok_or("is out of range")?
            .naive_utc();
        match tz.offset_from_local_datetime(&naive) {
            LocalResult::Single(o) | LocalResult::Ambiguous(o, _) => Ok(o.fix().local_minus_utc()),
            LocalResult::None => Err("does not exist in the time zone (the clocks skipped it)"),
        }
    }

    /// Offset (seconds east) in force at an instant.
    fn offset_for_utc(&self, utc_secs: i64) -> i32 {
        let tz = match self {
            Zone::Fixed(o) => return *o,
            Zone::Shanghai(_) if utc_secs >= SHANGHAI_FIXED_SINCE - i64::from(SHANGHAI_OFFSET) => {
                return SHANGHAI_OFFSET
            }
            Zone::Shanghai(tz) | Zone::Named(tz) => tz,
        };
        match DateTime::from_timestamp(utc_secs, 0) {
            Some(dt) => tz
                .offset_from_utc_datetime(&dt.naive_utc())
                .fix()
                .local_minus_utc(),
            None => 0,
        }
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Zone::Fixed(o) => write!(f, "{}", OffsetText(*o)),
            Zone::Shanghai(tz) | Zone::Named(tz) => f.write_str(tz.name()),
        }
    }
}

struct OffsetText(i32);

impl fmt::Display for OffsetText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { '-' } else { '+' };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60)
    }
}

/// A directive or literal of a pattern.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Item {
    /// A number field; `fixed` when another number is next to it (then it has exactly 2 digits).
    Num {
        field: Field,
        fixed: bool,
    },
    /// Fraction of a second; `optional_dot`: `%.f`, otherwise `%f`.
    Frac {
        optional_dot: bool,
    },
    Offset,
    Space,
    Lit(char),
}

/// The number fields of a pattern.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Field {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
}

/// One way a source writes dates.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Format {
    Auto,
    Iso8601,
    EpochSeconds,
    EpochMillis,
    Pattern {
        items: Box<[Item]>,
        text: Box<str>,
        /// Set when the pattern is one of the common fixed layouts read by position.
        fast: Option<FastPattern>,
    },
}

/// Patterns with a position-based reader that gives the same results as the general one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum FastPattern {
    /// `%Y-%m-%d %H:%M:%S` (or `%F %T`).
    DashedSeconds,
    /// `%Y-%m-%d %H:%M`.
    DashedMinutes,
    /// `%Y%m%d%H%M%S`.
    Compact,
}

impl FastPattern {
    fn detect(items: &[Item]) -> Option<FastPattern> {
        let num = |field| Item::Num {
            field,
            fixed: false,
        };
        let fixed = |field| Item::Num { field, fixed: true };
        let dashed_minutes = [
            num(Field::Year),
            Item::Lit('-'),
            num(Field::Month),
            Item::Lit('-'),
            num(Field::Day),
            Item::Space,
            num(Field::Hour),
            Item::Lit(':'),
            num(Field::Minute),
        ];
        let seconds = [Item::Lit(':'), num(Field::Second)];
        let compact = [
            fixed(Field::Year),
            fixed(Field::Month),
            fixed(Field::Day),
            fixed(Field::Hour),
            fixed(Field::Minute),
            fixed(Field::Second),
        ];
        if items == compact {
            Some(FastPattern::Compact)
        } else if items == dashed_minutes {
            Some(FastPattern::DashedMinutes)
        } else if items.len() == dashed_minutes.len() + seconds.len()
            && items[..dashed_minutes.len()] == dashed_minutes
            && items[dashed_minutes.len()..] == seconds
        {
            Some(FastPattern::DashedSeconds)
        } else {
            None
        }
    }

    /// `Some(result)` is what [`pattern`] returns for the (trimmed) text; `None`: use [`pattern`].
    #[inline]
    fn read(self, s: &str) -> Option<Option<Parsed>> {
        let b = s.as_bytes();
        match self {
            FastPattern::Compact if b.len() == 14 && b.iter().all(u8::is_ascii_digit) => {
                Some(all_digits(s))
            }
            // Exactly 14 digits or nothing: every field of the run has its full width.
            FastPattern::Compact => Some(None),
            FastPattern::DashedSeconds if b.len() == 19 && b[10] == b' ' => fixed_width(b),
            FastPattern::DashedMinutes if b.len() == 16 && b[10] == b' ' => fixed_width(b),
            FastPattern::DashedSeconds | FastPattern::DashedMinutes => None,
        }
    }
}

impl Format {
    /// Parses a format name or pattern; the error says what is wrong with it.
    pub(crate) fn parse(text: &str) -> Result<Format, String> {
        match text {
            "auto" => return Ok(Format::Auto),
            "iso8601" | "iso" | "rfc3339" => return Ok(Format::Iso8601),
            "epoch_seconds" | "epoch_s" | "unix" => return Ok(Format::EpochSeconds),
            "epoch_millis" | "epoch_ms" => return Ok(Format::EpochMillis),
            _ => {}
        }
        if !text.contains('%') {
            return Err(format!(
                "date format {text:?} is neither auto, iso8601, epoch_seconds, epoch_millis nor a %-pattern"
            ));
        }
        let mut items = Vec::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '%' {
                let d = chars
                    .next()
                    .ok_or_else(|| format!("date format {text:?} ends with a lone %"))?;
                let num = |field| Item::Num {
                    field,
                    fixed: false,
                };
                match d {
                    'Y' => items.push(num(Field::Year)),
                    'm' => items.push(num(Field::Month)),
                    'd' => items.push(num(Field::Day)),
                    'H' => items.push(num(Field::Hour)),
                    'M' => items.push(num(Field::Minute)),
                    'S' => items.push(num(Field::Second)),
                    'f' => items.push(Item::Frac {
                        optional_dot: false,
                    }),
                    'z' => items.push(Item::Offset),
                    'F' => items.extend([
                        num(Field::Year),
                        Item::Lit('-'),
                        num(Field::Month),
                        Item::Lit('-'),
                        num(Field::Day),
                    ]),
                    'T' => items.extend([
                        num(Field::Hour),
                        Item::Lit(':'),
                        num(Field::Minute),
                        Item::Lit(':'),
                        num(Field::Second),
                    ]),
                    '%' => items.push(Item::Lit('%')),
                    '.' if chars.peek() == Some(&'f') => {
                        chars.next();
                        items.push(Item::Frac { optional_dot: true });
                    }
                    other => {
                        return Err(format!(
                            "date format {text:?}: %{other} is not supported (use %Y %m %d %H %M %S %f %.f %z %F %T %%)"
                        ))
                    }
                }
            } else if c.is_whitespace() {
                if items.last() != Some(&Item::Space) {
                    items.push(Item::Space);
                }
            } else {
                items.push(Item::Lit(c));
            }
        }
        let has = |f: Field| {
            items
                .iter()
                .any(|i| matches!(i, Item::Num { field, .. } if *field == f))
        };
        for (field, name) in [
            (Field::Year, "%Y"),
            (Field::Month, "%m"),
            (Field::Day, "%d"),
        ] {
            if !has(field) {
                return Err(format!("date format {text:?} has no {name}"));
            }
        }
        if has(Field::Second) && !has(Field::Minute) || has(Field::Minute) && !has(Field::Hour) {
            return Err(format!("date format {text:?}: %S needs %M and %M needs %H"));
        }
        let numeric = |i: Option<&Item>| {
            matches!(
                i,
                Some(Item::Num { .. })
                    | Some(Item::Frac {
                        optional_dot: false
                    })
            )
        };
        // In a run of numbers without separators (`%Y%m%d%H%M%S`) every field has its full width.
        for i in 0..items.len() {
            let prev_numeric = i > 0 && numeric(items.get(i - 1));
            let next_numeric = numeric(items.get(i + 1));
            if let Item::Num { fixed, .. } = &mut items[i] {
                *fixed = prev_numeric || next_numeric;
            }
        }
        Ok(Format::Pattern {
            fast: FastPattern::detect(&items),
            items: items.into_boxed_slice(),
            text: text.into(),
        })
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Format::Auto => f.write_str("auto"),
            Format::Iso8601 => f.write_str("iso8601"),
            Format::EpochSeconds => f.write_str("epoch_seconds"),
            Format::EpochMillis => f.write_str("epoch_millis"),
            Format::Pattern { text, .. } => write!(f, "{text:?}"),
        }
    }
}

/// What a source value says: a wall-clock time (zone still to apply) or an instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Parsed {
    /// Days since 1970-01-01 and microseconds into that day, in the rule's zone; `has_time` false for a date.
    Local {
        days: i64,
        micros: i64,
        has_time: bool,
    },
    /// Microseconds since the epoch, UTC.
    Instant { utc_micros: i64 },
}

/// A value read by one of the formats of a rule.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Input<'a> {
    Int(i64),
    Float(f64),
    Text(&'a str),
}

/// Reads `input` with the first of `formats` that accepts it.
pub(crate) fn parse(input: Input<'_>, formats: &[Format]) -> Option<Parsed> {
    formats.iter().find_map(|f| parse_one(input, f))
}

fn parse_one(input: Input<'_>, format: &Format) -> Option<Parsed> {
    match (format, input) {
        (Format::Auto, Input::Int(n)) => digits_as_date(n).or_else(|| {
            epoch(
                n,
                if n.unsigned_abs() < 100_000_000_000 {
                    1000
                } else {
                    1
                },
            )
        }),
        (Format::Auto, Input::Float(x)) => parse_float(x, format),
        (Format::Auto, Input::Text(s)) => auto_text(s.trim()),
        (Format::Iso8601, Input::Text(s)) => flexible(s.trim(), true),
        (Format::Iso8601, _) => None,
        (Format::EpochSeconds, Input::Int(n)) => epoch(n, 1000),
        (Format::EpochMillis, Input::Int(n)) => epoch(n, 1),
        (Format::EpochSeconds | Format::EpochMillis, Input::Float(x)) => parse_float(x, format),
        (Format::EpochSeconds | Format::EpochMillis, Input::Text(s)) => {
            let s = s.trim();
            let scale = if *format == Format::EpochSeconds {
                1000
            } else {
                1
            };
            match s.parse::<i64>() {
                Ok(n) => epoch(n, scale),
                Err(_) => s
                    .parse::<f64>()
                    .ok()
                    .and_then(|x| epoch_float(x * scale as f64)),
            }
        }
        (Format::Pattern { items, fast, .. }, Input::Text(s)) => {
            let s = s.trim();
            match fast.and_then(|f| f.read(s)) {
                Some(parsed) => parsed,
                None => pattern(s, items),
            }
        }
        (Format::Pattern { items, .. }, Input::Int(n)) if n >= 0 => {
            let mut buf = [0u8; 20];
            pattern(format_u64(n as u64, &mut buf), items)
        }
        (Format::Pattern { .. }, _) => None,
    }
}

/// The float cases of [`parse_one`]. Kept out of line: when inlined, the compiler computed the float products
/// speculatively for every input (on the bits of a text pointer or an integer, often a denormal, which costs a
/// slow microcode assist per call).
#[inline(never)]
fn parse_float(x: f64, format: &Format) -> Option<Parsed> {
    match format {
        Format::Auto => {
            let millis = if x.abs() < 1e11 { x * 1000.0 } else { x };
            epoch_float(millis)
        }
        Format::EpochSeconds => epoch_float(x * 1000.0),
        Format::EpochMillis => epoch_float(x),
        _ => None,
    }
}

/// Epoch value × `scale` milliseconds, range-checked.
fn epoch(n: i64, millis_per_unit: i64) -> Option<Parsed> {
    let millis = n.checked_mul(millis_per_unit)?;
    if millis.div_euclid(1000) < MIN_EPOCH_SECS || millis.div_euclid(1000) > MAX_EPOCH_SECS {
        return None;
    }
    Some(Parsed::Instant {
        utc_micros: millis * 1000,
    })
}

fn epoch_float(millis: f64) -> Option<Parsed> {
    if !millis.is_finite() {
        return None;
    }
    let secs = millis / 1000.0;
    if secs < MIN_EPOCH_SECS as f64 || secs > MAX_EPOCH_SECS as f64 {
        return None;
    }
    Some(Parsed::Instant {
        utc_micros: (millis * 1000.0).round() as i64,
    })
}

/// An integer that spells `yyyyMMdd` or `yyyyMMddHHmmss` of a real date between 1900 and 2100.
fn digits_as_date(n: i64) -> Option<Parsed> {
    if (19_000_101..=21_001_231).contains(&n)
        || (19_000_101_000_000..=21_001_231_235_959).contains(&n)
    {
        let mut buf = [0u8; 20];
        all_digits(format_u64(n as u64, &mut buf))
    } else {
        None
    }
}

/// Formats a non-negative integer into `buf` without allocating.
pub(crate) fn format_u64(mut n: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

fn auto_text(s: &str) -> Option<Parsed> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if negative {
            let n: i64 = s.parse().ok()?;
            return epoch(n, if digits.len() <= 11 { 1000 } else { 1 });
        }
        return all_digits(digits).or_else(|| {
            let n: i64 = digits.parse().ok()?;
            match digits.len() {
                1..=11 => epoch(n, 1000),
                13 => epoch(n, 1),
                _ => None,
            }
        });
    }
    flexible(s, false)
}

/// `yyyyMMdd`, `yyyyMMddHHmm`, `yyyyMMddHHmmss`, `yyyyMMddHHmmssSSS`.
fn all_digits(d: &str) -> Option<Parsed> {
    let b = d.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b.get(r)?.iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let (h, mi, sec, frac) = match b.len() {
        8 => (0, 0, 0, 0),
        12 => (num(8..10)?, num(10..12)?, 0, 0),
        14 => (num(8..10)?, num(10..12)?, num(12..14)?, 0),
        17 => (num(8..10)?, num(10..12)?, num(12..14)?, num(14..17)? * 1000),
        _ => return None,
    };
    local(
        num(0..4)? as i32,
        num(4..6)?,
        num(6..8)?,
        b.len() > 8,
        h,
        mi,
        sec,
        i64::from(frac),
    )
}

#[allow(clippy::too_many_arguments)]
fn local(
    year: i32,
    month: u32,
    day: u32,
    has_time: bool,
    hour: u32,
    minute: u32,
    second: u32,
    micros: i64,
) -> Option<Parsed> {
    if !(1..=9999).contains(&year) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let date = CivilDate::new(year, u8::try_from(month).ok()?, u8::try_from(day).ok()?)?;
    Some(Parsed::Local {
        days: i64::from(date.days_since_epoch()),
        micros: (i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second))
            * MICROS_PER_SEC
            + micros,
        has_time,
    })
}

/// A cursor over the input for the hand-written parsers.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// Whether the rest starts with `c` (one byte compare for ASCII; UTF-8 is prefix-free, so this is the same
    /// as `peek() == Some(c)`).
    #[inline]
    fn starts_with(&self, c: char) -> bool {
        if c.is_ascii() {
            self.s.as_bytes().get(self.pos) == Some(&(c as u8))
        } else {
            let mut buf = [0u8; 4];
            self.s
                .as_bytes()
                .get(self.pos..)
                .is_some_and(|r| r.starts_with(c.encode_utf8(&mut buf).as_bytes()))
        }
    }

    #[inline]
    fn eat(&mut self, c: char) -> bool {
        if self.starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    #[inline]
    fn eat_any(&mut self, set: &[char]) -> Option<char> {
        set.iter().copied().find(|&c| self.eat(c))
    }

    /// Between `min` and `max` ASCII digits, greedily.
    #[inline]
    fn digits(&mut self, min: usize, max: usize) -> Option<u32> {
        let bytes = self.s.as_bytes().get(self.pos..).unwrap_or_default();
        let n = bytes
            .iter()
            .take(max)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if n < min {
            return None;
        }
        let v = bytes[..n]
            .iter()
            .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
        self.pos += n;
        Some(v)
    }

    fn spaces(&mut self) -> usize {
        let mut n = 0;
        while self.eat(' ') || self.eat('\t') || self.eat('\u{3000}') {
            n += 1;
        }
        n
    }

    /// Fraction digits (1..), as microseconds; digits past the sixth are read and dropped.
    fn fraction(&mut self) -> Option<i64> {
        let bytes = self.rest().as_bytes();
        let n = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        let mut micros = 0i64;
        for i in 0..6 {
            let d = bytes
                .get(i)
                .filter(|_| i < n)
                .map_or(0, |b| i64::from(b - b'0'));
            micros = micros * 10 + d;
        }
        self.pos += n;
        Some(micros)
    }

    /// `Z`, `±HH:MM`, `±HHMM`, `±HH`, as seconds east.
    fn offset(&mut self) -> Option<i32> {
        if self.eat('Z') || self.eat('z') {
            return Some(0);
        }
        let sign = match self.eat_any(&['+', '-'])? {
            '-' => -1,
            _ => 1,
        };
        let h = self.digits(2, 2)?;
        let m = if self.eat(':') {
            self.digits(2, 2)?
        } else {
            self.digits(2, 2).unwrap_or(0)
        };
        if h > 23 || m > 59 {
            return None;
        }
        Some(sign * (h as i32 * 3600 + m as i32 * 60))
    }
}

/// `+08:00`, `-0530`, `+8` as a whole string.
fn parse_offset_exact(t: &str) -> Option<i32> {
    let mut c = Cursor { s: t, pos: 0 };
    let sign = match c.eat_any(&['+', '-'])? {
        '-' => -1,
        _ => 1,
    };
    let h = c.digits(1, 2)?;
    let m = if c.eat(':') {
        c.digits(2, 2)?
    } else {
        c.digits(2, 2).unwrap_or(0)
    };
    (c.at_end() && h <= 23 && m <= 59).then_some(sign * (h as i32 * 3600 + m as i32 * 60))
}

/// The separated forms of `auto` (and, with `iso_only`, of `iso8601`).
fn flexible(s: &str, iso_only: bool) -> Option<Parsed> {
    match fixed_width(s.as_bytes()) {
        Some(parsed) => parsed,
        None => flexible_general(s, iso_only),
    }
}

/// [`flexible`] without the fixed-width shortcut.
fn flexible_general(s: &str, iso_only: bool) -> Option<Parsed> {
    let mut c = Cursor { s, pos: 0 };
    let year = c.digits(4, 4)? as i32;
    let seps: &[char] = if iso_only {
        &['-']
    } else {
        &['-', '/', '.', '年']
    };
    let sep = c.eat_any(seps)?;
    let (min, max) = if iso_only { (2, 2) } else { (1, 2) };
    let month = c.digits(min, max)?;
    let chinese = sep == '年';
    if !c.eat(if chinese { '月' } else { sep }) {
        return None;
    }
    let day = c.digits(min, max)?;
    if chinese {
        c.eat('日');
    }
    if c.at_end() {
        return local(year, month, day, false, 0, 0, 0, 0);
    }
    let spaced = c.spaces() > 0;
    if !(spaced || c.eat('T') || chinese && c.peek().is_some_and(|ch| ch.is_ascii_digit())) {
        return None;
    }
    let hour = c.digits(min, 2)?;
    let (mut minute, mut second, mut micros) = (0, 0, 0);
    if c.eat(':') {
        minute = c.digits(2, 2)?;
        if c.eat(':') {
            second = c.digits(2, 2)?;
            if c.eat_any(&['.', ',']).is_some() {
                micros = c.fraction()?;
            }
        }
    } else if !iso_only && c.eat_any(&['时', '点']).is_some() {
        if let Some(m) = c.digits(1, 2) {
            minute = m;
            c.eat('分');
            if let Some(sec) = c.digits(1, 2) {
                second = sec;
                c.eat('秒');
            }
        }
    } else {
        return None;
    }
    let parsed = local(year, month, day, true, hour, minute, second, micros)?;
    c.spaces();
    if c.at_end() {
        return Some(parsed);
    }
    let offset = c.offset()?;
    if !c.at_end() {
        return None;
    }
    with_offset(parsed, offset)
}

/// The most common separated forms, `YYYY-MM-DD HH:MM:SS` and `YYYY-MM-DD HH:MM` (or with `T`), read at fixed
/// positions: `Some(result)` gives what [`flexible`] returns for the text (in both of its modes), `None` means
/// the text has another shape and must go the general way.
#[inline]
fn fixed_width(b: &[u8]) -> Option<Option<Parsed>> {
    let with_seconds = match b.len() {
        19 => true,
        16 => false,
        _ => return None,
    };
    let shape_ok = b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b' ' || b[10] == b'T')
        && b[13] == b':'
        && (!with_seconds || b[16] == b':');
    if !shape_ok {
        return None;
    }
    let two = |at: usize| -> Option<u32> {
        let (h, l) = (b[at], b[at + 1]);
        (h.is_ascii_digit() && l.is_ascii_digit())
            .then(|| u32::from(h - b'0') * 10 + u32::from(l - b'0'))
    };
    let year = two(0)? * 100 + two(2)?;
    let second = if with_seconds { two(17)? } else { 0 };
    Some(local(
        year as i32,
        two(5)?,
        two(8)?,
        true,
        two(11)?,
        two(14)?,
        second,
        0,
    ))
}

fn with_offset(parsed: Parsed, offset_secs: i32) -> Option<Parsed> {
    match parsed {
        Parsed::Local { days, micros, .. } => Some(Parsed::Instant {
            utc_micros: days * MICROS_PER_DAY + micros - i64::from(offset_secs) * MICROS_PER_SEC,
        }),
        instant => Some(instant),
    }
}

fn pattern(s: &str, items: &[Item]) -> Option<Parsed> {
    let mut c = Cursor { s, pos: 0 };
    let (mut y, mut mo, mut d, mut h, mut mi, mut sec, mut micros) = (0i32, 0, 0, 0, 0, 0, 0i64);
    let mut has_time = false;
    let mut offset = None;
    for item in items {
        match item {
            Item::Num { field, fixed } => {
                let (min, max) = match (field, fixed) {
                    (Field::Year, _) => (4, 4),
                    (_, true) => (2, 2),
                    (_, false) => (1, 2),
                };
                let v = c.digits(min, max)?;
                match field {
                    Field::Year => y = v as i32,
                    Field::Month => mo = v,
                    Field::Day => d = v,
                    Field::Hour => {
                        h = v;
                        has_time = true;
                    }
                    Field::Minute => mi = v,
                    Field::Second => sec = v,
                }
            }
            Item::Frac { optional_dot } => {
                if *optional_dot {
                    let save = c.pos;
                    if c.eat_any(&['.', ',']).is_some() {
                        match c.fraction() {
                            Some(f) => micros = f,
                            None => c.pos = save,
                        }
                    }
                } else {
                    micros = c.fraction()?;
                }
            }
            Item::Offset => offset = Some(c.offset()?),
            Item::Space => {
                if c.spaces() == 0 {
                    return None;
                }
            }
            Item::Lit(ch) => {
                if !c.eat(*ch) {
                    return None;
                }
            }
        }
    }
    if !c.at_end() {
        return None;
    }
    let parsed = local(y, mo, d, has_time, h, mi, sec, micros)?;
    match offset {
        Some(o) => with_offset(parsed, o),
        None => Some(parsed),
    }
}

/// Microseconds since the epoch (UTC) of a parsed value, applying `zone` to wall-clock times.
pub(crate) fn utc_micros(parsed: Parsed, zone: &Zone) -> Result<i64, &'static str> {
    match parsed {
        Parsed::Instant { utc_micros } => Ok(utc_micros),
        Parsed::Local { days, micros, .. } => {
            let local_micros = days * MICROS_PER_DAY + micros;
            let offset = zone.offset_for_local(local_micros.div_euclid(MICROS_PER_SEC))?;
            Ok(local_micros - i64::from(offset) * MICROS_PER_SEC)
        }
    }
}

/// Wall-clock microseconds since the epoch in `zone` (for `local-timestamp-*`).
pub(crate) fn local_micros(parsed: Parsed, zone: &Zone) -> i64 {
    match parsed {
        Parsed::Local { days, micros, .. } => days * MICROS_PER_DAY + micros,
        Parsed::Instant { utc_micros } => {
            utc_micros
                + i64::from(zone.offset_for_utc(utc_micros.div_euclid(MICROS_PER_SEC)))
                    * MICROS_PER_SEC
        }
    }
}

/// The calendar date (days since 1970-01-01) in `zone`.
pub(crate) fn date_days(parsed: Parsed, zone: &Zone) -> i64 {
    match parsed {
        Parsed::Local { days, .. } => days,
        instant => local_micros(instant, zone).div_euclid(MICROS_PER_DAY),
    }
}

/// RFC 3339 text in `zone` (`2021-09-14T09:21:00+08:00`), or `2021-09-14` for a date without a time.
pub(crate) fn to_text(parsed: Parsed, zone: &Zone) -> Result<String, &'static str> {
    if let Parsed::Local {
        days,
        has_time: false,
        ..
    } = parsed
    {
        return Ok(CivilDate::from_days_since_epoch(days as i32).to_string());
    }
    let utc = utc_micros(parsed, zone)?;
    let offset = zone.offset_for_utc(utc.div_euclid(MICROS_PER_SEC));
    let local = utc + i64::from(offset) * MICROS_PER_SEC;
    let days = local.div_euclid(MICROS_PER_DAY);
    let in_day = local.rem_euclid(MICROS_PER_DAY);
    let secs = in_day / MICROS_PER_SEC;
    let frac = in_day % MICROS_PER_SEC;
    let date = CivilDate::from_days_since_epoch(days as i32);
    let mut text = format!(
        "{date}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    );
    if frac % 1000 != 0 {
        text.push_str(&format!(".{frac:06}"));
    } else if frac != 0 {
        text.push_str(&format!(".{:03}", frac / 1000));
    }
    text.push_str(&OffsetText(offset).to_string());
    Ok(text)
}

#[cfg(test)]
mod tests;
